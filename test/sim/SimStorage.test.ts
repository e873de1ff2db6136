/**
 * The simulated storage (sim/SimStorage.ts) against the StorageEngine contract of
 * runtime/Env.ts: writes are visible at once but resolve `{ok: true}` only when their group's
 * fsync event fires (the disk and the durability observer see them then, in order); one turn
 * is one group; a batch is all or nothing; a crash keeps exactly what was flushed; disk full
 * and failed fsyncs fail the group and roll the visible view back; ranges agree with a sorted
 * model; flush and close behave as documented.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { StorageEngine, StorageKey, StorageRange, StorageWriteResult } from '../../runtime/Env.js';
import { encodeKey } from '../../runtime/StorageKey.js';
import type { SimOwner } from '../../sim/EventQueue.js';
import { keyText, SimDisk, SimStorageEngine, type DurableWrite } from '../../sim/SimStorage.js';
import { SimWorld } from '../../sim/SimWorld.js';

const b = (...x: number[]) => new Uint8Array(x);
const text = (s: string) => new TextEncoder().encode(s);
/** Let every promise continuation of the current turn run (no virtual time passes). */
const settleTurn = () => new Promise<void>((r) => setImmediate(r));
/** The disk's form of a key: its encoding as a latin1 string. */
const diskKey = (k: StorageKey): string => {
  const e = encodeKey(k);
  assert.ok(e.ok);
  return keyText(e.bytes);
};

interface Rig {
  world: SimWorld;
  disk: SimDisk;
  owner: SimOwner;
  engine: SimStorageEngine;
  /** Kill the current incarnation (its unflushed writes die with it) and open a new engine on the disk. */
  crashAndReopen(): SimStorageEngine;
}

function rig(fsyncMs = 1): Rig {
  const world = new SimWorld({ seed: 11 });
  const disk = new SimDisk();
  disk.faults.fsyncMs = () => fsyncMs;
  let inc = 0;
  const open = (): { owner: SimOwner; engine: SimStorageEngine } => {
    const owner: SimOwner = { name: 'node', alive: true, pausedUntil: 0, backlog: [] };
    return { owner, engine: new SimStorageEngine(world, owner, disk, world.random(`disk/${inc++}`)) };
  };
  const r = { world, disk, ...open() } as Rig;
  r.crashAndReopen = () => {
    r.owner.alive = false;
    Object.assign(r, open());
    return r.engine;
  };
  return r;
}

/** A promise's outcome and the virtual time it settled at, once it has. */
function track<T>(world: SimWorld, p: Promise<T>): { settled: boolean; value?: T; at?: number } {
  const t: { settled: boolean; value?: T; at?: number } = { settled: false };
  void p.then((v) => {
    t.settled = true;
    t.value = v;
    t.at = world.now;
  });
  return t;
}

const OK: StorageWriteResult = { ok: true };

test('a write is visible at once through get, getRange and count, before it is durable', async () => {
  const { world, disk, engine } = rig(5);
  const t = engine.table('t');
  const w = track(world, t.put([text('a'), 1], b(7)));
  void t.put([text('a'), 2], b(8));
  assert.deepEqual(t.get([text('a'), 1]), b(7));
  assert.deepEqual(t.getRange({ prefix: [text('a')] }).map((e) => e.value), [b(7), b(8)]);
  assert.equal(t.count(), 2);
  assert.equal(disk.tables.get('t')?.keys.length ?? 0, 0, 'nothing on disk before the fsync');
  await settleTurn();
  assert.equal(w.settled, false);
});

test('a write resolves {ok: true} only when its fsync event fires, and is on the disk by then', async () => {
  const { world, disk, engine } = rig(7);
  const t = engine.table('t');
  const key: StorageKey = [text('k'), 1];
  let onDiskWhenResolved: boolean | undefined;
  const w = track(
    world,
    t.put(key, b(1, 2)).then((r) => {
      onDiskWhenResolved = disk.tables.get('t')?.values.has(diskKey(key)) === true;
      return r;
    }),
  );
  await world.runUntil(6);
  await settleTurn();
  assert.equal(w.settled, false, 'resolved before the fsync');
  assert.equal(disk.stats.groups, 0);
  await world.runUntil(7);
  assert.deepEqual(w.value, OK);
  assert.equal(w.at, 7);
  assert.equal(onDiskWhenResolved, true);
  assert.deepEqual(disk.tables.get('t')!.values.get(diskKey(key)), b(1, 2));
});

