// The client-side streaming decoder of server → client v1 frames (protocol-v1.md §3), for the
// test client and the load generator: push received bytes, then call next() until need_more.
// Same buffering, copying and error rules as V1Decoder; never throws on input.
//
// Frames without a length are matched by their fixed bytes: LOGIN_OK (`03 'LOGIN_OK'`),
// GROUP_LEAVE_OK (`32 'OK'`) and the plain texts `AUTH_FAILED` / `RATE_LIMITED` (first byte
// 'A' / 'R', which no framed opcode uses). E2EE_DELIVERY, GROUP_MSG and SENDER_KEY_DIST only
// travel inside a RELIABLE_MSG; `parseDeliveryPayload` reads them out of its payload.
import { checkCborMap, cborIdBytes, decodeCbor, decodeCborMap, type CborValue } from './Cbor.js';
import { copyOut, field, fieldAt, fixedField, FrameStream, readU32, readU64, u16Field, u32Field, walkLayout, type Layout, type ParseOut } from './internal/FrameStream.js';
import {
  V1ServerOp,
  type DeliveryPayload,
  type ServerFrame,
  type V1ClientDecodeErrorCode,
  type V1ClientDecodeResult,
} from './V1Packets.js';
import {
  V1_INPUT_BUFFER_CAP_DEFAULT,
  V1_MAX_DELIVERY_BYTES,
  V1_MAX_ERROR_REASON_BYTES,
  V1_MAX_GROUP_ID_BYTES,
  V1_MAX_PREKEY_RESPONSE_BYTES,
  V1_MAX_RECEIPT_MSG_ID_BYTES,
  V1_MAX_ROSTER_BYTES,
  V1_MAX_USER_BYTES,
} from './v1Limits.js';

export interface V1ClientDecoderOptions {
  /** Bytes held while waiting for the rest of a frame; default V1_INPUT_BUFFER_CAP_DEFAULT. */
  readonly inputBufferCap?: number;
}

export class V1ClientDecoder {
  private readonly stream: FrameStream<V1ClientDecodeResult, V1ClientDecodeErrorCode>;

  constructor(options: V1ClientDecoderOptions = {}) {
    this.stream = new FrameStream(parseServerFrame, options.inputBufferCap ?? V1_INPUT_BUFFER_CAP_DEFAULT, 'input_buffer_overflow');
  }

  /** Hands received bytes to the decoder; lent until next() answers need_more (see V1Decoder.push). */
  push(bytes: Uint8Array): void {
    this.stream.push(bytes);
  }

  /** The next frame, a refusal, or need_more. After a fatal error it keeps returning that error. */
  next(): V1ClientDecodeResult {
    return this.stream.next();
  }

  get bufferedBytes(): number {
    return this.stream.bufferedBytes;
  }
}

/**
 * Reads the payload of a RELIABLE_MSG as an E2EE_DELIVERY, GROUP_MSG or SENDER_KEY_DIST frame
 * when it is exactly one (well-formed layout; CBOR map header), else `opaque`. v1 payloads are
 * untyped bytes, so a plain message that happens to have such a layout reads as that frame.
 * Fields are views into `msg`.
 */
export function parseDeliveryPayload(msg: Uint8Array): DeliveryPayload {
  if (msg.length === 0) return OPAQUE;
  const opcode = msg[0]!;
  const layout = DELIVERY_LAYOUTS.get(opcode);
  if (layout === undefined) return OPAQUE;
  const out: ParseOut = { size: 0, total: 0, code: '', opcode, bad: false };
  if (!walkLayout(msg, 0, msg.length, layout, out) || out.size !== msg.length) return OPAQUE;
  if (opcode === V1ServerOp.SENDER_KEY_DIST) return { kind: 'sender_key_dist', gid: field(msg, 0), keydata: field(msg, 1) };
  const header = field(msg, 1);
  if (checkCborMap(header) !== 'ok') return OPAQUE;
  return opcode === V1ServerOp.E2EE_DELIVERY
    ? { kind: 'e2ee_delivery', sender: field(msg, 0), header, ciphertext: field(msg, 2) }
    : { kind: 'group_msg', gid: field(msg, 0), header, ciphertext: field(msg, 2) };
}

// ---------------------------------------------------------------------------------------------

const OPAQUE: DeliveryPayload = Object.freeze({ kind: 'opaque' });
const U16_ANY = 0xffff;
const U32_ANY = 0xffff_ffff;

const DELIVERY_LAYOUTS: ReadonlyMap<number, Layout> = new Map<number, Layout>([
  [V1ServerOp.E2EE_DELIVERY, [u16Field(U16_ANY, ''), u16Field(U16_ANY, ''), u32Field(U32_ANY, '')]],
  [V1ServerOp.GROUP_MSG, [u16Field(U16_ANY, ''), u16Field(U16_ANY, ''), u32Field(U32_ANY, '')]],
  [V1ServerOp.SENDER_KEY_DIST, [u16Field(U16_ANY, ''), u32Field(U32_ANY, '')]],
]);

const user = u16Field(V1_MAX_USER_BYTES, 'user_too_long');
const gid = u16Field(V1_MAX_GROUP_ID_BYTES, 'gid_too_long');
const msgId = u16Field(V1_MAX_RECEIPT_MSG_ID_BYTES, 'msg_id_too_long');

