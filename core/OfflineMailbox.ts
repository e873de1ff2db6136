/**
 * OfflineMailbox: each user's durable inbox of messages waiting for delivery and ACK. Pure:
 * it reaches storage, randomness and nothing else through the injected Env, so it runs the
 * same on LMDB and in the simulator. It never reports a message stored before it is durable.
 *
 * Semantics
 * - `append(user, payload, meta)` resolves `{ok: true, id}` only once the message is on
 *   stable storage; `startAppend` gives the id at once plus a `durable` promise, for callers
 *   that deliver live in parallel with the write. Appends issued in one turn share one
 *   transaction and one fsync (the engine's group commit).
 * - `appendMany(items)` writes every accepted item in one atomic transaction: after a crash
 *   all of them are there or none. Each item is accepted or refused on its own (a full inbox
 *   refuses only that recipient's item), so a group fan-out is not held back by one member.
 * - Ids are 16 bytes: an 8-byte big-endian counter, then 8 random bytes. They are unique and
 *   sort in append order (per user and across users, for one mailbox). The counter is
 *   reserved in durable blocks of OFFLINE_MAILBOX_ID_BLOCK in the `meta` table; an id is only
 *   stored together with (or after) a durable reservation covering it, so a restart resumes
 *   above every id ever stored and never reuses one or breaks the order. The random half
 *   keeps ids unguessable and distinct even if a directory is restored from an old backup.
 * - `list(user, {afterId, limit})` reads stored messages oldest first; `ack(user, id)` removes
 *   one durably; acking an unknown or already removed id is a no-op that succeeds.
 * - Capacity: at most `capacityPerUser` (config key inbox_cap, default 10,000) messages per user,
 *   counting appends still being written. Policy when full: the new message is refused with
 *   `inbox_full` and nothing already stored is dropped; the caller tells the sender (v1 ERROR
 *   frame, v2 error code) so the loss is never silent. Space frees up as the user ACKs.
 * - User ids are raw bytes (NUL and non-UTF-8 allowed) and are keyed as bytes.
 *
 * One OfflineMailbox instance owns its table on a node: other threads hand it their appends
 * (as messages to its owner) rather than opening a second instance on the same table.
 *
 * Layout: table `inbox`, key (user bytes, id) → value [format 1][kind u8][sentAtMs f64]
 * [sender length u16][sender][payload]; table `meta`, key ('offline_mailbox', table,
 * 'id_limit') → the reserved counter limit, 8 bytes big-endian.
 */
import type { Env, StorageEngine, StorageOp, StorageTable, StorageWriteResult } from '../runtime/Env.js';
import { CORE_DEFAULTS } from './CoreSettings.js';
import { MESSAGE_ID_BYTES, messageIdKey } from './MessageId.js';
import { OFFLINE_MAILBOX_COUNT_CACHE_USERS, OFFLINE_MAILBOX_ID_BLOCK, OFFLINE_MAILBOX_KNOWN_IDS, OFFLINE_MAILBOX_LIST_CHUNK, OFFLINE_MAILBOX_MAX_USER_BYTES } from './defaults.js';


export interface OfflineMailboxOptions {
  /** Messages one user may have stored (default: config key inbox_cap's default). */
  capacityPerUser?: number;
  /** Stored bytes (values: payload, sender and a 12-byte header) one user may have (default: config key inbox_max_bytes's default). */
  maxBytesPerUser?: number;
  /** Table of the messages (default `inbox`). */
  table?: string;
  /** Table holding the id counter reservation (default `meta`). */
  metaTable?: string;
  /** Ids reserved per durable counter write (default OFFLINE_MAILBOX_ID_BLOCK). */
  idBlock?: number;
  /** Users whose mailbox size stays cached (default OFFLINE_MAILBOX_COUNT_CACHE_USERS). */
  countCacheUsers?: number;
  /** Latest appends remembered until acked, rounded up to a power of two (default OFFLINE_MAILBOX_KNOWN_IDS). */
  knownIds?: number;
}

/** What is stored beside the payload. */
export interface MailboxMeta {
  /** The sender's user id (raw bytes, ≤ OFFLINE_MAILBOX_MAX_USER_BYTES). */
  sender: Uint8Array;
  /** When the message was accepted (wall-clock ms, from env.clock). */
  sentAtMs: number;
  /** The caller's tag for what the payload is (0..255, default 0); stored, not interpreted. */
  kind?: number;
}

