/**
 * The Env door: the only way runtime, actor, edge and core code reaches time, timers,
 * randomness, the cluster transport, storage and logging.
 *
 * Production binds it to real clocks, timers, NATS and LMDB (runtime/node/ProductionEnv.ts);
 * the simulator binds it to a discrete-event kernel. Code above the Env must never call
 * Date.now, Math.random, setTimeout or touch sockets/files directly (a lint rule enforces it),
 * so the same code runs unchanged and deterministically under simulation.
 */

export interface Clock {
  /** Monotonic milliseconds (fractional allowed), for durations and deadlines. */
  monotonicMs(): number;
  /** Wall-clock milliseconds since the Unix epoch, for timestamps shown to users. */
  wallMs(): number;
}

export type TimerHandle = unknown;

export interface Timers {
  /** Run `fn` once after `ms` milliseconds. */
  setTimer(ms: number, fn: () => void): TimerHandle;
  clearTimer(handle: TimerHandle): void;
  /** Run `fn` soon, after pending I/O (the scheduler's run loop uses this). */
  defer(fn: () => void): void;
}

export interface Random {
  /** Uniform in [0, 1). */
  float(): number;
  /** Uniform unsigned 32-bit integer. */
  uint32(): number;
  /** `n` random bytes. */
  bytes(n: number): Uint8Array;
}

