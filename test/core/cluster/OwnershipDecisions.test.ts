/**
 * The control plane's decisions (ControlPlane.decide), a pure function of the ownership table,
 * the membership, the drains and this node's replicas: bootstrap by the first core node,
 * failover to the first live standby (the successor first), a restarted owner counts as gone,
 * reclaiming a recorded group with no serving replica, standby replacement, throttled moves
 * toward the placement (standby first, successor once caught up, then the hand-off), drains,
 * demotion, and taking a hand-off back when the successor is gone. Quiet (safe mode, start-up)
 * means no claim and no write.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, type ControlAction, type ControlView } from '../../../core/cluster/ControlPlane.js';
import type { ReplicaStatus } from '../../../core/cluster/GroupReplica.js';
import type { OwnershipRecord } from '../../../core/cluster/OwnershipTable.js';
import { placeGroups } from '../../../core/cluster/Placement.js';
import type { NodeMember } from '../../../runtime/Membership.js';

const G = 4;

function member(name: string, incarnation = 1, roles: string[] = ['edge', 'core']): NodeMember {
  return { name, incarnation, roles, addresses: {}, schedulers: 1 };
}

type Rep = Pick<ReplicaStatus, 'phase' | 'since' | 'appliedSeq' | 'standbyApplied' | 'takeoverFailedAt'>;

function rep(phase: ReplicaStatus['phase'], extra: Partial<Rep> = {}): Rep {
  return { phase, since: 0, appliedSeq: 100, standbyApplied: new Map(), takeoverFailedAt: null, ...extra };
}

function record(group: number, owner: string, standbys: string[], extra: Partial<OwnershipRecord> = {}): OwnershipRecord {
  return { group, epoch: 5, owner, ownerIncarnation: 1, standbys, successor: null, reason: 'failover', ...extra };
}

function view(v: Partial<ControlView> & { self?: { name: string; incarnation: number }; up?: NodeMember[] }): ControlView {
  const up = v.up ?? [member('a'), member('b'), member('c')];
  return {
    self: v.self ?? { name: 'a', incarnation: 1 },
    groups: v.groups ?? G,
    records: v.records ?? [],
    members: new Map(up.map((m) => [m.name, m])),
    draining: v.draining ?? [],
    replicas: v.replicas ?? new Map(),
    quiet: v.quiet ?? false,
    maxMoves: v.maxMoves ?? 2,
    now: v.now ?? 1_000,
    handoffTimeoutMs: v.handoffTimeoutMs ?? 10_000,
    replicasPerGroup: 3,
  };
}

const only = (actions: ControlAction[], t: ControlAction['t']): ControlAction[] => actions.filter((a) => a.t === t);

/** Records of a settled cluster a, b, c as the placement has them. */
function settled(nodes = ['a', 'b', 'c']): OwnershipRecord[] {
  return placeGroups(G, nodes)!.map((p, g) => record(g, p.owner, [...p.standbys]));
}

test('bootstrap: the first core node by name writes epoch-1 records for every group, as the placement has them; the others and a quiet node do not', () => {
  const up = [member('b', 7), member('a', 3), member('c', 9), member('edge-only', 1, ['edge'])];
  const actions = decide(view({ self: { name: 'a', incarnation: 3 }, up, records: new Array(G).fill(undefined) }));
  const boot = only(actions, 'bootstrap');
  assert.equal(boot.length, 1);
  const records = (boot[0] as Extract<ControlAction, { t: 'bootstrap' }>).records;
  const want = placeGroups(G, ['a', 'b', 'c'])!;
  assert.deepEqual(
    records,
    want.map((p, g) => ({ group: g, epoch: 1, owner: p.owner, ownerIncarnation: { a: 3, b: 7, c: 9 }[p.owner as 'a' | 'b' | 'c'], standbys: p.standbys, successor: null, reason: 'bootstrap' })),
  );
  assert.deepEqual(decide(view({ self: { name: 'b', incarnation: 7 }, up, records: new Array(G).fill(undefined) })), []);
  assert.deepEqual(decide(view({ self: { name: 'a', incarnation: 3 }, up, records: new Array(G).fill(undefined), quiet: true })), []);
});

