/**
 * A router shard: owns the users that hash to it (HashRing over shards) and knows which
 * session, if any, each is connected through. It routes every record without blocking: store
 * a delivery in the recipient's inbox (the id is assigned at once, the write completes in the
 * background, group-committed with the other writes of the turn) and, once it is durable, hand
 * it to the recipient's session if the user is online. A client never sees a message the
 * server could still forget. Notices (typing, receipts) go straight to an online recipient's
 * session; a receipt for an offline user is kept apart from its messages.
 *
 * Registrations are last-writer-wins: a new session for a user replaces the old one. The
 * shard monitors every session it holds, so a session that ends for any reason (logout,
 * crash, kill) turns its user offline.
 */
import { canary } from './Canaries.js';
import { isDownMessage } from '../runtime/ExitReason.js';
import { pidEquals, type Pid } from '../runtime/Pid.js';
import type { ProcessBody, ProcessContext } from '../runtime/ProcessContext.js';
import type { StorageEngine } from '../runtime/Env.js';
import { deliveryBytes, type Delivery, type ReadReceipt, type Typing } from './Delivery.js';
import type { Inbox } from './Inbox.js';
import type { CoreCounters } from './CoreCounters.js';
import { userBytes, type UserKey } from './UserId.js';
import type { PresenceTable } from './Presence.js';

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
}
export interface RouterRegister {
  t: 'register';
  user: UserKey;
  session: Pid;
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
export type RouterMessage = RouterRoute | RouterRegister | RouterRelay;

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
  seq: bigint | undefined;
  /** The highest SEND_SEQ before this one took its place (-1 when none). */
  prevSeq: bigint;
}

/** What the shard sends to sessions. */
export type ShardToSession =
  | { t: 'deliver'; id: Uint8Array; rec: Delivery; bytes: number }
  | { t: 'notice'; rec: Typing | ReadReceipt }
  | { t: 'registered' }
  | { t: 'replaced' };

/** What the shard sends to a sender about a message it could not take. */
export interface RouteRefused {
  t: 'route_refused';
  code: 'inbox_full' | 'storage_unavailable' | 'invalid_recipient';
}

export interface RouterShardDeps {
  inbox: Inbox;
  presence: PresenceTable;
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

export function routerShard(deps: RouterShardDeps): ProcessBody {
  return (ctx: ProcessContext) => {
    const { counters } = deps;
    const sessions = new Map<UserKey, Pid>();
    const seqTable = deps.storage.table(SEND_SEQ_TABLE);
    const watched = new Map<string, UserKey>(); // monitor ref key -> user
    const lastSeq = new Map<string, bigint>();
    /** Per recipient, messages whose writes have not all settled, in append order. */
    const writing = new Map<UserKey, Write[]>();
    /** Recipients with a `stored` notice in the shard's mailbox. */
    const notified = new Set<UserKey>();
    /** Highest seq taken for (to, from), from memory or storage; -1 when none. */
    const highestSeq = (to: UserKey, from: Uint8Array): bigint => {
      const k = seqPairKey(to, from);
      let last = lastSeq.get(k);
      if (last === undefined) {
        const raw = seqTable.get([userBytes(to), from]);
        last = raw === undefined ? -1n : new DataView(raw.buffer, raw.byteOffset, 8).getBigUint64(0);
        lastSeq.set(k, last);
      }
      return last;
    };
    /**
     * Record `seq` once its message was accepted. The write is issued after the message's
     * append and durability is a prefix, so a durable seq implies a durable message: a crash in
     * between may repeat a delivery, never lose one.
     */
    const recordSeq = (to: UserKey, from: Uint8Array, seq: bigint): void => {
      lastSeq.set(seqPairKey(to, from), seq);
      const v = new Uint8Array(8);
      new DataView(v.buffer).setBigUint64(0, seq);
      void seqTable.put([userBytes(to), from], v);
    };
    /** Undo `recordSeq` after a failed write: the previous highest number, or none. */
    const restoreSeq = (to: UserKey, from: Uint8Array, prev: bigint): void => {
      if (prev >= 0n) return recordSeq(to, from, prev);
      lastSeq.set(seqPairKey(to, from), prev);
      void seqTable.remove([userBytes(to), from]);
    };
    const refuse = (to: Pid | null, code: RouteRefused['code']): void => {
      if (code === 'inbox_full') counters.inboxFullRefusals++;
      if (to !== null) ctx.send(to, { t: 'route_refused', code } satisfies RouteRefused);
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
      if (m.seq !== undefined && m.seq <= highestSeq(m.to, from)) {
        counters.dedupHits++;
        return;
      }
      const r = deps.inbox.append(m.to, m.rec);
      if (!r.ok) return refuse(m.replyTo, r.reason);
      const prevSeq = m.seq !== undefined ? highestSeq(m.to, from) : -1n;
      if (m.seq !== undefined) recordSeq(m.to, from, m.seq);
      const w: Write = { id: r.id, rec: m.rec, settled: false, ok: false, replyTo: m.replyTo, seq: m.seq, prevSeq };
      let q = writing.get(m.to);
      if (q === undefined) writing.set(m.to, (q = []));
      q.push(w);
      const to = m.to;
      void r.durable.then((ok) => {
        w.settled = true;
        w.ok = ok;
        // One notice per recipient until the shard handles it: a group commit settles many writes at once.
        if (notified.has(to)) return;
        notified.add(to);
        ctx.send(ctx.self, { t: 'stored', to } satisfies Stored);
      });
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
          // Give the number back, in memory and on disk, unless a later one was taken since.
          if (w.seq !== undefined && lastSeq.get(seqPairKey(to, w.rec.from)) === w.seq) restoreSeq(to, w.rec.from, w.prevSeq);
          refuse(w.replyTo, 'storage_unavailable');
          continue;
        }
        counters.stored++;
        const s = sessions.get(to);
        if (s !== undefined) ctx.send(s, { t: 'deliver', id: w.id, rec: w.rec, bytes: deliveryBytes(w.rec) } satisfies ShardToSession);
      }
      if (q.length === 0) writing.delete(to);
    };
    let heldBack: RouterRoute | null = null;
    return (raw) => {
      if (isDownMessage(raw)) {
        const user = watched.get(raw.ref.key);
        if (user === undefined) return;
        watched.delete(raw.ref.key);
        const cur = sessions.get(user);
        if (cur !== undefined && pidEquals(cur, raw.pid)) {
          sessions.delete(user);
          if (!canary('presence_leak')) deps.presence.setOffline(user, Math.floor(ctx.env.clock.wallMs() / 1000));
        }
        return;
      }
      const m = raw as RouterMessage | Stored;
      switch (m.t) {
        case 'stored':
          onStored(m.to);
          return;
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
          if (old !== undefined && !pidEquals(old, m.session)) ctx.send(old, { t: 'replaced' } satisfies ShardToSession);
          sessions.set(m.user, m.session);
          watched.set(ctx.monitor(m.session).key, m.user);
          deps.presence.setOnline(m.user);
          ctx.send(m.session, { t: 'registered' } satisfies ShardToSession);
          return;
        }
      }
    };
  };
}
