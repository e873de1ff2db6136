/**
 * Planted bugs in the clustered core prove the cluster checkers work: with each canary switched
 * on, some seed within a bound fails, for the invariant that bug breaks. Each canary runs the
 * seeds of the scenario family that reaches the code it breaks (hand-offs for a hand-off bug,
 * partitions for the partition guard). fast-check then shrinks a failing cluster scenario.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CLUSTER_CANARY_NAMES, canary, type CanaryName } from '../../core/Canaries.js';
import { clusterScenarioArbitrary, clusterScenarioFromSeed, type ClusterFaultName, type ClusterScenario } from '../../sim/ClusterScenario.js';
import { runClusterScenario } from '../../sim/ClusterSimulation.js';

interface CanaryCase {
  /** Faults of the scenario family (null: each seed's own). */
  faults: ClusterFaultName[] | null;
  /** Messages per second (null: each seed's own). */
  rate: number | null;
  /** Iris nodes and users of the family (each seed's own when absent). */
  nodes?: number;
  users?: number;
  /** Seeds it must be caught within. */
  bound: number;
  /** The invariants the bug breaks. */
  expected: string[];
}

const CASES: Record<CanaryName, CanaryCase | undefined> = {
  ack_before_fsync: undefined,
  dedup_wrong_key: undefined,
  drop_unacked_on_disconnect: undefined,
  router_reorder: undefined,
  presence_leak: undefined,
  ack_before_puback: { faults: null, rate: null, bound: 5, expected: ['ack_before_durable', 'durable_lost'] },
  // A predicted sequence that is off refuses a good owner's write too: a message lost after the heal (liveness).
  pipelined_expected_seq: { faults: null, rate: null, bound: 10, expected: ['stale_epoch', 'replicas_disagree', 'durable_lost', 'pending', 'liveness'] },
  minority_writes: { faults: ['partition_node', 'partition_servers'], rate: null, bound: 15, expected: ['minority_write'] },
  handoff_drops_writes: { faults: ['drain', 'rolling_restart'], rate: null, bound: 10, expected: ['durable_lost', 'ack_before_durable'] },
  // Cuts between NATS servers: the two sides declare each other's nodes down and take over their
  // groups, the change notices are lost across the cut, and a stale owner whose shard stream
  // leader is on the third server is refused at once and, with the bug, appends after the new
  // owner's marker until its next ownership refresh. A pause alone never shows it: the notice
  // waits for the paused node with its other input and demotes it before any refusal counts.
  stale_owner_keeps_writing: { faults: ['partition_servers'], rate: 60, nodes: 3, users: 8, bound: 60, expected: ['stale_epoch', 'replicas_disagree', 'durable_lost'] },
  // Trimmed past a standby that lags (a pause, a slow disk, a crash), the stream no longer holds
  // what it misses; once the owner is gone too, no replica can send it a snapshot: the standby
  // that takes over fails for good.
  trim_above_standby: { faults: ['node_crash', 'node_pause', 'slow_disk', 'partition_node'], rate: null, bound: 15, expected: ['runtime', 'durable_lost', 'replicas_disagree'] },
  kv_update_lease: { faults: ['node_pause', 'partition_node', 'node_crash'], rate: null, bound: 40, expected: ['ownership', 'durable_lost', 'stale_epoch', 'replicas_disagree'] },
};

for (const name of CLUSTER_CANARY_NAMES) {
  const c = CASES[name];
  if (c === undefined) continue;
  test(`cluster canary ${name} is caught (as ${c.expected.join(' or ')}) within ${c.bound} seeds`, async () => {
    let caughtAt = -1;
    let invariants: string[] = [];
    const scenario = (seed: number, planted: CanaryName | undefined): ClusterScenario => ({
      ...clusterScenarioFromSeed(seed, {}, planted),
      ...(c.faults !== null ? { faults: c.faults } : {}),
      ...(c.rate !== null ? { rate: c.rate } : {}),
      ...(c.nodes !== undefined ? { nodes: c.nodes } : {}),
      ...(c.users !== undefined ? { users: c.users } : {}),
    });
    // Caught: a seed fails for an invariant the bug breaks (a seed failing only for another one,
    // say liveness after writes the bug refused, is noted and the search goes on).
    const otherwise: string[] = [];
    for (let seed = 1; seed <= c.bound && caughtAt < 0; seed++) {
      const r = await runClusterScenario(scenario(seed, name));
      if (r.ok) continue;
      invariants = [...new Set(r.violations.map((v) => v.invariant))];
      if (invariants.some((i) => c.expected.includes(i))) caughtAt = seed;
      else otherwise.push(`seed ${seed}: ${invariants.join(', ')}`);
    }
    assert.ok(caughtAt > 0, `${name} was not caught as ${c.expected.join(' or ')} by seeds 1..${c.bound}${otherwise.length > 0 ? ` (failed otherwise: ${otherwise.join('; ')})` : ''}`);
    // The planted bug is what the checkers caught: the same scenario without it passes.
    const clean = await runClusterScenario(scenario(caughtAt, undefined));
    assert.deepEqual(clean.violations.map((v) => `${v.invariant}: ${v.message}`), [], `seed ${caughtAt} of ${name}'s family fails without the canary too`);
  });
}

test('no cluster canary stays planted after a run', async () => {
  await runClusterScenario({ ...clusterScenarioFromSeed(2, {}, 'ack_before_puback'), safetyMs: 1_000 });
  for (const name of CLUSTER_CANARY_NAMES) assert.equal(canary(name), false);
});

test('a failing cluster scenario shrinks to a small counterexample (ack_before_puback)', async () => {
  const out = await fc.check(
    fc.asyncProperty(clusterScenarioArbitrary({ canary: 'ack_before_puback' }), async (s) => (await runClusterScenario(s)).ok),
    { seed: 0x5eed, numRuns: 10 },
  );
  assert.equal(out.failed, true, 'the planted early acknowledgement was not found');
  const [s] = out.counterexample!;
  assert.ok(s.users <= 3, `shrunk to ${s.users} users`);
  assert.ok(s.faults.length === 0, `shrunk to faults ${s.faults.join(', ')}`);
  assert.ok(s.nodes === 3, `shrunk to ${s.nodes} nodes`);
});
