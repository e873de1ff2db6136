/**
 * SmallMap (the links and monitors table) behaves exactly like a Map: random sequences of
 * set/delete/get/has over a handful of keys, checked after every step against a real Map
 * (size, lookups, and entries in insertion order), including the step from one inline entry
 * to a real Map and back down to empty.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SmallMap } from '../../runtime/SmallMap.js';

type Op = { op: 'set'; k: string; v: number } | { op: 'delete'; k: string } | { op: 'get'; k: string };

const key = fc.constantFrom('a', 'b', 'c', 'd');
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), k: key, v: fc.integer() }),
  fc.record({ op: fc.constant('delete' as const), k: key }),
  fc.record({ op: fc.constant('get' as const), k: key }),
);

test('SmallMap agrees with Map on every sequence of set, delete and get', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
      const small = new SmallMap<number>();
      const ref = new Map<string, number>();
      for (const o of ops) {
        if (o.op === 'set') {
          small.set(o.k, o.v);
          ref.set(o.k, o.v);
        } else if (o.op === 'delete') assert.equal(small.delete(o.k), ref.delete(o.k));
        else assert.equal(small.get(o.k), ref.get(o.k));
        assert.equal(small.size, ref.size);
        for (const k of ['a', 'b', 'c', 'd']) assert.equal(small.has(k), ref.has(k));
        assert.deepEqual(small.entries(), [...ref]);
        assert.deepEqual([...small], [...ref]);
        assert.deepEqual(small.values(), [...ref.values()]);
      }
    }),
    { numRuns: 500 },
  );
});

test('SmallMap values() is a snapshot: deleting while iterating visits every entry once', () => {
  const m = new SmallMap<number>();
  m.set('x', 1).set('y', 2).set('z', 3);
  const seen: number[] = [];
  for (const v of m.values()) {
    seen.push(v);
    m.delete(v === 1 ? 'x' : v === 2 ? 'y' : 'z');
  }
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(m.size, 0);
});

test('SmallMap keeps a single entry without a Map and overwrites it in place', () => {
  const m = new SmallMap<string>();
  assert.equal(m.delete('nope'), false);
  m.set('k', 'one');
  m.set('k', 'two');
  assert.equal(m.size, 1);
  assert.equal(m.get('k'), 'two');
  assert.equal(m.get('other'), undefined);
  assert.equal(m.delete('k'), true);
  assert.equal(m.size, 0);
  assert.deepEqual(m.entries(), []);
});
