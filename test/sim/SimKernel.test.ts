/**
 * The simulation kernel (sim/SimWorld.ts, sim/EventQueue.ts, sim/SimRandom.ts): events run in
 * (time, sequence) order, cancelled events and a crashed owner's events never run, a paused
 * owner's events wait and then run in their original order before anything newer of that
 * owner, promise continuations see the virtual time of the event that resolved them,
 * `runUntil` stops after `maxEvents`, a seed replays the same trace hash, and the seeded
 * random streams are reproducible, independent by name and stay in their ranges.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { SimOwner } from '../../sim/EventQueue.js';
import { SimRandom } from '../../sim/SimRandom.js';
import { SimWorld } from '../../sim/SimWorld.js';

const owner = (name: string): SimOwner => ({ name, alive: true, pausedUntil: 0, backlog: [] });

test('events run in time order, and events of one instant in the order they were scheduled', async () => {
  const world = new SimWorld({ seed: 1 });
  const ran: string[] = [];
  const at = (t: number, name: string) => world.schedule(t, name, () => ran.push(`${name}@${world.now}`));
  at(5, 'e1');
  at(1, 'a1');
  at(3, 'c1');
  at(1, 'a2');
  at(5, 'e2');
  at(0, 'z');
  at(1, 'a3');
  assert.equal(await world.runUntil(10), true);
  assert.deepEqual(ran, ['z@0', 'a1@1', 'a2@1', 'a3@1', 'c1@3', 'e1@5', 'e2@5']);
  assert.equal(world.events, 7);
  assert.equal(world.now, 10);
});

test('an event scheduled in the past runs now, after the events already due now', async () => {
  const world = new SimWorld({ seed: 1 });
  const ran: string[] = [];
  world.schedule(4, 'first', () => {
    ran.push('first');
    world.schedule(1, 'late', () => ran.push(`late@${world.now}`));
  });
  world.schedule(4, 'second', () => ran.push('second'));
  await world.runUntil(10);
  assert.deepEqual(ran, ['first', 'second', 'late@4']);
});

test('a large random schedule pops in (time, seq) order', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 300 }), fc.array(fc.nat(299), { maxLength: 50 }), async (times, cancels) => {
      const world = new SimWorld({ seed: 7 });
      const ran: number[] = [];
      const events = times.map((t, i) => world.schedule(t, 'e', () => ran.push(i)));
      const cancelled = new Set(cancels.filter((i) => i < events.length));
      for (const i of cancelled) world.cancel(events[i]!);
      await world.runUntil(100);
      const expected = times
        .map((t, i) => ({ t, i }))
        .filter((e) => !cancelled.has(e.i))
        .sort((a, b) => a.t - b.t || a.i - b.i)
        .map((e) => e.i);
      assert.deepEqual(ran, expected);
    }),
    { numRuns: 100 },
  );
});

test('a cancelled event never runs and is not counted', async () => {
  const world = new SimWorld({ seed: 1 });
  const ran: string[] = [];
  const doomed = world.after(2, 'doomed', () => ran.push('doomed'));
  world.after(1, 'canceller', () => world.cancel(doomed));
  world.after(3, 'kept', () => ran.push('kept'));
  await world.runUntil(10);
  assert.deepEqual(ran, ['kept']);
  assert.equal(world.events, 2);
});

test("a crashed owner's events are skipped, other owners' events still run", async () => {
  const world = new SimWorld({ seed: 1 });
  const node = owner('n1');
  const other = owner('n2');
  const ran: string[] = [];
  world.after(1, 'before', () => ran.push('n1 before'), node);
  world.after(2, 'crash', () => {
    node.alive = false;
  });
  world.after(3, 'after', () => ran.push('n1 after'), node);
  world.after(3, 'other', () => ran.push('n2'), other);
  world.after(4, 'unowned', () => ran.push('unowned'));
  await world.runUntil(10);
  assert.deepEqual(ran, ['n1 before', 'n2', 'unowned']);
  assert.equal(world.pending(), 0);
});

test("a paused owner's events wait for the pause to end, then run in their original order before anything newer of it", async () => {
  const world = new SimWorld({ seed: 1 });
  const node = owner('n1');
  const ran: string[] = [];
  const log = (name: string) => () => ran.push(`${name}@${world.now}`);
  world.after(2, 'p2', log('p2'), node);
  world.after(5, 'p5', log('p5'), node);
  world.after(5, 'free5', log('free5'));
  // Scheduled before the pause for exactly the instant it ends: it follows the backlog.
  world.after(10, 'p10-old', log('p10-old'), node);
  world.pause(node, 10);
  // Scheduled after the pause for the same instant: runs after the backlog was replayed.
  world.after(10, 'p10-new', log('p10-new'), node);
  world.after(12, 'p12', log('p12'), node);
  await world.runUntil(20);
  assert.deepEqual(ran, ['free5@5', 'p2@10', 'p5@10', 'p10-old@10', 'p10-new@10', 'p12@12']);
  assert.equal(node.backlog.length, 0);
});

test("extending a pause keeps the owner's events waiting until the later end", async () => {
  const world = new SimWorld({ seed: 1 });
  const node = owner('n1');
  const ran: string[] = [];
  world.pause(node, 4);
  world.after(1, 'a', () => ran.push('a'), node);
  world.pause(node, 8); // extended: the first unpause finds the owner still paused
  world.after(6, 'b', () => ran.push('b'), node);
  world.after(9, 'c', () => ran.push('c'), node);
  await world.runUntil(5);
  assert.deepEqual(ran, []);
  await world.runUntil(20);
  assert.deepEqual(ran, ['a', 'b', 'c']);
});

test('a pause ending on a crashed owner replays nothing', async () => {
  const world = new SimWorld({ seed: 1 });
  const node = owner('n1');
  const ran: string[] = [];
  world.pause(node, 5);
  world.after(1, 'held', () => ran.push('held'), node);
  world.after(3, 'crash', () => {
    node.alive = false;
  });
  await world.runUntil(20);
  assert.deepEqual(ran, []);
});

test("promise continuations resolved by an event run at that event's virtual time, before the next instant", async () => {
  const world = new SimWorld({ seed: 1 });
  const seen: string[] = [];
  let resolve!: (v: string) => void;
  const p = new Promise<string>((r) => (resolve = r));
  void p
    .then((v) => {
      seen.push(`${v}@${world.now}`);
      world.after(0, 'same-instant', () => seen.push(`scheduled@${world.now}`));
      return Promise.resolve();
    })
    .then(async () => {
      await null;
      seen.push(`chained@${world.now}`);
    });
  world.after(7, 'resolver', () => resolve('resolved'));
  world.after(8, 'next', () => seen.push(`next@${world.now}`));
  await world.runUntil(20);
  assert.deepEqual(seen, ['resolved@7', 'chained@7', 'scheduled@7', 'next@8']);
});

test('runUntil stops after maxEvents and returns false, and a later call runs the rest', async () => {
  const world = new SimWorld({ seed: 1 });
  const ran: number[] = [];
  for (let i = 0; i < 10; i++) world.after(i, 'e', () => ran.push(i));
  world.after(50, 'late', () => ran.push(50));
  assert.equal(await world.runUntil(20, 3), false);
  assert.deepEqual(ran, [0, 1, 2]);
  assert.equal(world.events, 3);
  assert.equal(world.pending(), 8);
  assert.equal(await world.runUntil(20), true);
  assert.deepEqual(ran, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(world.now, 20);
  assert.equal(world.pending(), 1, 'the event after `until` stays queued');
});

test('an exception thrown by an event is recorded as a failure and the run goes on', async () => {
  const world = new SimWorld({ seed: 1 });
  const ran: string[] = [];
  world.after(1, 'boom', () => {
    throw new Error('kaboom');
  });
  world.after(2, 'after', () => ran.push('after'));
  await world.runUntil(5);
  assert.deepEqual(ran, ['after']);
  assert.equal(world.failures.length, 1);
  assert.match(world.failures[0]!, /^boom at 1: .*kaboom/);
});

/** A workload whose shape comes from the world's seed: owners, delays, cancels, a pause. */
async function randomWorkload(seed: number): Promise<{ hash: number; trace: string[]; events: number }> {
  const world = new SimWorld({ seed, recordTrace: true });
  const r = world.random('workload');
  const owners = [owner('a'), owner('b'), owner('c')];
  let budget = 400;
  const spawn = (depth: number): void => {
    if (budget-- <= 0) return;
    const o = r.chance(0.2) ? null : r.pick(owners);
    const e = world.after(r.int(20), `job${r.int(4)}`, () => {
      if (depth < 6) for (let i = r.int(3); i > 0; i--) spawn(depth + 1);
      if (r.chance(0.05) && o !== null) world.pause(o, world.now + r.between(1, 30));
    }, o, r.int(1000));
    if (r.chance(0.1)) world.cancel(e);
  };
  for (let i = 0; i < 30; i++) spawn(0);
  await world.runUntil(10_000);
  return { hash: world.hash, trace: world.trace!, events: world.events };
}

