/**
 * A router shard: owns the users that hash to it (HashRing over shards) and knows which
 * session, if any, each is connected through. It routes every record without blocking: store
 * a delivery in the recipient's inbox (the id is assigned at once, the write completes in the
 * background, group-committed with the other writes of the turn) and, once it is durable, hand
 * it to the recipient's session if the user is online. A client never sees a message the
 * server could still forget. Notices (typing, receipts) go straight to an online recipient's
 * session; a receipt for an offline user is kept apart from its messages.
 *
 * Registrations are last-writer-wins: a new session for a user replaces the old one (in a
 * cluster, a session registering *again* after its shard moved loses to a newer login). The
 * shard monitors every session it holds, so a session that ends for any reason (logout,
 * crash, kill) turns its user offline.
 *
 * In a cluster (docs/cluster.md, "Routing across nodes") routes carry a ticket: their number in
 * the sending connection's lane (core/RouteLanes.ts). The shard takes each number once and in
 * order, answers `route_accepted` once the message is durable at the configured level (and
 * refusals name the ticket), and answers a repeat as the first time. It also serves the reads
 * and acknowledgements of sessions and connections on other nodes (`inbox_read`, `inbox_ack`),
 * since the inbox lives with the shard. Without tickets (a single node) none of this costs
 * anything.
 */
import { canary } from './Canaries.js';
import { isDownMessage } from '../runtime/ExitReason.js';
import { pidEquals, type Pid } from '../runtime/Pid.js';
import type { ProcessBody, ProcessContext } from '../runtime/ProcessContext.js';
import type { StorageEngine } from '../runtime/Env.js';
import { deliveryBytes, type Delivery, type ReadReceipt, type Typing } from './Delivery.js';
import type { Inbox } from './Inbox.js';
import type { CoreCounters } from './CoreCounters.js';
import type { Notice } from './Delivery.js';
import type { StoredItem } from './Inbox.js';
import { DELIVERY_NOTE_DELAYS_MS, DELIVERY_NOTE_TICK_MS, PRESENCE_SWEEP_AFTER_MS, ROUTE_LANES_KEEP_MS, ROUTE_LANES_SWEEP_MS } from './defaults.js';
import { ROUTE_LANES_TABLE, RouteLanes, type RouteTicket } from './RouteLanes.js';
import { userBytes, type UserKey } from './UserId.js';
import type { PresenceTable } from './Presence.js';
import type { Ref } from '../runtime/Pid.js';

/** Route one delivery to `to`; `replyTo` hears about refusals. */
export interface RouterRoute {
  t: 'route';
  to: UserKey;
  rec: Delivery;
  replyTo: Pid | null;
  /**
   * SEND_SEQ: the sender's sequence number for this (sender, recipient) pair. A seq not above
   * the highest one already taken is dropped (a repeat, or late and out of order).
   */
  seq?: bigint;
  /** In a cluster: the route's number in its connection's lane (`replyTo` is the connection). */
  ticket?: RouteTicket;
}
export interface RouterRegister {
  t: 'register';
  user: UserKey;
  session: Pid;
  /** In a cluster: when the session's login happened (wall ms), so a newer login wins a race. */
  at?: number;
  /** In a cluster: a session registering again after its shard moved; it loses to a newer login. */
  rejoin?: boolean;
}
/**
 * In a cluster: a session on another node reads its user's stored inbox (and, with `notices` >
 * 0, takes the receipts kept for the user, at most that many). Answered `inbox_read_reply`.
 */
export interface RouterInboxRead {
  t: 'inbox_read';
  user: UserKey;
  afterId: Uint8Array | null;
  maxCount: number;
  maxBytes: number;
  notices: number;
  replyTo: Pid;
  ref: Ref;
}
export interface InboxReadReply {
  t: 'inbox_read_reply';
  ref: Ref;
  items: StoredItem[];
  more: boolean;
  notices: Notice[];
}
/** In a cluster: a connection on another node acknowledges `id`; answered `ack_done` once durable. */
export interface RouterInboxAck {
  t: 'inbox_ack';
  user: UserKey;
  id: Uint8Array;
  replyTo: Pid;
}
export interface AckDone {
  t: 'ack_done';
  id: Uint8Array;
}
/**
 * A notice for wherever `to` is connected. Typing is best effort; a receipt for an offline user
 * is stored (apart from messages) and handed over at login.
 */