test('durable writes reach onDurable one operation at a time, in the order they were issued', async () => {
  const { world, disk, engine } = rig();
  const seen: DurableWrite[] = [];
  disk.onDurable = (w) => seen.push(w);
  const t1 = engine.table('t1');
  void t1.put(['x'], b(0));
  await world.runUntil(5);
  seen.length = 0;
  void engine.batch([
    { type: 'put', table: 't1', key: ['a'], value: b(1) },
    { type: 'remove', table: 't2', key: ['b'] },
    { type: 'put', table: 't1', key: ['c'], value: b(3) },
  ]);
  void t1.remove(['x']);
  void t1.put(['d'], b(4));
  assert.deepEqual(seen, [], 'nothing is reported before the fsync');
  await world.runUntil(10);
  assert.deepEqual(seen, [
    { table: 't1', key: diskKey(['a']), value: b(1) },
    { table: 't2', key: diskKey(['b']), value: undefined },
    { table: 't1', key: diskKey(['c']), value: b(3) },
    { table: 't1', key: diskKey(['x']), value: undefined },
    { table: 't1', key: diskKey(['d']), value: b(4) },
  ]);
});

test('writes issued in one turn are committed as one group; a write after the fsync starts another', async () => {
  const { world, disk, engine } = rig(3);
  const t = engine.table('t');
  const results = Promise.all([t.put(['a'], b(1)), t.put(['b'], b(2)), t.remove(['c']), engine.batch([{ type: 'put', table: 'u', key: ['d'], value: b(4) }])]);
  await world.runUntil(10);
  assert.deepEqual(await results, [OK, OK, OK, OK]);
  assert.deepEqual(disk.stats, { groups: 1, failedGroups: 0, writes: 4 });
  const later = track(world, t.put(['e'], b(5)));
  await world.runUntil(20);
  assert.deepEqual(later.value, OK);
  assert.equal(later.at, 13);
  assert.deepEqual(disk.stats, { groups: 2, failedGroups: 0, writes: 5 });
});

test('a batch with an invalid key is refused whole: nothing of it becomes visible or durable', async () => {
  const { world, disk, engine } = rig();
  const r = await engine.batch([
    { type: 'put', table: 't', key: ['good'], value: b(1) },
    { type: 'put', table: 't', key: [Number.NaN], value: b(2) },
  ]);
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.reason, 'invalid_key');
  assert.equal(engine.table('t').get(['good']), undefined);
  assert.equal(engine.table('t').count(), 0);
  await world.runUntil(10);
  assert.equal(disk.stats.writes, 0);
  assert.equal(world.pending(), 0, 'no fsync was scheduled for it');
});

test('a batch over two tables survives a crash whole once durable, and is lost whole before', async () => {
  const r = rig(4);
  const ops = (v: number) => [
    { type: 'put' as const, table: 'a', key: ['k'], value: b(v) },
    { type: 'put' as const, table: 'b', key: ['k'], value: b(v) },
  ];
  const first = track(r.world, r.engine.batch(ops(1)));
  await r.world.runUntil(4);
  assert.deepEqual(first.value, OK);
  const second = track(r.world, r.engine.batch(ops(2)));
  await r.world.runUntil(6);
  const e = r.crashAndReopen();
  await r.world.runUntil(20);
  assert.equal(second.settled, false, "a crashed engine's write never settles");
  assert.deepEqual([e.table('a').get(['k']), e.table('b').get(['k'])], [b(1), b(1)]);
});

test('a crash loses the unflushed writes and keeps the flushed ones', async () => {
  const r = rig(2);
  const t = r.engine.table('t');
  void t.put(['kept'], b(1));
  void t.put(['overwritten'], b(1));
  void t.put(['removed'], b(1));
  await r.world.runUntil(2);
  void t.remove(['kept']);
  void t.put(['overwritten'], b(2));
  void t.put(['new'], b(2));
  await r.world.runUntil(3); // the second group's fsync is due at 4
  const groups = r.disk.stats.groups;
  const e = r.crashAndReopen();
  await r.world.runUntil(50);
  assert.equal(r.disk.stats.groups, groups, "the dead engine's fsync did not run");
  const t2 = e.table('t');
  assert.deepEqual(t2.getRange({}).map((x) => [x.key[0], Array.from(x.value)]), [
    ['kept', [1]],
    ['overwritten', [1]],
    ['removed', [1]],
  ]);
  assert.equal(t2.get(['new']), undefined);
});

