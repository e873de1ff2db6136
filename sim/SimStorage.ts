/**
 * Simulated LMDB: a disk that survives node crashes and an engine per node incarnation that
 * implements the StorageEngine contract (runtime/Env.ts) with "committed" kept apart from
 * "durably flushed". Writes are visible at once and join the current group; the group is
 * fsync'd after the disk's latency, and only then do its promises resolve `{ok: true}` and
 * its writes reach the disk. A crash drops the engine: unflushed writes are lost and their
 * promises never settle.
 *
 * Storage faults, switched by the scenario: slow disk (long fsyncs), disk full (the group's
 * writes fail with `disk_full` and are rolled back), and failed fsync (`io_error`, rolled
 * back: like Linux after an EIO, the data since the last good fsync is gone). The engine
 * reports every write that became durable to an observer, for the checkers' ground truth.
 */
import type { StorageEngine, StorageEntry, StorageOp, StorageRange, StorageTable, StorageWriteResult } from '../runtime/Env.js';
import { byteRange, decodeKey, encodeKey } from '../runtime/StorageKey.js';
import type { SimOwner } from './EventQueue.js';
import type { SimRandom } from './SimRandom.js';
import type { SimWorld } from './SimWorld.js';

/** One table's contents: encoded keys (as latin1 strings, so string order = byte order) in order. */
class SortedTable {
  keys: string[] = [];
  values = new Map<string, Uint8Array>();

  clone(): SortedTable {
    const t = new SortedTable();
    t.keys = this.keys.slice();
    t.values = new Map(this.values);
    return t;
  }

  private find(k: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid]! < k) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  put(k: string, v: Uint8Array): void {
    if (!this.values.has(k)) this.keys.splice(this.find(k), 0, k);
    this.values.set(k, v);
  }

  remove(k: string): void {
    if (!this.values.delete(k)) return;
    this.keys.splice(this.find(k), 1);
  }

  /** Keys in [lower, upper) in order (reverse from the top), at most `limit`. */
  range(lower: string | undefined, upper: string | undefined, reverse: boolean, limit: number): string[] {
    const from = lower === undefined ? 0 : this.find(lower);
    const to = upper === undefined ? this.keys.length : this.find(upper);
    if (to <= from) return [];
    if (!reverse) return this.keys.slice(from, Math.min(to, from + limit));
    const out: string[] = [];
    for (let i = to - 1; i >= from && out.length < limit; i--) out.push(this.keys[i]!);
    return out;
  }
}

/** Keys longer than this are converted in chunks (fromCharCode takes its bytes as arguments). */
const LATIN1_CHUNK = 4_096;
const latin1 = (b: Uint8Array): string => {
  // One flat string per key: a key is hashed and compared many times once made.
  if (b.length <= LATIN1_CHUNK) return String.fromCharCode.apply(null, b as unknown as number[]);
  let s = '';
  for (let i = 0; i < b.length; i += LATIN1_CHUNK) s += String.fromCharCode.apply(null, b.subarray(i, i + LATIN1_CHUNK) as unknown as number[]);
  return s;
};
const fromLatin1 = (s: string): Uint8Array => {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
};

/** Faults the scenario sets on a disk. */
export interface DiskFaults {
  /** fsync latency, ms (drawn per group). */
  fsyncMs: (r: SimRandom) => number;
  /** Probability that a group's fsync fails (io_error). */
  fsyncFailRate: number;
  /** While true, every group fails with disk_full. */
  full: boolean;
}

export interface DurableWrite {
  table: string;
  key: string;
  /** Undefined for a removal. */
  value: Uint8Array | undefined;
}

/** The part of storage that survives crashes. */
export class SimDisk {
  readonly tables = new Map<string, SortedTable>();
  faults: DiskFaults = { fsyncMs: () => 1, fsyncFailRate: 0, full: false };
  /** Called for every write that became durable, in order. */
  onDurable: ((w: DurableWrite) => void) | null = null;
  /** Groups flushed, failed. */
  stats = { groups: 0, failedGroups: 0, writes: 0 };

