/**
 * The invariants checked at the end of every run, over the history and the service's
 * white-box events. Each returns violations with a short witness (the history lines that
 * show it), so a failure says what broke, not only that something did.
 *
 * - durable_lost: a message the service reported durable was never delivered.
 * - ack_before_fsync: the service reported a message durable while it was not on disk.
 * - phantom / corrupt: a delivery nobody sent, or whose bytes do not check out.
 * - order: first deliveries of one sender's messages to one recipient out of order (per
 *   connection for SEND; across connections for SEND_SEQ, whose numbers order them).
 * - gap: a later message from one connection got through while an earlier one to the same
 *   recipient vanished without the server refusing anything or reporting a failed write.
 * - duplicate_seq: one SEND_SEQ number delivered as two different messages.
 * - redelivered_after_ack: a message delivered at a login that began after its ACK was durable.
 * - liveness: after the heal, a message that was sent never arrived, a client never got
 *   logged in again, or a presence query went unanswered.
 * - presence: after the heal, a status answer disagrees with who is connected.
 * - runtime: an exception escaped an event, a tripwire fired, a service process is missing.
 */
import type { History, Sent } from './History.js';
import { decodePayload, GROUP_TARGET, hexBytes, payloadKey } from './Payload.js';

export interface Violation {
  invariant: string;
  message: string;
  witness: string[];
}

export interface CheckInput {
  history: History;
  clients: number;
  /** Clients that logged out at the end (shown offline) and those that stay (online). */
  leftAtEnd: Set<number>;
  /** Time of the final presence queries. */
  presenceAt: number;
  /** Clients online at the end of the run. */
  onlineAtEnd: Set<number>;
  /** Problems the runtime checks found (failures, tripwires, missing processes). */
  runtime: string[];
}

