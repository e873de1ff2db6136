/**
 * ReplicatedStorage: the StorageEngine of one shard group on its owner node, so the core
 * services (offline mailboxes, the router shard's SEND_SEQ table, groups, the key directory)
 * run on it unchanged. Reads go to the node's local copy of the group (GroupStore). Writes go
 * to the group's shard stream first: the writes issued in one turn become one entry, appended
 * with Msg-Id `<epoch>.<n>` and `expectLastMsgId` = the previous entry's id, pipelined (the
 * chain fences a stale owner even so); once JetStream acknowledges an entry it is published to
 * the standbys and applied to the local copy in one transaction with the applied sequence; the
 * write resolves `{ok: true}` after that transaction is fsync'd and, at durability `quorum`,
 * once a standby reported it applied that sequence (with no standby recorded, the owner alone).
 * It must never report a write done before that, and never report a write failed that may still
 * become part of the group.
 *
 * The StorageEngine contract (runtime/Env.ts), and how it holds here:
 * - order and durability as a prefix: entries are chained, so the stream holds a prefix of
 *   what was appended; they are applied and resolved strictly in sequence order;
 * - atomicity: a `batch` (and every write of its turn) is one entry, applied in one transaction;
 *   a turn's writes are cut into entries of about SHARD_ENTRY_TARGET_BYTES between calls,
 *   never inside one;
 * - visibility: a write is visible in the local copy before its promise resolves, never
 *   earlier (reads see only applied entries);
 * - failures resolve, never reject, and mean nothing of the write was applied.
 *
 * Failures. `unavailable` (no stream leader: nothing appended) fails that entry and every write
 * issued before the failure was known: the entries pipelined after it (they expected it),
 * sealed entries waiting, and this turn's open entry. So a write issued after a failed one never
 * lands while the failure is still unknown to its caller: a router shard gives a failed route's
 * lane number back, and a later route of the lane already being written must not overtake it
 * (measured: 126 messages of one sender delivered after a later one when a stream's leader
 * died). Writing goes on. `timeout` leaves the outcome
 * unknown: nothing more is appended and nothing is resolved until it is settled by appending
 * the same entries again with the same Msg-Ids and expectations (JetStream answers
 * `duplicate` for one it already has; this is reading the stream through its leader, where a
 * direct get could be answered by a lagging replica). `wrong_last_msg_id` on an entry whose
 * predecessor is known to be in the stream means another owner's marker is there: the storage
 * is *fenced* — this and every later write fail `unavailable` and `onLost` tells the group's
 * replica at once. Entries already acknowledged still resolve `{ok: true}` once applied: the
 * new owner caught up to them before its marker. An outcome still unknown after
 * SHARD_SETTLE_DEADLINE_MS also gives the group up (`onLost`); its writes then fail although
 * one of them may have reached the stream (the new owner applies it): the one case where a
 * failure may not mean "not applied", logged as such.
 *
 * Pipeline depth. At most SHARD_PIPELINE_MAX_ENTRIES entries are appended and unanswered; past
 * it a turn's writes stay in the open entry, which later turns join (up to
 * SHARD_ENTRY_TARGET_BYTES, then it is sealed to wait), and it goes out once an answer frees a
 * place. So a stream that stops answering holds at most that many entries in flight here, and
 * settling them costs at most that many round trips (unbounded, a stream without a leader for
 * a few seconds at 600 writes/s left 1,242 entries to settle one by one, longer than the heal).
 *
 * Writes are refused `unavailable` at once while `writable()` is false (the partition guard's
 * safe mode), while frozen for a hand-off, and after the group was lost.
 */
