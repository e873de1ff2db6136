/**
 * What the core routes, stores and hands to a user's connection: protocol-neutral records,
 * plain data (they cross threads and nodes through the envelope codec), never wire frames.
 * Each edge protocol renders them for its clients (v1: edge/v1/V1Render.ts); the core never
 * knows a frame layout.
 *
 * Stored records keep a kind byte beside their payload in the offline mailbox (core/Inbox.ts):
 * kinds 0 and 1 are rows written by releases that stored v1 bytes (a RELIABLE_MSG payload, a
 * bare v1 frame) and stay readable as `v1_payload` and `v1_frame`; kinds from 2 on are the
 * records below (`encodeStored`/`decodeStored`).
 */

/** A message from one user to another: opaque bytes, or a CBOR map (v1 CBOR_MSG). */
export interface DirectMessage {
  readonly k: 'direct';
  readonly from: Uint8Array;
  readonly body: Uint8Array;
  readonly format: 'opaque' | 'cbor';
}

/** An end-to-end encrypted message: a CBOR header map and ciphertext the server never opens. */
export interface E2eeMessage {
  readonly k: 'e2ee';
  readonly from: Uint8Array;
  readonly header: Uint8Array;
  readonly ciphertext: Uint8Array;
}

/** A group message fanned out to one member; `from` is the sender as the server knows it. */
export interface GroupMessage {
  readonly k: 'group';
  readonly from: Uint8Array;
  readonly gid: string;
  /** The sender's CBOR header map as sent (renderers stamp the true sender into it). */
  readonly header: Uint8Array;
  readonly ciphertext: Uint8Array;
}

/** A sender key distributed to one member of a group. */
export interface SenderKey {
  readonly k: 'sender_key';
  readonly from: Uint8Array;
  readonly gid: string;
  readonly keydata: Uint8Array;
}

/** `from` read the message `msgId` of the recipient's at `atMs` (wall-clock ms). */
export interface ReadReceipt {
  readonly k: 'receipt';
  readonly from: Uint8Array;
  readonly msgId: Uint8Array;
  readonly atMs: number;
}

/** `from` started or stopped typing to the recipient. Never stored. */
export interface Typing {
  readonly k: 'typing';
  readonly from: Uint8Array;
  readonly on: boolean;
}

/** A row stored by a release that kept v1 bytes: the payload of a RELIABLE_MSG. */
export interface V1Payload {
  readonly k: 'v1_payload';
  readonly from: Uint8Array;
  readonly payload: Uint8Array;
}

/** A row stored by a release that kept v1 bytes: a bare v1 frame (a read receipt). */
export interface V1Frame {
  readonly k: 'v1_frame';
  readonly from: Uint8Array;
  readonly frame: Uint8Array;
}

/** What is delivered with an id and acknowledged by the client. */
export type Delivery = DirectMessage | E2eeMessage | GroupMessage | SenderKey | V1Payload;
/** What is handed over without an id and never acknowledged (droppable under pressure). */
export type Notice = ReadReceipt | Typing | V1Frame;

/** Storage kinds. 0 and 1 are only read (rows of releases that stored v1 bytes). */
export const StoredKind = {
  V1_PAYLOAD: 0,
  V1_FRAME: 1,
  DIRECT: 2,
  DIRECT_CBOR: 3,
  E2EE: 4,
  GROUP: 5,
  SENDER_KEY: 6,
  RECEIPT: 7,
} as const;

