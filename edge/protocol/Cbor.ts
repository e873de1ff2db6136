// CBOR for protocol v1 (§2, §3): a strict guard in front of cbor-x, decoded maps as JS Maps with
// byte-string keys normalised to strings, an encoder with text keys and integer (never float)
// ints, and the byte-exact `sender` stamp on group headers. Bad input is a value, never a throw.
//
// How untrusted bytes are decoded:
//  1. `scanItem` walks the bytes once (RFC 8949 well-formedness, nesting ≤ V1_MAX_CBOR_DEPTH,
//     exactly one item). It refuses reserved heads, unassigned simple values and stray breaks.
//  2. If the item holds tags or indefinite-length strings it is rewritten: tags are dropped
//     (a tagged item decodes as its content) and chunked strings become definite. cbor-x
//     rejects chunked strings, and its built-in tags (shared references, bignums, records)
//     can build cycles or cost quadratic time; the decoded view never needs them.
//  3. cbor-x decodes the (rewritten) bytes with maps as `Map`, records off, and every map key
//     passed through `KeyNormalisingDecoder.decodeKey` (byte strings holding valid UTF-8 become
//     strings).
// Raw bytes are kept by callers for forwarding, so rewriting only affects the decoded view.
// Byte strings in a decoded value are views into the bytes given to the decoder.
import { Decoder, Encoder } from 'cbor-x';
import { V1_MAX_CBOR_DEPTH } from './v1Limits.js';

// ---------------------------------------------------------------------------------------------
// Public types

/** A decoded CBOR value. Integers that were encoded in 8 bytes decode as `bigint`. */
export type CborValue =
  | null
  | undefined
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly CborValue[]
  | CborMap;

/** A decoded CBOR map. Text keys and byte-string keys holding valid UTF-8 are `string`s. */
export type CborMap = ReadonlyMap<CborValue, CborValue>;

/** A value the encoder accepts. Objects become maps with text keys, in insertion order. */
export type CborEncodable =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly CborEncodable[]
  | { readonly [key: string]: CborEncodable };

/** Why CBOR was refused: not well-formed CBOR, or well-formed but not the expected shape. */
export type CborErrorCode = 'bad_cbor' | 'cbor_not_map';

export type CborMapResult = { readonly ok: true; readonly map: CborMap } | { readonly ok: false; readonly code: CborErrorCode };
export type CborValueResult = { readonly ok: true; readonly value: CborValue } | { readonly ok: false; readonly code: 'bad_cbor' };
export type CborBytesResult = { readonly ok: true; readonly bytes: Uint8Array } | { readonly ok: false; readonly code: CborErrorCode };

// ---------------------------------------------------------------------------------------------
// Public API

/** Checks that `bytes` hold exactly one well-formed CBOR map, without decoding it. */
export function checkCborMap(bytes: Uint8Array): 'ok' | CborErrorCode {
  scanFlags = 0;
  if (scanItem(bytes, 0, bytes.length, 0) !== bytes.length) return 'bad_cbor';
  return topMajor(bytes) === MAJOR_MAP ? 'ok' : 'cbor_not_map';
}

/** Decodes exactly one CBOR item. */
export function decodeCbor(bytes: Uint8Array): CborValueResult {
  scanFlags = 0;
  if (scanItem(bytes, 0, bytes.length, 0) !== bytes.length) return BAD_CBOR;
  return decodeScanned(bytes);
}

/** Decodes exactly one CBOR item that must be a map (after any tags). */
export function decodeCborMap(bytes: Uint8Array): CborMapResult {
  scanFlags = 0;
  if (scanItem(bytes, 0, bytes.length, 0) !== bytes.length) return BAD_CBOR;
  if (topMajor(bytes) !== MAJOR_MAP) return NOT_MAP;
  const decoded = decodeScanned(bytes);
  if (!decoded.ok) return decoded;
  return decoded.value instanceof Map ? { ok: true, map: decoded.value } : BAD_CBOR;
}

/**
 * Encodes a value as CBOR: maps with text keys, safe integers and bigints as CBOR integers
 * (never floats). A bigint beyond ±(2^64 − 1) is a bug (it would need a bignum tag, which the
 * decoder's view drops) and throws a RangeError.
 */
export function encodeCbor(value: CborEncodable): Uint8Array {
  const encoded = encoder.encode(integersAsCbor(value));
  const out = new Uint8Array(encoded.length);
  out.set(encoded);
  return out;
}

