/**
 * The cluster simulation at a high message rate. Seeded scenarios send 5–30 msgs/s, so a
 * shard-stream pipeline or a retry path that only breaks when hundreds of writes are in flight
 * during a fault goes unseen there; these run the same faults at 500 msgs/s over both
 * workloads, each scenario written out whole, and must pass every cluster checker.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClusterFaultName, ClusterScenario } from '../../sim/ClusterScenario.js';
import { runClusterScenario } from '../../sim/ClusterSimulation.js';
import { describeClusterFailure } from '../../sim/Report.js';

const FAULT_PAIRS: ReadonlyArray<[ClusterFaultName, ClusterFaultName]> = [
  ['server_kill', 'node_crash'],
  ['server_os_crash', 'partition_node'],
  ['server_pause', 'drain'],
  ['partition_servers', 'slow_disk'],
  ['rolling_restart', 'storm'],
  ['move', 'fsync_fail'],
];

const SCENARIOS: ClusterScenario[] = FAULT_PAIRS.map(([a, b], i) => ({
  seed: 100 + i,
  nodes: 3,
  servers: 3,
  shardGroups: 4,
  durability: 'quorum',
  users: 6,
  rate: 500,
  safetyMs: 9000,
  livenessSendMs: 2000,
  faults: [a, b],
  workload: i % 2 === 0 ? 'core' : 'v1',
}));

for (const scenario of SCENARIOS) {
  test(`at 500 msgs/s under ${scenario.faults.join(' and ')} (${scenario.workload} workload, seed ${scenario.seed}) nothing acknowledged is lost and everything settles`, async () => {
    const r = await runClusterScenario(scenario);
    assert.ok(r.ok, describeClusterFailure(r));
  });
}
