/**
 * ReplicatedStorage's pipeline on the in-memory StreamStore fake and real LMDB: one entry per
 * turn chained by Msg-Id, applied with the applied position, resolved after the local fsync
 * (and a standby's report at quorum); batch atomicity and order; fencing by another owner's
 * marker; unavailable and unknown outcomes (settled by appending again with the same Msg-Id), a
 * failure failing every write issued before it was known;
 * safe mode; freeze and hand-off. A second copy built from the stream alone ends byte-equal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterNames } from '../../../core/cluster/ClusterNames.js';
import { GroupStore } from '../../../core/cluster/GroupStore.js';
import { ReplicatedStorage, type Durability } from '../../../core/cluster/ReplicatedStorage.js';
import { SHARD_PIPELINE_MAX_ENTRIES } from '../../../core/defaults.js';
import { groupTableName } from '../../../core/cluster/ShardGroups.js';
import { decodeEntry, encodeEntry, shardStreamSpec, type ShardEntry } from '../../../core/cluster/ShardStream.js';
import type { Env, StorageEngine, StorageWriteResult } from '../../../runtime/Env.js';
import { testEnv } from '../../support/kernel.js';
import { MemoryStreams } from '../../support/memoryStreams.js';
import { waitUntil } from '../../support/serviceKit.js';
import { openStorage, tempDir } from '../../support/storage.js';

const GROUP = 3;
const names = clusterNames('unit');
const STREAM = names.groupStream(GROUP);
const SUBJECT = names.groupStreamSubject(GROUP);
const utf8 = new TextEncoder();
const text = new TextDecoder();
const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

interface Rig {
  streams: MemoryStreams;
  local: StorageEngine;
  store: GroupStore;
  storage: ReplicatedStorage;
  published: Array<{ seq: number; msgId: string }>;
  lost: string[];
  writable: { on: boolean };
  done(): Promise<void>;
}

/** An owner at epoch `epoch`: the stream holds its marker, the local copy has applied it. */
async function rig(opts: { epoch?: number; durability?: Durability; standbys?: string[]; env?: Env } = {}): Promise<Rig> {
  const epoch = opts.epoch ?? 1;
  const dir = tempDir('iris-repl-');
  const local = openStorage(dir.path);
  const streams = new MemoryStreams();
  await streams.ensureStream(shardStreamSpec(names, GROUP, 3));
  const marker: ShardEntry = { t: 'marker', epoch, owner: 'n1' };
  const m = await streams.append(STREAM, SUBJECT, encodeEntry(marker), { msgId: `${epoch}.0`, expectLastSubjectSeq: 0 });
  assert.ok(m.ok);
  const opened = GroupStore.open(local, GROUP);
  assert.ok(opened.ok);
  const store = opened.store;
  assert.deepEqual(await store.apply({ seq: m.seq, msgId: `${epoch}.0`, entry: marker }), { ok: true });
  const published: Rig['published'] = [];
  const lost: string[] = [];
  const writable = { on: true };
  const storage = new ReplicatedStorage({
    env: opts.env ?? testEnv(),
    streams,
    stream: STREAM,
    subject: SUBJECT,
    store,
    epoch,
    durability: opts.durability ?? 'local',
    standbys: opts.standbys ?? [],
    publish: (seq, msgId) => published.push({ seq, msgId }),
    writable: () => writable.on,
    onLost: (r) => lost.push(r),
  });
  return {
    streams,
    local,
    store,
    storage,
    published,
    lost,
    writable,
    async done() {
      await local.close();
      dir.remove();
    },
  };
}

const v = (s: string): Uint8Array => utf8.encode(s);
const OK: StorageWriteResult = { ok: true };

function msgIds(r: Rig): Array<string | null> {
  return r.streams.entries(STREAM).map((e) => e.msgId);
}

