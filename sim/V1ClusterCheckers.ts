/**
 * The invariants of a v1 cluster run that the clients' view adds to the cluster checkers
 * (sim/ClusterCheckers.ts, which judge the streams, the disks, the owners, presence tables,
 * the key directory and the minority side). First the single-node checkers (sim/Checkers.ts)
 * over the clients' history, whose claims are the messages an owner reported durable, i.e.
 * accepted (the sender's connection hears `route_accepted` then):
 *
 * - durable_lost: an accepted message never reached its recipient (every client is back and
 *   acknowledges everything after the heal, so all of it must arrive);
 * - phantom / corrupt: a delivery nobody sent, or whose bytes differ from what was stored;
 * - order: first deliveries of one sender's messages to one recipient out of order, across
 *   failovers, hand-offs and the clients' moves (per connection for SEND and GROUP_MSG, by
 *   number for SEND_SEQ); gap: a later message of one connection arrived while an earlier one
 *   vanished without the connection hearing any refusal (a failed write does not excuse it in a
 *   cluster: the connection sends the route again);
 * - duplicate_seq: one SEND_SEQ number delivered as two messages;
 * - redelivered_after_ack: a message delivered at a login that began after its ACK was durable;
 * - liveness and presence: what was sent after the heal arrived, every client that stays is
 *   logged in, every GET_STATUS after the end's presence change answers who stayed and who left.
 *
 * (Their ack_before_fsync is the cluster's ack_before_durable, checked there with the standby's
 * disk too, so it is left out here.) Then what only a cluster adds:
 *
 * - duplicate: one message (the same payload for the same recipient) stored or delivered
 *   under two message ids: a route sent again to a new owner taken twice;
 * - order (stored): one sender's messages stored for a recipient out of order, over every
 *   message an owner reported durable (ACKs remove most of them from the final inboxes, where
 *   the cluster checkers look);
 * - delivered_twice: one message written twice on one connection;
 * - receipt_phantom: a READ_RECEIPT_RELAY naming a reader that sent no such receipt.
 */
import { check, type Violation } from './Checkers.js';
import type { ClusterHistory } from './ClusterHistory.js';
import type { History } from './History.js';
import { decodePayload, GROUP_TARGET, payloadKey } from './Payload.js';
import type { ReceiptSeen } from './V1ClientExtras.js';

/** Violations kept per invariant (the first ones tell the story). */
const MAX_PER_INVARIANT = 5;

export interface V1ClusterCheckInput {
  clients: History;
  cluster: ClusterHistory;
  users: number;
  /** Clients that logged out at the end (the others stay). */
  left: ReadonlySet<number>;
  /** When the staying clients asked for everyone's presence. */
  presenceAt: number;
  onlineAtEnd: ReadonlySet<number>;
  /** Read receipts sent (`<reader>><original sender>/<msg id hex>`) and received. */
  receiptsSent: ReadonlySet<string>;
  receiptsSeen: readonly ReceiptSeen[];
}

/** Invariants of the single-node checkers a cluster run checks elsewhere. */
const CHECKED_BY_THE_CLUSTER = new Set(['ack_before_fsync']);

export function checkV1Cluster(input: V1ClusterCheckInput): Violation[] {
  const out: Violation[] = [];
  const count = new Map<string, number>();
  const add = (invariant: string, message: string, witness: string[] = []): void => {
    const n = count.get(invariant) ?? 0;
    if (n >= MAX_PER_INVARIANT) return;
    count.set(invariant, n + 1);
    out.push({ invariant, message, witness });
  };
  const clients = check({
    history: input.clients,
    clients: input.users,
    leftAtEnd: new Set(input.left),
    presenceAt: input.presenceAt,
    onlineAtEnd: new Set(input.onlineAtEnd),
    runtime: [],
  });
  for (const v of clients) if (!CHECKED_BY_THE_CLUSTER.has(v.invariant)) add(v.invariant, v.message, v.witness);

  // ---- one message, one id ------------------------------------------------------------------
  const stored = new Map<string, Set<string>>();
  for (const a of input.cluster.appends) {
    if (a.durable !== true) continue;
    const k = `${a.user}|${a.payloadHex}`;
    let ids = stored.get(k);
    if (ids === undefined) stored.set(k, (ids = new Set()));
    ids.add(a.msgId);
    if (ids.size === 2) add('duplicate', `${describe(a.payloadHex)} is stored for u${a.user} as two messages`, [...ids].map((i) => `id ${i}`));
  }
  const delivered = new Map<string, Set<string>>();
  const onConnection = new Set<string>();
  for (const d of input.clients.delivered) {
    const k = `${d.client}|${d.innerHex}`;
    let ids = delivered.get(k);
    if (ids === undefined) delivered.set(k, (ids = new Set()));
    ids.add(d.msgId);
    if (ids.size === 2) add('duplicate', `u${d.client} received ${describe(d.innerHex)} as two messages`, [...ids].map((i) => `id ${i}`));
    const c = `${d.client}/${d.conn}/${d.msgId}`;
    if (onConnection.has(c)) add('delivered_twice', `message ${d.msgId} (${describe(d.innerHex)}) was written twice to u${d.client}'s connection ${d.conn}`, [`second at ${d.at} ms`]);
    onConnection.add(c);
  }

  // ---- stored order, over everything reported durable ----------------------------------------
  const byPair = new Map<string, Array<{ id: string; seq: number; key: string }>>();
  for (const a of input.cluster.appends) {
    if (a.durable !== true) continue;
    const f = decodePayload(Buffer.from(a.payloadHex, 'hex'));
    if (f === null) continue;
    const pair = f.kind === 1 && f.target !== GROUP_TARGET ? `${f.sender}>${a.user} SEND_SEQ` : `${f.sender}>${f.target === GROUP_TARGET ? 'g>' : ''}${a.user} on connection ${f.conn}`;
    let list = byPair.get(pair);
    if (list === undefined) byPair.set(pair, (list = []));
    list.push({ id: a.msgId, seq: f.seq, key: payloadKey(f) });
  }
  for (const [pair, list] of byPair) {
    const sorted = [...new Map(list.map((x) => [x.id, x])).values()].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.seq < sorted[i - 1]!.seq) {
        add('order', `${pair}: #${sorted[i]!.seq} is stored after #${sorted[i - 1]!.seq}`, sorted.map((x) => `${x.id} ${x.key}`).slice(0, 12));
        break;
      }
    }
  }

  // ---- receipts ------------------------------------------------------------------------------
  for (const r of input.receiptsSeen) {
    if (!input.receiptsSent.has(`${r.reader}>${r.client}/${r.msgIdHex}`)) add('receipt_phantom', `u${r.client} got a read receipt from u${r.reader} for message ${r.msgIdHex} that u${r.reader} never sent it`, [`at ${r.at} ms`]);
  }
  return out;
}

function describe(payloadHex: string): string {
  const f = decodePayload(Buffer.from(payloadHex, 'hex'));
  return f === null ? '?' : payloadKey(f);
}
