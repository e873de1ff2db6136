// Byte encoders for wire protocol v1 (protocol-v1.md §2, §3): every server → client frame, and
// every client → server packet for the test client and the load generator. Each returns one
// freshly allocated Uint8Array holding exactly the frame's bytes.
//
// Encoders check field widths only (a u16 length holds at most 65535): passing a longer field
// is a bug and throws a RangeError. Protocol limits (target ≤ 256, …) are the decoder's to
// enforce, so tests can build over-limit packets with these same functions.
import { cborId, cborMapWithEntry, encodeCbor, type CborBytesResult, type CborEncodable } from './Cbor.js';
import { slabBytes } from './internal/ByteSlab.js';
import type { ClientPacket, ServerFrame } from './V1Packets.js';
import { V1ClientOp, V1ServerOp } from './V1Packets.js';

// ---------------------------------------------------------------------------------------------
// Server → client frames (§3)

const LOGIN_OK_BYTES = [V1ServerOp.LOGIN_OK, ...ascii('LOGIN_OK')];
const GROUP_LEAVE_OK_BYTES = [V1ServerOp.GROUP_LEAVE_OK, ...ascii('OK')];
/** The plain-text login refusals (no opcode); the server closes the connection after them. */
export const AUTH_FAILED_TEXT = 'AUTH_FAILED';
export const RATE_LIMITED_TEXT = 'RATE_LIMITED';

/** `03 'LOGIN_OK'`: the 9 bytes of a successful login. */
export function encodeLoginOkFrame(): Uint8Array {
  return Uint8Array.from(LOGIN_OK_BYTES);
}

/** `10, idlen u16, msg_id, mlen u32, msg`: one routed delivery, acknowledged by ACK. */
export function encodeReliableMsgFrame(msgId: Uint8Array, msg: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + msgId.length + 4 + msg.length, V1ServerOp.RELIABLE_MSG).var16(msgId).var32(msg).done();
}

/**
 * The same RELIABLE_MSG frame, cut from a shared slab (internal/ByteSlab.ts) instead of
 * allocated on its own: for the message path, which writes it at once. Holding on to it keeps
 * its whole slab alive, so a frame kept for longer is copied out (`slice()`) first.
 */
export function encodeReliableMsgFrameShortLived(msgId: Uint8Array, msg: Uint8Array): Uint8Array {
  const size = 1 + 2 + msgId.length + 4 + msg.length;
  return new FrameWriter(size, V1ServerOp.RELIABLE_MSG, slabBytes(size)).var16(msgId).var32(msg).done();
}

/** `06, ulen u16, user, state u8, last_seen u64`: the reply to GET_STATUS. */
export function encodeStatusFrame(user: Uint8Array, online: boolean, lastSeenSeconds: number | bigint): Uint8Array {
  return new FrameWriter(1 + 2 + user.length + 1 + 8, V1ServerOp.STATUS).var16(user).u8(online ? 1 : 0).u64(lastSeenSeconds).done();
}

/** `22, blen u32, cbor_map`: the reply to UPLOAD_PREKEYS / FETCH_PREKEYS (see V1Prekeys for maps). */
export function encodePrekeyResponseFrame(map: CborEncodable): Uint8Array {
  return encodePrekeyResponseCborFrame(encodeCbor(map));
}

/** PREKEY_RESPONSE around an already encoded CBOR map. */
export function encodePrekeyResponseCborFrame(cbor: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 4 + cbor.length, V1ServerOp.PREKEY_RESPONSE).var32(cbor).done();
}

/** `24, slen u16, sender, hlen u16, header, clen u32, ciphertext`: carried inside a RELIABLE_MSG. */
export function encodeE2eeDeliveryFrame(sender: Uint8Array, header: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + sender.length + 2 + header.length + 4 + ciphertext.length, V1ServerOp.E2EE_DELIVERY)
    .var16(sender)
    .var16(header)
    .var32(ciphertext)
    .done();
}

/** `31, glen u16, gid, ulen u16, user`: the reply to GROUP_CREATE. */
export function encodeGroupJoinFrame(gid: Uint8Array, user: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + gid.length + 2 + user.length, V1ServerOp.GROUP_JOIN).var16(gid).var16(user).done();
}

/** `32 4F 4B` ("2OK"): the reply to GROUP_LEAVE. */
export function encodeGroupLeaveOkFrame(): Uint8Array {
  return Uint8Array.from(GROUP_LEAVE_OK_BYTES);
}

/**
 * The header of a forwarded GROUP_MSG: the client's header map with key `sender` set to the
 * sending user (overwriting any client value, text or byte-string key); other entries are kept
 * byte for byte. The user is a text string when valid UTF-8, else a byte string.
 */