import type { AppendOptions, AppendOutcome, Env, StorageEntry, StorageKey, StorageOp, StorageRange, StorageTable, StorageWriteResult, StreamStore, StorageEngine } from '../../runtime/Env.js';
import { encodedKeyLength } from '../../runtime/StorageKey.js';
import { canary } from '../Canaries.js';
import { SHARD_APPEND_TIMEOUT_MS, SHARD_ENTRY_MAX_BYTES, SHARD_ENTRY_TARGET_BYTES, SHARD_PIPELINE_MAX_ENTRIES, SHARD_RETRY_MS, SHARD_SETTLE_DEADLINE_MS } from '../defaults.js';
import type { GroupStore } from './GroupStore.js';
import { encodeEntry, entryMsgId, type ShardEntry } from './ShardStream.js';

export type Durability = 'local' | 'quorum';

export interface ReplicatedStorageOptions {
  env: Env;
  streams: StreamStore;
  /** The group's shard stream and the subject it captures. */
  stream: string;
  subject: string;
  /** The local copy, positioned at this owner's marker (`<epoch>.0`, already applied). */
  store: GroupStore;
  /** This owner's epoch: entries are `<epoch>.1`, `<epoch>.2`, … */
  epoch: number;
  durability: Durability;
  /** The group's standbys now (their applied reports count for `quorum`). */
  standbys: readonly string[];
  /** Hand an acknowledged entry to the standbys (core NATS, at most once). */
  publish(seq: number, msgId: string, data: Uint8Array): void;
  /** Writes are refused `unavailable` while this answers false (safe mode). */
  writable?: () => boolean;
  /** The group is lost to this node (fenced, or an outcome could not be settled); called once. */
  onLost(reason: string): void;
}

type Resolve = (r: StorageWriteResult) => void;

/** Entry bytes beyond its operations' keys and values (msgpack framing, table names). */
const OP_OVERHEAD_BYTES = 16;
/** Room kept for an entry's own framing below SHARD_ENTRY_MAX_BYTES. */
const ENTRY_FRAMING_BYTES = 64;

interface Entry {
  readonly ops: StorageOp[];
  bytes: number;
  readonly waiters: Resolve[];
  n: number;
  msgId: string;
  expect: string;
  /** The stream sequence this entry is predicted to land at (used only by a planted canary). */
  expectSeq: number;
  data: Uint8Array;
  /** The answer to the latest append of it (undefined while pending). */
  outcome: AppendOutcome | undefined;
  /** Bumped when the entry is appended again, so a stale answer is ignored. */
  attempt: number;
  /** Settles once every waiter has its result. */
  readonly settled: Promise<void>;
  markSettled: () => void;
}

function newEntry(): Entry {
  let markSettled!: () => void;
  const settled = new Promise<void>((r) => (markSettled = r));
  return { ops: [], bytes: 0, waiters: [], n: 0, msgId: '', expect: '', expectSeq: 0, data: new Uint8Array(0), outcome: undefined, attempt: 0, settled, markSettled };
}

type Phase = 'open' | 'settling' | 'frozen' | 'lost' | 'closed';

const OK: StorageWriteResult = Object.freeze({ ok: true });

export class ReplicatedStorage implements StorageEngine {
  private phase: Phase = 'open';
  private nextN = 1;
  /** Msg-Id of the last entry appended (the next one expects it). */
  private chainTail: string;
  /** Sequence the last entry appended is predicted to land at (used only by a planted canary). */
  private chainSeq: number;
  /** The last entry known to be in the stream. */
  private lastSeq: number;
  private lastMsgId: string;
  /** The entry this turn's writes join. */
  private open: Entry | null = null;
  private turnScheduled = false;
  /** Sealed entries not appended yet (while settling). */
  private readonly waiting: Entry[] = [];
  /** Appended entries whose outcome is not processed yet, in chain order. */
  private inflight: Entry[] = [];
  /** Landed entries waiting for a standby's report (durability quorum). */
  private readonly quorumWait: Array<{ seq: number; entry: Entry }> = [];
  private standbys: Set<string>;
  private readonly standbyApplied = new Map<string, number>();
  /** Entries made and not settled yet (what `flush` waits for). */
  private readonly unsettled = new Set<Entry>();
  /** A freeze was asked for while settling: freeze when the settling ends. */
  private freezeAfterSettle = false;
  /** The hand-off entry is in: writes are refused `unavailable` for good. */
  private handedOff = false;
  /** `close` was called: landed entries no longer wait for a standby's report. */
  private closing = false;
  private readonly tables = new Map<string, ReplicatedTable>();