export function check(input: CheckInput): Violation[] {
  const h = input.history;
  const out: Violation[] = [];
  const perInvariant = new Map<string, number>();
  const add = (invariant: string, message: string, witness: string[] | (() => string[]) = []): void => {
    const n = perInvariant.get(invariant) ?? 0;
    if (n >= 5) return;
    perInvariant.set(invariant, n + 1);
    out.push({ invariant, message, witness: typeof witness === 'function' ? witness() : witness });
  };
  const decoded = new Map<string, ReturnType<typeof decodePayload>>();
  const decode = (hex: string): ReturnType<typeof decodePayload> => {
    let f = decoded.get(hex);
    if (f === undefined && !decoded.has(hex)) decoded.set(hex, (f = decodePayload(hexBytes(hex))));
    return f ?? null;
  };
  for (const r of input.runtime) add('runtime', r);

  const sentByPayload = new Map<string, Sent>();
  for (const s of h.sent) sentByPayload.set(s.payloadHex, s);

  // Deliveries per recipient, by message id; first delivery per id.
  const firstByUserId = new Map<string, { at: number; payloadHex: string; conn: number }>();
  for (const d of h.delivered) {
    const key = `${d.client}/${d.msgId}`;
    const seen = firstByUserId.get(key);
    if (seen === undefined) firstByUserId.set(key, { at: d.at, payloadHex: d.payloadHex, conn: d.conn });
    else if (seen.payloadHex !== d.payloadHex) add('corrupt', `message ${d.msgId} to u${d.client} was delivered with two different payloads`);
    const f = decode(d.innerHex);
    if (f === null) {
      add('corrupt', `u${d.client} received a payload that does not parse or check out (id ${d.msgId})`, [`deliver at ${d.at} conn ${d.conn}: ${d.payloadHex.slice(0, 80)}`]);
      continue;
    }
    const s = sentByPayload.get(d.innerHex);
    if (s === undefined || (f.target !== d.client && f.target !== GROUP_TARGET)) add('phantom', `u${d.client} received ${payloadKey(f)}, which no client sent to it`, [`deliver at ${d.at} id ${d.msgId}`]);
    else if (f.target === GROUP_TARGET && d.stampedSender !== f.sender) add('corrupt', `u${d.client} received group message ${payloadKey(f)} stamped with sender u${d.stampedSender}`);
  }

  // Every message the service reported durable reaches its recipient.
  for (const c of h.claims) {
    if (!c.onDisk) add('ack_before_fsync', `the inbox reported message ${c.msgId} for u${c.user} durable at ${c.at} ms while it was not on disk`, [`claim at ${c.at} on ${c.node}`]);
    const got = firstByUserId.get(`${c.user}/${c.msgId}`);
    if (got === undefined) {
      const f = decode(c.payloadHex);
      add('durable_lost', `message ${c.msgId} (${f === null ? '?' : payloadKey(f)}) for u${c.user} was reported durable at ${c.at} ms and never delivered`, () => witnessFor(h, c.user, f === null ? undefined : f.sender));
    } else if (got.payloadHex !== c.payloadHex) add('corrupt', `message ${c.msgId} for u${c.user} was delivered with other bytes than were stored`);
  }

  // First deliveries, in delivery order, grouped by (sender, recipient).
  const firstOrder = new Map<string, Sent[]>();
  const deliveredPayloads = new Set<string>();
  const idsBySeq = new Map<string, Set<string>>();
  const firstSeen = new Set<string>();
  const deliveredTo = new Set<string>();
  for (const d of h.delivered) {
    const s = sentByPayload.get(d.innerHex);
    if (s === undefined) continue;
    deliveredTo.add(`${d.client}|${d.innerHex}`);
    if (s.kind === 1) {
      const k = `${s.client}>${s.target}#${s.seq}`;
      let ids = idsBySeq.get(k);
      if (ids === undefined) idsBySeq.set(k, (ids = new Set()));
      ids.add(d.msgId);
      if (ids.size === 2) add('duplicate_seq', `SEND_SEQ ${k} was delivered as two messages`, [...ids].map((i) => `id ${i}`));
    }
    const key = `${d.client}/${d.msgId}`;
    if (firstSeen.has(key)) continue;
    firstSeen.add(key);
    deliveredPayloads.add(d.innerHex);
    const pair = s.target === GROUP_TARGET ? `${s.client}>g>${d.client}` : `${s.client}>${s.target}`;
    let list = firstOrder.get(pair);
    if (list === undefined) firstOrder.set(pair, (list = []));
    list.push(s);
  }
  for (const [pair, list] of firstOrder) {
    let lastSeq = -1;
    const lastByConn = new Map<number, number>();
    for (const s of list) {
      if (s.kind === 1) {
        if (s.seq <= lastSeq) add('order', `SEND_SEQ ${pair}: #${s.seq} delivered after #${lastSeq}`, list.map((x) => x.key));
        lastSeq = Math.max(lastSeq, s.seq);
      }
      if (h.resent.has(s.payloadHex)) continue; // it may have travelled on a later connection
      const prev = lastByConn.get(s.conn);
      if (prev !== undefined && s.seq <= prev) add('order', `${pair} on connection ${s.conn}: #${s.seq} delivered after #${prev}`, list.filter((x) => x.conn === s.conn).map((x) => x.key));
      lastByConn.set(s.conn, Math.max(prev ?? -1, s.seq));
    }
  }

  // No gaps: within one sender connection, a delivered message implies every earlier one to
  // the same recipient arrived, unless the server refused something or a write failed.
  const failedIds = new Set(h.storeFailed.map((f) => `${f.user}/${f.msgId}`));
  const anyStoreFailure = h.storeFailed.length > 0;
  const byConn = new Map<string, Sent[]>();
  for (const s of h.sent) {
    if (s.target === GROUP_TARGET) continue; // recipients vary with membership; order and liveness cover groups
    const k = `${s.client}/${s.conn}>${s.target}`;
    let l = byConn.get(k);
    if (l === undefined) byConn.set(k, (l = []));
    l.push(s);
  }
  for (const [k, list] of byConn) {
    if (h.refusedConns.has(k.split('>')[0]!)) continue;
    let lastGot = -1;
    for (let i = list.length - 1; i >= 0; i--) {
      if (deliveredPayloads.has(list[i]!.payloadHex) && !h.resent.has(list[i]!.payloadHex)) {
        lastGot = i;
        break;
      }
    }
    for (let i = 0; i < lastGot; i++) {
      const s = list[i]!;
      if (deliveredPayloads.has(s.payloadHex)) continue;
      if (s.kind === 1 && list.slice(0, i).some((x) => x.kind === 1 && x.payloadHex === s.payloadHex)) continue;
      if (anyStoreFailure || failedIds.size > 0) continue;
      add('gap', `${s.key} never arrived though ${list[lastGot]!.key}, sent after it on the same connection, did`, list.slice(0, lastGot + 1).map((x) => `${x.key}${deliveredPayloads.has(x.payloadHex) ? ' delivered' : ' MISSING'}`));
      break;
    }
  }

  // An ACK made durable is final: no later login gets the message again.
  for (const d of h.delivered) {
    const t = h.ackDurable.get(`${d.client}/${d.msgId}`);
    if (t !== undefined && d.loginAt > t) add('redelivered_after_ack', `message ${d.msgId} came back to u${d.client} at a login at ${d.loginAt} ms, after its ACK was durable at ${t} ms`);
  }

  // Liveness: everything sent after the heal arrives; every client that wants to be online is.
  for (const s of h.sent) {
    if (s.liveness && s.target === GROUP_TARGET) {
      for (const [m, since] of h.groupMembers) {
        if (m !== s.client && since < s.at && !deliveredTo.has(`${m}|${s.payloadHex}`)) add('liveness', `group message ${s.key}, sent after the heal at ${s.at} ms, never reached member u${m}`, () => witnessFor(h, m, s.client));
      }
      continue;
    }
    if (s.liveness && !deliveredPayloads.has(s.payloadHex)) add('liveness', `${s.key}, sent after the heal at ${s.at} ms, was never delivered`, () => witnessFor(h, s.target, s.client));
  }
  for (let i = 0; i < input.clients; i++) {
    if (!input.leftAtEnd.has(i) && !input.onlineAtEnd.has(i)) add('liveness', `u${i} is not logged in at the end of the run`, () => witnessFor(h, i));
  }

  // Presence converges: the final answers match who stayed and who left.
  const answered = new Set<string>();
  for (const st of h.statuses) {
    if (st.at < input.presenceAt) continue;
    answered.add(`${st.observer}>${st.subject}`);
    const expectOnline = !input.leftAtEnd.has(st.subject);
    if (st.online !== expectOnline) add('presence', `u${st.observer} sees u${st.subject} ${st.online ? 'online' : 'offline'} after the heal, but it ${expectOnline ? 'is connected' : 'logged out'}`);
  }
  for (const e of h.entries) {
    if (e.op !== 'status' || e.type !== 'invoke' || e.at < input.presenceAt) continue;
    if (!answered.has(`${e.client}>${e.value}`)) add('liveness', `u${e.client}'s presence query about u${e.value} after the heal got no answer`);
  }
  return out;
}

/** The history lines of `client` (and those mentioning `other`), last ones first, at most 12. */
function witnessFor(h: History, client: number, other?: number): string[] {
  const lines = h.entries.filter((e) => e.client === client || (other !== undefined && e.client === other));
  return lines.slice(-12).map((e) => `${e.at.toFixed(0)}ms u${e.client} c${e.conn} ${e.type} ${e.op} ${e.value}`);
}
