/**
 * Properties of the storage key encoding (fast-check): byte order of encoded keys equals the
 * documented tuple order (number < string < bytes, part by part, prefix first), keys round
 * trip, and a range's byte bounds select exactly the keys the range describes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { StorageKey, StorageKeyPart, StorageRange } from '../../runtime/Env.js';
import { byteRange, compareBytes, decodeKey, encodeKey } from '../../runtime/StorageKey.js';

const RUNS = { numRuns: 300 };
const utf8 = new TextEncoder();

const part: fc.Arbitrary<StorageKeyPart> = fc.oneof(
  fc.double({ noNaN: true }).map((n) => (Object.is(n, -0) ? 0 : n)),
  fc.integer({ min: -3, max: 3 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc.constantFrom('', '\u0000', 'a', 'a\u0000', 'a\u0000b', '\u00ff'),
  fc.uint8Array({ maxLength: 6 }),
  fc.constantFrom(new Uint8Array([]), new Uint8Array([0]), new Uint8Array([0, 0]), new Uint8Array([0, 255]), new Uint8Array([255])),
);
const key: fc.Arbitrary<StorageKeyPart[]> = fc.array(part, { minLength: 1, maxLength: 4 });

function rank(p: StorageKeyPart): number {
  return typeof p === 'number' ? 0 : typeof p === 'string' ? 1 : 2;
}

function comparePart(a: StorageKeyPart, b: StorageKeyPart): number {
  if (rank(a) !== rank(b)) return rank(a) - rank(b);
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  const ab = typeof a === 'string' ? utf8.encode(a) : (a as Uint8Array);
  const bb = typeof b === 'string' ? utf8.encode(b) : (b as Uint8Array);
  return compareBytes(ab, bb);
}

function compareTuples(a: StorageKey, b: StorageKey): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = comparePart(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

function enc(k: StorageKey): Uint8Array {
  const e = encodeKey(k);
  assert.ok(e.ok, 'encodes');
  return e.bytes;
}

test('encoded keys sort exactly as their tuples', () => {
  fc.assert(
    fc.property(key, key, (a, b) => {
      assert.equal(Math.sign(compareBytes(enc(a), enc(b))), Math.sign(compareTuples(a, b)));
    }),
    RUNS,
  );
});

test('keys round-trip through the encoding', () => {
  fc.assert(
    fc.property(key, (k) => {
      assert.deepEqual(decodeKey(enc(k)), k);
    }),
    RUNS,
  );
});

test('a range selects exactly the keys between its bounds and under its prefix', () => {
  const range = fc.record(
    { prefix: key, start: key, end: key, startExclusive: fc.boolean() },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(fc.array(key, { maxLength: 20 }), range, (keys, r: StorageRange) => {
      const br = byteRange(r);
      assert.ok(br.ok);
      for (const k of keys) {
        const b = enc(k);
        const inBytes: boolean = !br.empty && (br.lower === undefined || compareBytes(b, br.lower) >= 0) && (br.upper === undefined || compareBytes(b, br.upper) < 0);
        const underPrefix = r.prefix === undefined || (k.length >= r.prefix.length && compareTuples(k.slice(0, r.prefix.length), r.prefix) === 0);
        const afterStart = r.start === undefined || (r.startExclusive === true ? compareTuples(k, r.start) > 0 : compareTuples(k, r.start) >= 0);
        const beforeEnd = r.end === undefined || compareTuples(k, r.end) < 0;
        assert.equal(inBytes, underPrefix && afterStart && beforeEnd, `key ${JSON.stringify(k)}`);
      }
    }),
    RUNS,
  );
});

test('empty tuples, NaN and lone surrogates are refused', () => {
  assert.equal(encodeKey([]).ok, false);
  assert.equal(encodeKey([Number.NaN]).ok, false);
  assert.equal(encodeKey(['a\ud800']).ok, false);
  assert.equal(encodeKey(['\udc00b']).ok, false);
  assert.equal(encodeKey(['\ud83d\ude00']).ok, true);
  assert.equal(decodeKey(new Uint8Array([0x09])), undefined, 'unknown tag');
  assert.equal(decodeKey(new Uint8Array([0x03, 0x41])), undefined, 'unterminated bytes');
});
