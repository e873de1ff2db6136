/**
 * User ids are raw bytes on the wire (never assume UTF-8; NUL is legal). Inside the node a
 * user is keyed by a `UserKey`: the bytes as a one-char-per-byte string, which is lossless,
 * cheap to hash in a Map and converts back exactly.
 */

export type UserKey = string & { readonly __userKey: unique symbol };

/** Longest id converted with one fromCharCode call (user ids are far shorter). */
const KEY_BY_APPLY_MAX_BYTES = 4096;

export function userKey(bytes: Uint8Array): UserKey {
  // fromCharCode reads the bytes without touching `.buffer` (which would move a small on-heap
  // array's bytes off-heap) and costs about half of a Buffer latin1 decode.
  if (bytes.length <= KEY_BY_APPLY_MAX_BYTES) return String.fromCharCode.apply(null, bytes as unknown as number[]) as UserKey;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1') as UserKey;
}

export function userBytes(key: UserKey): Uint8Array {
  const out = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) out[i] = key.charCodeAt(i);
  return out;
}

/** For logs: the UTF-8 text when it decodes cleanly, else hex. */
export function describeUser(key: UserKey): string {
  const bytes = userBytes(key);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return `0x${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
  }
}