export interface MailboxEntry {
  id: Uint8Array;
  /** Bytes of the stored value (what the per-user byte cap counts). */
  storedBytes: number;
  payload: Uint8Array;
  sender: Uint8Array;
  sentAtMs: number;
  kind: number;
}

/** Why one message was not accepted (nothing was written for it). */
export type AppendRefusal =
  /** The recipient already holds `capacityPerUser` messages. */
  | 'inbox_full'
  /** Empty or over-long user or sender id, or a kind outside 0..255, or a non-finite time. */
  | 'invalid';

export type AppendResult =
  | { ok: true; id: Uint8Array }
  | { ok: false; reason: AppendRefusal; message: string }
  /** The write failed (disk full, I/O error, closed); the message is not stored. */
  | { ok: false; reason: 'storage_failed'; message: string };

export type StartedAppend =
  | { ok: true; id: Uint8Array; durable: Promise<StorageWriteResult> }
  | { ok: false; reason: AppendRefusal; message: string };

export interface AppendItem {
  user: Uint8Array;
  payload: Uint8Array;
  meta: MailboxMeta;
}

export type AppendItemResult = { ok: true; id: Uint8Array } | { ok: false; reason: AppendRefusal; message: string };

export type AppendManyResult =
  | { ok: true; results: AppendItemResult[] }
  /** The transaction failed: none of the accepted items is stored. */
  | { ok: false; reason: 'storage_failed'; message: string };

export type ListResult =
  /** `more`: further messages follow the last one returned. */
  | { ok: true; entries: MailboxEntry[]; more: boolean }
  | { ok: false; reason: 'corrupt'; message: string };

export type AckResult = { ok: true; removed: boolean } | { ok: false; reason: 'storage_failed'; message: string };

export type MailboxOpenResult = { ok: true; mailbox: OfflineMailbox } | { ok: false; reason: 'no_storage' | 'corrupt'; message: string };

interface UserState {
  /** Stored messages plus appends still being written. */
  count: number;
  /** Their stored value bytes. */
  bytes: number;
  /** Writes in flight for this user; a state with writes in flight is never evicted. */
  inflight: number;
}

const VALUE_FORMAT = 1;
const VALUE_HEADER_BYTES = 12;
/** Values are cut from slabs of this size (a larger value gets its own). */
const VALUE_SLAB_BYTES = 64 * 1024;
/** Random bytes fetched from env.random at a time, for the random half of ids. */
const RANDOM_POOL_BYTES = 4096;
const MAX_SAFE_COUNTER = Number.MAX_SAFE_INTEGER;
/** Slots the ring of remembered appends starts with (it doubles as needed, up to knownIds). */
const KNOWN_RING_FIRST = 64;
/** Byte strings up to this length are copied by a loop rather than TypedArray.set. */
const SHORT_COPY_BYTES = 32;

export class OfflineMailbox {
  /** Open the mailbox on `env.storage`, recovering the id counter. */
  static open(env: Env, opts: OfflineMailboxOptions = {}): MailboxOpenResult {
    if (env.storage === undefined) return { ok: false, reason: 'no_storage', message: 'the offline mailbox needs env.storage' };
    const tableName = opts.table ?? 'inbox';
    const meta = env.storage.table(opts.metaTable ?? 'meta');
    const markKey = ['offline_mailbox', tableName, 'id_limit'];
    const raw = meta.get(markKey);
    let limit = 0;
    if (raw !== undefined) {
      if (raw.length !== 8) return { ok: false, reason: 'corrupt', message: `offline mailbox id counter holds ${raw.length} bytes, expected 8` };
      limit = readCounter(raw, 0);
      if (limit > MAX_SAFE_COUNTER) return { ok: false, reason: 'corrupt', message: `offline mailbox id counter ${limit} is out of range` };
    }
    return { ok: true, mailbox: new OfflineMailbox(env, env.storage, env.storage.table(tableName), meta, markKey, limit, opts) };
  }

