// The vocabulary of wire protocol v1 (protocol-v1.md §2, §3): opcodes, decoded client packets and
// server frames as discriminated unions, and the decoders' typed results and error codes. Types
// and constants only; V1Decoder, V1ClientDecoder and V1Encoder hold the byte layouts.
//
// Byte fields (`Uint8Array`) of decoded packets and frames are owned by the value: each packet
// is copied out of the input once, and its fields are views into that copy, so a packet stays
// valid after more input arrives and never pins a transport's read buffer.
import type { CborMap } from './Cbor.js';

// ---------------------------------------------------------------------------------------------
// Opcodes

/** Client → server opcodes (§2). */
export const V1ClientOp = {
  LOGIN: 0x01,
  SEND: 0x02,
  ACK: 0x03,
  BATCH_SEND: 0x04,
  GET_STATUS: 0x05,
  SEND_SEQ: 0x07,
  CBOR_MSG: 0x10,
  UPLOAD_PREKEYS: 0x20,
  FETCH_PREKEYS: 0x21,
  E2EE_MSG: 0x23,
  GROUP_CREATE: 0x30,
  GROUP_LEAVE: 0x32,
  GROUP_MSG: 0x33,
  GROUP_ROSTER: 0x35,
  SENDER_KEY_DIST: 0x36,
  TYPING_START: 0x70,
  TYPING_STOP: 0x71,
  READ_RECEIPT: 0x74,
} as const;

/** Server → client frame opcodes (§3). LOGIN_OK's first byte is 0x03, the same as ACK's. */
export const V1ServerOp = {
  LOGIN_OK: 0x03,
  STATUS: 0x06,
  RELIABLE_MSG: 0x10,
  PREKEY_RESPONSE: 0x22,
  E2EE_DELIVERY: 0x24,
  GROUP_JOIN: 0x31,
  GROUP_LEAVE_OK: 0x32,
  GROUP_MSG: 0x33,
  GROUP_ROSTER: 0x35,
  SENDER_KEY_DIST: 0x36,
  TYPING: 0x72,
  READ_RECEIPT_RELAY: 0x75,
  ERROR: 0xfe,
  RATE_LIMITED: 0xff,
} as const;

// ---------------------------------------------------------------------------------------------
// Client → server packets

/** LOGIN: `data` is the whole login data; `user` is before the first ':', `token` after it. */
export interface LoginPacket {
  readonly op: 'login';
  readonly data: Uint8Array;
  readonly user: Uint8Array;
  /** Null when the login data has no ':' (user only). */
  readonly token: Uint8Array | null;
}
export interface SendPacket {
  readonly op: 'send';
  readonly target: Uint8Array;
  readonly msg: Uint8Array;
}
export interface AckPacket {
  readonly op: 'ack';
  readonly msgId: Uint8Array;
}
export interface BatchSendPacket {
  readonly op: 'batch_send';
  readonly target: Uint8Array;
  readonly items: readonly Uint8Array[];
}
export interface GetStatusPacket {
  readonly op: 'get_status';
  readonly target: Uint8Array;
}
export interface SendSeqPacket {
  readonly op: 'send_seq';
  readonly target: Uint8Array;
  readonly seq: bigint;
  readonly msg: Uint8Array;
}
export interface CborMsgPacket {
  readonly op: 'cbor_msg';
  readonly target: Uint8Array;
  /** The CBOR bytes exactly as received (what is routed), not yet checked (V1Content.ts). */
  readonly cbor: Uint8Array;
}
export interface UploadPrekeysPacket {
  readonly op: 'upload_prekeys';
  /** The upload's CBOR map as received, not yet read (V1Content.ts readPrekeyUpload). */
  readonly cbor: Uint8Array;
}
export interface FetchPrekeysPacket {
  readonly op: 'fetch_prekeys';
  readonly user: Uint8Array;
}
export interface E2eeMsgPacket {
  readonly op: 'e2ee_msg';
  readonly recipient: Uint8Array;
  /** The CBOR header map as received, not yet checked (V1Content.ts). */
  readonly header: Uint8Array;
  readonly ciphertext: Uint8Array;
}
export interface GroupCreatePacket {
  readonly op: 'group_create';
  readonly name: Uint8Array;
}
export interface GroupLeavePacket {
  readonly op: 'group_leave';
  readonly gid: Uint8Array;
}
export interface GroupMsgPacket {
  readonly op: 'group_msg';
  readonly gid: Uint8Array;
  /** The CBOR header map as received, not yet checked (V1Content.ts). */
  readonly header: Uint8Array;
  readonly ciphertext: Uint8Array;
}
export interface GroupRosterPacket {
  readonly op: 'group_roster';
  readonly gid: Uint8Array;
}
export interface SenderKeyDistPacket {
  readonly op: 'sender_key_dist';
  readonly gid: Uint8Array;
  readonly keydata: Uint8Array;
}
export interface TypingStartPacket {
  readonly op: 'typing_start';
  readonly target: Uint8Array;
}
export interface TypingStopPacket {
  readonly op: 'typing_stop';
  readonly target: Uint8Array;
}
export interface ReadReceiptPacket {
  readonly op: 'read_receipt';
  readonly msgId: Uint8Array;
  readonly originalSender: Uint8Array;
}