test('failover: the owner is down, the first live standby takes the group over; the next one waits; quiet claims nothing', () => {
  const records = [record(0, 'c', ['a', 'b'])];
  const up = [member('a'), member('b')];
  assert.deepEqual(decide(view({ self: { name: 'a', incarnation: 1 }, groups: 1, up, records })), [
    { t: 'start_replica', group: 0 },
    { t: 'take_over', group: 0, reason: 'failover' },
  ]);
  assert.deepEqual(decide(view({ self: { name: 'b', incarnation: 1 }, groups: 1, up, records, replicas: new Map([[0, rep('standby')]]) })), []);
  assert.deepEqual(decide(view({ self: { name: 'a', incarnation: 1 }, groups: 1, up, records, quiet: true, replicas: new Map([[0, rep('standby')]]) })), []);
});

test('failover skips a standby that is down too, prefers the successor of a hand-off, and a restarted owner counts as gone', () => {
  const up = [member('a'), member('b'), member('c', 2)];
  // c restarted (incarnation 2): its record (incarnation 1) has no live owner.
  const records = [record(0, 'c', ['x', 'b']), record(1, 'c', ['a', 'b'], { successor: 'b' })];
  const fromB = decide(view({ self: { name: 'b', incarnation: 1 }, groups: 2, up, records, replicas: new Map([[0, rep('standby')], [1, rep('standby')]]) }));
  assert.deepEqual(only(fromB, 'take_over'), [
    { t: 'take_over', group: 0, reason: 'failover' },
    { t: 'take_over', group: 1, reason: 'failover' },
  ]);
  const fromA = decide(view({ self: { name: 'a', incarnation: 1 }, groups: 2, up, records, replicas: new Map([[1, rep('standby')]]) }));
  assert.deepEqual(only(fromA, 'take_over'), []);
});

test('a recorded owner without a serving replica claims anew: after a bootstrap with reason bootstrap, otherwise failover', () => {
  const records = [record(0, 'a', ['b', 'c'], { epoch: 1, reason: 'bootstrap' }), record(1, 'a', ['b', 'c'])];
  const actions = decide(view({ groups: 2, records, replicas: new Map([[1, rep('standby')]]) }));
  assert.deepEqual(actions, [
    { t: 'start_replica', group: 0 },
    { t: 'take_over', group: 0, reason: 'bootstrap' },
    { t: 'take_over', group: 1, reason: 'failover' },
  ]);
});

test('the owner replaces a standby that is down at once (epoch + 1, reason standbys)', () => {
  const records = settled();
  const g = records.findIndex((r) => r.owner === 'a');
  const r = records[g]!;
  const gone = r.standbys[0]!;
  const up = [member('a'), member('b'), member('c'), member('d')].filter((m) => m.name !== gone);
  const replicas = new Map(records.map((x, i) => [i, rep(x.owner === 'a' ? 'owner' : 'standby')] as const));
  const writes = only(decide(view({ up, records, replicas, maxMoves: 0 })), 'write') as Array<Extract<ControlAction, { t: 'write' }>>;
  const mine = writes.find((w) => w.record.group === g)!;
  assert.ok(mine !== undefined, 'a write for the group');
  assert.equal(mine.record.epoch, r.epoch + 1);
  assert.equal(mine.record.reason, 'standbys');
  assert.equal(mine.record.owner, 'a');
  assert.ok(!mine.record.standbys.includes(gone));
  assert.equal(mine.record.standbys.length, 2);
});

test('a move toward the placement: the new owner first becomes a standby, is named successor once caught up, then the owner hands off', () => {
  const records = settled();
  const up = [member('a'), member('b'), member('c'), member('d')];
  const wanted = placeGroups(G, ['a', 'b', 'c', 'd'], records.map((r) => ({ owner: r.owner, standbys: r.standbys })))!;
  const g = wanted.findIndex((p, i) => p.owner === 'd' && records[i]!.owner === 'a');
  assert.ok(g >= 0, 'the placement moves a group from a to d');
  const replicas = new Map(records.map((x, i) => [i, rep(x.owner === 'a' ? 'owner' : 'standby')] as const));
  const step1 = (only(decide(view({ up, records, replicas })), 'write') as Array<Extract<ControlAction, { t: 'write' }>>).find((w) => w.record.group === g)!;
  assert.equal(step1.record.reason, 'rebalance');
  assert.equal(step1.record.standbys[0], 'd');
  assert.equal(step1.record.successor, null);
  const r2 = { ...step1.record };
  const records2 = records.map((r, i) => (i === g ? r2 : r));
  // d has not caught up: nothing for g.
  const behind = new Map(replicas);
  behind.set(g, rep('owner', { appliedSeq: 1_000, standbyApplied: new Map([['d', 10]]) }));
  assert.equal(decide(view({ up, records: records2, replicas: behind })).filter((a) => 'record' in a && a.record.group === g).length, 0);
  // Caught up: d is named successor.
  const close = new Map(replicas);
  close.set(g, rep('owner', { appliedSeq: 1_000, standbyApplied: new Map([['d', 990]]) }));
  const step2 = (only(decide(view({ up, records: records2, replicas: close })), 'write') as Array<Extract<ControlAction, { t: 'write' }>>).find((w) => w.record.group === g)!;
  assert.equal(step2.record.successor, 'd');
  assert.equal(step2.record.epoch, r2.epoch + 1);
  // With the successor recorded, the owner hands off.
  const records3 = records.map((r, i) => (i === g ? step2.record : r));
  assert.deepEqual(only(decide(view({ up, records: records3, replicas: close })), 'hand_off'), [{ t: 'hand_off', group: g, to: 'd' }]);
});