test('the writes of one turn become one entry <epoch>.<n> chained on the previous, applied with the applied position, then resolved', async () => {
  const r = await rig({ epoch: 4 });
  try {
    const t = r.storage.table('inbox');
    const turn1 = [t.put(['a'], v('1')), t.put(['b'], v('2')), r.storage.batch([{ type: 'put', table: 'other', key: ['x'], value: v('3') }])];
    await nextTurn();
    const turn2 = [t.remove(['a'])];
    assert.deepEqual(await Promise.all(turn1), [OK, OK, OK]);
    assert.equal(text.decode(t.get(['a'])), '1');
    assert.deepEqual(await Promise.all(turn2), [OK]);
    assert.equal(t.get(['a']), undefined);
    assert.equal(text.decode(t.get(['b'])), '2');
    assert.deepEqual(msgIds(r), ['4.0', '4.1', '4.2']);
    const log = r.streams.log.map((l) => l.msgId);
    assert.deepEqual(log, ['4.0', '4.1', '4.2']);
    const e1 = decodeEntry(r.streams.entries(STREAM)[1]!.data);
    assert.equal(e1?.t === 'ops' ? e1.ops.length : -1, 3);
    assert.equal(r.store.appliedSeq, 3);
    assert.equal(r.store.appliedMsgId, '4.2');
    // The group's tables are prefixed in the node's storage.
    assert.equal(text.decode(r.local.table(groupTableName(GROUP, 'inbox')).get(['b'])), '2');
    assert.deepEqual(r.published.map((p) => p.msgId), ['4.1', '4.2']);
    assert.deepEqual(r.lost, []);
  } finally {
    await r.done();
  }
});

test('a turn\'s writes are applied atomically and in issue order, and flush waits for all of them', async () => {
  const r = await rig();
  try {
    const t = r.storage.table('kv');
    const writes: Array<Promise<StorageWriteResult>> = [];
    for (let turn = 0; turn < 5; turn++) {
      for (let i = 0; i < 20; i++) writes.push(t.put([i], v(`${turn}`)));
      await nextTurn();
    }
    await r.storage.flush();
    assert.equal(r.store.appliedSeq, 6);
    for (let i = 0; i < 20; i++) assert.equal(text.decode(t.get([i])), '4');
    assert.deepEqual(new Set(await Promise.all(writes)), new Set([OK]));
  } finally {
    await r.done();
  }
});

test('at durability quorum a write waits for a recorded standby to report its sequence; with no standby recorded, local suffices', async () => {
  const r = await rig({ durability: 'quorum', standbys: ['s1', 's2'] });
  try {
    let settled = false;
    const w = r.storage.table('kv').put(['k'], v('v')).then((x) => {
      settled = true;
      return x;
    });
    await waitUntil('the entry applied locally', () => r.store.appliedSeq === 2);
    await nextTurn();
    assert.equal(settled, false, 'resolved before any standby reported');
    r.storage.standbyReport('stranger', 99);
    await nextTurn();
    assert.equal(settled, false, 'a node that is not a standby does not count');
    r.storage.standbyReport('s2', 1);
    await nextTurn();
    assert.equal(settled, false, 'a report below the sequence does not count');
    r.storage.standbyReport('s2', 2);
    assert.deepEqual(await w, OK);
    r.storage.setStandbys([]);
    assert.deepEqual(await r.storage.table('kv').put(['k2'], v('v')), OK);
  } finally {
    await r.done();
  }
});

test('another owner\'s marker fences: the write and every later one fail unavailable, onLost once, nothing of ours after the marker', async () => {
  const r = await rig({ epoch: 1 });
  try {
    const t = r.storage.table('kv');
    assert.deepEqual(await t.put(['before'], v('1')), OK);
    // Another node took over: its marker expects our last entry.
    const m = await r.streams.append(STREAM, SUBJECT, encodeEntry({ t: 'marker', epoch: 2, owner: 'n2' }), { msgId: '2.0', expectLastMsgId: '1.1' });
    assert.ok(m.ok);
    const a = t.put(['after'], v('2'));
    await nextTurn();
    const b = t.put(['later'], v('3'));
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(ra.ok ? 'ok' : ra.reason, 'unavailable');
    assert.equal(rb.ok ? 'ok' : rb.reason, 'unavailable');
    assert.equal(r.lost.length, 1);
    assert.match(r.lost[0]!, /fenced/);
    const c = await t.put(['even-later'], v('4'));
    assert.equal(c.ok ? 'ok' : c.reason, 'unavailable');
    assert.deepEqual(msgIds(r), ['1.0', '1.1', '2.0']);
    assert.equal(t.get(['after']), undefined);
    assert.equal(r.lost.length, 1);
  } finally {
    await r.done();
  }
});

