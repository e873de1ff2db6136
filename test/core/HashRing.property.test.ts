/**
 * Consistent hashing properties: deterministic, balanced within bounds, and adding or
 * removing a member moves only the keys that member gains or loses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HashRing } from '../../core/HashRing.js';
import { userKey } from '../../core/UserId.js';

const keys = (n: number, salt: number) => Array.from({ length: n }, (_, i) => new TextEncoder().encode(`user-${salt}-${i}`));

test('the same members give the same owner for every key, whatever the insertion order', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 12 }), fc.integer(), (members, salt) => {
      const a = new HashRing(members);
      const b = new HashRing([...members].reverse());
      for (const k of keys(200, salt)) assert.equal(a.owner(k), b.owner(k));
    }),
    { numRuns: 50 },
  );
});

test('keys spread over members within 35% of the fair share', () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 16 }), fc.integer(), (n, salt) => {
      const ring = new HashRing(Array.from({ length: n }, (_, i) => i));
      const counts = new Array<number>(n).fill(0);
      const ks = keys(20_000, salt);
      for (const k of ks) counts[ring.owner(k)!]!++;
      const fair = ks.length / n;
      for (const c of counts) assert.ok(Math.abs(c - fair) / fair < 0.35, `share ${c} vs fair ${fair}`);
    }),
    { numRuns: 20 },
  );
});

test('adding a member moves keys only to that member, and removing it moves them back', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 12 }), fc.integer(), (n, salt) => {
      const ring = new HashRing(Array.from({ length: n }, (_, i) => i));
      const ks = keys(3000, salt);
      const before = ks.map((k) => ring.owner(k));
      ring.add(n);
      const after = ks.map((k) => ring.owner(k));
      let moved = 0;
      after.forEach((o, i) => {
        if (o !== before[i]) {
          moved++;
          assert.equal(o, n);
        }
      });
      // About 1/(n+1) of the keys move; allow generous slack for small rings.
      assert.ok(moved / ks.length < (1 / (n + 1)) * 1.6 + 0.02, `moved ${moved}`);
      ring.remove(n);
      assert.deepEqual(ks.map((k) => ring.owner(k)), before);
    }),
    { numRuns: 30 },
  );
});

test('an empty ring owns nothing', () => {
  assert.equal(new HashRing<number>([]).owner(new Uint8Array([1])), undefined);
});

test('a user key string and its bytes have the same owner', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 1, max: 16 }), (bytes, n) => {
      const ring = new HashRing(Array.from({ length: n }, (_, i) => i));
      assert.equal(ring.ownerOfLatin1(userKey(bytes)), ring.owner(bytes));
    }),
    { numRuns: 300 },
  );
});
