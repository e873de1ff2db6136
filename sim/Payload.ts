/**
 * The bytes a simulated client sends as a message: who sent it to whom, the sender's
 * sequence number for that recipient, the connection it left on, padding, and a checksum.
 * A delivered payload that does not parse or whose checksum fails is a corrupted message;
 * one no client sent is a phantom.
 */

export const PAYLOAD_MAGIC = 0x53494d31; // 'SIM1'
const HEADER_BYTES = 4 + 2 + 2 + 1 + 4 + 4;
/** The `target` of a message sent to the simulation's group. */
export const GROUP_TARGET = 0xffff;

export interface PayloadFields {
  sender: number;
  target: number;
  /** 0: SEND, 1: SEND_SEQ. */
  kind: 0 | 1;
  /** Per (sender, target), increasing across the sender's connections. */
  seq: number;
  /** The sender's connection number. */
  conn: number;
}

function checksum(b: Uint8Array, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

export function encodePayload(f: PayloadFields, padding: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + padding + 4);
  const v = new DataView(out.buffer);
  v.setUint32(0, PAYLOAD_MAGIC);
  v.setUint16(4, f.sender);
  v.setUint16(6, f.target);
  v.setUint8(8, f.kind);
  v.setUint32(9, f.seq);
  v.setUint32(13, f.conn);
  for (let i = 0; i < padding; i++) out[HEADER_BYTES + i] = (f.seq + i * 31 + f.sender) & 0xff;
  v.setUint32(out.length - 4, checksum(out, out.length - 4));
  return out;
}

export function decodePayload(b: Uint8Array): PayloadFields | null {
  if (b.length < HEADER_BYTES + 4) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(0) !== PAYLOAD_MAGIC) return null;
  if (v.getUint32(b.length - 4) !== checksum(b, b.length - 4)) return null;
  const kind = v.getUint8(8);
  if (kind !== 0 && kind !== 1) return null;
  return { sender: v.getUint16(4), target: v.getUint16(6), kind, seq: v.getUint32(9), conn: v.getUint32(13) };
}

/** A short stable text for a payload (history lines, map keys). */
export function payloadKey(f: PayloadFields): string {
  return `${f.kind === 1 ? 'q' : 's'}${f.sender}>${f.target === GROUP_TARGET ? 'g' : f.target}#${f.seq}@${f.conn}`;
}

/** Lower-case hex of `b` (history keys; Node's encoder, as the workload and checkers make many). */
export function bytesHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** The bytes of a hex text made by `bytesHex` (a copy of its own, not a view of Node's buffer pool). */
export function hexBytes(h: string): Uint8Array {
  return new Uint8Array(Buffer.from(h, 'hex'));
}

