/**
 * The fixed cluster seed set CI runs through the cluster simulator: each seed's scenario (3–4
 * Iris nodes, 3 NATS servers, faults drawn swarm-style from the seed) must pass every cluster
 * checker, and a second run must reproduce the first one's trace hash exactly.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterScenarioFromSeed } from '../../sim/ClusterScenario.js';
import { describeClusterFailure } from '../../sim/Report.js';
import { replayClusterCheck } from '../../sim/Replay.js';

export function clusterSeedSetTests(from: number, to: number): void {
  test(`cluster seeds ${from}..${to}: no checker finds a violation and every seed replays to the same trace hash`, async () => {
    const failures: string[] = [];
    for (let seed = from; seed <= to; seed++) {
      const r = await replayClusterCheck(clusterScenarioFromSeed(seed));
      if (!r.ok) failures.push(`cluster seed ${seed} is not deterministic: ${r.divergence}`);
      else if (!r.first.ok) failures.push(describeClusterFailure(r.first));
      if (failures.length >= 3) break;
    }
    assert.deepEqual(failures, []);
  });
}