/**
 * Returns the map `map` with every entry whose key names `key` (as a text key or as a byte-string
 * key holding the same UTF-8) removed and `key: value` appended. Every other entry is copied
 * byte for byte, so values the server does not understand (tags, floats, chunked strings)
 * survive unchanged. The result is a definite-length map.
 */
export function cborMapWithEntry(map: Uint8Array, key: string, value: CborEncodable): CborBytesResult {
  const check = checkCborMap(map);
  if (check !== 'ok') return { ok: false, code: check };
  let p = 0;
  for (;;) {
    readHead(map, p, map.length);
    if (hMajor !== MAJOR_TAG) break;
    p = hNext;
  }
  const indefinite = hInfo === INFO_INDEFINITE;
  let remaining = indefinite ? -1 : hArg;
  p = hNext;
  const kept: Array<[number, number]> = [];
  while (indefinite ? map[p] !== BREAK : remaining-- > 0) {
    const keyEnd = scanItem(map, p, map.length, 1);
    const valueEnd = scanItem(map, keyEnd, map.length, 1);
    if (keyName(map.subarray(p, keyEnd)) !== key) kept.push([p, valueEnd]);
    p = valueEnd;
  }
  const keyBytes = encodeCbor(key);
  const valueBytes = encodeCbor(value);
  let size = headSize(kept.length + 1) + keyBytes.length + valueBytes.length;
  for (const [start, end] of kept) size += end - start;
  const out = new Uint8Array(size);
  let o = writeHead(out, 0, MAJOR_MAP, kept.length + 1);
  for (const [start, end] of kept) {
    out.set(map.subarray(start, end), o);
    o += end - start;
  }
  out.set(keyBytes, o);
  out.set(valueBytes, o + keyBytes.length);
  return { ok: true, bytes: out };
}

/**
 * The CBOR form of an id (user, group): a text string when the bytes are valid UTF-8, else a
 * byte string (ids are raw bytes and may be any bytes; a text string must be UTF-8).
 */
export function cborId(id: Uint8Array): string | Uint8Array {
  const text = utf8OrNull(id);
  return text ?? id;
}

/** The bytes of a text or byte string value (the inverse of `cborId`), else null. */
export function cborIdBytes(value: CborValue): Uint8Array | null {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return utf8Encoder.encode(value);
  return null;
}

/** Decodes bytes as UTF-8, or null when they are not valid UTF-8. */
export function utf8OrNull(bytes: Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// cbor-x configuration

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/**
 * cbor-x calls `decodeKey` on every map key when a `keyMap` is configured; an empty keyMap
 * turns that hook on without renaming anything. cbor-x forces `mapsAsObjects` on when a
 * keyMap is given, so it is switched back off after construction: plain objects would turn
 * byte-string keys into an exception and expose prototype keys (`constructor`, `__proto__`).
 */
class KeyNormalisingDecoder extends Decoder {
  constructor() {
    super({ keyMap: {}, useRecords: false, mapsAsObjects: false });
    (this as { mapsAsObjects?: boolean }).mapsAsObjects = false;
  }

  decodeKey(key: unknown): unknown {
    return key instanceof Uint8Array ? (utf8OrNull(key) ?? key) : key;
  }
}

const decoder = new KeyNormalisingDecoder();
const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, variableMapSize: true });

const BAD_CBOR = { ok: false, code: 'bad_cbor' } as const;
const NOT_MAP = { ok: false, code: 'cbor_not_map' } as const;

function decodeScanned(bytes: Uint8Array): CborValueResult {
  // cbor-x caches a `dataView` property on the array it decodes; a throwaway view keeps that
  // property off the caller's bytes.
  const source = scanFlags & FLAG_REWRITE ? rewrite(bytes) : bytes.subarray(0);
  try {
    return { ok: true, value: decoder.decode(source) as CborValue };
  } catch {
    // The scan admits only input cbor-x decodes; this is a second line of defence.
    return BAD_CBOR;
  }
}

function keyName(keyItem: Uint8Array): string | null {
  const decoded = decodeCbor(keyItem);
  if (!decoded.ok) return null;
  if (typeof decoded.value === 'string') return decoded.value;
  if (decoded.value instanceof Uint8Array) return utf8OrNull(decoded.value);
  return null;
}