test('an unavailable stream fails the write (nothing applied) and the next write goes on from the last entry', async () => {
  const r = await rig();
  try {
    const t = r.storage.table('kv');
    r.streams.faults.push('unavailable');
    const failed = await t.put(['x'], v('1'));
    assert.deepEqual(failed.ok ? 'ok' : failed.reason, 'unavailable');
    assert.equal(t.get(['x']), undefined);
    assert.deepEqual(await t.put(['y'], v('2')), OK);
    assert.deepEqual(msgIds(r), ['1.0', '1.2']);
    assert.equal(decodeEntry(r.streams.entries(STREAM)[1]!.data)?.t, 'ops');
    assert.deepEqual(r.lost, []);
  } finally {
    await r.done();
  }
});

test('a write issued before an earlier write\'s failure was known fails with it, even when its entry was not sealed yet: nothing issued after a failed write lands before it is known', async () => {
  const r = await rig();
  try {
    const t = r.storage.table('kv');
    r.streams.faults.push('unavailable');
    r.streams.hold();
    const a = t.put(['a'], v('1'));
    await nextTurn(); // a's entry is sealed and appended (held)
    const b = t.put(['b'], v('2')); // this turn's entry, still open
    r.streams.release(); // a's failure is known before b's turn ends
    const [ra, rb] = await Promise.all([a, b]);
    assert.deepEqual([ra.ok ? 'ok' : ra.reason, rb.ok ? 'ok' : rb.reason], ['unavailable', 'unavailable']);
    assert.equal(t.get(['b']), undefined);
    assert.deepEqual(msgIds(r), ['1.0'], 'b was not appended after a failed');
    assert.deepEqual(await t.put(['c'], v('3')), OK, 'a write issued once the failure is known goes on');
    assert.deepEqual(r.lost, []);
  } finally {
    await r.done();
  }
});

for (const fault of ['timeout_landed', 'timeout_lost'] as const) {
  test(`an unknown outcome (${fault}) is settled by appending again with the same Msg-Id: the entry is in exactly once and the write succeeds`, async () => {
    const r = await rig();
    try {
      const t = r.storage.table('kv');
      r.streams.faults.push(fault);
      const a = t.put(['a'], v('1'));
      await nextTurn();
      const b = t.put(['b'], v('2'));
      assert.deepEqual(await Promise.all([a, b]), [OK, OK]);
      assert.deepEqual(msgIds(r), ['1.0', '1.1', '1.2']);
      assert.equal(text.decode(t.get(['a'])), '1');
      assert.equal(text.decode(t.get(['b'])), '2');
      if (fault === 'timeout_landed') assert.ok(r.streams.log.some((l) => l.msgId === '1.1' && l.outcome.ok && l.outcome.duplicate));
    } finally {
      await r.done();
    }
  });
}

test('pipelined entries (appends answered later) land and resolve in chain order', async () => {
  const r = await rig();
  try {
    const t = r.storage.table('kv');
    r.streams.hold();
    const order: number[] = [];
    const writes = [];
    for (let i = 0; i < 4; i++) {
      writes.push(t.put([i], v(String(i))).then((x) => (order.push(i), x)));
      await nextTurn();
    }
    assert.equal(r.streams.heldCount(), 4);
    r.streams.release();
    assert.deepEqual(await Promise.all(writes), [OK, OK, OK, OK]);
    assert.deepEqual(order, [0, 1, 2, 3]);
    assert.deepEqual(msgIds(r), ['1.0', '1.1', '1.2', '1.3', '1.4']);
  } finally {
    await r.done();
  }
});