  constructor(private readonly o: ReplicatedStorageOptions) {
    const msgId = o.store.appliedMsgId;
    if (msgId !== entryMsgId(o.epoch, 0)) throw new Error(`replicated storage of group ${o.store.group}: the local copy is at ${msgId ?? 'nothing'}, not at the marker ${entryMsgId(o.epoch, 0)}`);
    this.chainTail = msgId;
    this.lastMsgId = msgId;
    this.lastSeq = o.store.appliedSeq;
    this.chainSeq = this.lastSeq;
    this.standbys = new Set(o.standbys);
  }

  // ---- what the owner's replica sees -----------------------------------------------------

  /** Sequence of the last entry known to be in the stream. */
  get headSeq(): number {
    return this.lastSeq;
  }

  /** The last entry's Msg-Id (what a hand-off entry expects). */
  get headMsgId(): string {
    return this.lastMsgId;
  }

  /** Whether this storage still takes writes (not frozen, lost or closed). */
  get accepting(): boolean {
    return this.phase === 'open' || this.phase === 'settling';
  }

  /** What each standby last reported applied. */
  standbyPositions(): ReadonlyMap<string, number> {
    return this.standbyApplied;
  }

  /** The group's standbys changed (a new ownership record). */
  setStandbys(nodes: readonly string[]): void {
    this.standbys = new Set(nodes);
    this.releaseQuorum();
  }

  /** A standby reports it applied (and fsync'd) up to `seq`. */
  standbyReport(node: string, seq: number): void {
    if (seq > (this.standbyApplied.get(node) ?? 0)) this.standbyApplied.set(node, seq);
    this.releaseQuorum();
  }

  /**
   * Stop taking writes (they fail `unavailable`), let every write already issued settle, and
   * resolve with whether the group is still this storage's (false once lost).
   */
  async freeze(): Promise<boolean> {
    this.endTurn();
    if (this.phase === 'open') this.phase = 'frozen';
    else if (this.phase === 'settling') this.freezeAfterSettle = true;
    await this.drained();
    return this.phase === 'frozen';
  }

  /**
   * Append the hand-off entry naming `to` (frozen, everything settled first). Its outcome is
   * settled like any entry's; `ok` once it is in the stream and applied here.
   */
  async appendHandoff(to: string): Promise<{ ok: true; seq: number } | { ok: false; reason: string }> {
    if (this.phase !== 'frozen') return { ok: false, reason: `not frozen (${this.phase})` };
    const body: ShardEntry = { t: 'handoff', epoch: this.o.epoch, to };
    const n = this.nextN++;
    const msgId = entryMsgId(this.o.epoch, n);
    const data = encodeEntry(body);
    const deadline = this.now() + SHARD_SETTLE_DEADLINE_MS;
    for (;;) {
      const r = await this.o.streams.append(this.o.stream, this.o.subject, data, { msgId, expectLastMsgId: this.lastMsgId, timeoutMs: SHARD_APPEND_TIMEOUT_MS });
      if (r.ok) {
        this.o.publish(r.seq, msgId, data);
        const applied = await this.o.store.apply({ seq: r.seq, msgId, entry: body });
        if (!applied.ok) return { ok: false, reason: `local copy: ${applied.message}` };
        this.lastSeq = r.seq;
        this.lastMsgId = msgId;
        this.chainTail = msgId;
        this.handedOff = true;
        return { ok: true, seq: r.seq };
      }
      if (r.reason === 'wrong_last_msg_id') {
        this.lose('fenced while handing off');
        return { ok: false, reason: 'fenced' };
      }
      if (r.reason === 'closed' || r.reason === 'too_large' || this.now() > deadline) return { ok: false, reason: `${r.reason}: ${r.message}` };
      await this.sleep(SHARD_RETRY_MS);
    }
  }