/** Every client → server packet of v1. */
export type ClientPacket =
  | LoginPacket
  | SendPacket
  | AckPacket
  | BatchSendPacket
  | GetStatusPacket
  | SendSeqPacket
  | CborMsgPacket
  | UploadPrekeysPacket
  | FetchPrekeysPacket
  | E2eeMsgPacket
  | GroupCreatePacket
  | GroupLeavePacket
  | GroupMsgPacket
  | GroupRosterPacket
  | SenderKeyDistPacket
  | TypingStartPacket
  | TypingStopPacket
  | ReadReceiptPacket;

export type ClientPacketOp = ClientPacket['op'];

/** The opcode byte of each client packet kind. */
export const V1_CLIENT_OPCODE: { readonly [K in ClientPacketOp]: number } = {
  login: V1ClientOp.LOGIN,
  send: V1ClientOp.SEND,
  ack: V1ClientOp.ACK,
  batch_send: V1ClientOp.BATCH_SEND,
  get_status: V1ClientOp.GET_STATUS,
  send_seq: V1ClientOp.SEND_SEQ,
  cbor_msg: V1ClientOp.CBOR_MSG,
  upload_prekeys: V1ClientOp.UPLOAD_PREKEYS,
  fetch_prekeys: V1ClientOp.FETCH_PREKEYS,
  e2ee_msg: V1ClientOp.E2EE_MSG,
  group_create: V1ClientOp.GROUP_CREATE,
  group_leave: V1ClientOp.GROUP_LEAVE,
  group_msg: V1ClientOp.GROUP_MSG,
  group_roster: V1ClientOp.GROUP_ROSTER,
  sender_key_dist: V1ClientOp.SENDER_KEY_DIST,
  typing_start: V1ClientOp.TYPING_START,
  typing_stop: V1ClientOp.TYPING_STOP,
  read_receipt: V1ClientOp.READ_RECEIPT,
};

// ---------------------------------------------------------------------------------------------
// Server → client frames (what the client-side decoder returns)

export interface LoginOkFrame {
  readonly kind: 'login_ok';
}
export interface ReliableMsgFrame {
  readonly kind: 'reliable_msg';
  readonly msgId: Uint8Array;
  /** Opaque payload: a plain message, a CBOR map, or an E2EE_DELIVERY / GROUP_MSG / SENDER_KEY_DIST frame. */
  readonly msg: Uint8Array;
}
export interface StatusFrame {
  readonly kind: 'status';
  readonly user: Uint8Array;
  readonly online: boolean;
  /** Unix seconds of the last disconnect; 0 when online or never seen. */
  readonly lastSeen: bigint;
}
export interface PrekeyResponseFrame {
  readonly kind: 'prekey_response';
  readonly cbor: Uint8Array;
  readonly map: CborMap;
}
export interface GroupJoinFrame {
  readonly kind: 'group_join';
  readonly gid: Uint8Array;
  readonly user: Uint8Array;
}
export interface GroupLeaveOkFrame {
  readonly kind: 'group_leave_ok';
}
export interface GroupRosterFrame {
  readonly kind: 'group_roster';
  readonly gid: Uint8Array;
  readonly cbor: Uint8Array;
  /** Member ids; text strings are given as their UTF-8 bytes. */
  readonly members: readonly Uint8Array[];
}
export interface TypingFrame {
  readonly kind: 'typing';
  readonly sender: Uint8Array;
  readonly typing: boolean;
}
export interface ReadReceiptRelayFrame {
  readonly kind: 'read_receipt_relay';
  readonly msgId: Uint8Array;
  readonly reader: Uint8Array;
  readonly timestampMs: bigint;
}
export interface ErrorFrame {
  readonly kind: 'error';
  /** ASCII snake_case reason. */
  readonly reason: string;
}
export interface RateLimitedFrame {
  readonly kind: 'rate_limited';
  readonly retryAfterMs: number;
}
/** The plain ASCII `AUTH_FAILED` login refusal; the server closes after it. */
export interface AuthFailedTextFrame {
  readonly kind: 'auth_failed_text';
}
/** The plain ASCII `RATE_LIMITED` login refusal; the server closes after it. */
export interface RateLimitedTextFrame {
  readonly kind: 'rate_limited_text';
}