test('one seed replays the same trace and hash; another seed gives another hash', async () => {
  const a = await randomWorkload(42);
  const b = await randomWorkload(42);
  const c = await randomWorkload(43);
  assert.ok(a.events > 50, `workload too small: ${a.events} events`);
  assert.deepEqual(b.trace, a.trace);
  assert.equal(b.hash, a.hash);
  assert.notEqual(c.hash, a.hash);
});

test('same seed and stream name give the same sequence; world.random(name) is that stream', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.string(), (seed, name) => {
      const a = SimRandom.stream(seed, name);
      const b = SimRandom.stream(seed, name);
      const c = new SimWorld({ seed }).random(name);
      const xs = Array.from({ length: 16 }, () => a.uint32());
      assert.deepEqual(Array.from({ length: 16 }, () => b.uint32()), xs);
      assert.deepEqual(Array.from({ length: 16 }, () => c.uint32()), xs);
    }),
  );
});

test('different stream names, and different seeds, give different sequences', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.string(), fc.string(), (seed, n1, n2) => {
      fc.pre(n1 !== n2);
      const draw = (r: SimRandom) => Array.from({ length: 8 }, () => r.uint32());
      assert.notDeepEqual(draw(SimRandom.stream(seed, n1)), draw(SimRandom.stream(seed, n2)));
      assert.notDeepEqual(draw(SimRandom.stream(seed, n1)), draw(SimRandom.stream((seed + 1) >>> 0, n1)));
    }),
  );
});