test('moves are throttled to rebalance_max_moves over the whole table', () => {
  // 8 groups all owned by a, b and c standing by and caught up: the placement moves 5 away.
  const records = Array.from({ length: 8 }, (_, g) => record(g, 'a', ['b', 'c']));
  const caught = new Map([['b', 100], ['c', 100]]);
  const replicas = new Map(records.map((_, i) => [i, rep('owner', { standbyApplied: caught })] as const));
  const successors = (maxMoves: number, recs = records) =>
    (only(decide(view({ groups: 8, records: recs, replicas, maxMoves })), 'write') as Array<Extract<ControlAction, { t: 'write' }>>).filter((w) => w.record.successor !== null);
  assert.equal(successors(1).length, 1);
  assert.equal(successors(2).length, 2);
  // One hand-off already under way counts against the limit.
  const underWay = records.map((r, i) => (i === 0 ? { ...r, successor: 'b', epoch: r.epoch + 1 } : r));
  assert.equal(successors(2, underWay).length, 1);
});

test('a drained node moves its groups away with reason drain', () => {
  const records = [record(0, 'a', ['b', 'c'])];
  const replicas = new Map([[0, rep('owner', { appliedSeq: 10, standbyApplied: new Map([['b', 10], ['c', 10]]) })]]);
  const actions = decide(view({ groups: 1, records, replicas, draining: [{ name: 'a', incarnation: 1 }] }));
  const w = only(actions, 'write') as Array<Extract<ControlAction, { t: 'write' }>>;
  assert.equal(w.length, 1);
  assert.equal(w[0]!.record.reason, 'drain');
  assert.ok(w[0]!.record.successor === 'b' || w[0]!.record.successor === 'c');
});

test('a replica serving a group the table gives to another node is demoted, also when listed as a standby; one with no role is stopped', () => {
  const records = [record(0, 'b', ['c']), record(1, 'b', ['c']), record(2, 'b', ['a', 'c'])];
  const replicas = new Map([[0, rep('owner')], [1, rep('standby')], [2, rep('owner')]]);
  assert.deepEqual(decide(view({ groups: 3, records, replicas })), [
    { t: 'demote', group: 0 },
    { t: 'stop_replica', group: 1 },
    { t: 'demote', group: 2 },
  ]);
});

test('a takeover that was given up is not retried before the back-off', () => {
  const records = [record(0, 'c', ['a', 'b'])];
  const up = [member('a'), member('b')];
  const failedAt = (at: number) => new Map([[0, rep('standby', { takeoverFailedAt: at })]]);
  assert.deepEqual(only(decide(view({ groups: 1, up, records, replicas: failedAt(900), now: 1_000 })), 'take_over'), []);
  assert.deepEqual(only(decide(view({ groups: 1, up, records, replicas: failedAt(900), now: 5_000 })), 'take_over'), [{ t: 'take_over', group: 0, reason: 'failover' }]);
});

test('a hand-off whose successor is gone, or that timed out, is taken back; a fresh one is left alone', () => {
  const records = [record(0, 'a', ['b', 'c'], { successor: 'd' })];
  const handedOff = new Map([[0, rep('handed_off', { since: 500 })]]);
  assert.deepEqual(only(decide(view({ groups: 1, records, replicas: handedOff })), 'take_over'), [{ t: 'take_over', group: 0, reason: 'failover' }]);
  const up = [member('a'), member('b'), member('c'), member('d')];
  assert.deepEqual(only(decide(view({ groups: 1, up, records, replicas: handedOff, now: 1_000 })), 'take_over'), []);
  assert.deepEqual(only(decide(view({ groups: 1, up, records, replicas: handedOff, now: 20_000 })), 'take_over'), [{ t: 'take_over', group: 0, reason: 'failover' }]);
});