const U32_LIMIT = 0x1_0000_0000;
const U64_LIMIT = 1n << 64n;

/**
 * cbor-x writes integers beyond 32 bits as float64; bigint makes safe integers CBOR integers.
 * Numbers beyond the safe range are not exact integers and stay floats.
 */
function integersAsCbor(value: CborEncodable): unknown {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && (value >= U32_LIMIT || value < -U32_LIMIT) ? BigInt(value) : value;
  }
  if (typeof value === 'bigint') {
    if (value <= -U64_LIMIT || value >= U64_LIMIT) throw new RangeError(`${value} is outside the CBOR integer range this codec writes (±(2^64 - 1))`);
    // Small bigints as numbers keep the shortest (preferred) integer encoding.
    return value >= -BigInt(U32_LIMIT) && value < BigInt(U32_LIMIT) ? Number(value) : value;
  }
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return (value as readonly CborEncodable[]).map(integersAsCbor);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as { readonly [key: string]: CborEncodable })) {
    Object.defineProperty(out, k, { value: integersAsCbor(v), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Well-formedness scan. The head reader writes to module-level registers instead of returning
// an object, so scanning allocates nothing; the scan is synchronous and never re-entered.

const MAJOR_BYTES = 2;
const MAJOR_TEXT = 3;
const MAJOR_ARRAY = 4;
const MAJOR_MAP = 5;
const MAJOR_TAG = 6;
const INFO_INDEFINITE = 31;
const BREAK = 0xff;
const FLAG_REWRITE = 1;

let hMajor = 0;
let hInfo = 0;
let hArg = 0;
let hNext = 0;
let scanFlags = 0;

/** Reads the head at `pos`; false when it is truncated or uses a reserved additional info. */
function readHead(b: Uint8Array, pos: number, end: number): boolean {
  if (pos >= end) return false;
  const ib = b[pos]!;
  hMajor = ib >> 5;
  hInfo = ib & 31;
  let p = pos + 1;
  if (hInfo < 24) {
    hArg = hInfo;
  } else if (hInfo === 24) {
    if (p + 1 > end) return false;
    hArg = b[p]!;
    p += 1;
  } else if (hInfo === 25) {
    if (p + 2 > end) return false;
    hArg = (b[p]! << 8) | b[p + 1]!;
    p += 2;
  } else if (hInfo === 26) {
    if (p + 4 > end) return false;
    hArg = readU32(b, p);
    p += 4;
  } else if (hInfo === 27) {
    if (p + 8 > end) return false;
    // Inexact above 2^53, which only matters as a length, and such a length never fits.
    hArg = readU32(b, p) * U32_LIMIT + readU32(b, p + 4);
    p += 8;
  } else if (hInfo === INFO_INDEFINITE) {
    hArg = -1;
  } else {
    return false;
  }
  hNext = p;
  return true;
}

function readU32(b: Uint8Array, p: number): number {
  return b[p]! * 0x100_0000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
}

/** Returns the end of the item at `pos`, or -1 when it is not well-formed within `end`. */
function scanItem(b: Uint8Array, pos: number, end: number, depth: number): number {
  if (!readHead(b, pos, end)) return -1;
  const major = hMajor;
  const info = hInfo;
  const arg = hArg;
  let p = hNext;
  switch (major) {
    case 0:
    case 1:
      return info === INFO_INDEFINITE ? -1 : p;
    case MAJOR_BYTES:
    case MAJOR_TEXT:
      if (info !== INFO_INDEFINITE) return arg > end - p ? -1 : p + arg;
      scanFlags |= FLAG_REWRITE;
      for (;;) {
        if (p >= end) return -1;
        if (b[p] === BREAK) return p + 1;
        if (!readHead(b, p, end) || hMajor !== major || hInfo === INFO_INDEFINITE) return -1;
        if (hArg > end - hNext) return -1;
        p = hNext + hArg;
      }
    case MAJOR_ARRAY:
    case MAJOR_MAP: {
      if (depth >= V1_MAX_CBOR_DEPTH) return -1;
      const perEntry = major === MAJOR_MAP ? 2 : 1;
      if (info === INFO_INDEFINITE) {
        for (;;) {
          if (p >= end) return -1;
          if (b[p] === BREAK) return p + 1;
          for (let k = 0; k < perEntry; k++) {
            p = scanItem(b, p, end, depth + 1);
            if (p < 0) return -1;
          }
        }
      }
      const items = arg * perEntry;
      if (items > end - p) return -1; // every item takes at least one byte
      for (let i = 0; i < items; i++) {
        p = scanItem(b, p, end, depth + 1);
        if (p < 0) return -1;
      }
      return p;
    }
    case MAJOR_TAG:
      if (info === INFO_INDEFINITE || depth >= V1_MAX_CBOR_DEPTH) return -1;
      scanFlags |= FLAG_REWRITE;
      return scanItem(b, p, end, depth + 1);
    default:
      // Major 7: false, true, null, undefined (20..23) and half/single/double floats (25..27).
      // Unassigned simple values and a break outside an indefinite item are refused.
      return (info >= 20 && info <= 23) || (info >= 25 && info <= 27) ? p : -1;
  }
}

/** The major type of a well-formed item once its tags are skipped. */
function topMajor(b: Uint8Array): number {
  let p = 0;
  for (;;) {
    readHead(b, p, b.length);
    if (hMajor !== MAJOR_TAG) return hMajor;
    p = hNext;
  }
}

// ---------------------------------------------------------------------------------------------
// Rewrite of a well-formed item without tags and with definite strings. The output is never
// longer than the input (a chunked string spends at least as many head bytes as its definite
// form), so it is written into one buffer of the input's size.

let rIn = 0;
let rOut = 0;

function rewrite(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length);
  rIn = 0;
  rOut = 0;
  rewriteItem(b, out);
  return out.subarray(0, rOut);
}

function rewriteItem(b: Uint8Array, out: Uint8Array): void {
  readHead(b, rIn, b.length);
  const major = hMajor;
  const info = hInfo;
  const arg = hArg;
  const next = hNext;
  switch (major) {
    case MAJOR_BYTES:
    case MAJOR_TEXT: {
      if (info !== INFO_INDEFINITE) break;
      let total = 0;
      let p = next;
      while (b[p] !== BREAK) {
        readHead(b, p, b.length);
        total += hArg;
        p = hNext + hArg;
      }
      rOut = writeHead(out, rOut, major, total);
      p = next;
      while (b[p] !== BREAK) {
        readHead(b, p, b.length);
        out.set(b.subarray(hNext, hNext + hArg), rOut);
        rOut += hArg;
        p = hNext + hArg;
      }
      rIn = p + 1;
      return;
    }
    case MAJOR_ARRAY:
    case MAJOR_MAP: {
      out.set(b.subarray(rIn, next), rOut);
      rOut += next - rIn;
      rIn = next;
      const perEntry = major === MAJOR_MAP ? 2 : 1;
      if (info === INFO_INDEFINITE) {
        while (b[rIn] !== BREAK) rewriteItem(b, out);
        out[rOut++] = BREAK;
        rIn += 1;
      } else {
        for (let i = 0; i < arg * perEntry; i++) rewriteItem(b, out);
      }
      return;
    }
    case MAJOR_TAG:
      rIn = next;
      rewriteItem(b, out);
      return;
    default:
      break;
  }
  // Integers, simple values, floats and definite strings are copied whole.
  const end = major === MAJOR_BYTES || major === MAJOR_TEXT ? next + arg : next;
  out.set(b.subarray(rIn, end), rOut);
  rOut += end - rIn;
  rIn = end;
}

function headSize(arg: number): number {
  return arg < 24 ? 1 : arg < 0x100 ? 2 : arg < 0x1_0000 ? 3 : 5;
}

/** Writes the shortest head for `arg` (< 2^32) and returns the next write position. */
function writeHead(out: Uint8Array, o: number, major: number, arg: number): number {
  const m = major << 5;
  if (arg < 24) {
    out[o] = m | arg;
    return o + 1;
  }
  if (arg < 0x100) {
    out[o] = m | 24;
    out[o + 1] = arg;
    return o + 2;
  }
  if (arg < 0x1_0000) {
    out[o] = m | 25;
    out[o + 1] = arg >>> 8;
    out[o + 2] = arg & 0xff;
    return o + 3;
  }
  out[o] = m | 26;
  out[o + 1] = arg >>> 24;
  out[o + 2] = (arg >>> 16) & 0xff;
  out[o + 3] = (arg >>> 8) & 0xff;
  out[o + 4] = arg & 0xff;
  return o + 5;
}

