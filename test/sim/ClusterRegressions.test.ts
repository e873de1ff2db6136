/**
 * Cluster scenarios that found bugs in the clustered core, kept whole (every field written out,
 * so a change to how seeds derive scenarios cannot lose them). Each must now pass every cluster
 * checker; the comment says what it caught.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClusterScenario } from '../../sim/ClusterScenario.js';
import { runClusterScenario } from '../../sim/ClusterSimulation.js';
import { describeClusterFailure } from '../../sim/Report.js';

const REGRESSIONS: ReadonlyArray<{ caught: string; scenario: ClusterScenario }> = [
  {
    caught: 'ControlPlane rewrote a record in a loop at one instant when the stream failed at once (a node whose NATS server crashed): a livelock',
    scenario: { seed: 1, nodes: 3, servers: 3, shardGroups: 6, durability: 'quorum', users: 7, rate: 17, safetyMs: 12000, livenessSendMs: 2000, faults: ['clock', 'server_kill', 'server_os_crash', 'partition_servers', 'rolling_restart'] },
  },
  {
    caught: 'a hand-off waiting for a standby report hung for ever (no head beats while handing off), and its writes never settled',
    scenario: { seed: 13, nodes: 4, servers: 3, shardGroups: 4, durability: 'quorum', users: 7, rate: 19, safetyMs: 12000, livenessSendMs: 2000, faults: ['node_pause', 'server_pause', 'partition_node', 'slow_disk', 'fsync_fail', 'drain', 'rolling_restart'] },
  },
  {
    caught: 'a replica whose local copy failed a transaction (disk full) retried its takeover for ever instead of restarting',
    scenario: { seed: 17, nodes: 3, servers: 3, shardGroups: 8, durability: 'local', users: 6, rate: 27, safetyMs: 13000, livenessSendMs: 2000, faults: ['node_crash', 'slow_disk', 'disk_full', 'fsync_fail', 'drain'] },
  },
  {
    caught: 'a takeover that re-read its claim through a lagging replica appended its marker on top of a newer epoch (stale epoch in the stream)',
    scenario: { seed: 21, nodes: 4, servers: 3, shardGroups: 4, durability: 'quorum', users: 4, rate: 25, safetyMs: 14000, livenessSendMs: 2000, faults: ['node_crash', 'server_kill', 'partition_node', 'storm', 'move'] },
  },
  {
    caught: 'a demoted owner closing its storage waited for ever for standby reports nobody fed it: its acknowledged write never settled',
    scenario: { seed: 57, nodes: 4, servers: 3, shardGroups: 6, durability: 'quorum', users: 7, rate: 17, safetyMs: 11000, livenessSendMs: 2000, faults: ['node_crash', 'server_kill', 'server_pause', 'disk_full'] },
  },
  {
    caught: 'the groups server answered already_member for an add still being written, which then failed: a confirmed member that was never one',
    scenario: { seed: 334, nodes: 4, servers: 3, shardGroups: 6, durability: 'quorum', users: 6, rate: 13, safetyMs: 14000, livenessSendMs: 2000, faults: ['node_pause', 'server_os_crash', 'partition_node', 'partition_servers', 'rolling_restart', 'storm', 'move'] },
  },
  {
    caught: 'at 600 writes/s, a shard stream without a leader for a few seconds left its owner 1,242 entries in flight (no bound on the pipeline), settled one round trip at a time, longer than the run after the heal: writes still pending at the end',
    scenario: { seed: 10, nodes: 3, servers: 3, shardGroups: 4, durability: 'quorum', users: 4, rate: 600, safetyMs: 10000, livenessSendMs: 2000, faults: ['server_kill'] },
  },
];

for (const { caught, scenario } of REGRESSIONS) {
  test(`cluster regression seed ${scenario.seed} passes every checker (it caught: ${caught})`, async () => {
    const r = await runClusterScenario(scenario);
    assert.ok(r.ok, describeClusterFailure(r));
  });
}