  table(name: string): SortedTable {
    let t = this.tables.get(name);
    if (t === undefined) {
      t = new SortedTable();
      this.tables.set(name, t);
    }
    return t;
  }

  /** Everything on the disk is gone (a node replaced by a new machine): only while no engine is open on it. */
  wipe(): void {
    this.tables.clear();
  }
}

const CLOSED: StorageWriteResult = { ok: false, reason: 'closed', message: 'storage engine is closed' };
const OK: StorageWriteResult = { ok: true };

interface PendingWrite {
  ops: { table: string; key: string; value: Uint8Array | undefined }[];
  resolve: (r: StorageWriteResult) => void;
}

export class SimStorageEngine implements StorageEngine {
  private readonly committed = new Map<string, SortedTable>();
  private readonly tables = new Map<string, SimTable>();
  private group: PendingWrite[] = [];
  private groupScheduled = false;
  private closed = false;

  constructor(
    private readonly world: SimWorld,
    private readonly owner: SimOwner,
    readonly disk: SimDisk,
    private readonly random: SimRandom,
  ) {
    for (const [name, t] of disk.tables) this.committed.set(name, t.clone());
  }

  table(name: string): StorageTable {
    let t = this.tables.get(name);
    if (t === undefined) {
      if (this.closed) throw new Error('storage engine is closed');
      t = new SimTable(this, name);
      this.tables.set(name, t);
    }
    return t;
  }

  tableNames(prefix: string): string[] {
    this.assertOpen();
    return [...this.committed.keys()].filter((n) => n.startsWith(prefix));
  }

  view(name: string): SortedTable {
    let t = this.committed.get(name);
    if (t === undefined) {
      t = new SortedTable();
      this.committed.set(name, t);
    }
    return t;
  }

  assertOpen(): void {
    if (this.closed) throw new Error('storage engine is closed');
  }

  batch(ops: readonly StorageOp[]): Promise<StorageWriteResult> {
    if (this.closed) return Promise.resolve(CLOSED);
    const encoded: PendingWrite['ops'] = [];
    for (const op of ops) {
      const k = encodeKey(op.key);
      if (!k.ok) return Promise.resolve({ ok: false, reason: 'invalid_key', message: k.message });
      encoded.push({ table: op.table, key: latin1(k.bytes), value: op.type === 'put' ? op.value.slice() : undefined });
    }
    return this.write(encoded);
  }

  write(ops: PendingWrite['ops']): Promise<StorageWriteResult> {
    if (this.closed) return Promise.resolve(CLOSED);
    for (const op of ops) {
      const t = this.view(op.table);
      if (op.value === undefined) t.remove(op.key);
      else t.put(op.key, op.value);
    }
    return new Promise((resolve) => {
      this.group.push({ ops, resolve });
      this.scheduleGroup();
    });
  }