  // ---- StorageEngine ---------------------------------------------------------------------

  table(name: string): StorageTable {
    let t = this.tables.get(name);
    if (t === undefined) {
      t = new ReplicatedTable(this, name, this.o.store.table(name));
      this.tables.set(name, t);
    }
    return t;
  }

  tableNames(prefix: string): string[] {
    return this.o.store.tableNames().filter((n) => n.startsWith(prefix));
  }

  batch(ops: readonly StorageOp[]): Promise<StorageWriteResult> {
    if (ops.length === 0) return this.flush();
    return this.submit(ops);
  }

  async flush(): Promise<StorageWriteResult> {
    if (this.phase === 'closed') return { ok: false, reason: 'closed', message: 'the replicated storage is closed' };
    if (this.unsettled.size > 0) await Promise.all([...this.unsettled].map((e) => e.settled));
    return OK;
  }

  /**
   * Let every write issued settle, then refuse writes: `closed`, or `unavailable` when the group
   * was lost or handed off (a stale reference should look elsewhere). The node's engine stays open.
   */
  async close(): Promise<void> {
    if (this.phase === 'closed') return;
    this.endTurn();
    if (this.phase === 'open') this.phase = 'frozen';
    else if (this.phase === 'settling') this.freezeAfterSettle = true;
    // Nobody feeds standby reports to a storage being closed: landed entries are in the stream,
    // and whoever serves the group next catches up to them before its marker (as when lost).
    this.closing = true;
    this.releaseQuorum();
    await this.drained();
    if (this.phase !== 'lost' && !this.handedOff) this.phase = 'closed';
  }

  // ---- writes ----------------------------------------------------------------------------

  /** @internal One write call (put, remove or batch): joins this turn's entry. */
  submit(ops: readonly StorageOp[]): Promise<StorageWriteResult> {
    if (this.phase === 'frozen' && canary('handoff_drops_writes')) return Promise.resolve(OK);
    const refused = this.refusal();
    if (refused !== null) return Promise.resolve(refused);
    let bytes = 0;
    for (const op of ops) {
      const k = encodedKeyLength(op.key);
      if (typeof k === 'string') return Promise.resolve({ ok: false, reason: 'invalid_key', message: k });
      bytes += k + op.table.length + OP_OVERHEAD_BYTES + (op.type === 'put' ? op.value.length : 0);
    }
    if (bytes > SHARD_ENTRY_MAX_BYTES - ENTRY_FRAMING_BYTES) {
      return Promise.resolve({ ok: false, reason: 'io_error', message: `a write of ${bytes} bytes exceeds the shard stream's entry limit (${SHARD_ENTRY_MAX_BYTES})` });
    }
    if (this.open !== null && this.open.bytes + bytes > SHARD_ENTRY_TARGET_BYTES) this.seal();
    if (this.open === null) {
      this.open = newEntry();
      this.unsettled.add(this.open);
    }
    const e = this.open;
    for (const op of ops) e.ops.push(op);
    e.bytes += bytes;
    if (!this.turnScheduled) {
      this.turnScheduled = true;
      this.o.env.timers.defer(this.endTurn);
    }
    return new Promise((resolve) => e.waiters.push(resolve));
  }

  private refusal(): StorageWriteResult | null {
    switch (this.phase) {
      case 'closed':
        return { ok: false, reason: 'closed', message: 'the replicated storage is closed' };
      case 'lost':
        return { ok: false, reason: 'unavailable', message: `shard group ${this.o.store.group} is no longer owned here` };
      case 'frozen':
        return { ok: false, reason: 'unavailable', message: `shard group ${this.o.store.group} is ${this.handedOff ? 'handed off' : 'being handed off'}` };
      case 'settling':
        if (this.freezeAfterSettle) return { ok: false, reason: 'unavailable', message: `shard group ${this.o.store.group} is being handed off` };
        if (this.o.writable !== undefined && !this.o.writable()) return { ok: false, reason: 'unavailable', message: 'the cluster is in safe mode (no majority visible)' };
        return null;
      default:
        if (this.o.writable !== undefined && !this.o.writable()) return { ok: false, reason: 'unavailable', message: 'the cluster is in safe mode (no majority visible)' };
        return null;
    }
  }

