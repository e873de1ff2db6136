/**
 * Planted bugs prove the v1 cluster run's checkers work: with each canary switched on, some
 * seed within a bound fails, for an invariant that the clients' history (not only the cluster's
 * white-box view) shows. (router_reorder is not here: in a cluster the route lanes put the
 * held-back message back in order, as they must.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CanaryName } from '../../core/Canaries.js';
import { clusterScenarioFromSeed } from '../../sim/ClusterScenario.js';
import { runClusterScenario } from '../../sim/ClusterSimulation.js';

const CASES: ReadonlyArray<{ canary: CanaryName; bound: number; expected: string[] }> = [
  // SEND_SEQ dedup keyed by the recipient alone: one sender's number swallows another's, or a repeat is stored again.
  { canary: 'dedup_wrong_key', bound: 3, expected: ['duplicate_seq', 'duplicate', 'gap', 'liveness'] },
  // A session that ends leaves its user online: GET_STATUS answers and the presence tables disagree with who left.
  { canary: 'presence_leak', bound: 3, expected: ['presence'] },
  // Writes acknowledged before JetStream's PubAck: accepted messages that were never stored.
  { canary: 'ack_before_puback', bound: 3, expected: ['ack_before_durable', 'durable_lost'] },
];

for (const c of CASES) {
  test(`v1 cluster canary ${c.canary} is caught (as ${c.expected.join(' or ')}) within ${c.bound} seeds`, async () => {
    let caughtAt = -1;
    let invariants: string[] = [];
    for (let seed = 1; seed <= c.bound && caughtAt < 0; seed++) {
      const r = await runClusterScenario(clusterScenarioFromSeed(seed, { workload: 'v1' }, c.canary));
      if (!r.ok) {
        caughtAt = seed;
        invariants = r.violations.map((v) => v.invariant);
      }
    }
    assert.ok(caughtAt > 0, `${c.canary} was not caught by seeds 1..${c.bound}`);
    assert.ok(invariants.some((i) => c.expected.includes(i)), `${c.canary} was caught at seed ${caughtAt} but as ${invariants.join(', ')}`);
  });
}