export interface StoredForm {
  kind: number;
  payload: Uint8Array;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** The kind byte and payload bytes of a record, for the offline mailbox. A direct message's body is stored as is. */
export function encodeStored(r: Delivery | ReadReceipt): StoredForm {
  switch (r.k) {
    case 'direct':
      return { kind: r.format === 'cbor' ? StoredKind.DIRECT_CBOR : StoredKind.DIRECT, payload: r.body };
    case 'v1_payload':
      return { kind: StoredKind.V1_PAYLOAD, payload: r.payload };
    case 'e2ee': {
      const out = new Uint8Array(2 + r.header.length + r.ciphertext.length);
      writeU16(out, 0, r.header.length);
      out.set(r.header, 2);
      out.set(r.ciphertext, 2 + r.header.length);
      return { kind: StoredKind.E2EE, payload: out };
    }
    case 'group': {
      const gid = textEncoder.encode(r.gid);
      const out = new Uint8Array(1 + gid.length + 2 + r.header.length + r.ciphertext.length);
      out[0] = gid.length;
      out.set(gid, 1);
      writeU16(out, 1 + gid.length, r.header.length);
      out.set(r.header, 3 + gid.length);
      out.set(r.ciphertext, 3 + gid.length + r.header.length);
      return { kind: StoredKind.GROUP, payload: out };
    }
    case 'sender_key': {
      const gid = textEncoder.encode(r.gid);
      const out = new Uint8Array(1 + gid.length + r.keydata.length);
      out[0] = gid.length;
      out.set(gid, 1);
      out.set(r.keydata, 1 + gid.length);
      return { kind: StoredKind.SENDER_KEY, payload: out };
    }
    case 'receipt': {
      const out = new Uint8Array(1 + r.msgId.length + 8);
      out[0] = r.msgId.length;
      out.set(r.msgId, 1);
      new DataView(out.buffer).setFloat64(1 + r.msgId.length, r.atMs);
      return { kind: StoredKind.RECEIPT, payload: out };
    }
  }
}

/**
 * The record a stored row holds, or null when the row is not well formed (the caller logs and
 * skips it: a corrupt row must never crash a session or be silently rewritten).
 */
export function decodeStored(kind: number, payload: Uint8Array, from: Uint8Array): Delivery | Notice | null {
  switch (kind) {
    case StoredKind.V1_PAYLOAD:
      return { k: 'v1_payload', from, payload };
    case StoredKind.V1_FRAME:
      return { k: 'v1_frame', from, frame: payload };
    case StoredKind.DIRECT:
      return { k: 'direct', from, body: payload, format: 'opaque' };
    case StoredKind.DIRECT_CBOR:
      return { k: 'direct', from, body: payload, format: 'cbor' };
    case StoredKind.E2EE: {
      if (payload.length < 2) return null;
      const h = readU16(payload, 0);
      if (2 + h > payload.length) return null;
      return { k: 'e2ee', from, header: payload.subarray(2, 2 + h), ciphertext: payload.subarray(2 + h) };
    }
    case StoredKind.GROUP: {
      const gid = gidAt(payload);
      if (gid === null) return null;
      const at = 1 + gid.bytes;
      if (at + 2 > payload.length) return null;
      const h = readU16(payload, at);
      if (at + 2 + h > payload.length) return null;
      return { k: 'group', from, gid: gid.text, header: payload.subarray(at + 2, at + 2 + h), ciphertext: payload.subarray(at + 2 + h) };
    }
    case StoredKind.SENDER_KEY: {
      const gid = gidAt(payload);
      if (gid === null) return null;
      return { k: 'sender_key', from, gid: gid.text, keydata: payload.subarray(1 + gid.bytes) };
    }
    case StoredKind.RECEIPT: {
      if (payload.length < 1) return null;
      const m = payload[0]!;
      if (1 + m + 8 !== payload.length) return null;
      const atMs = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getFloat64(1 + m);
      return { k: 'receipt', from, msgId: payload.subarray(1, 1 + m), atMs };
    }
    default:
      return null;
  }
}

/** Whether a record is handed over without an id (not acknowledged). */
export function isNotice(r: Delivery | Notice): r is Notice {
  return r.k === 'receipt' || r.k === 'typing' || r.k === 'v1_frame';
}

/** Payload bytes a delivery occupies (what delivery windows and inbox byte caps count). */
export function deliveryBytes(r: Delivery): number {
  switch (r.k) {
    case 'direct':
      return r.body.length;
    case 'v1_payload':
      return r.payload.length;
    case 'e2ee':
      return r.header.length + r.ciphertext.length + r.from.length;
    case 'group':
      return r.gid.length + r.header.length + r.ciphertext.length + r.from.length;
    case 'sender_key':
      return r.gid.length + r.keydata.length;
  }
}

function gidAt(payload: Uint8Array): { text: string; bytes: number } | null {
  if (payload.length < 1) return null;
  const n = payload[0]!;
  if (1 + n > payload.length) return null;
  try {
    return { text: textDecoder.decode(payload.subarray(1, 1 + n)), bytes: n };
  } catch {
    return null;
  }
}

function writeU16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v & 0xff;
}

function readU16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}
