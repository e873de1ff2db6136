/**
 * The production StorageEngine: one LMDB environment per node (its data directory), one named
 * database per table, keys encoded by runtime/StorageKey.ts, values as raw bytes. A write's
 * promise resolves only after its transaction is fsync'd; it never acknowledges earlier.
 *
 * Durability. lmdb-js batches the async writes issued in one event-loop turn into one
 * transaction committed on its write thread (group commit). Its default on Linux,
 * `overlappingSync`, resolves write promises when the transaction is *committed* and syncs to
 * disk afterwards; we open with `overlappingSync: false` (and `noSync`, `noMetaSync`,
 * `useWritemap` off), so LMDB's commit itself fsyncs the data and then the meta page before
 * the write thread reports the transaction done, and only then do the promises resolve.
 * Every open of the same directory in this process must go through here so the environment
 * keeps these flags (lmdb-js shares one environment per path across threads).
 *
 * Opening never repairs or resets anything. lmdb 3.5.6 crashes the whole process (double
 * free) when LMDB refuses to open an environment, so the directory and the data file's meta
 * page are checked here first and every refusal is a typed result with a clear message.
 */
import { open, type Database, type RootDatabase } from 'lmdb';
import { accessSync, closeSync, constants, mkdirSync, openSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { StorageEngine, StorageEntry, StorageFailure, StorageKey, StorageOp, StorageRange, StorageTable, StorageWriteResult } from '../Env.js';
import { byteRange, decodeKey, encodedKeyLength, writeKey } from '../StorageKey.js';
import { STORAGE_MAX_TABLES } from '../defaults.js';

export interface LmdbStorageOptions {
  /** The node's data directory (`wal_directory`, e.g. `./data`); created if missing. */
  path: string;
  /** Named tables the environment can hold (default STORAGE_MAX_TABLES). */
  maxTables?: number;
  /** Production safety checks: refuse a directory on tmpfs/ramfs (data would not survive a reboot). */
  productionChecks?: boolean;
}

export type LmdbOpenFailure =
  /** The directory is on a memory file system and production checks were asked for. */
  | 'on_tmpfs'
  /** The path cannot be created, is not a directory, or is not readable and writable. */
  | 'bad_directory'
  /** `data.mdb` exists but is not a readable LMDB file (bad magic, truncated meta pages). */
  | 'corrupt'
  /** `data.mdb` was written by an incompatible LMDB data format version. */
  | 'version_mismatch'
  /** LMDB itself refused (the message carries its error). */
  | 'open_failed';

export type LmdbOpenResult = { ok: true; engine: LmdbStorage } | { ok: false; reason: LmdbOpenFailure; message: string };

/** Open the storage engine on `opts.path`. Never throws for an unusable directory or file. */
export function openLmdbStorage(opts: LmdbStorageOptions): LmdbOpenResult {
  const dir = resolve(opts.path);
  if (opts.productionChecks === true) {
    const fs = fileSystemOf(dir);
    if (fs !== undefined && MEMORY_FILE_SYSTEMS.has(fs.type)) {
      return { ok: false, reason: 'on_tmpfs', message: `storage directory ${dir} is on ${fs.type} (mounted at ${fs.mountPoint}), which loses every message at reboot; use a directory on a persistent disk` };
    }
  }
  try {
    mkdirSync(dir, { recursive: true });
    if (!statSync(dir).isDirectory()) return { ok: false, reason: 'bad_directory', message: `${dir} is not a directory` };
    accessSync(dir, constants.R_OK | constants.W_OK);
  } catch (e) {
    return { ok: false, reason: 'bad_directory', message: `storage directory ${dir} is unusable: ${errorText(e)}` };
  }
  const bad = checkDataFile(dir);
  if (bad !== undefined) return bad;
  let root: RootDatabase<Buffer, Buffer>;
  try {
    root = open<Buffer, Buffer>({
      path: dir,
      maxDbs: opts.maxTables ?? STORAGE_MAX_TABLES,
      // A directory, always: lmdb-js would otherwise take a path with a dot (`data.v2`) for a file.
      noSubdir: false,
      encoding: 'binary',
      keyEncoding: 'binary',
      overlappingSync: false,
      noSync: false,
      noMetaSync: false,
      useWritemap: false,
      eventTurnBatching: true,
    });
  } catch (e) {
    return { ok: false, reason: 'open_failed', message: `LMDB refused to open ${dir}: ${errorText(e)}` };
  }
  return { ok: true, engine: new LmdbStorage(dir, root) };
}

/** The production engine; obtain one with `openLmdbStorage`. */
export class LmdbStorage implements StorageEngine {
  private readonly tables = new Map<string, LmdbTable>();
  private closed = false;
  /** lmdb-js hands every write of one transaction the same promise; map it once. */
  private lastCommit: Promise<boolean> | null = null;
  private lastResult: Promise<StorageWriteResult> | null = null;
  private readonly maxKeyBytes: number;
  private readonly scratch: Buffer;
  private readonly scratchViews: Buffer[] = [];

  constructor(
    readonly path: string,
    private readonly root: RootDatabase<Buffer, Buffer>,
  ) {
    this.maxKeyBytes = (root as unknown as { maxKeySize?: number }).maxKeySize ?? 511;
    this.scratch = Buffer.alloc(this.maxKeyBytes);
  }

  table(name: string): StorageTable {
    let t = this.tables.get(name);
    if (t === undefined) {
      if (this.closed) throw new Error(`storage ${this.path} is closed`);
      t = new LmdbTable(this, name, this.root.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary' }));
      this.tables.set(name, t);
    }
    return t;
  }

  tableNames(prefix: string): string[] {
    this.assertOpen();
    // The named databases are the root's keys (with their C string's NUL); collected before
    // any table is opened, which would end the iteration's read transaction.
    const names = [...this.root.getKeys({})].map((k) => Buffer.from(k as Buffer).toString('utf8').replace(/\0$/, ''));
    return names.filter((n) => n.startsWith(prefix));
  }

  batch(ops: readonly StorageOp[]): Promise<StorageWriteResult> {
    if (this.closed) return Promise.resolve(CLOSED);
    if (ops.length === 0) return this.flush();
    // Encode every key before the first write: a refusal half-way would commit a partial batch.
    const dbs: Database<Buffer, Buffer>[] = [];
    const keys: Buffer[] = [];
    for (const op of ops) {
      const k = this.key(op.key, false);
      if (!Buffer.isBuffer(k)) return Promise.resolve(k);
      keys.push(k);
      dbs.push((this.table(op.table) as LmdbTable).db);
    }
    try {
      const p = this.root.batch(() => {
        for (let i = 0; i < ops.length; i++) {
          const op = ops[i]!;
          if (op.type === 'put') void dbs[i]!.put(keys[i]!, op.value as Buffer);
          else void dbs[i]!.remove(keys[i]!);
        }
      });
      return this.durable(p);
    } catch (e) {
      return Promise.resolve(failure(e));
    }
  }

  flush(): Promise<StorageWriteResult> {
    if (this.closed) return Promise.resolve(CLOSED);
    return Promise.resolve(this.root.flushed).then(okResult, failure);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.resolve(this.root.flushed).catch(() => undefined);
    await this.root.close();
  }

  /**
   * @internal Encode a key for LMDB, or the typed refusal. With `scratch` the bytes land in a
   * buffer reused by the next call: fine for single operations, since lmdb-js copies the key
   * before `put`/`remove`/`get` return.
   */
  key(key: StorageKey, scratch: boolean): Buffer | { ok: false; reason: StorageFailure; message: string } {
    const size = encodedKeyLength(key);
    if (typeof size === 'string') return { ok: false, reason: 'invalid_key', message: size };
    if (size > this.maxKeyBytes) return { ok: false, reason: 'invalid_key', message: `key of ${size} encoded bytes exceeds LMDB's ${this.maxKeyBytes}` };
    if (!scratch) {
      const own = Buffer.allocUnsafe(size);
      writeKey(key, own, 0);
      return own;
    }
    writeKey(key, this.scratch, 0);
    // One view per length, reused: no allocation per operation.
    return (this.scratchViews[size] ??= this.scratch.subarray(0, size));
  }

  /** @internal */
  get isClosed(): boolean {
    return this.closed;
  }

  /** @internal The typed result of a write promise (resolves only after the fsync'd commit). */
  durable(p: Promise<boolean>): Promise<StorageWriteResult> {
    if (p === this.lastCommit) return this.lastResult!;
    this.lastCommit = p;
    this.lastResult = p.then(okResult, failure);
    return this.lastResult;
  }

  /** @internal For reads on a closed engine, which are bugs. */
  assertOpen(): void {
    if (this.closed) throw new Error(`storage ${this.path} is closed`);
  }
}

class LmdbTable implements StorageTable {
  constructor(
    private readonly engine: LmdbStorage,
    readonly name: string,
    readonly db: Database<Buffer, Buffer>,
  ) {}

  get(key: StorageKey): Uint8Array | undefined {
    this.engine.assertOpen();
    const k = this.engine.key(key, true);
    if (!Buffer.isBuffer(k)) return undefined;
    return this.db.get(k);
  }

  put(key: StorageKey, value: Uint8Array): Promise<StorageWriteResult> {
    if (this.engine.isClosed) return Promise.resolve(CLOSED);
    const k = this.engine.key(key, true);
    if (!Buffer.isBuffer(k)) return Promise.resolve(k);
    try {
      return this.engine.durable(this.db.put(k, value as Buffer));
    } catch (e) {
      return Promise.resolve(failure(e));
    }
  }

  remove(key: StorageKey): Promise<StorageWriteResult> {
    if (this.engine.isClosed) return Promise.resolve(CLOSED);
    const k = this.engine.key(key, true);
    if (!Buffer.isBuffer(k)) return Promise.resolve(k);
    try {
      return this.engine.durable(this.db.remove(k));
    } catch (e) {
      return Promise.resolve(failure(e));
    }
  }

  getRange(range: StorageRange): StorageEntry[] {
    this.engine.assertOpen();
    const r = byteRange(range);
    if (!r.ok) throw new Error(`invalid range: ${r.message}`);
    if (r.empty) return [];
    const opts = lmdbRange(r.lower, r.upper, range.reverse === true);
    if (range.limit !== undefined) opts.limit = range.limit;
    const out: StorageEntry[] = [];
    for (const { key, value } of this.db.getRange(opts)) {
      const decoded = decodeKey(key);
      if (decoded === undefined) throw new Error(`table ${this.name} holds a key that is not a storage key encoding (corrupt?)`);
      out.push({ key: decoded, value });
    }
    return out;
  }

  count(range: StorageRange = {}): number {
    this.engine.assertOpen();
    const r = byteRange({ ...range, limit: undefined });
    if (!r.ok) throw new Error(`invalid range: ${r.message}`);
    if (r.empty) return 0;
    return this.db.getCount(lmdbRange(r.lower, r.upper, false));
  }

  measure(range: StorageRange = {}): { count: number; bytes: number } {
    this.engine.assertOpen();
    const r = byteRange({ ...range, limit: undefined });
    if (!r.ok) throw new Error(`invalid range: ${r.message}`);
    if (r.empty) return { count: 0, bytes: 0 };
    let count = 0;
    let bytes = 0;
    for (const { value } of this.db.getRange(lmdbRange(r.lower, r.upper, false))) {
      count++;
      bytes += (value as Uint8Array).length;
    }
    return { count, bytes };
  }
}

/** lmdb-js ranges: forward `[start, end)`; reverse starts at the high end, so flip inclusivity. */
function lmdbRange(lower: Uint8Array | undefined, upper: Uint8Array | undefined, reverse: boolean) {
  const opts: { start?: Buffer; end?: Buffer; reverse?: boolean; exclusiveStart?: boolean; inclusiveEnd?: boolean; limit?: number } = {};
  const lo = lower === undefined ? undefined : Buffer.from(lower);
  const hi = upper === undefined ? undefined : Buffer.from(upper);
  if (!reverse) {
    if (lo !== undefined) opts.start = lo;
    if (hi !== undefined) opts.end = hi;
  } else {
    opts.reverse = true;
    if (hi !== undefined) {
      opts.start = hi;
      opts.exclusiveStart = true;
    }
    if (lo !== undefined) {
      opts.end = lo;
      opts.inclusiveEnd = true;
    }
  }
  return opts;
}

const OK: StorageWriteResult = Object.freeze({ ok: true });
const CLOSED: StorageWriteResult = Object.freeze({ ok: false, reason: 'closed', message: 'the storage engine is closed' });

function okResult(): StorageWriteResult {
  return OK;
}

function failure(e: unknown): StorageWriteResult {
  const message = errorText(e);
  if (/MDB_MAP_FULL|ENOSPC|No space left|EDQUOT/i.test(message)) return { ok: false, reason: 'disk_full', message };
  if (/closed/i.test(message)) return { ok: false, reason: 'closed', message };
  return { ok: false, reason: 'io_error', message };
}

function errorText(e: unknown): string {
  if (e instanceof Error) return (e as Error & { code?: string }).code !== undefined ? `${(e as Error & { code?: string }).code}: ${e.message}` : e.message;
  return String(e);
}

// ---------------------------------------------------------------------------------------------
// Checks before LMDB sees the files.

/** File systems whose contents vanish at reboot. */
const MEMORY_FILE_SYSTEMS = new Set(['tmpfs', 'ramfs']);

/** The mount holding `path` (the deepest mount point above it), from /proc/mounts; undefined if unknown. */
export function fileSystemOf(path: string): { mountPoint: string; type: string } | undefined {
  let mounts: string;
  try {
    mounts = readFileSync('/proc/mounts', 'utf8');
  } catch {
    return undefined;
  }
  const target = existingRealPath(resolve(path));
  let best: { mountPoint: string; type: string } | undefined;
  for (const line of mounts.split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 3) continue;
    // /proc/mounts escapes space, tab, newline and backslash as octal.
    const mountPoint = fields[1]!.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    const type = fields[2]!;
    const inside = mountPoint === '/' || target === mountPoint || target.startsWith(mountPoint + '/');
    // Later lines are later mounts: on an equal mount point the last one is what is visible.
    if (inside && (best === undefined || mountPoint.length >= best.mountPoint.length)) best = { mountPoint, type };
  }
  return best;
}

/** True when `path` (or, if it does not exist yet, its nearest existing parent) is on tmpfs or ramfs. */
export function isTmpfs(path: string): boolean {
  const fs = fileSystemOf(path);
  return fs !== undefined && MEMORY_FILE_SYSTEMS.has(fs.type);
}

function existingRealPath(p: string): string {
  let cur = p;
  for (;;) {
    try {
      const real = realpathSync(cur);
      return cur === p ? real : join(real, p.slice(cur.length + 1));
    } catch {
      const up = dirname(cur);
      if (up === cur) return p;
      cur = up;
    }
  }
}

// LMDB's on-disk header (liblmdb mdb.c): page 0 holds a page header then MDB_meta.
const MDB_MAGIC = 0xbeefc0de;
const MDB_DATA_VERSION = 2;
const P_META = 0x08;
/** This build's page header: pgno (8), txnid (8), pad (2), flags (2), lower/upper (4). */
const PAGE_HEADER_BYTES = 24;
const PAGE_FLAGS_AT = 18;
const META_MAGIC_AT = PAGE_HEADER_BYTES;
const META_VERSION_AT = PAGE_HEADER_BYTES + 4;
/** mm_psize lives in mm_dbs[FREE_DBI].md_pad, after magic, version, address and map size. */
const META_PAGE_SIZE_AT = PAGE_HEADER_BYTES + 24;
/** Bytes LMDB reads for each meta page (page header + MDB_meta, rounded up generously). */
const META_READ_BYTES = 256;

/**
 * Refuse, with a message, a data file LMDB would reject (which would crash lmdb-js); undefined
 * when `dir/data.mdb` is missing, empty or has sound meta pages (its other pages are not read:
 * server/StorageInspection.ts walks them).
 */
export function checkDataFile(dir: string): { ok: false; reason: LmdbOpenFailure; message: string } | undefined {
  const file = join(dir, 'data.mdb');
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return undefined; // a new environment
    return { ok: false, reason: 'bad_directory', message: `cannot read ${file}: ${errorText(e)}` };
  }
  try {
    const size = statSync(file).size;
    if (size === 0) return undefined; // LMDB initialises an empty file as a new environment
    accessSync(file, constants.R_OK | constants.W_OK);
    const head = Buffer.alloc(META_READ_BYTES);
    const got = readSync(fd, head, 0, META_READ_BYTES, 0);
    const corrupt = (why: string) => ({ ok: false as const, reason: 'corrupt' as const, message: `${file} is not a usable LMDB file (${why}); it was left untouched: restore it from a backup or move it away` });
    if (got < META_READ_BYTES) return corrupt(`only ${size} bytes long`);
    if ((head.readUInt16LE(PAGE_FLAGS_AT) & P_META) === 0) return corrupt('page 0 is not a meta page');
    if (head.readUInt32LE(META_MAGIC_AT) !== MDB_MAGIC) return corrupt('bad magic number');
    const version = head.readUInt32LE(META_VERSION_AT) & 0xffff;
    if (version !== MDB_DATA_VERSION) {
      return { ok: false, reason: 'version_mismatch', message: `${file} has LMDB data format ${version}, this build reads ${MDB_DATA_VERSION}; it was left untouched` };
    }
    const pageSize = head.readUInt32LE(META_PAGE_SIZE_AT);
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) return corrupt(`implausible page size ${pageSize}`);
    if (readSync(fd, head, 0, META_READ_BYTES, pageSize) < META_READ_BYTES) return corrupt('second meta page missing (truncated)');
    return undefined;
  } catch (e) {
    return { ok: false, reason: 'bad_directory', message: `cannot read ${file}: ${errorText(e)}` };
  } finally {
    closeSync(fd);
  }
}