  readonly capacityPerUser: number;
  readonly maxBytesPerUser: number;
  private readonly idBlock: number;
  private readonly countCacheUsers: number;
  private readonly users = new Map<string, UserState>();
  /** Removals not yet settled, by id (ids are unique in a mailbox): what a repeated ACK waits for. */
  private readonly removals = new Map<string, Promise<AckResult>>();
  /**
   * The latest appends of this mailbox, so that the ACK of a message delivered live needs no
   * storage read to know it is stored: a ring indexed by the id counter (ids are handed out in
   * counter order) holding the user's state, the counter and the random half of each id, and
   * whether its write is still in flight. Acked entries are cleared. An append still in flight
   * is never forgotten (an ACK may arrive before its message is visible in storage): one pushed
   * out of the ring waits in `knownOverflow` until its write settles.
   *
   * The ring starts small and doubles, up to `knownLimit` slots, whenever an append would
   * push out an entry still remembered, so it holds exactly what a ring of `knownLimit` slots
   * would (a mailbox per shard group does not pay for the whole ring before it is used).
   */
  private readonly knownLimit: number;
  private knownMask: number;
  private knownState: Array<UserState | null>;
  private knownCounter: Float64Array;
  private knownRandom: Uint8Array;
  private knownInFlight: Uint8Array;
  /** Stored value bytes of each remembered append (an ACK gives them back without a read). */
  private knownSize: Uint32Array;
  private readonly knownOverflow = new Map<number, { st: UserState; random: Uint8Array; size: number }>();
  /** The latest group of appends (and of removals) sharing one engine write promise. */
  private appendGroup: AppendGroup | null = null;
  private removalGroup: RemovalGroup | null = null;
  /** Next counter value to hand out. */
  private next: number;
  /** Counter values below this are covered by a durable reservation. */
  private confirmed: number;
  /** Highest reservation written (durable or not); only grows, so the last write is the max. */
  private reserved: number;
  private prefetching = false;
  private slab = new Uint8Array(0);
  private slabView = new DataView(this.slab.buffer);
  private slabAt = 0;
  private random: Uint8Array = new Uint8Array(0);
  private randomAt = 0;

  private constructor(
    private readonly env: Env,
    private readonly engine: StorageEngine,
    private readonly inbox: StorageTable,
    private readonly meta: StorageTable,
    private readonly markKey: readonly string[],
    limit: number,
    opts: OfflineMailboxOptions,
  ) {
    this.capacityPerUser = opts.capacityPerUser ?? CORE_DEFAULTS.inbox_cap;
    this.maxBytesPerUser = opts.maxBytesPerUser ?? CORE_DEFAULTS.inbox_max_bytes;
    this.idBlock = opts.idBlock ?? OFFLINE_MAILBOX_ID_BLOCK;
    this.countCacheUsers = opts.countCacheUsers ?? OFFLINE_MAILBOX_COUNT_CACHE_USERS;
    let ring = 1;
    while (ring < (opts.knownIds ?? OFFLINE_MAILBOX_KNOWN_IDS)) ring *= 2;
    this.knownLimit = ring;
    const first = Math.min(ring, KNOWN_RING_FIRST);
    this.knownMask = first - 1;
    this.knownState = new Array<UserState | null>(first).fill(null);
    this.knownCounter = new Float64Array(first);
    this.knownRandom = new Uint8Array(first * RANDOM_ID_BYTES);
    this.knownInFlight = new Uint8Array(first);
    this.knownSize = new Uint32Array(first);
    this.next = limit;
    this.confirmed = limit;
    this.reserved = limit;
  }

  /** Store one message; resolves once it is durable (or refused, or the write failed). */
  append(user: Uint8Array, payload: Uint8Array, meta: MailboxMeta): Promise<AppendResult> {
    const s = this.begin(user, payload, meta);
    if (!s.ok) return Promise.resolve(s);
    const { id } = s;
    return s.durable.then((r): AppendResult => (r.ok ? { ok: true, id } : { ok: false, reason: 'storage_failed', message: r.message }));
  }

  /**
   * Start storing one message: the id is assigned now (in append order), `durable` settles
   * once the write is on stable storage. Never tell the sender "stored" before `durable`.
   */
  startAppend(user: Uint8Array, payload: Uint8Array, meta: MailboxMeta): StartedAppend {
    return this.begin(user, payload, meta);
  }

