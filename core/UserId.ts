/**
 * User ids are raw bytes on the wire (never assume UTF-8; NUL is legal). Inside the node a
 * user is keyed by a `UserKey`: the bytes as a one-char-per-byte string, which is lossless,
 * cheap to hash in a Map and converts back exactly.
 */

export type UserKey = string & { readonly __userKey: unique symbol };

export function userKey(bytes: Uint8Array): UserKey {
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
