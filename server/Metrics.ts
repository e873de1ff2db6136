/**
 * The node's `/metrics` page in the Prometheus text format: connections, online users, what
 * the core stored, deduplicated and refused, and what the edge shaped or dropped; on a cluster
 * node also the partition state, the shard groups owned and the routing retries. Counters
 * only go up; gauges are read when the page is asked for. Names are prefixed `iris_`.
 */
import type { IrisService } from './IrisService.js';

type Sample = [name: string, kind: 'counter' | 'gauge', help: string, value: number];

export function metricsText(service: IrisService): string {
  const c = service.counters;
  const l = service.limits.stats();
  const samples: Sample[] = [
    ['iris_connections', 'gauge', 'Open client connections.', service.connections()],
    ['iris_node_draining', 'gauge', 'Whether this node is being drained (new clients refused, its work handed to the other nodes).', service.clients.draining ? 1 : 0],
    ['iris_online_users', 'gauge', 'Users with a live session on this node.', service.presence.onlineCount()],
    ['iris_messages_stored_total', 'counter', 'Messages made durable in an inbox.', c.stored],
    ['iris_dedup_hits_total', 'counter', 'SEND_SEQ repeats dropped.', c.dedupHits],
    ['iris_inbox_full_refusals_total', 'counter', 'Messages refused because the recipient inbox was full (the sender was told).', c.inboxFullRefusals],
    ['iris_group_fanout_refusals_total', 'counter', 'Group messages refused because the sender fan-out budget was spent (the sender was told).', c.groupFanoutRefusals],
    ['iris_messages_shaped_total', 'counter', 'Sends that waited for their sender budget to refill.', l.refusedMessages],
    ['iris_connections_refused_total', 'counter', 'Connections refused (node cap or per-address rate).', l.refusedConnections],
    ['iris_logins_refused_total', 'counter', 'Logins refused by the failed-login limit.', l.refusedLogins],
    ['iris_typing_dropped_total', 'counter', 'Typing notices dropped over their sender budget.', service.rates.droppedTyping],
    ['iris_receipts_dropped_total', 'counter', 'Read receipts for offline users dropped because the receipt store of the user was full.', service.droppedReceipts()],
  ];
  const cl = service.core.clusterMetrics();
  if (cl !== null) {
    samples.push(
      ['iris_cluster_safe_mode', 'gauge', 'Whether this node is in safe mode (fewer than a majority of the expected nodes visible; writes refused).', cl.safeMode ? 1 : 0],
      ['iris_cluster_nodes_visible', 'gauge', 'Cluster nodes this node sees, itself included.', cl.nodesVisible],
      ['iris_cluster_groups_owned', 'gauge', 'Shard groups this node serves as owner.', cl.groupsOwned],
      ['iris_route_resends_total', 'counter', 'Messages sent again to their shard group owner (not confirmed in time, owner changed, or refused for now).', cl.routesResent],
      ['iris_route_given_up_total', 'counter', 'Messages given up after route_horizon_ms without a confirmation (the sender got request_timeout).', cl.routesGivenUp],
      ['iris_route_dedup_hits_total', 'counter', 'Messages sent again by a connection that this node\'s shards had already taken (answered, not stored twice).', c.routeDedupHits],
      ['iris_ack_resends_total', 'counter', 'Acknowledgements sent again to the owner of the user\'s shard group.', cl.acksResent],
    );
  }
  let out = '';
  for (const [name, kind, help, value] of samples) out += `# HELP ${name} ${help}\n# TYPE ${name} ${kind}\n${name} ${value}\n`;
  return out;
}