for (const fault of ['disk_full', 'io_error'] as const) {
  test(`a group that fails with ${fault} resolves every write with that reason and rolls the view back to the disk`, async () => {
    const { world, disk, engine } = rig();
    const seen: DurableWrite[] = [];
    const t = engine.table('t');
    const seeded = Promise.all([t.put(['a'], b(1)), t.put(['gone'], b(1))]);
    await world.runUntil(5);
    assert.deepEqual(await seeded, [OK, OK]);
    disk.onDurable = (w) => seen.push(w);
    if (fault === 'disk_full') disk.faults.full = true;
    else disk.faults.fsyncFailRate = 1;
    const results = Promise.all([t.put(['a'], b(2)), t.put(['b'], b(2)), t.remove(['gone']), engine.batch([{ type: 'put', table: 'u', key: ['c'], value: b(3) }])]);
    assert.deepEqual(t.get(['a']), b(2), 'visible before the fsync');
    await world.runUntil(10);
    const rs = await results;
    for (const x of rs) {
      assert.equal(x.ok, false);
      assert.equal(!x.ok && x.reason, fault);
    }
    assert.deepEqual(t.get(['a']), b(1));
    assert.equal(t.get(['b']), undefined);
    assert.deepEqual(t.get(['gone']), b(1));
    assert.equal(engine.table('u').get(['c']), undefined);
    assert.equal(t.count(), 2);
    assert.deepEqual(seen, []);
    assert.deepEqual(disk.stats, { groups: 1, failedGroups: 1, writes: 2 });
    // Once the fault clears, writing works again.
    disk.faults.full = false;
    disk.faults.fsyncFailRate = 0;
    const again = track(world, t.put(['b'], b(9)));
    await world.runUntil(20);
    assert.deepEqual(again.value, OK);
    assert.deepEqual(t.get(['b']), b(9));
  });
}

test('flush resolves once the writes issued before it are durable, and at once when none are pending', async () => {
  const { world, disk, engine } = rig(6);
  const idle = track(world, engine.flush());
  await settleTurn();
  assert.deepEqual(idle.value, OK);
  assert.equal(world.pending(), 0, 'an idle flush schedules no fsync');
  const order: string[] = [];
  void engine.table('t').put(['a'], b(1)).then(() => order.push('put'));
  const f = track(
    world,
    engine.flush().then((r) => {
      order.push(`flush (on disk: ${String(disk.tables.get('t')?.values.has(diskKey(['a'])))})`);
      return r;
    }),
  );
  await world.runUntil(5);
  await settleTurn();
  assert.equal(f.settled, false);
  await world.runUntil(6);
  assert.deepEqual(f.value, OK);
  assert.deepEqual(order, ['put', 'flush (on disk: true)']);
});

test('close flushes what is pending; afterwards writes resolve closed and reads throw', async () => {
  const { world, disk, engine } = rig(3);
  const t = engine.table('t');
  const pending = track(world, t.put(['a'], b(1)));
  const closed = track(world, engine.close());
  await world.runUntil(10);
  assert.deepEqual(pending.value, OK);
  assert.equal(closed.settled, true);
  assert.deepEqual(disk.tables.get('t')!.values.get(diskKey(['a'])), b(1));
  const isClosed = (r: StorageWriteResult) => !r.ok && r.reason === 'closed';
  assert.ok(isClosed(await t.put(['b'], b(2))));
  assert.ok(isClosed(await t.remove(['a'])));
  assert.ok(isClosed(await engine.batch([{ type: 'put', table: 't', key: ['c'], value: b(3) }])));
  assert.ok(isClosed(await engine.flush()));
  assert.throws(() => t.get(['a']), /closed/);
  assert.throws(() => t.getRange({}), /closed/);
  assert.throws(() => t.count(), /closed/);
  assert.throws(() => engine.table('other'), /closed/);
  await engine.close(); // idempotent
  assert.equal(disk.stats.writes, 1);
});

test('values are copied in and out: changing a buffer after put or after get changes nothing stored', async () => {
  const { world, disk, engine } = rig();
  const t = engine.table('t');
  const v = b(1, 2, 3);
  void t.put(['k'], v);
  v[0] = 99;
  const read = t.get(['k'])!;
  read[1] = 99;
  t.getRange({})[0]!.value[2] = 99;
  assert.deepEqual(t.get(['k']), b(1, 2, 3));
  await world.runUntil(5);
  assert.deepEqual(disk.tables.get('t')!.values.get(diskKey(['k'])), b(1, 2, 3));
});

// ---- ranges against a model ---------------------------------------------------------------

const USERS = [b(), b(0), b(0, 0), b(0, 1), b(1), b(1, 0), b(97), b(255)];
const NUMS = [Number.NEGATIVE_INFINITY, -1.5, -0, 0, 0.5, 1, 2, 1e9, Number.POSITIVE_INFINITY];