  /**
   * Store several messages (any users) in one atomic transaction; each item is accepted or
   * refused on its own, and the accepted ones become durable together.
   */
  appendMany(items: readonly AppendItem[]): Promise<AppendManyResult> {
    const results: AppendItemResult[] = new Array(items.length);
    const accepted: number[] = [];
    const states: UserState[] = [];
    const sizes: number[] = [];
    for (let i = 0; i < items.length; i++) {
      const { user, meta, payload } = items[i]!;
      const bad = invalidUser(user) ?? invalidMeta(meta);
      if (bad !== undefined) {
        results[i] = { ok: false, reason: 'invalid', message: bad };
        continue;
      }
      const st = this.state(user);
      const size = valueBytes(payload, meta);
      const full = this.fullFor(user, st, size);
      if (full !== null) {
        results[i] = full;
        continue;
      }
      st.count++;
      st.bytes += size;
      st.inflight++;
      accepted.push(i);
      states.push(st);
      sizes.push(size);
    }
    if (accepted.length === 0) return Promise.resolve({ ok: true, results });
    const first = this.issue(accepted.length);
    const mark = this.markFor(first + accepted.length);
    const ops: StorageOp[] = mark === undefined ? [] : [this.markOp(mark)];
    for (let j = 0; j < accepted.length; j++) {
      const i = accepted[j]!;
      const item = items[i]!;
      const id = this.newId(first + j);
      results[i] = { ok: true, id };
      ops.push({ type: 'put', table: this.inbox.name, key: [item.user, id], value: this.encodeValue(item.payload, item.meta) });
    }
    return this.engine.batch(ops).then((r): AppendManyResult => {
      for (let j = 0; j < states.length; j++) {
        const st = states[j]!;
        st.inflight--;
        if (!r.ok) {
          st.count--;
          st.bytes -= sizes[j]!;
        }
      }
      if (!r.ok) return { ok: false, reason: 'storage_failed', message: r.message };
      if (mark !== undefined && mark > this.confirmed) this.confirmed = mark;
      return { ok: true, results };
    });
  }

  /**
   * Stored messages of `user`, oldest first: up to `limit` (and `maxBytes` of stored values, at
   * least one message) with ids after `afterId` (from the start without it). Messages whose
   * append has not resolved yet may be missing; messages whose ACK is being written are left
   * out. With `maxBytes`, storage is read OFFLINE_MAILBOX_LIST_CHUNK entries at a time, so a
   * page of large messages reads about the page, never `limit` values.
   */
  list(user: Uint8Array, opts: { afterId?: Uint8Array; limit: number; maxBytes?: number }): ListResult {
    if (invalidUser(user) !== undefined || opts.limit <= 0) return { ok: true, entries: [], more: false };
    const maxBytes = opts.maxBytes ?? Infinity;
    const chunk = maxBytes === Infinity ? opts.limit + 1 : OFFLINE_MAILBOX_LIST_CHUNK;
    let bytes = 0;
    /** Entries looked at (the count limit counts them, also those left out while their ACK is written). */
    let scanned = 0;
    let after = opts.afterId;
    const entries: MailboxEntry[] = [];
    for (;;) {
      // One more than the limit: whether more follow.
      const want = Math.min(chunk, opts.limit + 1 - scanned);
      const range = this.inbox.getRange({ prefix: [user], ...(after !== undefined ? { start: [user, after], startExclusive: true } : {}), limit: want });
      for (const { key, value } of range) {
        const id = key[1];
        if (key.length !== 2 || !(id instanceof Uint8Array) || id.length !== MESSAGE_ID_BYTES) {
          return { ok: false, reason: 'corrupt', message: `inbox key of ${hex(user)} is not (user, 16-byte id)` };
        }
        if (scanned === opts.limit) return { ok: true, entries, more: true };
        scanned++;
        after = id;
        if (this.removals.size > 0 && this.removals.has(messageIdKey(id))) continue;
        if (entries.length > 0 && bytes + value.length > maxBytes) return { ok: true, entries, more: true };
        const entry = decodeValue(id, value);
        if (entry === undefined) return { ok: false, reason: 'corrupt', message: `inbox entry ${hex(id)} of ${hex(user)} is malformed` };
        bytes += value.length;
        entries.push(entry);
      }
      if (range.length < want) return { ok: true, entries, more: false };
    }
  }

