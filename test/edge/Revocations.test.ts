/**
 * The jti revocation set: entries live until their token's exp plus the grace period and no
 * longer than one token lifetime, memory is capped (refusing, never forgetting a live entry),
 * and broadcast / snapshot exchange converge in any order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Clock } from '../../runtime/Env.js';
import { REVOCATION_GRACE_MS, Revocations, type Revocation } from '../../edge/auth/Revocations.js';

const T0 = 1_800_000_000_000;
const DAY_MS = 24 * 60 * 60 * 1000;

interface ManualClock extends Clock {
  wall: number;
}

function manualClock(wall = T0): ManualClock {
  return {
    wall,
    wallMs() {
      return this.wall;
    },
    monotonicMs() {
      return this.wall;
    },
  };
}

test('a revocation lasts until the token exp plus the grace period, then is forgotten', () => {
  const clock = manualClock();
  const rev = new Revocations({ clock });
  const exp = T0 / 1000 + 3600;
  const r = rev.revoke('j1', exp);
  assert.deepEqual(r, { ok: true, revocation: { jti: 'j1', untilMs: exp * 1000 + REVOCATION_GRACE_MS }, changed: true });
  clock.wall = exp * 1000 + REVOCATION_GRACE_MS - 1;
  assert.equal(rev.isRevoked('j1'), true);
  clock.wall = exp * 1000 + REVOCATION_GRACE_MS;
  assert.equal(rev.isRevoked('j1'), false);
  clock.wall += 2 * 60_000;
  assert.equal(rev.prune(), 1);
  assert.equal(rev.size, 0);
});

test('without an exp a revocation lasts one token lifetime, and a far exp is clamped to it', () => {
  const clock = manualClock();
  const rev = new Revocations({ clock });
  const horizon = T0 + DAY_MS + REVOCATION_GRACE_MS;
  const a = rev.revoke('unknown-exp');
  const b = rev.revoke('far-exp', T0 / 1000 + 365 * 24 * 3600);
  assert.ok(a.ok && b.ok);
  assert.equal(a.revocation.untilMs, horizon);
  assert.equal(b.revocation.untilMs, horizon);
  assert.equal(rev.revoke('gone', T0 / 1000 - 3600).ok, false, 'a token expired long ago needs no entry');
});

test('a repeated revocation keeps the later expiry', () => {
  const rev = new Revocations({ clock: manualClock() });
  const base = T0 / 1000;
  rev.revoke('j', base + 100);
  const same = rev.revoke('j', base + 50);
  assert.ok(same.ok && !same.changed && same.revocation.untilMs === (base + 100) * 1000 + REVOCATION_GRACE_MS);
  const later = rev.revoke('j', base + 200);
  assert.ok(later.ok && later.changed);
  assert.equal(rev.size, 1);
});

test('memory is capped: a full set prunes expired entries first, then refuses', () => {
  const clock = manualClock();
  const rev = new Revocations({ clock, maxEntries: 3 });
  const base = T0 / 1000;
  assert.ok(rev.revoke('a', base + 10).ok);
  assert.ok(rev.revoke('b', base + 3600).ok);
  assert.ok(rev.revoke('c', base + 3600).ok);
  assert.deepEqual(rev.revoke('d', base + 3600), { ok: false, code: 'revocations_full' });
  assert.equal(rev.isRevoked('a'), true, 'a live entry is never dropped to make room');
  clock.wall = (base + 10) * 1000 + REVOCATION_GRACE_MS + 60_000;
  assert.ok(rev.revoke('d', base + 3600).ok, 'the expired entry made room');
  assert.equal(rev.size, 3);
});

test('invalid token ids are refused', () => {
  const rev = new Revocations({ clock: manualClock() });
  assert.deepEqual(rev.revoke(''), { ok: false, code: 'invalid_jti' });
  assert.deepEqual(rev.revoke('x'.repeat(257)), { ok: false, code: 'invalid_jti' });
  assert.deepEqual(rev.apply({ jti: 'x', untilMs: Number.NaN }), { ok: false, code: 'invalid_jti' });
});

test('a broadcast revocation applied on another node revokes there too', () => {
  const clockA = manualClock();
  const clockB = manualClock(T0 + 1500);
  const a = new Revocations({ clock: clockA });
  const b = new Revocations({ clock: clockB });
  const r = a.revoke('tok', T0 / 1000 + 60);
  assert.ok(r.ok);
  const wire = JSON.parse(JSON.stringify(r.revocation)) as Revocation;
  assert.ok(b.apply(wire).ok);
  assert.equal(b.isRevoked('tok'), true);
});

test('a snapshot is plain data and merging snapshots converges in any order, any number of times', () => {
  const base = T0 / 1000;
  const entry = fc.record({ jti: fc.constantFrom('a', 'b', 'c', 'd', 'e'), exp: fc.integer({ min: base - 100, max: base + 100_000 }) });
  fc.assert(
    fc.property(fc.array(fc.array(entry, { maxLength: 6 }), { minLength: 1, maxLength: 4 }), fc.integer({ min: 0, max: 1000 }), (perNode, seed) => {
      const nodes = perNode.map((entries) => {
        const rev = new Revocations({ clock: manualClock() });
        for (const e of entries) rev.revoke(e.jti, e.exp);
        return rev;
      });
      const snapshots = nodes.map((n) => JSON.parse(JSON.stringify(n.snapshot())) as ReturnType<Revocations['snapshot']>);
      const forward = new Revocations({ clock: manualClock() });
      const backward = new Revocations({ clock: manualClock() });
      for (const s of snapshots) forward.merge(s);
      const order = [...snapshots].reverse();
      for (let i = 0; i < order.length; i++) backward.merge(order[(i + seed) % order.length]!);
      backward.merge(snapshots[0]!);
      const sorted = (r: Revocations): Revocation[] => [...r.snapshot().entries].sort((x, y) => x.jti.localeCompare(y.jti));
      assert.deepEqual(sorted(forward), sorted(backward));
      for (const e of perNode.flat()) {
        if ((e.exp * 1000 + REVOCATION_GRACE_MS) > T0) assert.equal(forward.isRevoked(e.jti), true);
      }
    }),
    { numRuns: 100 },
  );
});