export function groupHeaderWithSender(clientHeader: Uint8Array, sender: Uint8Array): CborBytesResult {
  return cborMapWithEntry(clientHeader, 'sender', cborId(sender));
}

/** `33, glen u16, gid, hlen u16, header, clen u32, ciphertext` (header from groupHeaderWithSender). */
export function encodeGroupMsgFrame(gid: Uint8Array, header: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return groupMsgLayout(V1ServerOp.GROUP_MSG, gid, header, ciphertext);
}

/** `35, glen u16, gid, rlen u32, cbor array of member ids` (ids as text when valid UTF-8). */
export function encodeGroupRosterFrame(gid: Uint8Array, members: readonly Uint8Array[]): Uint8Array {
  return encodeGroupRosterCborFrame(gid, encodeCbor(members.map(cborId)));
}

/** GROUP_ROSTER around an already encoded CBOR array. */
export function encodeGroupRosterCborFrame(gid: Uint8Array, cbor: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + gid.length + 4 + cbor.length, V1ServerOp.GROUP_ROSTER).var16(gid).var32(cbor).done();
}

/** `36, glen u16, gid, klen u32, keydata`: carried inside a RELIABLE_MSG. */
export function encodeSenderKeyDistFrame(gid: Uint8Array, keydata: Uint8Array): Uint8Array {
  return senderKeyDistLayout(gid, keydata);
}

/** `72, slen u16, sender, status u8`: a bare typing indicator. */
export function encodeTypingFrame(sender: Uint8Array, typing: boolean): Uint8Array {
  return new FrameWriter(1 + 2 + sender.length + 1, V1ServerOp.TYPING).var16(sender).u8(typing ? 1 : 0).done();
}

/** `75, mlen u16, msg_id, rlen u16, reader, timestamp_ms u64`: a bare read receipt. */
export function encodeReadReceiptRelayFrame(msgId: Uint8Array, reader: Uint8Array, timestampMs: number | bigint): Uint8Array {
  return new FrameWriter(1 + 2 + msgId.length + 2 + reader.length + 8, V1ServerOp.READ_RECEIPT_RELAY)
    .var16(msgId)
    .var16(reader)
    .u64(timestampMs)
    .done();
}

/** `FE, len u16, reason`: an ASCII snake_case reason. */
export function encodeErrorFrame(reason: string): Uint8Array {
  return new FrameWriter(1 + 2 + reason.length, V1ServerOp.ERROR).var16(Uint8Array.from(ascii(reason))).done();
}

/** `FF, retry_after_ms u32`: a message-sending packet refused by the rate limiter. */
export function encodeRateLimitedFrame(retryAfterMs: number): Uint8Array {
  return new FrameWriter(1 + 4, V1ServerOp.RATE_LIMITED).u32(retryAfterMs).done();
}

/** The plain ASCII `AUTH_FAILED` (no opcode). */
export function encodeAuthFailedText(): Uint8Array {
  return Uint8Array.from(ascii(AUTH_FAILED_TEXT));
}

/** The plain ASCII `RATE_LIMITED` (no opcode). */
export function encodeRateLimitedText(): Uint8Array {
  return Uint8Array.from(ascii(RATE_LIMITED_TEXT));
}

/** Encodes any bare server frame (the inverse of V1ClientDecoder). */
export function encodeServerFrame(frame: ServerFrame): Uint8Array {
  switch (frame.kind) {
    case 'login_ok':
      return encodeLoginOkFrame();
    case 'reliable_msg':
      return encodeReliableMsgFrame(frame.msgId, frame.msg);
    case 'status':
      return encodeStatusFrame(frame.user, frame.online, frame.lastSeen);
    case 'prekey_response':
      return encodePrekeyResponseCborFrame(frame.cbor);
    case 'group_join':
      return encodeGroupJoinFrame(frame.gid, frame.user);
    case 'group_leave_ok':
      return encodeGroupLeaveOkFrame();
    case 'group_roster':
      return encodeGroupRosterCborFrame(frame.gid, frame.cbor);
    case 'typing':
      return encodeTypingFrame(frame.sender, frame.typing);
    case 'read_receipt_relay':
      return encodeReadReceiptRelayFrame(frame.msgId, frame.reader, frame.timestampMs);
    case 'error':
      return encodeErrorFrame(frame.reason);
    case 'rate_limited':
      return encodeRateLimitedFrame(frame.retryAfterMs);
    case 'auth_failed_text':
      return encodeAuthFailedText();
    case 'rate_limited_text':
      return encodeRateLimitedText();
  }
}

// ---------------------------------------------------------------------------------------------
// Client → server packets (§2)

const COLON = 0x3a;