/** Every bare server → client frame of v1 (E2EE_DELIVERY, GROUP_MSG, SENDER_KEY_DIST travel inside RELIABLE_MSG). */
export type ServerFrame =
  | LoginOkFrame
  | ReliableMsgFrame
  | StatusFrame
  | PrekeyResponseFrame
  | GroupJoinFrame
  | GroupLeaveOkFrame
  | GroupRosterFrame
  | TypingFrame
  | ReadReceiptRelayFrame
  | ErrorFrame
  | RateLimitedFrame
  | AuthFailedTextFrame
  | RateLimitedTextFrame;

/** Frames that the server only sends as the payload of a RELIABLE_MSG. */
export type DeliveryPayload =
  | { readonly kind: 'e2ee_delivery'; readonly sender: Uint8Array; readonly header: Uint8Array; readonly ciphertext: Uint8Array }
  | { readonly kind: 'group_msg'; readonly gid: Uint8Array; readonly header: Uint8Array; readonly ciphertext: Uint8Array }
  | { readonly kind: 'sender_key_dist'; readonly gid: Uint8Array; readonly keydata: Uint8Array }
  | { readonly kind: 'opaque' };

// ---------------------------------------------------------------------------------------------
// Decoder results

/** Stable reasons for refusing client input; each is also the ERROR frame reason. */
export type V1DecodeErrorCode =
  | 'unknown_opcode'
  | 'input_buffer_overflow'
  | 'empty_user'
  | 'user_too_long'
  | 'target_too_long'
  | 'recipient_too_long'
  | 'gid_too_long'
  | 'name_too_long'
  | 'msg_id_too_long'
  | 'sender_too_long'
  | 'header_too_large'
  | 'payload_too_large'
  | 'batch_too_many_items'
  | 'bad_batch'
  | 'bad_cbor'
  | 'cbor_not_map';

/** Stable reasons for refusing server input on the client side. */
export type V1ClientDecodeErrorCode =
  | 'unknown_opcode'
  | 'input_buffer_overflow'
  | 'bad_frame'
  | 'msg_id_too_long'
  | 'user_too_long'
  | 'gid_too_long'
  | 'payload_too_large'
  | 'bad_cbor'
  | 'cbor_not_map'
  | 'bad_roster';

/**
 * A refused packet. `skip` is the length of the refused packet when it is known; the decoder
 * has then already dropped those bytes (including ones that have not arrived yet) and the
 * next call continues with the following packet. With `fatal` the stream cannot be
 * resynchronised: every later call returns the same error and the connection must close.
 */
export interface V1DecodeError<Code extends string = V1DecodeErrorCode> {
  readonly kind: 'error';
  readonly code: Code;
  readonly skip: number | null;
  readonly fatal: boolean;
  /** The opcode of the refused packet (null for a buffer overflow), so a reply can fit the request. */
  readonly opcode: number | null;
}

export interface V1NeedMore {
  readonly kind: 'need_more';
}

export type V1DecodeResult = { readonly kind: 'packet'; readonly packet: ClientPacket } | V1NeedMore | V1DecodeError;

export type V1ClientDecodeResult = { readonly kind: 'frame'; readonly frame: ServerFrame } | V1NeedMore | V1DecodeError<V1ClientDecodeErrorCode>;
