/**
 * The leave check: a node may drain or leave only if the nodes that stay (up, not draining)
 * keep a majority of expected_cluster_nodes and, for a core node, enough core nodes for every
 * shard group to stay writable at the durability level; a node in safe mode may not leave.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { leaveCheck, MIN_CORE_NODES, type LeaveView } from '../../../core/cluster/LeaveCheck.js';
import type { NodeMember } from '../../../runtime/Membership.js';

function node(name: string, roles: string[] = ['edge', 'core'], incarnation = 1): NodeMember {
  return { name, incarnation, roles, addresses: {}, schedulers: 1 };
}

function view(self: string, members: NodeMember[], o: Partial<LeaveView> = {}): LeaveView {
  return { self: members.find((m) => m.name === self)!, members, draining: [], expectedNodes: 3, durability: 'quorum', safeMode: false, coreRole: 'core', ...o };
}

test('a node of a full cluster of three may leave: two of three remain, a majority, with two core nodes', () => {
  assert.deepEqual(leaveCheck(view('a', [node('a'), node('b'), node('c')])), { ok: true, remaining: 2, remainingCore: 2, needed: 2 });
});

test('with one of three expected nodes already down, leaving is refused would_lose_quorum and the message gives the numbers', () => {
  const r = leaveCheck(view('a', [node('a'), node('b')]));
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.code, 'would_lose_quorum');
  assert.match(r.message, /1 of the 3 expected nodes would remain .* a majority is 2/);
});

test('a node already draining does not count as remaining, so a second drain that would break the majority is refused', () => {
  const members = [node('a'), node('b'), node('c'), node('d')];
  assert.equal(leaveCheck(view('a', members, { draining: [{ name: 'b', incarnation: 1 }] })).ok, true);
  const second = leaveCheck(view('a', members, { draining: [{ name: 'b', incarnation: 1 }, { name: 'c', incarnation: 1 }] }));
  assert.equal(second.ok, false);
  // A drain record of an older incarnation (a node drained, then restarted) does not count.
  assert.equal(leaveCheck(view('a', members, { draining: [{ name: 'b', incarnation: 0 }, { name: 'c', incarnation: 0 }] })).ok, true);
});

test('a core node may not leave when too few core nodes would remain for the durability level; an edge node may', () => {
  const members = [node('a'), node('b'), node('e1', ['edge']), node('e2', ['edge'])];
  const core = leaveCheck(view('a', members, { expectedNodes: 4 }));
  assert.equal(core.ok, false);
  if (!core.ok) assert.match(core.message, /1 core node\(s\) would remain; durability quorum needs 2/);
  assert.equal(leaveCheck(view('a', members, { expectedNodes: 4, durability: 'local' })).ok, true);
  assert.deepEqual(leaveCheck(view('e1', members, { expectedNodes: 4 })), { ok: true, remaining: 3, remainingCore: 2, needed: 3 });
  assert.deepEqual(MIN_CORE_NODES, { local: 1, quorum: 2 });
});

test('a node in safe mode may not leave, whatever the counts', () => {
  const r = leaveCheck(view('a', [node('a'), node('b'), node('c')], { safeMode: true }));
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.message, /safe mode/);
});
