/**
 * The node's `/metrics` page in the Prometheus text format: connections, online users, what
 * the core stored, deduplicated and refused, and what the edge shaped or dropped. Counters
 * only go up; gauges are read when the page is asked for. Names are prefixed `iris_`.
 */
import type { IrisService } from './IrisService.js';

type Sample = [name: string, kind: 'counter' | 'gauge', help: string, value: number];

export function metricsText(service: IrisService): string {
  const c = service.counters;
  const l = service.limits.stats();
  const samples: Sample[] = [
    ['iris_connections', 'gauge', 'Open client connections.', service.connections()],
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
  let out = '';
  for (const [name, kind, help, value] of samples) out += `# HELP ${name} ${help}\n# TYPE ${name} ${kind}\n${name} ${value}\n`;
  return out;
}