  /** The end of a turn: its entry goes out, or stays open for later turns while the pipeline is full. */
  private readonly endTurn = (): void => {
    this.turnScheduled = false;
    if (this.pipelineFull() && this.open !== null && this.phase !== 'frozen' && !this.closing) return;
    this.seal();
  };

  private pipelineFull(): boolean {
    return this.inflight.length + this.waiting.length >= SHARD_PIPELINE_MAX_ENTRIES;
  }

  private seal(): void {
    const e = this.open;
    if (e === null) return;
    this.open = null;
    this.waiting.push(e);
    if (this.phase === 'open' || this.phase === 'frozen') this.launchWaiting();
  }

  /** Append sealed entries while the pipeline has room; then the open entry, if it can go. */
  private launchWaiting(): void {
    while (this.waiting.length > 0 && this.inflight.length < SHARD_PIPELINE_MAX_ENTRIES) this.launch(this.waiting.shift()!);
    if (this.open !== null && !this.turnScheduled && !this.pipelineFull()) this.seal();
  }

  private launch(e: Entry): void {
    e.n = this.nextN++;
    e.msgId = entryMsgId(this.o.epoch, e.n);
    e.expect = this.chainTail;
    this.chainTail = e.msgId;
    e.expectSeq = this.chainSeq;
    this.chainSeq++;
    e.data = encodeEntry({ t: 'ops', ops: e.ops });
    this.inflight.push(e);
    this.send(e);
    if (canary('ack_before_puback')) this.resolve(e, OK);
  }

  /** How an entry is appended: chained to its predecessor's Msg-Id. */
  private appendOptions(e: Entry): AppendOptions {
    if (canary('pipelined_expected_seq')) return { msgId: e.msgId, expectLastSubjectSeq: e.expectSeq, timeoutMs: SHARD_APPEND_TIMEOUT_MS };
    return { msgId: e.msgId, expectLastMsgId: e.expect, timeoutMs: SHARD_APPEND_TIMEOUT_MS };
  }

  private send(e: Entry): void {
    const attempt = ++e.attempt;
    e.outcome = undefined;
    void this.o.streams.append(this.o.stream, this.o.subject, e.data, this.appendOptions(e)).then((r) => {
      if (attempt !== e.attempt || !this.inflight.includes(e)) return;
      e.outcome = r;
      this.process();
    });
  }

  /** Handle outcomes at the head of the pipeline, in chain order. */
  private process(): void {
    while (this.phase !== 'settling' && this.phase !== 'lost' && this.phase !== 'closed') {
      const head = this.inflight[0];
      if (head === undefined || head.outcome === undefined) return this.launchWaiting();
      const o = head.outcome;
      if (o.ok) {
        this.inflight.shift();
        this.landed(head, o.seq);
        continue;
      }
      switch (o.reason) {
        case 'wrong_last_msg_id':
          if (canary('stale_owner_keeps_writing')) {
            this.notLanded('unavailable', `shard stream: ${o.message}`);
            return void this.adoptStreamEnd();
          }
          // Its predecessor is in the stream (processed in order): another owner appended.
          return this.lose(`fenced: ${o.message}`);
        case 'timeout':
          return void this.settle();
        case 'closed':
          return this.failPending({ ok: false, reason: 'closed', message: 'the stream store is closed' });
        default:
          // `unavailable` (nothing appended) and the rest: none of the pipeline can be in.
          this.notLanded(o.reason === 'too_large' ? 'io_error' : 'unavailable', `shard stream: ${o.reason}: ${o.message}`);
      }
    }
  }