  /** Remove a delivered message once acknowledged; resolves after the removal is durable. */
  ack(user: Uint8Array, id: Uint8Array): Promise<AckResult> {
    if (id.length !== MESSAGE_ID_BYTES || invalidUser(user) !== undefined) return Promise.resolve(NOT_REMOVED);
    const k = messageIdKey(id);
    const pending = this.removals.get(k);
    // A second ACK of the same id waits for the first removal, so it never succeeds earlier.
    if (pending !== undefined) return pending.then((r) => (r.ok ? NOT_REMOVED : r));
    const ukey = bytesKey(user);
    // A message delivered live may be acknowledged before its own write is visible: the
    // removal is issued anyway, after the put, and writes apply in issue order. A known id
    // counts only for the user it belongs to (a state with appends in flight is never evicted,
    // so a mismatch is another user's id or a recounted state: storage decides).
    const knownFor = this.knownOwner(id);
    let size: number;
    if (knownFor !== undefined && knownFor === this.users.get(ukey)) size = this.forget(id);
    else {
      const stored = this.inbox.get([user, id]);
      if (stored === undefined) return Promise.resolve(NOT_REMOVED);
      size = stored.length;
    }
    const st = this.stateOf(ukey, user);
    st.inflight++;
    const written = this.inbox.remove([user, id]);
    let g = this.removalGroup;
    if (g === null || g.written !== written || g.settled) {
      const group: RemovalGroup = { written, done: null as unknown as Promise<AckResult>, keys: [], states: [], sizes: [], settled: false };
      group.done = written.then((r) => this.settleRemovals(group, r));
      this.removalGroup = g = group;
    }
    g.keys.push(k);
    g.states.push(st);
    g.sizes.push(size);
    this.removals.set(k, g.done);
    return g.done;
  }

  /** Messages held for `user`, counting appends still being written. */
  count(user: Uint8Array): number {
    if (invalidUser(user) !== undefined) return 0;
    return this.state(user).count;
  }

  // --- internal ----------------------------------------------------------------------------

  /** Check, count, assign the id and issue the write of one message. */
  private begin(user: Uint8Array, payload: Uint8Array, meta: MailboxMeta): StartedAppend {
    const bad = invalidUser(user) ?? invalidMeta(meta);
    if (bad !== undefined) return { ok: false, reason: 'invalid', message: bad };
    const st = this.state(user);
    const value = this.encodeValue(payload, meta);
    const full = this.fullFor(user, st, value.length);
    if (full !== null) {
      this.slabAt -= value.length; // not written: give the slab space back
      return full;
    }
    st.count++;
    st.bytes += value.length;
    st.inflight++;
    const first = this.issue(1);
    const id = this.newId(first);
    const mark = this.markFor(first + 1);
    const written =
      mark === undefined
        ? this.inbox.put([user, id], value)
        : this.engine.batch([this.markOp(mark), { type: 'put', table: this.inbox.name, key: [user, id], value }]);
    this.remember(first, id, st, value.length);
    // Appends that share one engine promise (one transaction) are booked by one callback.
    let g = this.appendGroup;
    if (g === null || g.written !== written || g.settled) {
      const group: AppendGroup = { written, done: null as unknown as Promise<StorageWriteResult>, counters: [], states: [], sizes: [], mark: 0, settled: false };
      group.done = written.then((r) => this.settleAppends(group, r));
      this.appendGroup = g = group;
    }
    g.counters.push(first);
    g.states.push(st);
    g.sizes.push(value.length);
    if (mark !== undefined && mark > g.mark) g.mark = mark;
    return { ok: true, id, durable: g.done };
  }

  /** Book the outcome of a group of appends' write. */
  private settleAppends(g: AppendGroup, r: StorageWriteResult): StorageWriteResult {
    g.settled = true;
    if (this.appendGroup === g) this.appendGroup = null;
    for (let i = 0; i < g.counters.length; i++) {
      const st = g.states[i]!;
      st.inflight--;
      if (!r.ok) {
        st.count--;
        st.bytes -= g.sizes[i]!;
      }
      this.settled(g.counters[i]!, r.ok);
    }
    if (r.ok && g.mark > this.confirmed) this.confirmed = g.mark;
    return r;
  }

  /** Remember the append of id `id` (counter `counter`) for `st`, its write in flight. */
  private remember(counter: number, id: Uint8Array, st: UserState, size: number): void {
    while (this.knownState[counter & this.knownMask] !== null && this.knownMask + 1 < this.knownLimit) this.growKnown();
    const i = counter & this.knownMask;
    const at = i * RANDOM_ID_BYTES;
    const prev = this.knownState[i] ?? null;
    if (prev !== null && this.knownInFlight[i] === 1) {
      // More appends in flight than the ring holds: the older one is kept aside, exactly.
      this.knownOverflow.set(this.knownCounter[i]!, { st: prev, random: this.knownRandom.slice(at, at + RANDOM_ID_BYTES), size: this.knownSize[i]! });
    }
    this.knownState[i] = st;
    this.knownSize[i] = size;
    this.knownCounter[i] = counter;
    this.knownInFlight[i] = 1;
    for (let j = 0; j < RANDOM_ID_BYTES; j++) this.knownRandom[at + j] = id[MESSAGE_ID_BYTES - RANDOM_ID_BYTES + j]!;
  }