const LAYOUTS: ReadonlyMap<number, Layout> = new Map<number, Layout>([
  [V1ServerOp.LOGIN_OK, [fixedField(8)]],
  [V1ServerOp.STATUS, [user, fixedField(1), fixedField(8)]],
  [V1ServerOp.RELIABLE_MSG, [msgId, u32Field(V1_MAX_DELIVERY_BYTES, 'payload_too_large')]],
  [V1ServerOp.PREKEY_RESPONSE, [u32Field(V1_MAX_PREKEY_RESPONSE_BYTES, 'payload_too_large')]],
  [V1ServerOp.GROUP_JOIN, [gid, user]],
  [V1ServerOp.GROUP_LEAVE_OK, [fixedField(2)]],
  [V1ServerOp.GROUP_ROSTER, [gid, u32Field(V1_MAX_ROSTER_BYTES, 'payload_too_large')]],
  [V1ServerOp.TYPING, [user, fixedField(1)]],
  [V1ServerOp.READ_RECEIPT_RELAY, [msgId, user, fixedField(8)]],
  [V1ServerOp.ERROR, [u16Field(V1_MAX_ERROR_REASON_BYTES, 'payload_too_large')]],
  [V1ServerOp.RATE_LIMITED, [fixedField(4)]],
]);

const LOGIN_OK_TEXT = bytesOf('LOGIN_OK');
const OK_TEXT = bytesOf('OK');
/** Plain texts, keyed by their first byte. */
const PLAIN_TEXTS: ReadonlyMap<number, { readonly text: Uint8Array; readonly frame: ServerFrame }> = new Map([
  [0x41, { text: bytesOf('AUTH_FAILED'), frame: Object.freeze({ kind: 'auth_failed_text' }) }],
  [0x52, { text: bytesOf('RATE_LIMITED'), frame: Object.freeze({ kind: 'rate_limited_text' }) }],
]);

function frame(f: ServerFrame): V1ClientDecodeResult {
  return { kind: 'frame', frame: f };
}

function refuse(out: ParseOut, code: V1ClientDecodeErrorCode, size: number): null {
  out.bad = true;
  out.code = code;
  out.size = size;
  return null;
}

/** The FrameParser of server frames. */
function parseServerFrame(src: Uint8Array, start: number, end: number, out: ParseOut): V1ClientDecodeResult | null {
  const opcode = src[start]!;
  const plain = PLAIN_TEXTS.get(opcode);
  if (plain !== undefined) return parsePlainText(src, start, end, out, plain.text, plain.frame);
  const layout = LAYOUTS.get(opcode);
  if (layout === undefined) return refuse(out, 'unknown_opcode', -1);
  if (!walkLayout(src, start, end, layout, out)) return null;
  const size = out.size;
  const b = copyOut(src, start, size);
  switch (opcode) {
    case V1ServerOp.LOGIN_OK:
      return equalBytes(field(b, 0), LOGIN_OK_TEXT) ? frame({ kind: 'login_ok' }) : refuse(out, 'bad_frame', size);
    case V1ServerOp.STATUS: {
      const state = b[fieldAt[1]!]!;
      if (state > 1) return refuse(out, 'bad_frame', size);
      return frame({ kind: 'status', user: field(b, 0), online: state === 1, lastSeen: readU64(b, fieldAt[2]!) });
    }
    case V1ServerOp.RELIABLE_MSG:
      return frame({ kind: 'reliable_msg', msgId: field(b, 0), msg: field(b, 1) });
    case V1ServerOp.PREKEY_RESPONSE: {
      const cbor = field(b, 0);
      const decoded = decodeCborMap(cbor);
      if (!decoded.ok) return refuse(out, decoded.code, size);
      return frame({ kind: 'prekey_response', cbor, map: decoded.map });
    }
    case V1ServerOp.GROUP_JOIN:
      return frame({ kind: 'group_join', gid: field(b, 0), user: field(b, 1) });
    case V1ServerOp.GROUP_LEAVE_OK:
      return equalBytes(field(b, 0), OK_TEXT) ? frame({ kind: 'group_leave_ok' }) : refuse(out, 'bad_frame', size);
    case V1ServerOp.GROUP_ROSTER: {
      const cbor = field(b, 1);
      const decoded = decodeCbor(cbor);
      if (!decoded.ok) return refuse(out, decoded.code, size);
      const members = rosterMembers(decoded.value);
      if (members === null) return refuse(out, 'bad_roster', size);
      return frame({ kind: 'group_roster', gid: field(b, 0), cbor, members });
    }
    case V1ServerOp.TYPING: {
      const status = b[fieldAt[1]!]!;
      if (status > 1) return refuse(out, 'bad_frame', size);
      return frame({ kind: 'typing', sender: field(b, 0), typing: status === 1 });
    }
    case V1ServerOp.READ_RECEIPT_RELAY:
      return frame({ kind: 'read_receipt_relay', msgId: field(b, 0), reader: field(b, 1), timestampMs: readU64(b, fieldAt[2]!) });
    case V1ServerOp.ERROR:
      return frame({ kind: 'error', reason: String.fromCharCode(...field(b, 0)) });
    default: // RATE_LIMITED, the last layout
      return frame({ kind: 'rate_limited', retryAfterMs: readU32(b, fieldAt[0]!) });
  }
}

function parsePlainText(src: Uint8Array, start: number, end: number, out: ParseOut, text: Uint8Array, f: ServerFrame): V1ClientDecodeResult | null {
  const n = Math.min(end - start, text.length);
  for (let i = 1; i < n; i++) if (src[start + i] !== text[i]) return refuse(out, 'unknown_opcode', -1);
  if (n < text.length) return null;
  out.size = text.length;
  return frame(f);
}

function rosterMembers(value: CborValue): Uint8Array[] | null {
  if (!Array.isArray(value)) return null;
  const members: Uint8Array[] = [];
  for (const item of value as readonly CborValue[]) {
    const id = cborIdBytes(item);
    if (id === null) return null;
    members.push(id);
  }
  return members;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