test('at most SHARD_PIPELINE_MAX_ENTRIES entries are in flight: later turns join the open entry, which goes out when an answer frees a place, all in order', async () => {
  const r = await rig();
  try {
    const t = r.storage.table('kv');
    r.streams.hold();
    const turns = SHARD_PIPELINE_MAX_ENTRIES + 20;
    const order: number[] = [];
    const writes = [];
    for (let i = 0; i < turns; i++) {
      writes.push(t.put([i], v(String(i))).then((x) => (order.push(i), x)));
      await nextTurn();
    }
    assert.equal(r.streams.heldCount(), SHARD_PIPELINE_MAX_ENTRIES, 'no more appends than the pipeline holds while the stream does not answer');
    r.streams.release();
    assert.deepEqual(await Promise.all(writes), writes.map(() => OK));
    assert.deepEqual(order, [...Array(turns).keys()], 'resolved in issue order');
    const ids = msgIds(r);
    assert.equal(ids.length, 1 + SHARD_PIPELINE_MAX_ENTRIES + 1, 'the 20 turns past the limit went out as one entry');
    for (let i = 0; i < turns; i++) assert.equal(text.decode(t.get([i])), String(i));
  } finally {
    await r.done();
  }
});

/** The test Env with its timers counted: `set` is how many timers were asked for. */
function timerCountingEnv(): { env: Env; timers: { set: number } } {
  const base = testEnv();
  const timers = { set: 0 };
  const counted: Env['timers'] = {
    setTimer: (ms, fn) => {
      timers.set++;
      return base.timers.setTimer(ms, fn);
    },
    clearTimer: (h) => base.timers.clearTimer(h),
    defer: (fn) => base.timers.defer(fn),
  };
  return { env: { ...base, timers: counted }, timers };
}

test('a lone write is appended as soon as its turn ends, and the next turn\'s write goes out while it is in flight: no timer or interval on the way, at quorum it resolves on the standby\'s report', async () => {
  const { env, timers } = timerCountingEnv();
  const r = await rig({ env, durability: 'quorum', standbys: ['s1'] });
  try {
    const t = r.storage.table('kv');
    r.streams.hold();
    let settled = 0;
    const first = t.put(['a'], v('1')).then((x) => (settled++, x));
    await nextTurn();
    assert.equal(r.streams.heldCount(), 1, 'the lone write was appended at the end of its turn');
    const second = t.put(['b'], v('2')).then((x) => (settled++, x));
    await nextTurn();
    assert.equal(r.streams.heldCount(), 2, 'the next turn\'s entry did not wait for the first one\'s answer');
    r.streams.release();
    await waitUntil('both entries applied locally', () => r.store.appliedSeq === 3);
    await nextTurn();
    assert.equal(settled, 0, 'resolved before the standby reported');
    r.storage.standbyReport('s1', 3);
    assert.deepEqual(await Promise.all([first, second]), [OK, OK]);
    assert.deepEqual(msgIds(r), ['1.0', '1.1', '1.2']);
    assert.equal(timers.set, 0, 'a timer was set on the write path');
  } finally {
    await r.done();
  }
});

test('in safe mode writes are refused unavailable at once and nothing is appended', async () => {
  const r = await rig();
  try {
    r.writable.on = false;
    const w = await r.storage.table('kv').put(['x'], v('1'));
    assert.equal(w.ok ? 'ok' : w.reason, 'unavailable');
    assert.deepEqual(msgIds(r), ['1.0']);
    r.writable.on = true;
    assert.deepEqual(await r.storage.table('kv').put(['x'], v('1')), OK);
  } finally {
    await r.done();
  }
});

