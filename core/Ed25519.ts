/**
 * Ed25519 signature check for the key directory: is `signature` a valid signature of
 * `message` by the raw 32-byte public key `publicKey`? Pure and deterministic (node:crypto).
 * Recent key objects and recently verified (key, signature, message) triples are remembered in
 * bounded LRU sets: a key object costs more to build than the check, and clients upload the
 * same signed prekey again on every reconnect.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

/** Parsed public keys kept (a key object costs more to build than a signature check). */
const KEY_CACHE_ENTRIES = 1_024;
/** Raw key (as a latin1 string) → its key object, least recently used first. */
const keys = new Map<string, KeyObject>();

/** Signatures found valid, remembered (a client uploading its signed prekey again is checked once). */
const VALID_CACHE_ENTRIES = 1_024;
/** Messages longer than this are not remembered. */
const VALID_CACHE_MAX_MESSAGE = 256;
/** key ‖ signature ‖ message (latin1) of signatures found valid, least recently used first. */
const valid = new Set<string>();

export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const memo = message.length <= VALID_CACHE_MAX_MESSAGE ? latin1(publicKey) + latin1(signature) + latin1(message) : null;
  if (memo !== null && valid.has(memo)) {
    valid.delete(memo);
    valid.add(memo);
    return true;
  }
  let ok: boolean;
  try {
    ok = verify(null, message, keyObject(publicKey), signature);
  } catch {
    return false;
  }
  if (ok && memo !== null) {
    if (valid.size >= VALID_CACHE_ENTRIES) valid.delete(valid.values().next().value!);
    valid.add(memo);
  }
  return ok;
}

function latin1(b: Uint8Array): string {
  return String.fromCharCode.apply(null, b as unknown as number[]);
}

function keyObject(publicKey: Uint8Array): KeyObject {
  const id = latin1(publicKey);
  let key = keys.get(id);
  if (key !== undefined) {
    keys.delete(id);
    keys.set(id, key);
    return key;
  }
  const der = new Uint8Array(SPKI_PREFIX.length + 32);
  der.set(SPKI_PREFIX);
  der.set(publicKey, SPKI_PREFIX.length);
  key = createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
  if (keys.size >= KEY_CACHE_ENTRIES) keys.delete(keys.keys().next().value!);
  keys.set(id, key);
  return key;
}