export interface RouterRelay {
  t: 'relay';
  to: UserKey;
  rec: Typing | ReadReceipt;
}
export type RouterMessage = RouterRoute | RouterRegister | RouterRelay | RouterInboxRead | RouterInboxAck;

/** The shard prunes its connection lanes, or sweeps its group's presence (cluster only). */
interface SweepLanes {
  t: 'sweep_lanes';
}
interface SweepPresence {
  t: 'sweep_presence';
}

/** Time to send the `delivered` notes that are due (cluster only). */
interface DeliveryNotes {
  t: 'delivery_notes';
}

/** A write for `to` settled (the shard tells itself, to act on it inside a handler). */
interface Stored {
  t: 'stored';
  to: UserKey;
}

/** A message being written, waiting to be handed to the recipient's session. */
interface Write {
  id: Uint8Array;
  rec: Delivery;
  settled: boolean;
  ok: boolean;
  replyTo: Pid | null;
  /** In a cluster: the route's ticket and its connection's key (the answer names it). */
  ticket: RouteTicket | undefined;
  conn: string;
}

/**
 * The SEND_SEQ numbers of one (recipient, sender) pair: the highest taken (a route with a number
 * not above it is a repeat), the highest whose message is stored, and those being written.
 */
interface SeqPair {
  highest: bigint;
  stored: bigint;
  readonly writing: bigint[];
}

/**
 * What the shard sends to sessions. To a session on another node (a cluster), deliveries are
 * numbered (`n`: 1, 2, … since it registered, `registered` carrying the count so far) and a
 * `delivered` note repeats the count now and then after the last one (DELIVERY_NOTE_DELAYS_MS):
 * core NATS may lose a message without either node noticing, and a session that sees a number
 * skipped knows its connection must read the inbox again.
 */
export type ShardToSession =
  | { t: 'deliver'; id: Uint8Array; rec: Delivery; bytes: number; n?: number }
  | { t: 'notice'; rec: Typing | ReadReceipt }
  /** The registration is in; `shard` is this shard (a session on another node monitors it). */
  | { t: 'registered'; shard: Pid; n?: number }
  /** To a session on another node: deliveries sent to it so far. */
  | { t: 'delivered'; n: number }
  | { t: 'replaced' };

/**
 * What the shard sends to a sender about a message it could not take. With a ticket (a
 * cluster), `g` and `n` name the route; `storage_unavailable` then means "not taken, send it
 * again" (the group is moving, or the cluster is in safe mode).
 */
export interface RouteRefused {
  t: 'route_refused';
  code: 'inbox_full' | 'storage_unavailable' | 'invalid_recipient';
  g?: number;
  n?: number;
}

/** In a cluster: the route `n` of the connection's lane for group `g` is durable. */
export interface RouteAccepted {
  t: 'route_accepted';
  g: number;
  n: number;
}

export interface RouterShardDeps {
  inbox: Inbox;
  presence: PresenceTable;
  /**
   * In a cluster: whether a user belongs to this shard's group. PRESENCE_SWEEP_AFTER_MS after
   * the shard starts, such users still shown online without a session here are set offline
   * (their sessions died with the node that owned the group before).
   */
  owns?: (user: UserKey) => boolean;
  /**
   * In a cluster: whether inbox reads of sessions are served now (false in safe mode: this node
   * may no longer own the group, and its copy may hold messages the new owner has removed since;
   * an unanswered read is asked again by its session).
   */
  readable?: () => boolean;
  /** Holds the highest SEND_SEQ per (recipient, sender) across restarts. */
  storage: StorageEngine;
  counters: CoreCounters;
}

/** Table of the highest SEND_SEQ taken per (recipient, sender). */
export const SEND_SEQ_TABLE = 'send_seq';