/** Structured log sink; production uses pino. Fields are plain data. */
export interface Logger {
  debug(fields: object, msg: string): void;
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/**
 * Cluster messaging with NATS semantics (core NATS): at most once, order kept per publisher
 * and subscriber, subjects with `*` (one token) and `>` (the rest) wildcards, queue groups
 * (each message to one member of a group), request/reply through a reply subject.
 *
 * Link state. The transport reports whether its link to the NATS cluster is `up` (messages
 * flow), `down` (lost; the transport reconnects by itself and reports `up` again) or
 * `closed` (for good, after `close`). While `down`, publishes may be lost and nothing is
 * received: whoever needs more than at-most-once must treat a `down` as losing everything in
 * flight (the distribution layer fires `noconnection` for every link and monitor to other
 * nodes). Subscriptions survive a reconnect.
 */
export interface ClusterTransport {
  publish(subject: string, data: Uint8Array, reply?: string): void;
  subscribe(subject: string, onMessage: (data: Uint8Array, subject: string, reply: string | undefined) => void, opts?: { queue?: string }): { unsubscribe(): void };
  /** Publish with a fresh reply subject and wait for the first answer. */
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<TransportReply>;
  flush(): Promise<void>;
  close(): Promise<void>;
  /** The link to the cluster right now. */
  readonly linkState: TransportLinkState;
  /** Call `listener` on every change of link state; returns a function that stops it. */
  onLinkState(listener: (state: TransportLinkState) => void): () => void;
  /** Largest payload one publish may carry (the server's `max_payload`); bigger ones are dropped. */
  readonly maxPayload: number;
}

export type TransportLinkState = 'up' | 'down' | 'closed';

export type TransportReply = { ok: true; data: Uint8Array } | { ok: false; reason: 'timeout' | 'no_responders' | 'closed' };

/**
 * Transactional key-value storage with group commit. Production binds it to LMDB
 * (runtime/node/LmdbStorage.ts); the simulator to a fake that keeps "committed" (visible,
 * lost by a crash) apart from "flushed" (durable). The contract both honour:
 *
 * - **A write's promise is its durability.** `put`, `remove` and `batch` resolve `{ok: true}`
 *   only once the write is on stable storage (fsync'd); a crash after that never loses it.
 *   Expected failures (disk full, engine closed, bad key) resolve `{ok: false, …}`; the
 *   promises never reject.
 * - **Order.** Writes are applied in the order they are issued, and durability is a prefix:
 *   when a write resolves `{ok: true}`, every write issued before it is durable too, except
 *   writes that themselves resolved with a failure. Writes issued in the same turn are
 *   group-committed (one transaction, one fsync).
 * - **Atomicity.** The operations of one `batch` become visible and durable together or not
 *   at all; a single `put`/`remove` is atomic by itself.
 * - **Reads** (`get`, `getRange`, `count`) are synchronous and see committed writes. A write
 *   becomes visible no later than its promise resolves (it may be visible earlier in the
 *   simulator); never rely on reading a write whose promise has not resolved.
 * - **Values** are bytes. The engine may keep a reference to a value until the write's
 *   promise settles: do not modify it meanwhile (an engine that keeps values longer, like an
 *   in-memory fake, copies them). Values read are fresh copies.
 */
export interface StorageEngine {
  /** The table (LMDB named database) called `name`, created on first use. */
  table(name: string): StorageTable;
  /** Several puts and removes, on any tables, as one atomic transaction. */
  batch(ops: readonly StorageOp[]): Promise<StorageWriteResult>;
  /** Resolves once every write issued before the call is durable. */
  flush(): Promise<StorageWriteResult>;
  /** Flush, then release the engine; later writes resolve `closed`, later reads throw. */
  close(): Promise<void>;
  /**
   * Names of the tables that exist (hold or held records) and start with `prefix`, in no
   * particular order; read synchronously like any read, so a table list and the reads that
   * follow in the same turn see one committed state.
   */
  tableNames(prefix: string): string[];
}

export interface StorageTable {
  readonly name: string;
  /** The value under `key`; `undefined` when absent (or when `key` is not a valid key). */
  get(key: StorageKey): Uint8Array | undefined;
  put(key: StorageKey, value: Uint8Array): Promise<StorageWriteResult>;
  /** Removing a missing key is not an error. */
  remove(key: StorageKey): Promise<StorageWriteResult>;
  /** Entries in key order (descending with `reverse`), at most `limit`. */
  getRange(range: StorageRange): StorageEntry[];
  /** Number of entries in the range (`limit` and `reverse` ignored); costs a scan of the range. */
  count(range?: StorageRange): number;
  /** Entries and total value bytes in the range (`limit` and `reverse` ignored); costs a scan of the range and its values. */
  measure(range?: StorageRange): { count: number; bytes: number };
}

/**
 * One part of a key tuple. Bytes may hold any value (NUL, non-UTF-8); strings are compared by
 * UTF-8 bytes. Encoding and order: runtime/StorageKey.ts.
 */
export type StorageKeyPart = Uint8Array | string | number;
/** An ordered, non-empty tuple; tuples sort part by part and a prefix sorts first. */
export type StorageKey = readonly StorageKeyPart[];

/**
 * Key bounds: `start` inclusive (exclusive with `startExclusive`), `end` exclusive, and
 * `prefix` limits the range to keys beginning with that tuple (the prefix itself included).
 * All given bounds apply together; with `reverse` the same set is read from the high end.
 */
export interface StorageRange {
  prefix?: StorageKey;
  start?: StorageKey;
  startExclusive?: boolean;
  end?: StorageKey;
  limit?: number;
  reverse?: boolean;
}

export interface StorageEntry {
  key: StorageKey;
  value: Uint8Array;
}

export type StorageOp =
  | { type: 'put'; table: string; key: StorageKey; value: Uint8Array }
  | { type: 'remove'; table: string; key: StorageKey };

/** Why a write did not become durable; nothing of it was applied. */
export type StorageFailure =
  /** Empty tuple, NaN, ill-formed string or longer than the engine allows; nothing was written. */
  | 'invalid_key'
  /** Out of disk or map space. */
  | 'disk_full'
  /** Any other I/O or engine error (the message says which). */
  | 'io_error'
  /** The engine was closed before the write. */
  | 'closed'
  /**
   * A replicated engine (core/cluster/ReplicatedStorage.ts) could not make the write durable
   * where it must be: its log is unavailable (no quorum of servers, an election), this node no
   * longer owns the data (fenced by a new owner), or the cluster guard refuses writes (safe
   * mode). Nothing of the write was applied; retrying later, possibly on another node, is the
   * answer.
   */
  | 'unavailable';

export type StorageWriteResult = { ok: true } | { ok: false; reason: StorageFailure; message: string };

export interface Env {
  readonly clock: Clock;
  readonly timers: Timers;
  readonly random: Random;
  readonly log: Logger;
  /** Pool for CPU-heavy jobs; the simulator runs them inline. */
  readonly dirty: DirtyWork;
  /** Present when the node is part of a cluster; absent for the embedded single node. */
  readonly transport?: ClusterTransport;
  /** Present when the node stores data; the runtime itself never needs it. */
  readonly storage?: StorageEngine;
  /** Present when the node is part of a cluster with replicated logs (JetStream). */
  readonly streams?: StreamStore;
}

/** A logger that drops everything; handy default for tests of pure logic. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/**
 * Replicated, ordered logs with the semantics of NATS JetStream R3 streams as nats-server
 * 2.9.10 implements them (../shared/spec/cluster.md): what must survive a crash and decide who
 * owns what. Production binds it to JetStream (runtime/node/JetStreamStore.ts), the simulator
 * to its model of JetStream (sim/SimJetStream.ts). What callers may rely on:
 *
 * - **An append is durable at its ack.** `append` resolves `{ok: true, seq}` once a quorum of
 *   servers holds the entry (in memory: nats-server 2.9 does not fsync per message; a killed
 *   server loses nothing acknowledged, losing two servers' OS within minutes can). Entries get
 *   consecutive sequences per stream; the order of acks for one stream is the order of seqs.
 * - **Fencing.** `expectLastMsgId` is checked when the entry is applied in the stream's order:
 *   the entry is refused (`wrong_last_msg_id`) unless the stream's last entry carries that
 *   Msg-Id. A chain of ids `<epoch>.<n>` with each entry expecting `<epoch>.<n-1>` fences a
 *   stale writer even while it pipelines: once a new writer's `<epoch+1>.0` marker is in, no
 *   entry of the old chain is accepted.
 * - **Compare-and-append.** `expectLastSeq` (the stream's last seq) is checked at apply: of
 *   racing appends expecting the same seq exactly one wins, the others answer `wrong_last_seq`
 *   (it does not fence a pipelining writer: its later entries line up again). On nats-server
 *   2.9.10 `expectLastSubjectSeq` is checked at apply only for 0 ("no entry on the subject
 *   yet": of racing appends exactly one wins); a seq > 0 is checked only when the leader
 *   takes the entry in, against entries already applied, so racing appends expecting the same
 *   seq > 0 can **all** win (measured: several winners in every round; fixed in 2.11). It
 *   refuses a writer whose read is stale, never a concurrent one. For a compare-and-append on
 *   a subject, add a Msg-Id that names the new state (for example `<subject>.<epoch>`): racing
 *   writers then produce one entry, and a writer answered `duplicate: true` reads the entry at
 *   that seq to learn whether it is its own.
 * - **Dedup.** An append whose `msgId` was already accepted within the stream's duplicate
 *   window answers `{ok: true, duplicate: true}` with the earlier seq and adds nothing: the way
 *   to retry an append whose outcome is unknown. The Msg-Id is checked before any expectation,
 *   so re-sending an entry exactly as first sent answers `duplicate` even after the stream
 *   moved on. Racing appends with one Msg-Id add one entry.
 * - **Unavailable fast or slow.** Without a stream leader (an election, 4–9 s; a minority)
 *   an append answers `unavailable` quickly or `timeout` after `timeoutMs`; callers must not
 *   make clients wait on it (the partition guard refuses writes before that). `unavailable`
 *   means nothing was appended. After a `timeout` the entry may still land, even much later: a
 *   leader cut off from its quorum keeps it and commits it when the quorum is back (measured on
 *   2.9.10); settle it by appending again with the same Msg-Id within the window, never by
 *   reading (a read that misses proves nothing, see below).
 * - **Reads without consumers.** `get` reads one entry by sequence from any replica (direct
 *   get), also the next one at or after a sequence, or the last one on a subject; it needs
 *   neither the stream leader nor the meta leader, so it answers during an election and on a
 *   minority. A replica may lag the leader by a few milliseconds: an entry acked a moment ago
 *   can be `not_found` (about 1 read in 14 right after an ack, measured) and `lastOnSubject`
 *   can give an older entry; an entry found is always the one acked at that seq. `info` gives
 *   the first and last sequence from the stream leader (so it is `timeout` without one). No
 *   consumer is ever created (each would be a Raft group, and creating one needs the
 *   JetStream meta leader, which is itself re-elected after a crash).
 * - **Stream creation** (`ensureStream`) needs the JetStream API and may fail while the meta
 *   leader is elected: done at bootstrap, never on the failover path.
 */
export interface StreamStore {
  /** Create the stream if it does not exist (idempotent for the same spec). */
  ensureStream(spec: StreamSpec): Promise<StreamOutcome<{ created: boolean }>>;
  /** Append one entry to `stream` on `subject` (a subject another stream captures is a caller bug: rejects). */
  append(stream: string, subject: string, data: Uint8Array, opts?: AppendOptions): Promise<AppendOutcome>;
  /** The entry at `seq`; with `next`, the first entry at or after `seq` (on `subject` if given; `subject` is ignored without `next`). */
  get(stream: string, seq: number, opts?: { next?: boolean; subject?: string; timeoutMs?: number }): Promise<GetOutcome>;
  /** The last entry on `subject`. */
  lastOnSubject(stream: string, subject: string, timeoutMs?: number): Promise<GetOutcome>;
  /** First and last sequence (0 and 0 for an empty stream; firstSeq > lastSeq after a purge); `invalid` when there is no such stream. */
  info(stream: string, timeoutMs?: number): Promise<StreamOutcome<{ firstSeq: number; lastSeq: number }>>;
  /**
   * Remove every entry below `keepFromSeq` (JetStream's purge with `seq`, through the stream
   * leader and its Raft log, so every replica removes the same entries in the stream's order;
   * sequences go on from the last one). Entries at or above it stay. A `timeout` leaves it
   * unknown whether the purge happened: purging is idempotent, ask again.
   */
  purge(stream: string, opts: { keepFromSeq: number; timeoutMs?: number }): Promise<StreamOutcome<{ purged: number }>>;
}

export interface StreamSpec {
  name: string;
  /** Subjects the stream captures (wildcards allowed). */
  subjects: readonly string[];
  /** Servers holding a copy (3 in production). */
  replicas: number;
  /** Msg-Id duplicate window (JetStream's default is 2 minutes). */
  duplicateWindowMs: number;
  /** Entries older than this are dropped (0: kept until removed otherwise). */
  maxAgeMs?: number;
  /**
   * Largest entry accepted, counting its data and the headers that carry its Msg-Id and
   * expectations (JetStream's max_msg_size counts both; they take 30–150 bytes): leave room.
   */
  maxEntryBytes?: number;
}

export interface AppendOptions {
  /** Nats-Msg-Id: dedup within the window, and what the next entry's `expectLastMsgId` names. */
  msgId?: string;
  /** Nats-Expected-Last-Msg-Id: refuse unless the stream's last entry has this Msg-Id. */
  expectLastMsgId?: string;
  /** Nats-Expected-Last-Subject-Sequence: refuse unless the last entry on `subject` has this seq (0: none); racy for > 0, see above. */
  expectLastSubjectSeq?: number;
  /** Nats-Expected-Last-Sequence: refuse unless the stream's last entry has this seq (0: empty stream). */
  expectLastSeq?: number;
  /** Give up waiting for the ack after this long (the outcome is then unknown: retry with the same msgId). */
  timeoutMs?: number;
}

export type AppendOutcome =
  | { ok: true; seq: number; duplicate: boolean }
  | { ok: false; reason: AppendFailure; message: string };

export type AppendFailure =
  /** `expectLastMsgId` did not match: another writer's entry is last (this writer is fenced). */
  | 'wrong_last_msg_id'
  /** `expectLastSubjectSeq` did not match: the subject moved on (a compare-and-append lost). */
  | 'wrong_last_subject_seq'
  /** `expectLastSeq` did not match: the stream moved on (a compare-and-append lost). */
  | 'wrong_last_seq'
  /** No stream leader answered (no responders, no quorum): nothing was appended. */
  | 'unavailable'
  /** No ack in time: the entry may or may not be in (retry with the same msgId). */
  | 'timeout'
  /** Bigger than the stream or the server accepts. */
  | 'too_large'
  /** The store was closed. */
  | 'closed';

export interface StreamEntry {
  seq: number;
  subject: string;
  data: Uint8Array;
  /** The Msg-Id it was appended with, if any. */
  msgId: string | null;
}

export type GetOutcome = { ok: true; entry: StreamEntry } | { ok: false; reason: 'not_found' | 'unavailable' | 'timeout' | 'closed'; message: string };

export type StreamOutcome<T> = ({ ok: true } & T) | { ok: false; reason: 'unavailable' | 'timeout' | 'closed' | 'invalid'; message: string };

/**
 * CPU-heavy work off the schedulers (BEAM's dirty schedulers). `module` is an importable
 * URL or path and `fn` a named export taking one serialisable argument.
 */
export interface DirtyWork {
  run<T = unknown>(module: string, fn: string, arg: unknown): Promise<T>;
}