  /**
   * Double the ring, every remembered entry moving to its slot in the larger one. Remembered
   * entries sit in distinct slots of the smaller ring, so in distinct slots of the larger one.
   */
  private growKnown(): void {
    const n = (this.knownMask + 1) * 2;
    const mask = n - 1;
    const state = new Array<UserState | null>(n).fill(null);
    const counter = new Float64Array(n);
    const random = new Uint8Array(n * RANDOM_ID_BYTES);
    const inFlight = new Uint8Array(n);
    const size = new Uint32Array(n);
    for (let i = 0; i <= this.knownMask; i++) {
      const st = this.knownState[i]!;
      if (st === null) continue;
      const c = this.knownCounter[i]!;
      const j = c & mask;
      state[j] = st;
      counter[j] = c;
      inFlight[j] = this.knownInFlight[i]!;
      size[j] = this.knownSize[i]!;
      random.set(this.knownRandom.subarray(i * RANDOM_ID_BYTES, (i + 1) * RANDOM_ID_BYTES), j * RANDOM_ID_BYTES);
    }
    this.knownMask = mask;
    this.knownState = state;
    this.knownCounter = counter;
    this.knownRandom = random;
    this.knownInFlight = inFlight;
    this.knownSize = size;
  }

  /** The append of `counter` settled: durable ones stay in the ring until acked or overwritten. */
  private settled(counter: number, ok: boolean): void {
    const i = counter & this.knownMask;
    if (this.knownState[i] !== null && this.knownCounter[i] === counter) {
      this.knownInFlight[i] = 0;
      if (!ok) this.knownState[i] = null;
    } else if (this.knownOverflow.size > 0) this.knownOverflow.delete(counter);
  }

  /** The state of the user a remembered id belongs to, or undefined when it is not remembered. */
  private knownOwner(id: Uint8Array): UserState | undefined {
    const counter = readCounter(id, 0);
    const i = counter & this.knownMask;
    const st = this.knownState[i] ?? null;
    if (st !== null && this.knownCounter[i] === counter && sameRandom(this.knownRandom, i * RANDOM_ID_BYTES, id)) return st;
    if (this.knownOverflow.size === 0) return undefined;
    const aside = this.knownOverflow.get(counter);
    return aside !== undefined && sameRandom(aside.random, 0, id) ? aside.st : undefined;
  }

  /** Forget a remembered id (it is being acked); returns its stored value bytes. */
  private forget(id: Uint8Array): number {
    const counter = readCounter(id, 0);
    const i = counter & this.knownMask;
    if (this.knownState[i] !== null && this.knownCounter[i] === counter) {
      this.knownState[i] = null;
      return this.knownSize[i]!;
    }
    const aside = this.knownOverflow.get(counter);
    this.knownOverflow.delete(counter);
    return aside?.size ?? 0;
  }

  /** Book the outcome of a group of removals' write. */
  private settleRemovals(g: RemovalGroup, r: StorageWriteResult): AckResult {
    g.settled = true;
    if (this.removalGroup === g) this.removalGroup = null;
    for (let i = 0; i < g.keys.length; i++) {
      this.removals.delete(g.keys[i]!);
      const st = g.states[i]!;
      st.inflight--;
      if (r.ok) {
        st.count = Math.max(0, st.count - 1);
        st.bytes = Math.max(0, st.bytes - g.sizes[i]!);
      }
    }
    return r.ok ? REMOVED : { ok: false, reason: 'storage_failed', message: r.message };
  }

  private state(user: Uint8Array): UserState {
    return this.stateOf(bytesKey(user), user);
  }

