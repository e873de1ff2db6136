/**
 * Storage keys as bytes: the one order-preserving encoding of key tuples that every storage
 * engine (LMDB in production, the simulator's fake) sorts by, so ranges mean the same thing
 * everywhere. Pure: no I/O, no engine knowledge.
 *
 * A key is a tuple of parts; tuples sort part by part, a tuple sorts before its extensions,
 * and parts of different types sort number < string < bytes. Each part is self-delimiting:
 *
 * - number: tag 0x01 + the float64 in 8 big-endian bytes (sign bit flipped for positives, all
 *   bits flipped for negatives), so numbers sort numerically; NaN is refused, -0 is 0.
 * - string: tag 0x02 + UTF-8 + 0x00; a 0x00 byte inside is written 0x00 0xFF. Strings sort by
 *   UTF-8 bytes (code point order); ill-formed UTF-16 (a lone surrogate) is refused.
 * - bytes:  tag 0x03 + the raw bytes escaped the same way + 0x00. Any byte is legal (user ids
 *   may hold NUL and need not be UTF-8), and bytes sort lexicographically.
 *
 * So `encode([a, b])` = `encode([a])` + `encode([b])`, and every key with prefix P lies in
 * [encode(P), encode(P) + 0xFF).
 */
import type { StorageKey, StorageKeyPart, StorageRange } from './Env.js';

const TAG_NUMBER = 0x01;
const TAG_STRING = 0x02;
const TAG_BYTES = 0x03;
const ESCAPE = 0xff;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export type KeyEncoding = { ok: true; bytes: Uint8Array } | { ok: false; message: string };

/** Encode a key tuple; refuses an empty tuple, NaN, non-parts and ill-formed strings. */
export function encodeKey(key: StorageKey): KeyEncoding {
  const size = encodedKeyLength(key);
  if (typeof size === 'string') return { ok: false, message: size };
  const out = new Uint8Array(size);
  writeKey(key, out, 0);
  return { ok: true, bytes: out };
}

/**
 * Bytes `key` encodes to, or why it cannot be a key. With `writeKey`, lets an engine encode
 * into a buffer it reuses instead of allocating one per operation.
 */
export function encodedKeyLength(key: StorageKey): number | string {
  if (!Array.isArray(key) || key.length === 0) return 'a storage key is a non-empty tuple';
  let size = 0;
  for (let i = 0; i < key.length; i++) {
    const part = (key as readonly StorageKeyPart[])[i];
    if (typeof part === 'number') {
      if (Number.isNaN(part)) return 'NaN cannot be a key part';
      size += 9;
    } else if (part instanceof Uint8Array) {
      size += 2 + part.length + zeros(part);
    } else if (typeof part === 'string') {
      if (LONE_SURROGATE.test(part)) return 'a string key part must be well-formed UTF-16';
      const b = utf8.encode(part);
      size += 2 + b.length + zeros(b);
    } else {
      return `unsupported key part type ${typeof part}`;
    }
  }
  return size;
}

/** Write a key `encodedKeyLength` accepted into `target` at `at`; returns the end offset. */
export function writeKey(key: StorageKey, target: Uint8Array, at: number): number {
  for (let i = 0; i < key.length; i++) {
    const part = key[i]!;
    if (typeof part === 'number') {
      target[at] = TAG_NUMBER;
      floatView.setFloat64(0, part === 0 ? 0 : part);
      if (floatBytes[0]! & 0x80) for (let j = 0; j < 8; j++) target[at + 1 + j] = ~floatBytes[j]! & 0xff;
      else {
        target.set(floatBytes, at + 1);
        target[at + 1] = floatBytes[0]! | 0x80;
      }
      at += 9;
    } else {
      const p = typeof part === 'string' ? utf8.encode(part) : part;
      target[at++] = typeof part === 'string' ? TAG_STRING : TAG_BYTES;
      for (let j = 0; j < p.length; j++) {
        const b = p[j]!;
        target[at++] = b;
        if (b === 0) target[at++] = ESCAPE;
      }
      target[at++] = 0;
    }
  }
  return at;
}

const floatBytes = new Uint8Array(8);
const floatView = new DataView(floatBytes.buffer);

/** Decode bytes made by `encodeKey`; `undefined` when they are not a valid key encoding. */
export function decodeKey(bytes: Uint8Array): StorageKey | undefined {
  const parts: StorageKeyPart[] = [];
  let at = 0;
  while (at < bytes.length) {
    const tag = bytes[at++];
    if (tag === TAG_NUMBER) {
      if (at + 8 > bytes.length) return undefined;
      const raw = new Uint8Array(8);
      raw.set(bytes.subarray(at, at + 8));
      if (raw[0]! & 0x80) raw[0] = raw[0]! & 0x7f;
      else for (let j = 0; j < 8; j++) raw[j] = ~raw[j]! & 0xff;
      parts.push(new DataView(raw.buffer).getFloat64(0));
      at += 8;
    } else if (tag === TAG_STRING || tag === TAG_BYTES) {
      // First pass finds the terminator and counts escapes, second copies.
      let end = at;
      let escapes = 0;
      for (;;) {
        if (end >= bytes.length) return undefined;
        if (bytes[end] === 0) {
          if (bytes[end + 1] !== ESCAPE) break;
          escapes++;
          end += 2;
        } else end++;
      }
      const u8 = new Uint8Array(end - at - escapes);
      for (let i = at, j = 0; i < end; i++, j++) {
        u8[j] = bytes[i]!;
        if (bytes[i] === 0) i++;
      }
      at = end + 1;
      if (tag === TAG_BYTES) parts.push(u8);
      else {
        try {
          parts.push(utf8Strict.decode(u8));
        } catch {
          return undefined;
        }
      }
    } else {
      return undefined;
    }
  }
  return parts.length > 0 ? parts : undefined;
}

/** Unsigned lexicographic order of byte strings (a prefix sorts first). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * A range as byte bounds: keys k with `lower <= k < upper` (`undefined` = unbounded), or
 * `empty` when no key can match. Shared by engines so every one resolves ranges identically.
 */
export type ByteRange = { ok: true; lower?: Uint8Array; upper?: Uint8Array; empty: boolean } | { ok: false; message: string };

export function byteRange(range: StorageRange): ByteRange {
  let lower: Uint8Array | undefined;
  let upper: Uint8Array | undefined;
  if (range.prefix !== undefined) {
    const p = encodeKey(range.prefix);
    if (!p.ok) return p;
    lower = p.bytes;
    upper = concat(p.bytes, 0xff);
  }
  if (range.start !== undefined) {
    const s = encodeKey(range.start);
    if (!s.ok) return s;
    // The smallest key after `start` is start + 0x00: every real extension continues with a tag >= 0x01.
    const from = range.startExclusive === true ? concat(s.bytes, 0x00) : s.bytes;
    if (lower === undefined || compareBytes(from, lower) > 0) lower = from;
  }
  if (range.end !== undefined) {
    const e = encodeKey(range.end);
    if (!e.ok) return e;
    if (upper === undefined || compareBytes(e.bytes, upper) < 0) upper = e.bytes;
  }
  const empty = range.limit === 0 || (lower !== undefined && upper !== undefined && compareBytes(lower, upper) >= 0);
  const out: ByteRange = { ok: true, empty };
  if (lower !== undefined) out.lower = lower;
  if (upper !== undefined) out.upper = upper;
  return out;
}

function zeros(b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) if (b[i] === 0) n++;
  return n;
}

function concat(a: Uint8Array, byte: number): Uint8Array {
  const out = new Uint8Array(a.length + 1);
  out.set(a);
  out[a.length] = byte;
  return out;
}
