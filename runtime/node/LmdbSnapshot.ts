/**
 * Reading a node's LMDB environment from outside the node's storage engine: a consistent copy of
 * the whole environment, and a read-only walk of every table. Both work while a node writes to
 * the environment, from this or another process: LMDB readers never block the writer, and the
 * copy is taken under one read transaction (LMDB's `mdb_env_copy2`, through lmdb-js's
 * `backup`), so it holds exactly the transactions committed before it started — every group's
 * applied position together with the entries it covers.
 *
 * Neither ever writes to the source environment, and opening never creates one: a directory
 * without a data file is refused. A damaged page can make LMDB abort or crash the process that
 * reads it (lmdb 3.5.6: assertion failures and segmentation faults, not error codes), so callers
 * run these in a child process (server/StorageInspection.ts) and report a crash as corruption.
 */
import { open, type Database, type RootDatabase } from 'lmdb';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { checkDataFile } from './LmdbStorage.js';

/** The file LMDB keeps an environment's data in (a directory environment). */
export const LMDB_DATA_FILE = 'data.mdb';

export type LmdbReadFailure =
  /** No data file (or an empty one) in the directory. */
  | 'missing'
  /** The data file's meta pages are not LMDB's, or LMDB refused the file. */
  | 'corrupt'
  /** The directory or file cannot be read (permissions, I/O). */
  | 'unreadable';

export type LmdbReadOnlyOpen = { ok: true; env: LmdbReadOnly } | { ok: false; reason: LmdbReadFailure; message: string };

/** An environment opened for reading only. */
export interface LmdbReadOnly {
  readonly path: string;
  /** The named tables, in LMDB's order (the names are the root database's keys). */
  tableNames(): string[];
  /** Every record of table `name`, in key order, read lazily (a damaged page may throw or crash). */
  entries(name: string): Iterable<{ key: Buffer; value: Buffer }>;
  close(): Promise<void>;
}

/** Open the environment in `dir` read-only; never creates one. */
export function openLmdbReadOnly(dir: string, maxTables: number): LmdbReadOnlyOpen {
  const opened = openRoot(dir, maxTables);
  if (!opened.ok) return opened;
  const { path, root } = opened;
  const dbs = new Map<string, Database<Buffer, Buffer>>();
  return {
    ok: true,
    env: {
      path,
      // Collect the names before opening any table: opening one inside the root's iteration
      // invalidates the iteration's read transaction. LMDB keeps each name with its C string's NUL.
      tableNames: () => [...root.getKeys({})].map((k) => Buffer.from(k as Buffer).toString('utf8').replace(/\0$/, '')),
      entries(name) {
        let db = dbs.get(name);
        if (db === undefined) {
          db = root.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary' });
          dbs.set(name, db);
        }
        return db.getRange({}) as Iterable<{ key: Buffer; value: Buffer }>;
      },
      close: () => root.close(),
    },
  };
}

function openRoot(dir: string, maxTables: number): { ok: true; path: string; root: RootDatabase<Buffer, Buffer> } | { ok: false; reason: LmdbReadFailure; message: string } {
  const path = resolve(dir);
  const present = dataFilePresent(path);
  if (!present.ok) return present;
  try {
    return { ok: true, path, root: open<Buffer, Buffer>({ path, maxDbs: maxTables, readOnly: true, noSubdir: false, encoding: 'binary', keyEncoding: 'binary' }) };
  } catch (e) {
    return { ok: false, reason: 'corrupt', message: `LMDB refused to open ${join(path, LMDB_DATA_FILE)}: ${errorText(e)}` };
  }
}

export type LmdbCopyResult = { ok: true; file: string; bytes: number } | { ok: false; reason: LmdbReadFailure | 'target_not_empty' | 'write_failed'; message: string };

/**
 * Copy the environment in `dir` to `targetDir/data.mdb` under one read transaction, compacted
 * (free pages left out, every tree walked), then fsync the copy and the directory. The target
 * directory is created if missing and must not hold a data file already.
 */
export async function copyLmdbEnvironment(dir: string, targetDir: string, maxTables: number): Promise<LmdbCopyResult> {
  const target = resolve(targetDir);
  const file = join(target, LMDB_DATA_FILE);
  try {
    mkdirSync(target, { recursive: true });
    if (readdirSync(target).includes(LMDB_DATA_FILE)) return { ok: false, reason: 'target_not_empty', message: `${file} exists already; copy into an empty directory` };
  } catch (e) {
    return { ok: false, reason: 'write_failed', message: `cannot use ${target}: ${errorText(e)}` };
  }
  const opened = openRoot(dir, maxTables);
  if (!opened.ok) return opened;
  try {
    await opened.root.backup(target, true);
  } catch (e) {
    await opened.root.close();
    return { ok: false, reason: 'write_failed', message: `copying ${opened.path} to ${file} failed: ${errorText(e)}` };
  }
  await opened.root.close();
  try {
    fsyncPath(file);
    fsyncPath(target);
    return { ok: true, file, bytes: statSync(file).size };
  } catch (e) {
    return { ok: false, reason: 'write_failed', message: `cannot make ${file} durable: ${errorText(e)}` };
  }
}

/** fsync a file or directory by path. */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function dataFilePresent(path: string): { ok: true } | { ok: false; reason: LmdbReadFailure; message: string } {
  const file = join(path, LMDB_DATA_FILE);
  try {
    if (statSync(file).size === 0) return { ok: false, reason: 'missing', message: `${file} is empty: there is no environment to read` };
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return { ok: false, reason: 'missing', message: `${file} does not exist: there is no environment to read` };
    return { ok: false, reason: 'unreadable', message: `cannot read ${file}: ${errorText(e)}` };
  }
  const bad = checkDataFile(path);
  if (bad === undefined) return { ok: true };
  return { ok: false, reason: bad.reason === 'bad_directory' ? 'unreadable' : 'corrupt', message: bad.message };
}

function errorText(e: unknown): string {
  if (e instanceof Error) return (e as Error & { code?: string }).code !== undefined ? `${(e as Error & { code?: string }).code}: ${e.message}` : e.message;
  return String(e);
}