/** `01, user[:token]` (login data has no length; send nothing else before LOGIN_OK). */
export function encodeLoginPacket(user: Uint8Array, token: Uint8Array | null = null): Uint8Array {
  const w = new FrameWriter(1 + user.length + (token === null ? 0 : 1 + token.length), V1ClientOp.LOGIN).raw(user);
  if (token !== null) w.u8(COLON).raw(token);
  return w.done();
}

/** `02, tlen u16, target, mlen u16, msg`. */
export function encodeSendPacket(target: Uint8Array, msg: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + target.length + 2 + msg.length, V1ClientOp.SEND).var16(target).var16(msg).done();
}

/** `03, msg_id` (16 bytes as issued by the server). */
export function encodeAckPacket(msgId: Uint8Array): Uint8Array {
  return new FrameWriter(1 + msgId.length, V1ClientOp.ACK).raw(msgId).done();
}

/** `04, tlen u16, target, blen u32, blob` with blob = repeated `len u16, msg`. */
export function encodeBatchSendPacket(target: Uint8Array, items: readonly Uint8Array[]): Uint8Array {
  let blobLength = 0;
  for (const item of items) blobLength += 2 + item.length;
  const w = new FrameWriter(1 + 2 + target.length + 4 + blobLength, V1ClientOp.BATCH_SEND).var16(target).u32(blobLength);
  for (const item of items) w.var16(item);
  return w.done();
}

/** `05, tlen u16, target`. */
export function encodeGetStatusPacket(target: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + target.length, V1ClientOp.GET_STATUS).var16(target).done();
}

/** `07, tlen u16, target, seq u64, mlen u16, msg`. */
export function encodeSendSeqPacket(target: Uint8Array, seq: bigint | number, msg: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + target.length + 8 + 2 + msg.length, V1ClientOp.SEND_SEQ).var16(target).u64(seq).var16(msg).done();
}

/** `10, tlen u16, target, clen u32, cbor` around already encoded CBOR bytes. */
export function encodeCborMsgPacket(target: Uint8Array, cbor: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + target.length + 4 + cbor.length, V1ClientOp.CBOR_MSG).var16(target).var32(cbor).done();
}

/** `20, blen u32, cbor_map` (see prekeyUploadMap for the map). */
export function encodeUploadPrekeysPacket(cbor: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 4 + cbor.length, V1ClientOp.UPLOAD_PREKEYS).var32(cbor).done();
}

/** `21, ulen u16, user`. */
export function encodeFetchPrekeysPacket(user: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + user.length, V1ClientOp.FETCH_PREKEYS).var16(user).done();
}

/** `23, rlen u16, recipient, hlen u16, header, clen u32, ciphertext`. */
export function encodeE2eeMsgPacket(recipient: Uint8Array, header: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + recipient.length + 2 + header.length + 4 + ciphertext.length, V1ClientOp.E2EE_MSG)
    .var16(recipient)
    .var16(header)
    .var32(ciphertext)
    .done();
}

/** `30, nlen u16, name`. */
export function encodeGroupCreatePacket(name: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + name.length, V1ClientOp.GROUP_CREATE).var16(name).done();
}

/** `32, glen u16, gid`. */
export function encodeGroupLeavePacket(gid: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + gid.length, V1ClientOp.GROUP_LEAVE).var16(gid).done();
}

/** `33, glen u16, gid, hlen u16, header, clen u32, ciphertext`. */
export function encodeGroupMsgPacket(gid: Uint8Array, header: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return groupMsgLayout(V1ClientOp.GROUP_MSG, gid, header, ciphertext);
}

/** `35, glen u16, gid`. */
export function encodeGroupRosterPacket(gid: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + gid.length, V1ClientOp.GROUP_ROSTER).var16(gid).done();
}

/** `36, glen u16, gid, klen u32, keydata`. */
export function encodeSenderKeyDistPacket(gid: Uint8Array, keydata: Uint8Array): Uint8Array {
  return senderKeyDistLayout(gid, keydata);
}

/** `70` (typing) or `71` (stopped), `tlen u16, target`. */
export function encodeTypingPacket(target: Uint8Array, typing: boolean): Uint8Array {
  return new FrameWriter(1 + 2 + target.length, typing ? V1ClientOp.TYPING_START : V1ClientOp.TYPING_STOP).var16(target).done();
}

/** `74, mlen u16, msg_id, slen u16, original_sender`. */
export function encodeReadReceiptPacket(msgId: Uint8Array, originalSender: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + msgId.length + 2 + originalSender.length, V1ClientOp.READ_RECEIPT).var16(msgId).var16(originalSender).done();
}