  /** The state of `user`, whose bytesKey is `k`. */
  private stateOf(k: string, user: Uint8Array): UserState {
    let st = this.users.get(k);
    if (st !== undefined) return st;
    if (this.users.size >= this.countCacheUsers) {
      // Oldest first (Map order); states with writes in flight must stay exact, so they stay.
      const target = Math.floor(this.countCacheUsers * 0.9);
      for (const [key, s] of this.users) {
        if (this.users.size <= target) break;
        if (s.inflight === 0) this.users.delete(key);
      }
    }
    const stored = this.inbox.measure({ prefix: [user] });
    st = { count: stored.count, bytes: stored.bytes, inflight: 0 };
    this.users.set(k, st);
    return st;
  }

  /** Why one more message of `size` stored bytes does not fit in `st`, or null when it does. */
  private fullFor(user: Uint8Array, st: UserState, size: number): { ok: false; reason: 'inbox_full'; message: string } | null {
    if (st.count >= this.capacityPerUser) return inboxFull(user, `${this.capacityPerUser} messages`);
    if (st.bytes + size > this.maxBytesPerUser) return inboxFull(user, `${st.bytes} of ${this.maxBytesPerUser} bytes`);
    return null;
  }

  /** Hand out `n` consecutive counter values; prefetch the next reservation when half used. */
  private issue(n: number): number {
    const first = this.next;
    this.next += n;
    if (this.next <= this.confirmed && !this.prefetching && this.confirmed - this.next < this.idBlock / 2) {
      this.prefetching = true;
      this.reserved = Math.max(this.reserved, this.confirmed + this.idBlock);
      const mark = this.reserved;
      void this.meta.put(this.markKey, counterBytes(mark)).then((r) => {
        this.prefetching = false;
        if (r.ok && mark > this.confirmed) this.confirmed = mark;
      });
    }
    return first;
  }

  /** The reservation to write with ids below `end`, or undefined when one is already durable. */
  private markFor(end: number): number | undefined {
    if (end <= this.confirmed) return undefined;
    if (end > this.reserved) this.reserved = end + this.idBlock;
    return this.reserved;
  }

  private markOp(mark: number): StorageOp {
    return { type: 'put', table: this.meta.name, key: this.markKey, value: counterBytes(mark) };
  }

  private newId(counter: number): Uint8Array {
    const id = new Uint8Array(MESSAGE_ID_BYTES);
    writeCounter(id, counter);
    if (this.randomAt + 8 > this.random.length) {
      this.random = this.env.random.bytes(RANDOM_POOL_BYTES);
      this.randomAt = 0;
    }
    for (let j = 8; j < MESSAGE_ID_BYTES; j++) id[j] = this.random[this.randomAt++]!;
    return id;
  }

  /**
   * The stored value, cut from a shared slab: the engine holds it only until the write
   * settles, and one allocation per slab instead of one per message keeps the GC quiet.
   */
  private encodeValue(payload: Uint8Array, meta: MailboxMeta): Uint8Array {
    const sender = meta.sender;
    const n = VALUE_HEADER_BYTES + sender.length + payload.length;
    if (this.slabAt + n > this.slab.length) {
      this.slab = new Uint8Array(Math.max(VALUE_SLAB_BYTES, n));
      this.slabView = new DataView(this.slab.buffer);
      this.slabAt = 0;
    }
    const at = this.slabAt;
    const slab = this.slab;
    this.slabAt += n;
    slab[at] = VALUE_FORMAT;
    slab[at + 1] = meta.kind ?? 0;
    this.slabView.setFloat64(at + 2, meta.sentAtMs);
    slab[at + 10] = sender.length >>> 8;
    slab[at + 11] = sender.length & 0xff;
    // A user id is short: a loop beats TypedArray.set's call overhead.
    const s0 = at + VALUE_HEADER_BYTES;
    if (sender.length <= SHORT_COPY_BYTES) for (let i = 0; i < sender.length; i++) slab[s0 + i] = sender[i]!;
    else slab.set(sender, s0);
    slab.set(payload, s0 + sender.length);
    return slab.subarray(at, at + n);
  }
}

/** Writes issued together that share one engine promise, settled by one callback. */
interface WriteGroup<R> {
  written: Promise<StorageWriteResult>;
  /** What each member's caller gets: settles after the group is booked. */
  done: Promise<R>;
  /** The members' user states, in issue order. */
  states: UserState[];
  /** Booked: a later write starts a new group even if the engine hands out the same promise. */
  settled: boolean;
}

interface AppendGroup extends WriteGroup<StorageWriteResult> {
  /** The members' stored value bytes. */
  sizes: number[];
  /** The members' id counters. */
  counters: number[];
  /** The highest counter reservation written with the group (0: none). */
  mark: number;
}