  flush(): Promise<StorageWriteResult> {
    if (this.closed) return Promise.resolve(CLOSED);
    if (this.group.length === 0) return Promise.resolve(OK);
    return new Promise((resolve) => {
      this.group.push({ ops: [], resolve });
      this.scheduleGroup();
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.flush().then(() => {
      this.closed = true;
    });
  }

  private scheduleGroup(): void {
    if (this.groupScheduled) return;
    this.groupScheduled = true;
    const ms = Math.max(0, this.disk.faults.fsyncMs(this.random));
    this.world.after(ms, 'fsync', () => this.commitGroup(), this.owner, this.group.length);
  }

  /** The fsync completes (or fails): the group reaches the disk or is rolled back. */
  private commitGroup(): void {
    this.groupScheduled = false;
    const group = this.group;
    this.group = [];
    const disk = this.disk;
    let failure: StorageWriteResult | null = null;
    if (disk.faults.full) failure = { ok: false, reason: 'disk_full', message: 'simulated disk full' };
    else if (disk.faults.fsyncFailRate > 0 && this.random.chance(disk.faults.fsyncFailRate)) failure = { ok: false, reason: 'io_error', message: 'simulated fsync failure' };
    if (failure !== null) {
      disk.stats.failedGroups++;
      // Roll the view back to the disk: nothing of the group happened.
      this.committed.clear();
      for (const [name, t] of disk.tables) this.committed.set(name, t.clone());
      for (const w of group) w.resolve(failure);
      return;
    }
    disk.stats.groups++;
    for (const w of group) {
      for (const op of w.ops) {
        const t = disk.table(op.table);
        if (op.value === undefined) t.remove(op.key);
        else t.put(op.key, op.value);
        disk.stats.writes++;
        disk.onDurable?.({ table: op.table, key: op.key, value: op.value });
      }
    }
    for (const w of group) w.resolve(OK);
  }
}

class SimTable implements StorageTable {
  constructor(
    private readonly engine: SimStorageEngine,
    readonly name: string,
  ) {}

  get(key: readonly (Uint8Array | string | number)[]): Uint8Array | undefined {
    this.engine.assertOpen();
    const k = encodeKey(key);
    if (!k.ok) return undefined;
    const v = this.engine.view(this.name).values.get(latin1(k.bytes));
    return v === undefined ? undefined : v.slice();
  }

  put(key: readonly (Uint8Array | string | number)[], value: Uint8Array): Promise<StorageWriteResult> {
    const k = encodeKey(key);
    if (!k.ok) return Promise.resolve({ ok: false, reason: 'invalid_key', message: k.message });
    return this.engine.write([{ table: this.name, key: latin1(k.bytes), value: value.slice() }]);
  }

  remove(key: readonly (Uint8Array | string | number)[]): Promise<StorageWriteResult> {
    const k = encodeKey(key);
    if (!k.ok) return Promise.resolve({ ok: false, reason: 'invalid_key', message: k.message });
    return this.engine.write([{ table: this.name, key: latin1(k.bytes), value: undefined }]);
  }

  getRange(range: StorageRange): StorageEntry[] {
    this.engine.assertOpen();
    const r = byteRange(range);
    if (!r.ok) throw new Error(`invalid range: ${r.message}`);
    if (r.empty) return [];
    const t = this.engine.view(this.name);
    const keys = t.range(r.lower === undefined ? undefined : latin1(r.lower), r.upper === undefined ? undefined : latin1(r.upper), range.reverse === true, range.limit ?? Number.MAX_SAFE_INTEGER);
    return keys.map((k) => ({ key: decodeKey(fromLatin1(k))!, value: t.values.get(k)!.slice() }));
  }

  count(range: StorageRange = {}): number {
    this.engine.assertOpen();
    const r = byteRange({ ...range, limit: undefined });
    if (!r.ok) throw new Error(`invalid range: ${r.message}`);
    if (r.empty) return 0;
    return this.engine.view(this.name).range(r.lower === undefined ? undefined : latin1(r.lower), r.upper === undefined ? undefined : latin1(r.upper), false, Number.MAX_SAFE_INTEGER).length;
  }

  measure(range: StorageRange = {}): { count: number; bytes: number } {
    this.engine.assertOpen();
    const r = byteRange({ ...range, limit: undefined });
    if (!r.ok) throw new Error(`invalid range: ${r.message}`);
    if (r.empty) return { count: 0, bytes: 0 };
    const t = this.engine.view(this.name);
    const keys = t.range(r.lower === undefined ? undefined : latin1(r.lower), r.upper === undefined ? undefined : latin1(r.upper), false, Number.MAX_SAFE_INTEGER);
    let bytes = 0;
    for (const k of keys) bytes += t.values.get(k)!.length;
    return { count: keys.length, bytes };
  }
}

export { latin1 as keyText };