  /**
   * The head and everything pipelined after it are not in the stream: fail them, and every write
   * issued before this failure is known (sealed entries waiting, the turn's open entry), go on.
   */
  private notLanded(reason: 'unavailable' | 'io_error', message: string): void {
    const dropped = [...this.inflight, ...this.waiting, ...(this.open !== null ? [this.open] : [])];
    this.inflight = [];
    this.waiting.length = 0;
    this.open = null;
    this.chainTail = this.lastMsgId;
    this.chainSeq = this.lastSeq;
    for (const e of dropped) {
      e.attempt++;
      this.resolve(e, { ok: false, reason, message });
    }
    this.launchWaiting();
  }

  /**
   * Settle unknown outcomes: append the pipeline again in order with the same Msg-Ids and
   * expectations until each is known (landed, or refused because another owner is there).
   */
  private async settle(): Promise<void> {
    if (this.phase === 'frozen') this.freezeAfterSettle = true;
    this.phase = 'settling';
    const deadline = this.now() + SHARD_SETTLE_DEADLINE_MS;
    while (this.inflight.length > 0) {
      const head = this.inflight[0]!;
      if (head.outcome?.ok === true) {
        this.inflight.shift();
        this.landed(head, head.outcome.seq);
        continue;
      }
      const attempt = ++head.attempt;
      const r = await this.o.streams.append(this.o.stream, this.o.subject, head.data, this.appendOptions(head));
      if (this.phase !== 'settling') return; // closed meanwhile
      if (attempt !== head.attempt) continue;
      if (r.ok) {
        head.outcome = r;
        continue;
      }
      if (r.reason === 'wrong_last_msg_id') return this.lose(`fenced: ${r.message}`);
      if (r.reason === 'closed') {
        this.phase = this.freezeAfterSettle ? 'frozen' : 'open';
        return this.failPending({ ok: false, reason: 'closed', message: 'the stream store is closed' });
      }
      if (r.reason === 'too_large') {
        this.phase = this.freezeAfterSettle ? 'frozen' : 'open';
        this.notLanded('io_error', `shard stream: ${r.message}`);
        return;
      }
      if (this.now() > deadline) {
        this.o.env.log.error({ group: this.o.store.group, msgId: head.msgId }, 'an entry\'s outcome stayed unknown past the settle deadline; giving the group up (its writes are failed although one may be in the stream)');
        return this.lose(`outcome of ${head.msgId} unknown for ${SHARD_SETTLE_DEADLINE_MS} ms`);
      }
      await this.sleep(SHARD_RETRY_MS);
      if (this.phase !== 'settling') return;
    }
    this.phase = this.freezeAfterSettle ? 'frozen' : 'open';
    this.launchWaiting();
    this.process();
  }

  /** The planted bug `stale_owner_keeps_writing`: take the stream's end as this owner's own and go on. */
  private async adoptStreamEnd(): Promise<void> {
    const r = await this.o.streams.lastOnSubject(this.o.stream, this.o.subject, SHARD_APPEND_TIMEOUT_MS);
    if (!r.ok || r.entry.msgId === null || this.phase !== 'open') return;
    this.lastSeq = r.entry.seq;
    this.lastMsgId = r.entry.msgId;
    this.chainTail = r.entry.msgId;
    this.chainSeq = r.entry.seq;
  }