test('an invalid key and an oversized write are refused and append nothing', async () => {
  const r = await rig();
  try {
    const bad = await r.storage.table('kv').put([], v('1'));
    assert.equal(bad.ok ? 'ok' : bad.reason, 'invalid_key');
    const huge = await r.storage.table('kv').put(['h'], new Uint8Array(2 * 1024 * 1024));
    assert.equal(huge.ok ? 'ok' : huge.reason, 'io_error');
    assert.deepEqual(msgIds(r), ['1.0']);
  } finally {
    await r.done();
  }
});

test('freeze settles the writes in flight, refuses new ones, and the hand-off entry follows the last one', async () => {
  const r = await rig();
  try {
    const t = r.storage.table('kv');
    r.streams.hold();
    const inflight = t.put(['a'], v('1'));
    await nextTurn();
    const frozen = r.storage.freeze();
    const refused = await t.put(['b'], v('2'));
    assert.equal(refused.ok ? 'ok' : refused.reason, 'unavailable');
    r.streams.release();
    assert.equal(await frozen, true);
    assert.deepEqual(await inflight, OK);
    const h = await r.storage.appendHandoff('n2');
    assert.deepEqual(h, { ok: true, seq: 3 });
    assert.deepEqual(msgIds(r), ['1.0', '1.1', '1.2']);
    assert.deepEqual(decodeEntry(r.streams.entries(STREAM)[2]!.data), { t: 'handoff', epoch: 1, to: 'n2' });
    assert.equal(r.store.appliedSeq, 3);
    await r.storage.close();
  } finally {
    await r.done();
  }
});

test('a freeze holds through an unknown outcome: writes stay refused while it is settled, and the entry lands once', async () => {
  const r = await rig();
  try {
    const t = r.storage.table('kv');
    r.streams.hold();
    const inflight = t.put(['a'], v('1'));
    await nextTurn();
    const frozen = r.storage.freeze();
    // The held append's answer is lost once frozen: the outcome is settled while frozen.
    r.streams.faults.push('timeout_landed');
    r.streams.release();
    await nextTurn();
    const during = await t.put(['b'], v('2'));
    assert.equal(during.ok ? 'ok' : during.reason, 'unavailable');
    assert.equal(await frozen, true);
    assert.deepEqual(await inflight, OK);
    const after = await t.put(['c'], v('3'));
    assert.equal(after.ok ? 'ok' : after.reason, 'unavailable');
    assert.deepEqual(msgIds(r), ['1.0', '1.1']);
  } finally {
    await r.done();
  }
});

test('a copy built from the stream alone holds byte-equal tables at the same applied sequence', async () => {
  const r = await rig();
  const dir = tempDir('iris-repl-standby-');
  const other = openStorage(dir.path);
  try {
    const t = r.storage.table('inbox');
    const u = r.storage.table('meta2');
    const writes = [];
    for (let turn = 0; turn < 10; turn++) {
      for (let i = 0; i < 30; i++) writes.push(i % 3 === 0 ? t.remove([turn - 1, i]) : t.put([turn, i], v(`${turn}:${i}`)));
      writes.push(r.storage.batch([{ type: 'put', table: 'meta2', key: ['turn'], value: v(String(turn)) }, { type: 'remove', table: 'inbox', key: [0, 1] }]));
      await nextTurn();
    }
    await Promise.all(writes);
    const copy = GroupStore.open(other, GROUP);
    assert.ok(copy.ok);
    for (const e of r.streams.entries(STREAM)) {
      const entry = decodeEntry(e.data);
      assert.ok(entry !== null && e.msgId !== null);
      void copy.store.apply({ seq: e.seq, msgId: e.msgId, entry });
    }
    await waitUntil('the copy applied every entry', () => copy.store.appliedSeq === r.store.appliedSeq);
    for (const name of ['inbox', 'meta2', 'meta']) {
      const a = r.local.table(groupTableName(GROUP, name)).getRange({});
      const b = other.table(groupTableName(GROUP, name)).getRange({});
      assert.deepEqual(b, a, `table ${name}`);
    }
    assert.ok(u.count() === 1);
  } finally {
    await other.close();
    dir.remove();
    await r.done();
  }
});