interface RemovalGroup extends WriteGroup<AckResult> {
  /** The members' stored value bytes. */
  sizes: number[];
  /** The members' messageIdKeys. */
  keys: string[];
}

/** The random half of an id, after the 8-byte counter. */
const RANDOM_ID_BYTES = 8;

function sameRandom(stored: Uint8Array, at: number, id: Uint8Array): boolean {
  for (let j = 0; j < RANDOM_ID_BYTES; j++) if (stored[at + j] !== id[MESSAGE_ID_BYTES - RANDOM_ID_BYTES + j]) return false;
  return true;
}

const REMOVED: AckResult = Object.freeze({ ok: true, removed: true });
const NOT_REMOVED: AckResult = Object.freeze({ ok: true, removed: false });

function inboxFull(user: Uint8Array, what: string): { ok: false; reason: 'inbox_full'; message: string } {
  return { ok: false, reason: 'inbox_full', message: `the inbox of ${hex(user)} holds ${what} (its limit)` };
}

/** Bytes of the stored value of `payload` (header, sender, payload). */
function valueBytes(payload: Uint8Array, meta: MailboxMeta): number {
  return VALUE_HEADER_BYTES + meta.sender.length + payload.length;
}

function invalidUser(user: Uint8Array): string | undefined {
  if (!(user instanceof Uint8Array) || user.length === 0) return 'user id is empty';
  if (user.length > OFFLINE_MAILBOX_MAX_USER_BYTES) return `user id is ${user.length} bytes, over ${OFFLINE_MAILBOX_MAX_USER_BYTES}`;
  return undefined;
}

function invalidMeta(meta: MailboxMeta): string | undefined {
  const kind = meta.kind ?? 0;
  if (!Number.isInteger(kind) || kind < 0 || kind > 255) return `kind ${kind} is not in 0..255`;
  if (!Number.isFinite(meta.sentAtMs)) return 'sentAtMs is not a finite number';
  if (!(meta.sender instanceof Uint8Array) || meta.sender.length > OFFLINE_MAILBOX_MAX_USER_BYTES) return `sender id is over ${OFFLINE_MAILBOX_MAX_USER_BYTES} bytes`;
  return undefined;
}

function decodeValue(id: Uint8Array, v: Uint8Array): MailboxEntry | undefined {
  if (v.length < VALUE_HEADER_BYTES || v[0] !== VALUE_FORMAT) return undefined;
  const view = new DataView(v.buffer, v.byteOffset, v.length);
  const senderLen = view.getUint16(10);
  if (VALUE_HEADER_BYTES + senderLen > v.length) return undefined;
  return {
    id,
    storedBytes: v.length,
    kind: v[1]!,
    sentAtMs: view.getFloat64(2),
    sender: v.subarray(VALUE_HEADER_BYTES, VALUE_HEADER_BYTES + senderLen),
    payload: v.subarray(VALUE_HEADER_BYTES + senderLen),
  };
}

function counterBytes(n: number): Uint8Array {
  const b = new Uint8Array(8);
  writeCounter(b, n);
  return b;
}

function writeCounter(into: Uint8Array, n: number): void {
  const hi = Math.floor(n / 0x1_0000_0000);
  const lo = n >>> 0;
  into[0] = hi >>> 24;
  into[1] = (hi >>> 16) & 0xff;
  into[2] = (hi >>> 8) & 0xff;
  into[3] = hi & 0xff;
  into[4] = lo >>> 24;
  into[5] = (lo >>> 16) & 0xff;
  into[6] = (lo >>> 8) & 0xff;
  into[7] = lo & 0xff;
}

function readCounter(b: Uint8Array, at: number): number {
  const hi = ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
  const lo = ((b[at + 4]! << 24) | (b[at + 5]! << 16) | (b[at + 6]! << 8) | b[at + 7]!) >>> 0;
  return hi * 0x1_0000_0000 + lo;
}

/** Bytes as a one-char-per-byte string: lossless, for Map keys (ids here are ≤ 512 bytes). */
function bytesKey(b: Uint8Array): string {
  return String.fromCharCode.apply(null, b as unknown as number[]);
}

function hex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length && i < 64; i++) s += b[i]!.toString(16).padStart(2, '0');
  return b.length > 64 ? `0x${s}…` : `0x${s}`;
}
