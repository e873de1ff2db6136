// The streaming decoder of client → server v1 packets (protocol-v1.md §1, §2), one per
// connection: push received bytes, then call next() until it answers need_more. It never
// throws on input and never does I/O; refusals are typed values with a stable code.
//
// Framing rules (§1):
//  - Packets are decoded back to back; an incomplete packet waits for more bytes (a short
//    header is never dropped).
//  - LOGIN (0x01) has no length: its data is the rest of the currently buffered bytes. A lone
//    0x01 waits for at least one more byte. The user (before the first ':') must be 1..256 bytes
//    (`empty_user`, `user_too_long`; the connection answers AUTH_FAILED and closes).
//  - ACK (0x03) is the opcode and exactly V1_MESSAGE_ID_BYTES (16) bytes, so coalesced ACKs and
//    an ACK followed by a SEND in one segment decode as separate packets.
//  - A length over its limit or a malformed batch blob is refused once the packet's total length is known (when every length field has
//    arrived): the error carries `skip` = that length, the packet's bytes are dropped (also
//    those not yet received) and decoding resumes with the next packet.
//  - An unknown opcode cannot be resynchronised (there is no common header): a fatal
//    `unknown_opcode`. Over the input buffer cap: a fatal `input_buffer_overflow`.
//  - Identifier fields the table leaves unbounded (gid of GROUP_MSG/ROSTER, TYPING target,
//    READ_RECEIPT original sender) use the same 256-byte bound as every user and group id.
//
// CBOR content (CBOR_MSG maps, prekey uploads, E2EE and group headers) is left as bytes: the
// connection checks it (V1Content.ts) only after the packet passed its login and budget checks.
//
// Payloads: each packet is copied once out of the input (its fields are views into that copy),
// so packets outlive the input buffer and never pin a transport's read buffer. SEND, SEND_SEQ
// and ACK, which only pass through, are copied into a shared slab (internal/ByteSlab.ts).
import { slabCopy } from './internal/ByteSlab.js';
import {
  copyOut,
  field,
  fieldAt,
  fixedField,
  FrameStream,
  readU64,
  u16Field,
  u32Field,
  walkLayout,
  type Layout,
  type ParseOut,
} from './internal/FrameStream.js';
import { V1ClientOp, type ClientPacket, type V1DecodeErrorCode, type V1DecodeResult } from './V1Packets.js';
import {
  V1_INPUT_BUFFER_CAP_DEFAULT,
  V1_MAX_BATCH_BLOB_BYTES,
  V1_MAX_BATCH_ITEMS,
  V1_MAX_CBOR_MSG_BYTES,
  V1_MAX_CIPHERTEXT_BYTES,
  V1_MAX_E2EE_HEADER_BYTES,
  V1_MAX_GROUP_ID_BYTES,
  V1_MAX_GROUP_NAME_BYTES,
  V1_MAX_KEYDATA_BYTES,
  V1_MAX_PREKEYS_BLOB_BYTES,
  V1_MAX_RECEIPT_MSG_ID_BYTES,
  V1_MAX_RECIPIENT_BYTES,
  V1_MAX_TARGET_BYTES,
  V1_MAX_USER_BYTES,
  V1_MESSAGE_ID_BYTES,
} from './v1Limits.js';

export interface V1DecoderOptions {
  /** Bytes held while waiting for the rest of a packet; default V1_INPUT_BUFFER_CAP_DEFAULT (1 MiB). */
  readonly inputBufferCap?: number;
  /**
   * With a strict cap not even a packet of legal length may be held beyond it (before login a
   * connection may send nothing longer than a LOGIN). Default false.
   */
  readonly strictCap?: boolean;
}

export class V1Decoder {
  private readonly stream: FrameStream<V1DecodeResult, V1DecodeErrorCode>;

  constructor(options: V1DecoderOptions = {}) {
    this.stream = new FrameStream(parseClientPacket, options.inputBufferCap ?? V1_INPUT_BUFFER_CAP_DEFAULT, 'input_buffer_overflow', options.strictCap ?? false);
  }

  /** Change the input cap (the connection widens it after login); applies from the next push. */
  setInputBufferCap(cap: number, strict = false): void {
    this.stream.setCap(cap, strict);
  }