test('bytes(n) returns n bytes, and the same n bytes for the same stream', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.nat(64), (seed, n) => {
      const a = new SimRandom(seed).bytes(n);
      assert.equal(a.length, n);
      assert.deepEqual(new SimRandom(seed).bytes(n), a);
    }),
  );
  // Not all zero: 64 bytes of a seeded stream.
  assert.ok(new SimRandom(9).bytes(64).some((x) => x !== 0));
});

test('float is in [0, 1), int(n) in [0, n), between(lo, hi) in [lo, hi] and reaches both ends', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: -1000, max: 1000 }), fc.nat(6), (seed, n, lo, width) => {
      const r = new SimRandom(seed);
      const hi = lo + width;
      const seen = new Set<number>();
      for (let i = 0; i < 200; i++) {
        const f = r.float();
        assert.ok(f >= 0 && f < 1, `float ${f}`);
        const k = r.int(n);
        assert.ok(Number.isInteger(k) && k >= 0 && k < n, `int(${n}) gave ${k}`);
        const b = r.between(lo, hi);
        assert.ok(Number.isInteger(b) && b >= lo && b <= hi, `between(${lo}, ${hi}) gave ${b}`);
        seen.add(b);
      }
      // 200 draws over at most 7 values: every value shows up (a miss has odds below 1e-12).
      assert.equal(seen.size, width + 1);
    }),
    { numRuns: 200 },
  );
});

test('chance(0) is never true, chance(1) always; pick draws only from the items', () => {
  const r = new SimRandom(3);
  const items = ['x', 'y', 'z'] as const;
  const picked = new Set<string>();
  for (let i = 0; i < 300; i++) {
    assert.equal(r.chance(0), false);
    assert.equal(r.chance(1), true);
    picked.add(r.pick(items));
  }
  assert.deepEqual([...picked].sort(), ['x', 'y', 'z']);
});