/**
 * The in-memory key of a (recipient, sender) pair: the recipient's length first, so no two
 * pairs share a key whatever bytes the ids hold (NUL included).
 */
export function seqPairKey(to: UserKey, from: Uint8Array): string {
  if (canary('dedup_wrong_key')) return to;
  return String.fromCharCode(to.length) + to + String.fromCharCode.apply(null, from as unknown as number[]);
}

/** A SEND_SEQ row's value: the number, 8 bytes big-endian. */
function seqBytes(seq: bigint): Uint8Array {
  const v = new Uint8Array(8);
  new DataView(v.buffer).setBigUint64(0, seq);
  return v;
}

export function routerShard(deps: RouterShardDeps): ProcessBody {
  return (ctx: ProcessContext) => {
    const { counters } = deps;
    const sessions = new Map<UserKey, Pid>();
    const seqTable = deps.storage.table(SEND_SEQ_TABLE);
    const watched = new Map<string, UserKey>(); // monitor ref key -> user
    /** Per (recipient, sender) pair, in memory once used: its SEND_SEQ numbers (see SeqPair). */
    const seqPairs = new Map<string, SeqPair>();
    /** Per recipient, messages whose writes have not all settled, in append order. */
    const writing = new Map<UserKey, Write[]>();
    /** Recipients with a `stored` notice in the shard's mailbox. */
    const notified = new Set<UserKey>();
    /** The pair's row in the SEND_SEQ table; -1 when none. */
    const storedSeq = (to: UserKey, from: Uint8Array): bigint => {
      const raw = seqTable.get([userBytes(to), from]);
      return raw === undefined ? -1n : new DataView(raw.buffer, raw.byteOffset, 8).getBigUint64(0);
    };
    const seqPair = (to: UserKey, from: Uint8Array): SeqPair => {
      const k = seqPairKey(to, from);
      let p = seqPairs.get(k);
      if (p === undefined) {
        const stored = storedSeq(to, from);
        seqPairs.set(k, (p = { highest: stored, stored, writing: [] }));
      }
      return p;
    };
    /** Highest seq taken for (to, from), from memory or storage; -1 when none. */
    const highestSeq = (to: UserKey, from: Uint8Array): bigint => seqPair(to, from).highest;
    /**
     * Take `seq` for its message, whose append was just issued. The row is written after the
     * message's append and durability is a prefix, so a durable seq implies a durable message:
     * a crash in between may repeat a delivery, never lose one.
     */
    const takeSeq = (to: UserKey, from: Uint8Array, seq: bigint): void => {
      const p = seqPair(to, from);
      p.highest = seq;
      p.writing.push(seq);
      void seqTable.put([userBytes(to), from], seqBytes(seq));
    };
    /**
     * The write of `seq`'s message settled. A failed one gives its number back at once, in the
     * same callback as the lane's (a resend handled before the shard's `stored` notice must find
     * it free, or it would be dropped as a repeat and answered accepted: lost), unless a later
     * number was taken since (that one gives back in its turn if it fails too). The pair's
     * highest number is then the highest still being written or stored, so numbers of earlier
     * writes that failed with it are free as well. The row is written in the same turn as the
     * message, so it normally failed with it; only if it holds the failed number is it written
     * back.
     */
    const seqSettled = (to: UserKey, from: Uint8Array, seq: bigint, ok: boolean): void => {
      const p = seqPair(to, from);
      const i = p.writing.indexOf(seq);
      if (i >= 0) p.writing.splice(i, 1);
      if (ok) {
        if (seq > p.stored) p.stored = seq;
        return;
      }
      if (p.highest !== seq) return;
      let h = p.stored;
      for (const x of p.writing) if (x > h) h = x;
      p.highest = h;
      if (storedSeq(to, from) !== seq) return;
      if (h < 0n) void seqTable.remove([userBytes(to), from]);
      else void seqTable.put([userBytes(to), from], seqBytes(h));
    };
    const refuse = (to: Pid | null, code: RouteRefused['code'], ticket?: RouteTicket): void => {
      if (code === 'inbox_full') counters.inboxFullRefusals++;
      if (to === null) return;
      ctx.send(to, ticket === undefined ? ({ t: 'route_refused', code } satisfies RouteRefused) : ({ t: 'route_refused', code, g: ticket.g, n: ticket.n } satisfies RouteRefused));
    };
    /** Connection lanes (cluster only: made at the first ticket). */
    let lanes: RouteLanes | null = null;
    const laneTable = (): RouteLanes => {
      if (lanes === null) {
        lanes = new RouteLanes(deps.storage.table(ROUTE_LANES_TABLE));
        ctx.sendAfter(ROUTE_LANES_SWEEP_MS, { t: 'sweep_lanes' } satisfies SweepLanes);
      }
      return lanes;
    };
    const sweepLanes = (): void => {
      if (lanes === null) return;
      const table = deps.storage.table(ROUTE_LANES_TABLE);
      for (const key of lanes.prune(ctx.env.clock.monotonicMs() - ROUTE_LANES_KEEP_MS, ctx.env.clock.wallMs() - ROUTE_LANES_KEEP_MS)) void table.remove(key);
      ctx.sendAfter(ROUTE_LANES_SWEEP_MS, { t: 'sweep_lanes' } satisfies SweepLanes);
    };
    /**
     * A ticketed route: taken once and in lane order (core/RouteLanes.ts). Returns whether to
     * go on with it; a repeat is answered as the first time was.
     */
    const admit = (m: RouterRoute, ticket: RouteTicket, conn: string): boolean => {
      const v = laneTable().verdict(conn, ticket, ctx.env.clock.monotonicMs());
      switch (v.t) {
        case 'take':
          return true;
        case 'repeat_accepted':
          counters.routeDedupHits++;
          ctx.send(m.replyTo!, { t: 'route_accepted', g: ticket.g, n: ticket.n } satisfies RouteAccepted);
          return false;
        case 'repeat_refused':
          counters.routeDedupHits++;
          refuse(m.replyTo, v.code, ticket);
          return false;
        case 'drop':
          return false;
      }
    };
    const writeLaneRow = (row: { key: [string]; value: Uint8Array }): void => {
      void deps.storage.table(ROUTE_LANES_TABLE).put(row.key, row.value);
    };
    /**
     * Store `m` in the recipient's inbox; once the write is durable, hand it to the session if
     * the recipient is online. Nothing reaches a client before it is stored: a crash can then
     * never make the server forget a message someone already saw (a SEND_SEQ resent after a
     * crash would otherwise be delivered twice). A failed write is reported to the sender, and
     * its seq given back so a resend is taken.
     */
    const route = (m: RouterRoute): void => {
      const from = m.rec.from;
      const ticket = m.replyTo !== null ? m.ticket : undefined;
      const conn = ticket !== undefined ? m.replyTo!.key : '';
      if (ticket !== undefined && !admit(m, ticket, conn)) return;
      if (m.seq !== undefined && m.seq <= highestSeq(m.to, from)) {
        counters.dedupHits++;
        if (ticket !== undefined) {
          writeLaneRow(lanes!.accepted(conn, ticket.n, ctx.env.clock.wallMs()));
          ctx.send(m.replyTo!, { t: 'route_accepted', g: ticket.g, n: ticket.n } satisfies RouteAccepted);
        }
        return;
      }
      const r = deps.inbox.append(m.to, m.rec);
      if (!r.ok) {
        // A refusal for good is remembered in the lane, so a repeat gets the same answer.
        if (ticket !== undefined && r.reason !== 'storage_unavailable') writeLaneRow(lanes!.refused(conn, ticket.n, r.reason, ctx.env.clock.wallMs()));
        return refuse(m.replyTo, r.reason, ticket);
      }
      if (m.seq !== undefined) takeSeq(m.to, from, m.seq);
      // In the same turn as the append: the lane's row goes into the same entry as the message.
      if (ticket !== undefined) writeLaneRow(lanes!.writing(conn, ticket.n, ctx.env.clock.wallMs()));
      const w: Write = { id: r.id, rec: m.rec, settled: false, ok: false, replyTo: m.replyTo, ticket, conn };
      let q = writing.get(m.to);
      if (q === undefined) writing.set(m.to, (q = []));
      q.push(w);
      const to = m.to;
      const seq = m.seq;
      void r.durable.then((ok) => {
        w.settled = true;
        w.ok = ok;
        // At once, not in the `stored` handler: a later route of the lane handled before that
        // must already see the number given back (it is then out of order and waits), and a
        // resend of this one must find its SEND_SEQ number free.
        if (ticket !== undefined) lanes?.settled(conn, ticket.n, ok);
        if (seq !== undefined) seqSettled(to, from, seq, ok);
        // One notice per recipient until the shard handles it: a group commit settles many writes at once.
        if (notified.has(to)) return;
        notified.add(to);
        ctx.send(ctx.self, { t: 'stored', to } satisfies Stored);
      });
    };
    /** Per session on another node: deliveries sent to it since it registered. */
    const numbered = new Map<UserKey, number>();
    /** Sessions on another node owed a `delivered` note: when the next is due, and which delay comes next. */
    const owed = new Map<UserKey, { due: number; next: number }>();
    let notesArmed = false;
    const oweNote = (to: UserKey): void => {
      owed.set(to, { due: ctx.env.clock.monotonicMs() + DELIVERY_NOTE_DELAYS_MS[0]!, next: 1 });
      if (notesArmed) return;
      notesArmed = true;
      ctx.sendAfter(DELIVERY_NOTE_TICK_MS, { t: 'delivery_notes' } satisfies DeliveryNotes);
    };
    const sendNotes = (): void => {
      notesArmed = false;
      const now = ctx.env.clock.monotonicMs();
      for (const [u, o] of owed) {
        if (o.due > now) continue;
        const s = sessions.get(u);
        const n = numbered.get(u);
        if (s === undefined || n === undefined || o.next >= DELIVERY_NOTE_DELAYS_MS.length) owed.delete(u);
        else {
          o.due = now + DELIVERY_NOTE_DELAYS_MS[o.next]! - DELIVERY_NOTE_DELAYS_MS[o.next - 1]!;
          o.next++;
        }
        if (s !== undefined && n !== undefined) ctx.send(s, { t: 'delivered', n } satisfies ShardToSession);
      }
      if (owed.size > 0) {
        notesArmed = true;
        ctx.sendAfter(DELIVERY_NOTE_TICK_MS, { t: 'delivery_notes' } satisfies DeliveryNotes);
      }
    };
    /**
     * Writes settled for `to`: hand over, in append order, every message at the head of its
     * queue whose write is done (writes may settle out of order; deliveries never do).
     */
    const onStored = (to: UserKey): void => {
      notified.delete(to);
      const q = writing.get(to);
      if (q === undefined) return;
      while (q.length > 0 && q[0]!.settled) {
        const w = q.shift()!;
        if (!w.ok) {
          refuse(w.replyTo, 'storage_unavailable', w.ticket);
          continue;
        }
        counters.stored++;
        if (w.ticket !== undefined) ctx.send(w.replyTo!, { t: 'route_accepted', g: w.ticket.g, n: w.ticket.n } satisfies RouteAccepted);
        const s = sessions.get(to);
        if (s === undefined) continue;
        const sent = numbered.get(to);
        if (sent === undefined) {
          ctx.send(s, { t: 'deliver', id: w.id, rec: w.rec, bytes: deliveryBytes(w.rec) } satisfies ShardToSession);
          continue;
        }
        numbered.set(to, sent + 1);
        ctx.send(s, { t: 'deliver', id: w.id, rec: w.rec, bytes: deliveryBytes(w.rec), n: sent + 1 } satisfies ShardToSession);
        oweNote(to);
      }
      if (q.length === 0) writing.delete(to);
    };
    /** In a cluster: when each registered session's login happened (wall ms). */
    const registeredAt = new Map<UserKey, number>();
    /** Read the stored inbox for a session on another node (the inbox lives here). */
    const readFor = (m: RouterInboxRead): void => {
      const { replyTo, ref } = m;
      void (async () => {
        const notices = m.notices > 0 ? await deps.inbox.takeNotices(m.user, m.notices) : [];
        const page = await deps.inbox.page(m.user, { afterId: m.afterId ?? undefined, maxCount: m.maxCount, maxBytes: m.maxBytes });
        ctx.send(replyTo, { t: 'inbox_read_reply', ref, items: page.items, more: page.more, notices } satisfies InboxReadReply);
      })();
    };
    if (deps.owns !== undefined) ctx.sendAfter(PRESENCE_SWEEP_AFTER_MS, { t: 'sweep_presence' } satisfies SweepPresence);
    let heldBack: RouterRoute | null = null;
    return (raw) => {
      if (isDownMessage(raw)) {
        const user = watched.get(raw.ref.key);
        if (user === undefined) return;
        watched.delete(raw.ref.key);
        const cur = sessions.get(user);
        if (cur !== undefined && pidEquals(cur, raw.pid)) {
          sessions.delete(user);
          registeredAt.delete(user);
          numbered.delete(user);
          owed.delete(user);
          if (!canary('presence_leak')) deps.presence.setOffline(user, Math.floor(ctx.env.clock.wallMs() / 1000));
        }
        return;
      }
      const m = raw as RouterMessage | Stored | SweepLanes | SweepPresence | DeliveryNotes;
      switch (m.t) {
        case 'stored':
          onStored(m.to);
          return;
        case 'delivery_notes':
          sendNotes();
          return;
        case 'sweep_lanes':
          sweepLanes();
          return;
        case 'sweep_presence': {
          const owns = deps.owns!;
          const now = Math.floor(ctx.env.clock.wallMs() / 1000);
          const stale: UserKey[] = [];
          deps.presence.forEach((u, online) => {
            if (online && !sessions.has(u) && owns(u)) stale.push(u);
          });
          for (const u of stale) deps.presence.setOffline(u, now);
          return;
        }
        case 'inbox_read':
          if (deps.readable?.() === false) return;
          readFor(m);
          return;
        case 'inbox_ack': {
          const { replyTo, id } = m;
          void deps.inbox.ack(m.user, id).then((ok) => {
            if (ok) ctx.send(replyTo, { t: 'ack_done', id } satisfies AckDone);
          });
          return;
        }
        case 'route': {
          if (canary('router_reorder')) {
            if (heldBack === null && ctx.env.random.float() < 0.2) {
              heldBack = m;
              return;
            }
            if (heldBack !== null) {
              const later = heldBack;
              heldBack = null;
              route(m);
              route(later);
              return;
            }
          }
          route(m);
          return;
        }
        case 'relay': {
          const s = sessions.get(m.to);
          if (s !== undefined) ctx.send(s, { t: 'notice', rec: m.rec } satisfies ShardToSession);
          else if (m.rec.k === 'receipt') deps.inbox.storeNotice(m.to, m.rec);
          return;
        }
        case 'register': {
          const old = sessions.get(m.user);
          if (old !== undefined && !pidEquals(old, m.session)) {
            // A session coming back after its shard moved loses to a login made since.
            if (m.rejoin === true && (registeredAt.get(m.user) ?? 0) > (m.at ?? 0)) {
              ctx.send(m.session, { t: 'replaced' } satisfies ShardToSession);
              return;
            }
            ctx.send(old, { t: 'replaced' } satisfies ShardToSession);
          }
          if (old === undefined || !pidEquals(old, m.session)) {
            watched.set(ctx.monitor(m.session).key, m.user);
            owed.delete(m.user);
            // A session on another node counts its deliveries (a lost one shows as a number skipped).
            if (m.session.node !== ctx.self.node) numbered.set(m.user, 0);
            else numbered.delete(m.user);
          }
          sessions.set(m.user, m.session);
          if (m.at !== undefined) registeredAt.set(m.user, m.at);
          deps.presence.setOnline(m.user);
          const sent = numbered.get(m.user);
          ctx.send(m.session, (sent === undefined ? { t: 'registered', shard: ctx.self } : { t: 'registered', shard: ctx.self, n: sent }) satisfies ShardToSession);
          return;
        }
      }
    };
  };
}