  /** Bytes the decoder's own buffer occupies (what a connection holds for a packet still arriving). */
  get heldCapacity(): number {
    return this.stream.heldCapacity;
  }

  /**
   * Hands received bytes to the decoder. They are lent, not copied: keep them unchanged until
   * next() answers need_more (or a fatal error); the decoder copies what it still needs then.
   */
  push(bytes: Uint8Array): void {
    this.stream.push(bytes);
  }

  /** The next packet, a refusal, or need_more. After a fatal error it keeps returning that error. */
  next(): V1DecodeResult {
    return this.stream.next();
  }

  /** Bytes received and not yet decoded. */
  get bufferedBytes(): number {
    return this.stream.bufferedBytes;
  }
}

// ---------------------------------------------------------------------------------------------
// Layouts (§2)

const U16_ANY = 0xffff;
const target = u16Field(V1_MAX_TARGET_BYTES, 'target_too_long');
const gid = u16Field(V1_MAX_GROUP_ID_BYTES, 'gid_too_long');
const header = u16Field(V1_MAX_E2EE_HEADER_BYTES, 'header_too_large');
const ciphertext = u32Field(V1_MAX_CIPHERTEXT_BYTES, 'payload_too_large');
const msg = u16Field(U16_ANY, '');

const LAYOUTS: ReadonlyMap<number, Layout> = new Map<number, Layout>([
  [V1ClientOp.SEND, [target, msg]],
  [V1ClientOp.ACK, [fixedField(V1_MESSAGE_ID_BYTES)]],
  [V1ClientOp.BATCH_SEND, [target, u32Field(V1_MAX_BATCH_BLOB_BYTES, 'payload_too_large')]],
  [V1ClientOp.GET_STATUS, [target]],
  [V1ClientOp.SEND_SEQ, [target, fixedField(8), msg]],
  [V1ClientOp.CBOR_MSG, [target, u32Field(V1_MAX_CBOR_MSG_BYTES, 'payload_too_large')]],
  [V1ClientOp.UPLOAD_PREKEYS, [u32Field(V1_MAX_PREKEYS_BLOB_BYTES, 'payload_too_large')]],
  [V1ClientOp.FETCH_PREKEYS, [u16Field(V1_MAX_USER_BYTES, 'user_too_long')]],
  [V1ClientOp.E2EE_MSG, [u16Field(V1_MAX_RECIPIENT_BYTES, 'recipient_too_long'), header, ciphertext]],
  [V1ClientOp.GROUP_CREATE, [u16Field(V1_MAX_GROUP_NAME_BYTES, 'name_too_long')]],
  [V1ClientOp.GROUP_LEAVE, [gid]],
  [V1ClientOp.GROUP_MSG, [gid, header, ciphertext]],
  [V1ClientOp.GROUP_ROSTER, [gid]],
  [V1ClientOp.SENDER_KEY_DIST, [gid, u32Field(V1_MAX_KEYDATA_BYTES, 'payload_too_large')]],
  [V1ClientOp.TYPING_START, [target]],
  [V1ClientOp.TYPING_STOP, [target]],
  [V1ClientOp.READ_RECEIPT, [u16Field(V1_MAX_RECEIPT_MSG_ID_BYTES, 'msg_id_too_long'), u16Field(V1_MAX_USER_BYTES, 'sender_too_long')]],
]);

const COLON = 0x3a;

function packet(p: ClientPacket): V1DecodeResult {
  return { kind: 'packet', packet: p };
}

function refuse(out: ParseOut, code: V1DecodeErrorCode, size: number): null {
  out.bad = true;
  out.code = code;
  out.size = size;
  return null;
}

