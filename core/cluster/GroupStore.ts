/**
 * A node's local copy of one shard group: the group's tables in the node's storage engine
 * (table `t` of group `g` is `g<g>.t`) and the applied position — the sequence and Msg-Id of
 * the last shard-stream entry applied — kept in `g<g>.meta` under `applied`, written in the same
 * transaction as the entries it covers. So the copy is always exactly the stream's prefix up to
 * `appliedSeq`: owner and standbys at equal applied sequences hold byte-equal tables.
 *
 * Entries are applied strictly in sequence order, one transaction at a time; entries queued
 * while a transaction is being fsync'd go together into the next one (group apply). A failed
 * transaction stops the copy: it and every entry queued after it fail, and nothing more is
 * applied until `reset`, which resumes from the last durable position. It never skips, reorders
 * or rewrites an entry. `install` replaces the whole copy by a peer's snapshot in one transaction
 * (only while nothing is queued).
 */
import { decodeValue, encodeValue } from '../../runtime/Envelope.js';
import type { StorageEngine, StorageKey, StorageOp, StorageTable, StorageWriteResult } from '../../runtime/Env.js';
import { REPLICA_APPLY_BATCH_ENTRIES } from '../defaults.js';
import { groupTableName } from './ShardGroups.js';
import type { LoggedEntry } from './ShardStream.js';

/** The table (without the group prefix) and key of the applied position. */
export const META_TABLE = 'meta';
export const APPLIED_KEY = ['applied'] as const;

/** The applied position as stored under APPLIED_KEY, or null when the bytes are not one (corrupt). */
export function decodeAppliedPosition(raw: Uint8Array): { seq: number; msgId: string } | null {
  let v: unknown;
  try {
    v = decodeValue(raw);
  } catch {
    return null;
  }
  if (!Array.isArray(v) || !Number.isSafeInteger(v[0]) || (v[0] as number) < 1 || typeof v[1] !== 'string') return null;
  return { seq: v[0] as number, msgId: v[1] };
}

/** The group whose `meta` table `table` is (`g<g>.meta`), or null for any other table. */
export function metaTableGroup(table: string): number | null {
  const m = /^g(\d{1,3})\.meta$/.exec(table);
  return m === null ? null : Number(m[1]);
}

export type GroupStoreOpen = { ok: true; store: GroupStore } | { ok: false; message: string };

interface Queued {
  readonly e: LoggedEntry;
  readonly done: (r: StorageWriteResult) => void;
}

/** The copies open on each engine: one GroupStore per (engine, group), shared by every user. */
const openCopies = new WeakMap<StorageEngine, Map<number, GroupStore>>();

export class GroupStore {
  /**
   * Group `group`'s copy on `local`. One instance per (engine, group) for the life of the engine:
   * a replica that restarts gets the same instance, so applies still in flight from its
   * previous life (an owner's acknowledged entries) stay in line with its own. A copy stopped by
   * a failed transaction resumes from its last durable entry once nothing is in flight.
   */
  static open(local: StorageEngine, group: number): GroupStoreOpen {
    let copies = openCopies.get(local);
    if (copies === undefined) openCopies.set(local, (copies = new Map()));
    const existing = copies.get(group);
    if (existing !== undefined) {
      if (existing.failure !== null) existing.reset();
      return { ok: true, store: existing };
    }
    const r = GroupStore.read(local, group);
    if (r.ok) copies.set(group, r.store);
    return r;
  }

  private static read(local: StorageEngine, group: number): GroupStoreOpen {
    const raw = local.table(groupTableName(group, META_TABLE)).get(APPLIED_KEY);
    let seq = 0;
    let msgId: string | null = null;
    if (raw !== undefined) {
      const p = decodeAppliedPosition(raw);
      if (p === null) return { ok: false, message: `group ${group}: the applied position in ${groupTableName(group, META_TABLE)} is unreadable (corrupt?)` };
      seq = p.seq;
      msgId = p.msgId;
    }
    return { ok: true, store: new GroupStore(local, group, seq, msgId) };
  }

  /** Sequence and Msg-Id of the last entry whose transaction is durable (0 and null: none). */
  appliedSeq: number;
  appliedMsgId: string | null;
  /** Sequence of the last entry queued (durable or not). */
  queuedSeq: number;
  /** Set once a transaction failed; cleared by `reset`. */
  failure: (StorageWriteResult & { ok: false }) | null = null;
  private readonly tables = new Map<string, StorageTable>();
  private queue: Queued[] = [];
  private applying = false;
  private installing = false;
  /** Who waits for an entry to be durable here (`durableAt`). */
  private durableWaiters: Array<{ seq: number; done: (ok: boolean) => void }> = [];

  private constructor(
    readonly local: StorageEngine,
    readonly group: number,
    seq: number,
    msgId: string | null,
  ) {
    this.appliedSeq = seq;
    this.appliedMsgId = msgId;
    this.queuedSeq = seq;
  }

  /** The group's table `name` on this node (reads only: writes go through entries). */
  table(name: string): StorageTable {
    let t = this.tables.get(name);
    if (t === undefined) {
      t = this.local.table(groupTableName(this.group, name));
      this.tables.set(name, t);
    }
    return t;
  }

