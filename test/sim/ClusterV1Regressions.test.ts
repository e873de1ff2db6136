/**
 * v1 cluster scenarios (v1 clients on the edges of nodes running the whole service) that found
 * bugs in the cluster's edge and core, kept whole (every field written out, so a change to how
 * seeds derive scenarios cannot lose them). Each must now pass every checker; the comment says
 * what it caught.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClusterScenario } from '../../sim/ClusterScenario.js';
import { runClusterScenario } from '../../sim/ClusterSimulation.js';
import { describeClusterFailure } from '../../sim/Report.js';

const REGRESSIONS: ReadonlyArray<{ caught: string; scenario: ClusterScenario }> = [
  {
    caught:
      'a SEND_SEQ whose write failed (its group frozen for a hand-off) gave its number back only in delivery order, behind a write still in flight, while the lane gave its number back at once: the lane resend was taken, dropped as a SEND_SEQ repeat and answered route_accepted (a message lost)',
    scenario: { seed: 11, nodes: 3, servers: 3, shardGroups: 8, durability: 'quorum', users: 4, rate: 20, safetyMs: 11000, livenessSendMs: 2000, faults: ['node_crash', 'clock', 'server_os_crash', 'partition_node', 'rolling_restart', 'storm', 'move'], workload: 'v1' },
  },
  {
    caught:
      'the presence feed applied every node\'s changes: a deposed owner\'s sessions going offline (its monitors fired while it was cut off), published when its link came back, overwrote the new owner\'s online users on every node, the new owner included',
    scenario: { seed: 5, nodes: 4, servers: 3, shardGroups: 4, durability: 'quorum', users: 7, rate: 16, safetyMs: 10000, livenessSendMs: 2000, faults: ['node_pause', 'server_pause', 'partition_node', 'slow_disk'], workload: 'v1' },
  },
  {
    caught:
      'a live delivery from a shard to a session on another node was lost in a silent cut shorter than the membership\'s down-after (no monitor fired): the online recipient never got the message until its next login',
    scenario: { seed: 4, nodes: 3, servers: 3, shardGroups: 4, durability: 'local', users: 6, rate: 11, safetyMs: 8000, livenessSendMs: 2000, faults: ['partition_node', 'slow_disk', 'move'], workload: 'v1' },
  },
  {
    caught:
      'a presence snapshot was answered by a node still believing it owned the group (its table stale after a cut), and a snapshot request that failed was never asked again: a restarted node showed a connected user offline for good',
    scenario: { seed: 21, nodes: 4, servers: 3, shardGroups: 4, durability: 'quorum', users: 4, rate: 25, safetyMs: 11000, livenessSendMs: 2000, faults: ['node_crash', 'server_kill', 'partition_node', 'storm', 'move'], workload: 'v1' },
  },
  {
    caught:
      'a presence snapshot answered before the owner\'s next live change but handled after it (the reply settles a promise, the change is a subscription callback) put the older state back: a node showed a connected user offline',
    scenario: { seed: 114, nodes: 3, servers: 3, shardGroups: 8, durability: 'local', users: 6, rate: 22, safetyMs: 11000, livenessSendMs: 2000, faults: ['node_crash', 'server_kill', 'server_os_crash', 'disk_full', 'fsync_fail', 'drain'], workload: 'v1' },
  },
  {
    caught:
      'a node cut off from the cluster (safe mode) still served inbox pages of a group the majority had taken over: a client logging in there got a message again whose ACK the new owner had made durable',
    scenario: { seed: 141, nodes: 4, servers: 3, shardGroups: 8, durability: 'quorum', users: 4, rate: 6, safetyMs: 12000, livenessSendMs: 2000, faults: ['server_kill', 'partition_node', 'slow_disk', 'disk_full', 'drain', 'rolling_restart', 'move'], workload: 'v1' },
  },
  {
    caught: 'the same unbounded shard-stream pipeline through v1 clients at 600 msgs/s (a stream without a leader for a few seconds): appends still pending and messages sent after the heal never delivered',
    scenario: { seed: 10, nodes: 3, servers: 3, shardGroups: 4, durability: 'quorum', users: 4, rate: 600, safetyMs: 10000, livenessSendMs: 2000, faults: ['server_kill'], workload: 'v1' },
  },
  {
    caught: 'a presence change lost in a cut between NATS servers (no link event, no owner change) stayed lost for good: a user online on every node but one',
    scenario: { seed: 32, nodes: 3, servers: 3, shardGroups: 4, durability: 'quorum', users: 8, rate: 10, safetyMs: 6000, livenessSendMs: 2000, faults: ['node_crash', 'clock', 'server_kill', 'server_pause', 'partition_servers', 'disk_full', 'drain', 'rolling_restart'], workload: 'v1' },
  },
];

for (const { caught, scenario } of REGRESSIONS) {
  test(`v1 cluster regression seed ${scenario.seed} passes every checker (it caught: ${caught})`, async () => {
    const r = await runClusterScenario(scenario);
    assert.ok(r.ok, describeClusterFailure(r));
  });
}