  /** `e` is in the stream at `seq`: publish it, apply it here, then resolve it. */
  private landed(e: Entry, seq: number): void {
    if (seq !== this.lastSeq + 1) {
      this.o.env.log.error({ group: this.o.store.group, seq, expected: this.lastSeq + 1 }, 'shard stream sequence out of line with the chain');
      this.inflight.unshift(e);
      return this.lose(`sequence ${seq} after ${this.lastSeq}`);
    }
    this.lastSeq = seq;
    this.lastMsgId = e.msgId;
    if (seq <= this.o.store.queuedSeq) {
      // The local copy already took this entry from the stream: this storage settled its outcome
      // after the group was lost, and the node's replica, a standby again, caught up past it.
      // It is in the group (before the next owner's marker): done once durable here.
      void this.o.store.durableAt(seq).then((ok) => this.resolve(e, ok ? OK : { ok: false, reason: 'io_error', message: `group ${this.o.store.group}: the local copy failed before entry ${seq} was durable` }));
      return;
    }
    this.o.publish(seq, e.msgId, e.data);
    void this.o.store.apply({ seq, msgId: e.msgId, entry: { t: 'ops', ops: e.ops } }).then((r) => {
      if (!r.ok) {
        this.o.env.log.error({ group: this.o.store.group, seq, reason: r.reason, message: r.message }, 'an acknowledged entry could not be applied locally; giving the group up');
        this.resolve(e, r);
        this.lose(`local copy failed: ${r.message}`);
        return;
      }
      if (this.o.durability === 'local' || this.standbys.size === 0 || this.quorumReached(seq) || this.phase === 'lost' || this.closing) {
        this.resolve(e, OK);
        return;
      }
      this.quorumWait.push({ seq, entry: e });
    });
  }

  private quorumReached(seq: number): boolean {
    for (const s of this.standbys) if ((this.standbyApplied.get(s) ?? 0) >= seq) return true;
    return false;
  }

  private releaseQuorum(): void {
    while (this.quorumWait.length > 0) {
      const head = this.quorumWait[0]!;
      if (this.standbys.size > 0 && !this.quorumReached(head.seq) && this.phase !== 'lost' && !this.closing) return;
      this.quorumWait.shift();
      this.resolve(head.entry, OK);
    }
  }

  private resolve(e: Entry, r: StorageWriteResult): void {
    for (const w of e.waiters.splice(0)) w(r);
    this.unsettled.delete(e);
    e.markSettled();
  }

  /** Give the group up: fail everything not in the stream, tell the replica (once). */
  private lose(reason: string): void {
    if (this.phase === 'lost' || this.phase === 'closed') return;
    this.phase = 'lost';
    const failure: StorageWriteResult = { ok: false, reason: 'unavailable', message: `shard group ${this.o.store.group} lost: ${reason}` };
    this.failPending(failure);
    // Landed entries waiting for a standby: the next owner caught up to them before its marker.
    this.releaseQuorum();
    this.o.onLost(reason);
  }

  private failPending(r: StorageWriteResult): void {
    const pending = [...this.inflight, ...this.waiting, ...(this.open !== null ? [this.open] : [])];
    this.inflight = [];
    this.waiting.length = 0;
    this.open = null;
    this.chainTail = this.lastMsgId;
    this.chainSeq = this.lastSeq;
    for (const e of pending) {
      e.attempt++;
      this.resolve(e, r);
    }
  }

  /** Resolves once nothing is appended, pending or waiting for a standby. */
  private async drained(): Promise<void> {
    // Each round waits for everything pending; entries only join while open, so two rounds do.
    while (this.unsettled.size > 0) await Promise.all([...this.unsettled].map((e) => e.settled));
  }

  private now(): number {
    return this.o.env.clock.monotonicMs();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.o.env.timers.setTimer(ms, r));
  }
}

/** A table of the group: reads from the local copy, writes through the stream. */
class ReplicatedTable implements StorageTable {
  constructor(
    private readonly engine: ReplicatedStorage,
    readonly name: string,
    private readonly local: StorageTable,
  ) {}

  get(key: StorageKey): Uint8Array | undefined {
    return this.local.get(key);
  }

  put(key: StorageKey, value: Uint8Array): Promise<StorageWriteResult> {
    return this.engine.submit([{ type: 'put', table: this.name, key, value }]);
  }

  remove(key: StorageKey): Promise<StorageWriteResult> {
    return this.engine.submit([{ type: 'remove', table: this.name, key }]);
  }

  getRange(range: StorageRange): StorageEntry[] {
    return this.local.getRange(range);
  }

  count(range?: StorageRange): number {
    return this.local.count(range);
  }

  measure(range?: StorageRange): { count: number; bytes: number } {
    return this.local.measure(range);
  }
}
