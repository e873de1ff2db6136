/**
 * A router shard's connection lanes (core/RouteLanes.ts): each number of a lane is taken once
 * and in order, a repeat is answered as the first time, a failed write gives its number back,
 * a new owner continues from the durable row, and idle lanes and old rows are pruned.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROUTE_LANE_REFUSALS_KEPT } from '../../core/defaults.js';
import { RouteLanes } from '../../core/RouteLanes.js';
import { EDGE_SETTINGS } from '../../edge/EdgeSettings.js';
import type { StorageEntry, StorageKey, StorageTable } from '../../runtime/Env.js';

/** The part of a table RouteLanes reads, over a Map; rows are put by the test as the shard would. */
class RowTable {
  readonly rows = new Map<string, Uint8Array>();
  get(key: StorageKey): Uint8Array | undefined {
    return this.rows.get(String(key[0]));
  }
  getRange(): StorageEntry[] {
    return [...this.rows].map(([k, value]) => ({ key: [k], value }));
  }
  put(row: { key: [string]; value: Uint8Array }): void {
    this.rows.set(row.key[0], row.value);
  }
  asTable(): StorageTable {
    return this as unknown as StorageTable;
  }
}

const C = 'conn-1';
const t = (n: number, base = 1) => ({ g: 3, n, base });

test('a lane takes its numbers once and in order: a repeat of a taken route is answered accepted, a number after a missing one is dropped', () => {
  const rows = new RowTable();
  const lanes = new RouteLanes(rows.asTable());
  assert.deepEqual(lanes.verdict(C, t(2), 0), { t: 'drop' }, '2 before 1 waits');
  assert.deepEqual(lanes.verdict(C, t(1), 0), { t: 'take' });
  rows.put(lanes.writing(C, 1, 1000));
  assert.deepEqual(lanes.verdict(C, t(1), 0), { t: 'drop' }, 'a repeat while its write is in flight: its answer will come');
  lanes.settled(C, 1, true);
  assert.deepEqual(lanes.verdict(C, t(1), 0), { t: 'repeat_accepted' });
  assert.deepEqual(lanes.verdict(C, t(3), 0), { t: 'drop' });
  assert.deepEqual(lanes.verdict(C, t(2), 0), { t: 'take' });
});

test('a failed write gives its number back: later numbers wait for it, and it is taken again when sent again', () => {
  const rows = new RowTable();
  const lanes = new RouteLanes(rows.asTable());
  for (const n of [1, 2, 3]) {
    assert.deepEqual(lanes.verdict(C, t(n), 0), { t: 'take' });
    rows.put(lanes.writing(C, n, 1000));
  }
  lanes.settled(C, 1, true);
  lanes.settled(C, 2, false); // 3 was pipelined after 2: it fails too, later
  assert.deepEqual(lanes.verdict(C, t(4, 2), 0), { t: 'drop' }, '4 must wait for 2');
  assert.deepEqual(lanes.verdict(C, t(2, 2), 0), { t: 'take' });
  rows.put(lanes.writing(C, 2, 1000));
  assert.deepEqual(lanes.verdict(C, t(3, 2), 0), { t: 'drop' }, 'the failing first copy of 3 is still in flight');
  lanes.settled(C, 3, false);
  assert.deepEqual(lanes.verdict(C, t(3, 2), 0), { t: 'take' });
});

test('a refusal for good is remembered: a repeat of it is refused with the same code, not taken for accepted', () => {
  const rows = new RowTable();
  const lanes = new RouteLanes(rows.asTable());
  assert.deepEqual(lanes.verdict(C, t(1), 0), { t: 'take' });
  rows.put(lanes.refused(C, 1, 'inbox_full', 1000));
  assert.deepEqual(lanes.verdict(C, t(2), 0), { t: 'take' });
  rows.put(lanes.writing(C, 2, 1000));
  lanes.settled(C, 2, true);
  assert.deepEqual(lanes.verdict(C, t(1), 0), { t: 'repeat_refused', code: 'inbox_full' });
  assert.deepEqual(lanes.verdict(C, t(2), 0), { t: 'repeat_accepted' });
});

test('a new owner continues from the durable row: repeats up to it are answered as before, the next number is taken', () => {
  const rows = new RowTable();
  const old = new RouteLanes(rows.asTable());
  for (const n of [1, 2, 3]) old.verdict(C, t(n), 0);
  rows.put(old.writing(C, 1, 1000));
  rows.put(old.refused(C, 2, 'invalid_recipient', 1000));
  old.verdict(C, t(3), 0);
  rows.put(old.writing(C, 3, 1000));
  const next = new RouteLanes(rows.asTable());
  assert.deepEqual(
    [1, 2, 3, 5, 4].map((n) => next.verdict(C, t(n), 0)),
    [{ t: 'repeat_accepted' }, { t: 'repeat_refused', code: 'invalid_recipient' }, { t: 'repeat_accepted' }, { t: 'drop' }, { t: 'take' }],
  );
});

test('a base above the lane moves it past numbers the connection settled (a refusal it heard, a route it gave up)', () => {
  const lanes = new RouteLanes(new RowTable().asTable());
  assert.deepEqual(lanes.verdict(C, t(7, 7), 0), { t: 'take' });
  assert.deepEqual(lanes.verdict('conn-2', t(1), 0), { t: 'take' }, 'lanes of other connections are their own');
});

test('prune forgets lanes idle since the cutoff and returns the rows written before the wall-clock cutoff', () => {
  const rows = new RowTable();
  const lanes = new RouteLanes(rows.asTable());
  lanes.verdict('old', t(1), 10);
  rows.put(lanes.writing('old', 1, 1_000));
  lanes.settled('old', 1, true);
  lanes.verdict('busy', t(1), 10);
  rows.put(lanes.writing('busy', 1, 5_000)); // still in flight: kept in memory
  lanes.verdict('new', t(1), 500);
  rows.put(lanes.writing('new', 1, 9_000));
  lanes.settled('new', 1, true);
  assert.deepEqual(lanes.prune(100, 6_000).map((k) => k[0]).sort(), ['busy', 'old']);
  assert.equal(lanes.size, 2);
});

test('a lane remembers at least as many refusals as a connection may have routes waiting', () => {
  assert.ok(ROUTE_LANE_REFUSALS_KEPT >= EDGE_SETTINGS.route_window.max);
});