/** The FrameParser of client packets. */
function parseClientPacket(src: Uint8Array, start: number, end: number, out: ParseOut): V1DecodeResult | null {
  const opcode = src[start]!;
  if (opcode === V1ClientOp.LOGIN) return parseLogin(src, start, end, out);
  const layout = LAYOUTS.get(opcode);
  if (layout === undefined) return refuse(out, 'unknown_opcode', -1);
  if (!walkLayout(src, start, end, layout, out)) return null;
  const size = out.size;
  // Messages and ACKs only pass through (routed, stored by the mailbox, written in a frame):
  // their bytes may share a slab. Everything else may be kept (prekeys, names) and gets its own.
  const b = opcode === V1ClientOp.SEND || opcode === V1ClientOp.ACK || opcode === V1ClientOp.SEND_SEQ ? slabCopy(src, start, size) : copyOut(src, start, size);
  switch (opcode) {
    case V1ClientOp.SEND:
      return packet({ op: 'send', target: field(b, 0), msg: field(b, 1) });
    case V1ClientOp.ACK:
      return packet({ op: 'ack', msgId: field(b, 0) });
    case V1ClientOp.BATCH_SEND: {
      const items = batchItems(field(b, 1));
      if (typeof items === 'string') return refuse(out, items, size);
      return packet({ op: 'batch_send', target: field(b, 0), items });
    }
    case V1ClientOp.GET_STATUS:
      return packet({ op: 'get_status', target: field(b, 0) });
    case V1ClientOp.SEND_SEQ:
      return packet({ op: 'send_seq', target: field(b, 0), seq: readU64(b, fieldAt[1]!), msg: field(b, 2) });
    case V1ClientOp.CBOR_MSG:
      return packet({ op: 'cbor_msg', target: field(b, 0), cbor: field(b, 1) });
    case V1ClientOp.UPLOAD_PREKEYS:
      return packet({ op: 'upload_prekeys', cbor: field(b, 0) });
    case V1ClientOp.FETCH_PREKEYS:
      return packet({ op: 'fetch_prekeys', user: field(b, 0) });
    case V1ClientOp.E2EE_MSG:
      return packet({ op: 'e2ee_msg', recipient: field(b, 0), header: field(b, 1), ciphertext: field(b, 2) });
    case V1ClientOp.GROUP_CREATE:
      return packet({ op: 'group_create', name: field(b, 0) });
    case V1ClientOp.GROUP_LEAVE:
      return packet({ op: 'group_leave', gid: field(b, 0) });
    case V1ClientOp.GROUP_MSG:
      return packet({ op: 'group_msg', gid: field(b, 0), header: field(b, 1), ciphertext: field(b, 2) });
    case V1ClientOp.GROUP_ROSTER:
      return packet({ op: 'group_roster', gid: field(b, 0) });
    case V1ClientOp.SENDER_KEY_DIST:
      return packet({ op: 'sender_key_dist', gid: field(b, 0), keydata: field(b, 1) });
    case V1ClientOp.TYPING_START:
      return packet({ op: 'typing_start', target: field(b, 0) });
    case V1ClientOp.TYPING_STOP:
      return packet({ op: 'typing_stop', target: field(b, 0) });
    default: // READ_RECEIPT, the last layout
      return packet({ op: 'read_receipt', msgId: field(b, 0), originalSender: field(b, 1) });
  }
}

function parseLogin(src: Uint8Array, start: number, end: number, out: ParseOut): V1DecodeResult | null {
  if (end - start < 2) return null; // wait for at least one byte of login data
  const size = end - start;
  const data = copyOut(src, start, size).subarray(1);
  const colon = data.indexOf(COLON);
  const user = colon < 0 ? data : data.subarray(0, colon);
  if (user.length === 0) return refuse(out, 'empty_user', size);
  if (user.length > V1_MAX_USER_BYTES) return refuse(out, 'user_too_long', size);
  out.size = size;
  return packet({ op: 'login', data, user, token: colon < 0 ? null : data.subarray(colon + 1) });
}

/** Splits a BATCH_SEND blob (repeated `len u16, msg[len]`) into views of its items. */
function batchItems(blob: Uint8Array): Uint8Array[] | 'bad_batch' | 'batch_too_many_items' {
  const items: Uint8Array[] = [];
  let p = 0;
  while (p < blob.length) {
    if (blob.length - p < 2) return 'bad_batch';
    const len = (blob[p]! << 8) | blob[p + 1]!;
    p += 2;
    if (len > blob.length - p) return 'bad_batch';
    if (items.length === V1_MAX_BATCH_ITEMS) return 'batch_too_many_items';
    items.push(blob.subarray(p, p + len));
    p += len;
  }
  return items;
}