  /** The group's tables that exist on this node (names without the group prefix). */
  tableNames(): string[] {
    const prefix = groupTableName(this.group, '');
    return this.local.tableNames(prefix).map((n) => n.slice(prefix.length)).sort();
  }

  /**
   * Replace the whole copy with `records` (a peer's snapshot, whose `meta` holds the applied
   * position `seq`/`msgId`) in one transaction: every record of the group's tables here is
   * removed and the snapshot's written. Only while nothing is queued; on success the copy is at
   * `seq`, on failure it is unchanged (the transaction did not happen) and the copy stops.
   */
  async install(records: readonly { table: string; key: StorageKey; value: Uint8Array }[], seq: number, msgId: string): Promise<StorageWriteResult> {
    if (this.busy || this.failure !== null) return { ok: false, reason: 'io_error', message: `group ${this.group}: a snapshot is installed only on an idle copy` };
    const ops: StorageOp[] = [];
    for (const name of this.tableNames()) {
      const table = groupTableName(this.group, name);
      for (const e of this.table(name).getRange({})) ops.push({ type: 'remove', table, key: e.key });
    }
    for (const r of records) ops.push({ type: 'put', table: groupTableName(this.group, r.table), key: r.key, value: r.value });
    ops.push({ type: 'put', table: groupTableName(this.group, META_TABLE), key: APPLIED_KEY, value: encodeValue([seq, msgId]) });
    this.applying = this.installing = true;
    const r = await this.local.batch(ops);
    this.applying = this.installing = false;
    if (!r.ok) {
      this.failure = r;
      return r;
    }
    this.appliedSeq = seq;
    this.appliedMsgId = msgId;
    this.queuedSeq = seq;
    this.wakeDurable(false);
    return r;
  }

  /** Whether entries are queued or being written. */
  get busy(): boolean {
    return this.applying || this.queue.length > 0;
  }

  /**
   * Apply `e`, which must be the entry after the last one queued. Resolves once its
   * transaction is durable, or with the failure that stopped the copy.
   */
  apply(e: LoggedEntry): Promise<StorageWriteResult> {
    if (this.failure !== null) return Promise.resolve(this.failure);
    if (this.installing) return Promise.resolve({ ok: false, reason: 'io_error', message: `group ${this.group}: entry ${e.seq} applied while a snapshot is being installed` });
    if (e.seq !== this.queuedSeq + 1) {
      return Promise.resolve({ ok: false, reason: 'io_error', message: `group ${this.group}: entry ${e.seq} applied after ${this.queuedSeq} (out of order)` });
    }
    this.queuedSeq = e.seq;
    return new Promise((done) => {
      this.queue.push({ e, done });
      if (!this.applying) this.pump();
    });
  }

  /**
   * Resolves true once entry `seq` (already queued or applied here) is durable, false if the copy
   * failed first.
   */
  durableAt(seq: number): Promise<boolean> {
    if (this.appliedSeq >= seq) return Promise.resolve(true);
    if (this.failure !== null || seq > this.queuedSeq) return Promise.resolve(false);
    return new Promise((done) => this.durableWaiters.push({ seq, done }));
  }

  private wakeDurable(failed: boolean): void {
    if (this.durableWaiters.length === 0) return;
    const still: typeof this.durableWaiters = [];
    for (const w of this.durableWaiters) {
      if (this.appliedSeq >= w.seq) w.done(true);
      else if (failed) w.done(false);
      else still.push(w);
    }
    this.durableWaiters = still;
  }

  /** After a failure: forget what was queued and resume from the last durable entry. */
  reset(): void {
    if (this.applying) return;
    this.failure = null;
    this.queuedSeq = this.appliedSeq;
  }

  private pump(): void {
    if (this.queue.length === 0) return;
    const batch = this.queue.splice(0, REPLICA_APPLY_BATCH_ENTRIES);
    this.applying = true;
    const ops: StorageOp[] = [];
    for (const { e } of batch) {
      if (e.entry.t !== 'ops') continue;
      for (const op of e.entry.ops) {
        const table = groupTableName(this.group, op.table);
        ops.push(op.type === 'put' ? { type: 'put', table, key: op.key, value: op.value } : { type: 'remove', table, key: op.key });
      }
    }
    const last = batch[batch.length - 1]!.e;
    ops.push({ type: 'put', table: groupTableName(this.group, META_TABLE), key: APPLIED_KEY, value: encodeValue([last.seq, last.msgId]) });
    void this.local.batch(ops).then((r) => {
      this.applying = false;
      if (r.ok) {
        this.appliedSeq = last.seq;
        this.appliedMsgId = last.msgId;
        for (const q of batch) q.done(r);
        this.wakeDurable(false);
        this.pump();
        return;
      }
      this.failure = r;
      const rest = this.queue;
      this.queue = [];
      for (const q of batch) q.done(r);
      for (const q of rest) q.done(r);
      this.wakeDurable(true);
    });
  }
}
