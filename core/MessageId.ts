/**
 * Message ids: 16 bytes that name one stored message of one user and sort in append order (an
 * 8-byte big-endian counter, then 8 random bytes; core/OfflineMailbox.ts issues them). Every
 * layer that keeps, compares or keys ids uses this module; nothing else knows their layout.
 */

/** Bytes in a message id (also the v1 RELIABLE_MSG id length). */
export const MESSAGE_ID_BYTES = 16;

/** An id as a flat, lossless Map key: 8 chars of 16 bits each. Only for ids of MESSAGE_ID_BYTES. */
export function messageIdKey(id: Uint8Array): string {
  return String.fromCharCode(
    (id[0]! << 8) | id[1]!,
    (id[2]! << 8) | id[3]!,
    (id[4]! << 8) | id[5]!,
    (id[6]! << 8) | id[7]!,
    (id[8]! << 8) | id[9]!,
    (id[10]! << 8) | id[11]!,
    (id[12]! << 8) | id[13]!,
    (id[14]! << 8) | id[15]!,
  );
}

/** Byte-wise order of two ids: negative when `a` was appended before `b`. */
export function compareMessageIds(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** Whether `id` has the shape of a message id. */
export function isMessageId(id: unknown): id is Uint8Array {
  return id instanceof Uint8Array && id.length === MESSAGE_ID_BYTES;
}

/** The id a messageIdKey stands for (the key is lossless). */
export function messageIdFromKey(key: string): Uint8Array {
  const id = new Uint8Array(MESSAGE_ID_BYTES);
  for (let i = 0; i < 8; i++) {
    const c = key.charCodeAt(i);
    id[2 * i] = c >>> 8;
    id[2 * i + 1] = c & 0xff;
  }
  return id;
}