/** Encodes any client packet (the inverse of V1Decoder; LOGIN uses `data`, CBOR packets their raw bytes). */
export function encodeClientPacket(packet: ClientPacket): Uint8Array {
  switch (packet.op) {
    case 'login':
      return new FrameWriter(1 + packet.data.length, V1ClientOp.LOGIN).raw(packet.data).done();
    case 'send':
      return encodeSendPacket(packet.target, packet.msg);
    case 'ack':
      return encodeAckPacket(packet.msgId);
    case 'batch_send':
      return encodeBatchSendPacket(packet.target, packet.items);
    case 'get_status':
      return encodeGetStatusPacket(packet.target);
    case 'send_seq':
      return encodeSendSeqPacket(packet.target, packet.seq, packet.msg);
    case 'cbor_msg':
      return encodeCborMsgPacket(packet.target, packet.cbor);
    case 'upload_prekeys':
      return encodeUploadPrekeysPacket(packet.cbor);
    case 'fetch_prekeys':
      return encodeFetchPrekeysPacket(packet.user);
    case 'e2ee_msg':
      return encodeE2eeMsgPacket(packet.recipient, packet.header, packet.ciphertext);
    case 'group_create':
      return encodeGroupCreatePacket(packet.name);
    case 'group_leave':
      return encodeGroupLeavePacket(packet.gid);
    case 'group_msg':
      return encodeGroupMsgPacket(packet.gid, packet.header, packet.ciphertext);
    case 'group_roster':
      return encodeGroupRosterPacket(packet.gid);
    case 'sender_key_dist':
      return encodeSenderKeyDistPacket(packet.gid, packet.keydata);
    case 'typing_start':
      return encodeTypingPacket(packet.target, true);
    case 'typing_stop':
      return encodeTypingPacket(packet.target, false);
    case 'read_receipt':
      return encodeReadReceiptPacket(packet.msgId, packet.originalSender);
  }
}

// ---------------------------------------------------------------------------------------------
// Shared layouts and the writer

function groupMsgLayout(opcode: number, gid: Uint8Array, header: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + gid.length + 2 + header.length + 4 + ciphertext.length, opcode).var16(gid).var16(header).var32(ciphertext).done();
}

function senderKeyDistLayout(gid: Uint8Array, keydata: Uint8Array): Uint8Array {
  return new FrameWriter(1 + 2 + gid.length + 4 + keydata.length, V1ClientOp.SENDER_KEY_DIST).var16(gid).var32(keydata).done();
}

function ascii(text: string): number[] {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7e || c < 0x20) throw new RangeError(`v1 reasons and texts are printable ASCII; got code ${c} in ${JSON.stringify(text)}`);
    bytes.push(c);
  }
  return bytes;
}

const U16_MAX = 0xffff;
const U32_MAX = 0xffff_ffff;
const U64_MAX = (1n << 64n) - 1n;

/** Writes a frame of a precomputed size; `done()` checks that exactly that many bytes were written. */
class FrameWriter {
  private readonly out: Uint8Array;
  private pos = 1;

  /** `out`: where to write (exactly `size` bytes; a fresh array by default). */
  constructor(size: number, opcode: number, out: Uint8Array = new Uint8Array(size)) {
    this.out = out;
    this.out[0] = opcode;
  }

  u8(value: number): this {
    this.out[this.pos++] = value;
    return this;
  }

  u32(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > U32_MAX) throw new RangeError(`u32 field out of range: ${value}`);
    const o = this.out;
    const p = this.pos;
    o[p] = value >>> 24;
    o[p + 1] = (value >>> 16) & 0xff;
    o[p + 2] = (value >>> 8) & 0xff;
    o[p + 3] = value & 0xff;
    this.pos = p + 4;
    return this;
  }

  u64(value: number | bigint): this {
    const v = typeof value === 'bigint' ? value : Number.isSafeInteger(value) ? BigInt(value) : -1n;
    if (v < 0n || v > U64_MAX) throw new RangeError(`u64 field out of range: ${value}`);
    this.u32(Number(v >> 32n));
    return this.u32(Number(v & 0xffff_ffffn));
  }

  raw(bytes: Uint8Array): this {
    this.out.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  var16(bytes: Uint8Array): this {
    if (bytes.length > U16_MAX) throw new RangeError(`a u16-length field holds at most ${U16_MAX} bytes; got ${bytes.length}`);
    this.out[this.pos] = bytes.length >>> 8;
    this.out[this.pos + 1] = bytes.length & 0xff;
    this.pos += 2;
    return this.raw(bytes);
  }

  var32(bytes: Uint8Array): this {
    return this.u32(bytes.length).raw(bytes);
  }

  done(): Uint8Array {
    if (this.pos !== this.out.length) throw new Error(`frame size mismatch: wrote ${this.pos} of ${this.out.length} bytes`);
    return this.out;
  }
}