type ModelKey = [Uint8Array, number] | [Uint8Array];

const cmpBytes = (a: Uint8Array, c: Uint8Array): number => {
  for (let i = 0; i < Math.min(a.length, c.length); i++) if (a[i] !== c[i]) return a[i]! - c[i]!;
  return a.length - c.length;
};
const cmpPart = (a: Uint8Array | number, c: Uint8Array | number): number =>
  typeof a === 'number' && typeof c === 'number' ? (a < c ? -1 : a > c ? 1 : 0) : cmpBytes(a as Uint8Array, c as Uint8Array);
/** Tuple order: part by part, a prefix first. */
const cmpKey = (a: ModelKey, c: ModelKey): number => {
  for (let i = 0; i < Math.min(a.length, c.length); i++) {
    const d = cmpPart(a[i]!, c[i]!);
    if (d !== 0) return d;
  }
  return a.length - c.length;
};

const keyArb = fc.tuple(fc.nat(USERS.length - 1), fc.nat(NUMS.length - 1));
const boundArb = fc.oneof(
  keyArb.map(([u, n]): ModelKey => [USERS[u]!, NUMS[n]!]),
  fc.nat(USERS.length - 1).map((u): ModelKey => [USERS[u]!]),
);
const opArb = fc.record({ remove: fc.boolean(), key: keyArb });
const rangeArb = fc.record({
  prefix: fc.option(boundArb, { nil: undefined }),
  start: fc.option(boundArb, { nil: undefined }),
  startExclusive: fc.boolean(),
  end: fc.option(boundArb, { nil: undefined }),
  limit: fc.option(fc.nat(6), { nil: undefined }),
  reverse: fc.boolean(),
});

/** What a range must return from the model (sorted entries), as comparable plain data. */
function modelRange(model: Map<string, { key: [Uint8Array, number]; value: Uint8Array }>, r: StorageRange): { all: unknown[]; page: unknown[] } {
  const inRange = [...model.values()]
    .filter(({ key }) => {
      if (r.prefix !== undefined && !(r.prefix.length <= key.length && r.prefix.every((p, i) => cmpPart(p as Uint8Array | number, key[i]!) === 0))) return false;
      if (r.start !== undefined) {
        const d = cmpKey(key, r.start as ModelKey);
        if (d < 0 || (d === 0 && r.startExclusive === true)) return false;
      }
      if (r.end !== undefined && cmpKey(key, r.end as ModelKey) >= 0) return false;
      return true;
    })
    .sort((x, y) => cmpKey(x.key, y.key));
  const ordered = r.reverse === true ? inRange.reverse() : inRange;
  const page = ordered.slice(0, r.limit ?? ordered.length);
  return { all: inRange.map(plain), page: page.map(plain) };
}
const plain = (e: { key: StorageKey; value: Uint8Array }) => [Array.from(e.key[0] as Uint8Array), e.key[1], Array.from(e.value)];

function checkRanges(engine: StorageEngine, model: Map<string, { key: [Uint8Array, number]; value: Uint8Array }>, ranges: StorageRange[]): void {
  const t = engine.table('t');
  for (const r of ranges) {
    const want = modelRange(model, r);
    assert.deepEqual(t.getRange(r).map(plain), want.page, `getRange ${JSON.stringify(r, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v))}`);
    assert.equal(t.count(r), want.all.length);
  }
  assert.equal(t.count(), model.size);
}

test('getRange and count agree with a sorted model for random puts and removes, before and after a crash', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { maxLength: 40 }), fc.array(rangeArb, { minLength: 1, maxLength: 12 }), async (ops, ranges) => {
      const r = rig();
      const t = r.engine.table('t');
      const model = new Map<string, { key: [Uint8Array, number]; value: Uint8Array }>();
      ops.forEach((op, i) => {
        const n = NUMS[op.key[1]]!;
        const key: [Uint8Array, number] = [USERS[op.key[0]]!, n === 0 ? 0 : n]; // -0 is stored as 0
        const id = `${Array.from(key[0]).join('.')}/${key[1]}`;
        if (op.remove) {
          void t.remove(key);
          model.delete(id);
        } else {
          const value = b(i);
          void t.put(key, value);
          model.set(id, { key, value });
        }
      });
      checkRanges(r.engine, model, ranges);
      await r.world.runUntil(10);
      checkRanges(r.crashAndReopen(), model, ranges);
    }),
    { numRuns: 150 },
  );
});
