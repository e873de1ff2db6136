/**
 * Placement properties (fast-check): every group gets one live owner and distinct live
 * standbys; owners are balanced to within one group; from a balanced assignment, adding one
 * node moves only the groups it gains and removing one moves only the groups it owned; the
 * answer does not depend on the order nodes are listed in, and feeding it back changes nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { placeGroups, rendezvousOrder, type GroupAssignment } from '../../../core/cluster/Placement.js';

const POOL = Array.from({ length: 12 }, (_, i) => `core-${String.fromCharCode(97 + i)}@host${i}`);

/** 16–32 groups over 3–7 distinct nodes drawn from the pool. */
const cluster = fc.record({
  groups: fc.integer({ min: 16, max: 32 }),
  nodes: fc.uniqueArray(fc.constantFrom(...POOL), { minLength: 3, maxLength: 7 }),
});

function ownerCounts(p: readonly GroupAssignment[], nodes: readonly string[]): number[] {
  return nodes.map((n) => p.filter((a) => a.owner === n).length);
}

function standbyCounts(p: readonly GroupAssignment[], nodes: readonly string[]): number[] {
  return nodes.map((n) => p.filter((a) => a.standbys.includes(n)).length);
}

test('every group has one live owner and min(2, N-1) distinct live standbys, never the owner', () => {
  fc.assert(
    fc.property(cluster, ({ groups, nodes }) => {
      const p = placeGroups(groups, nodes)!;
      assert.equal(p.length, groups);
      for (const a of p) {
        assert.ok(nodes.includes(a.owner));
        assert.equal(a.standbys.length, Math.min(2, nodes.length - 1));
        assert.equal(new Set(a.standbys).size, a.standbys.length);
        assert.ok(!a.standbys.includes(a.owner));
        for (const s of a.standbys) assert.ok(nodes.includes(s));
      }
    }),
    { numRuns: 200 },
  );
});

test('owners are balanced: each node owns floor(G/N) or ceil(G/N) groups; standby slots within one too', () => {
  fc.assert(
    fc.property(cluster, ({ groups, nodes }) => {
      const p = placeGroups(groups, nodes)!;
      const owners = ownerCounts(p, nodes);
      assert.ok(Math.max(...owners) - Math.min(...owners) <= 1, `owners ${owners.join(',')}`);
      const standbys = standbyCounts(p, nodes);
      assert.ok(Math.max(...standbys) - Math.min(...standbys) <= 1, `standbys ${standbys.join(',')}`);
    }),
    { numRuns: 200 },
  );
});

test('adding one node moves only the groups that node gains, and it gains its fair share', () => {
  fc.assert(
    fc.property(cluster, fc.constantFrom(...POOL), ({ groups, nodes }, extra) => {
      fc.pre(!nodes.includes(extra));
      const before = placeGroups(groups, nodes)!;
      const bigger = [...nodes, extra];
      const after = placeGroups(groups, bigger, before)!;
      for (let g = 0; g < groups; g++) assert.ok(after[g]!.owner === before[g]!.owner || after[g]!.owner === extra, `group ${g} moved from ${before[g]!.owner} to ${after[g]!.owner}`);
      const gained = after.filter((a) => a.owner === extra).length;
      assert.ok(gained === Math.floor(groups / bigger.length) || gained === Math.ceil(groups / bigger.length));
      const owners = ownerCounts(after, bigger);
      assert.ok(Math.max(...owners) - Math.min(...owners) <= 1);
    }),
    { numRuns: 200 },
  );
});

test('removing one node moves only the groups it owned, and the rest stay balanced', () => {
  fc.assert(
    fc.property(cluster, fc.nat(), ({ groups, nodes }, pick) => {
      const gone = nodes[pick % nodes.length]!;
      const before = placeGroups(groups, nodes)!;
      const smaller = nodes.filter((n) => n !== gone);
      const after = placeGroups(groups, smaller, before)!;
      for (let g = 0; g < groups; g++) if (before[g]!.owner !== gone) assert.equal(after[g]!.owner, before[g]!.owner, `group ${g} moved`);
      const owners = ownerCounts(after, smaller);
      assert.ok(Math.max(...owners) - Math.min(...owners) <= 1);
    }),
    { numRuns: 200 },
  );
});

test('the answer does not depend on the order nodes are given in, and is a fixed point', () => {
  fc.assert(
    fc.property(cluster, ({ groups, nodes }) => {
      const p = placeGroups(groups, nodes)!;
      assert.deepEqual(placeGroups(groups, [...nodes].reverse()), p);
      assert.deepEqual(placeGroups(groups, nodes, p), p);
    }),
    { numRuns: 200 },
  );
});

test('no live node gives no placement; rendezvous order ranks every node once', () => {
  assert.equal(placeGroups(16, []), null);
  const order = rendezvousOrder(3, POOL);
  assert.deepEqual([...order].sort(), [...POOL].sort());
  assert.deepEqual(rendezvousOrder(3, [...POOL].reverse()), order);
});
