/**
 * Checking and copying a node's LMDB environment safely: each runs in a child process
 * (server/storageInspectionChild.ts), because a damaged page can make LMDB abort or crash the
 * process that reads it. A crash, an LMDB error or a record that does not decode is reported as
 * `corrupt`, with a message naming the data file, the table being read, and the fix. Nothing
 * here writes to the environment inspected, deletes or "repairs" anything.
 *
 * Used at node start (server/IrisNode.ts, `verify_storage_at_start`), by `iris backup` (the copy,
 * then an inspection of the copy, whose group positions go in the manifest) and by
 * `iris restore` (an inspection of the restored copy).
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { clusterStorageTables, MAX_SHARD_GROUPS } from '../core/cluster/ShardGroups.js';
import { LMDB_DATA_FILE, type LmdbCopyResult } from '../runtime/node/LmdbSnapshot.js';

/** Tables an inspection or copy opens the environment with: enough for any node's (every group of the largest cluster). */
export const INSPECTION_MAX_TABLES = clusterStorageTables(MAX_SHARD_GROUPS);

const CHILD = new URL('./storageInspectionChild.js', import.meta.url).pathname;

/** A shard group's applied position in a copy (clustered nodes only). */
export interface AppliedPosition {
  group: number;
  seq: number;
  msgId: string;
}

export type InspectionFailure =
  /** No data file: nothing to check (a new node). */
  | 'missing'
  /** LMDB crashed, failed or returned records that do not decode: the file is damaged. */
  | 'corrupt'
  /** The file cannot be read (permissions, I/O). */
  | 'unreadable'
  /** The check itself could not run (the child did not start or failed on its own). */
  | 'check_failed';

/** What an inspection finds. */
export type InspectionReport =
  | { ok: true; tables: number; records: number; groups: AppliedPosition[] }
  | { ok: false; reason: InspectionFailure; message: string; table?: string };

/** How to put a damaged data file right (every corruption message ends with it). */
export function corruptionFix(dataDir: string): string {
  return `the file was left untouched; restore the node from a backup (iris restore --from BACKUP_DIR --data-dir ${dataDir} --force) or, on a cluster node, move ${dataDir} away and start the node with an empty directory: it re-syncs every shard group from the cluster's streams`;
}

/**
 * Walk every table of the environment in `dataDir` (every record read, keys and group positions
 * decoded). `maxTables` must be at least the tables it holds.
 */
export async function inspectStorage(dataDir: string, maxTables: number): Promise<InspectionReport> {
  const dir = resolve(dataDir);
  const r = await runChild(['inspect', dir, String(maxTables)], dir);
  if (r.ok) return r.result as InspectionReport;
  return { ok: false, reason: r.crashed ? 'corrupt' : 'check_failed', message: r.message, ...(r.table !== undefined ? { table: r.table } : {}) };
}

/** Copy the environment in `dataDir` to `targetDir/data.mdb` (one read transaction, compacted, fsync'd). */
export async function copyStorage(dataDir: string, targetDir: string, maxTables: number): Promise<LmdbCopyResult> {
  const dir = resolve(dataDir);
  const r = await runChild(['copy', dir, resolve(targetDir), String(maxTables)], dir);
  if (r.ok) return r.result as LmdbCopyResult;
  return { ok: false, reason: r.crashed ? 'corrupt' : 'write_failed', message: r.message };
}

/** The message of a failed inspection, naming the file and the fix when it is damage. */
export function describeInspectionFailure(dataDir: string, r: InspectionReport & { ok: false }): string {
  const file = join(resolve(dataDir), LMDB_DATA_FILE);
  if (r.reason !== 'corrupt') return r.message;
  return `${file} is damaged${r.table !== undefined ? ` (table ${r.table})` : ''}: ${r.message}; ${corruptionFix(resolve(dataDir))}`;
}

/** `crashed`: killed by a signal (LMDB's abort on a failed assertion, a segmentation fault). */
type ChildOutcome = { ok: true; result: unknown } | { ok: false; crashed: boolean; message: string; table?: string };

function runChild(args: string[], dir: string): Promise<ChildOutcome> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', (e) => done({ ok: false, crashed: false, message: `cannot run the storage check (${CHILD}): ${e.message}` }));
    child.once('close', (code, signal) => {
      let table: string | undefined;
      for (const line of out.split('\n')) {
        if (line === '') continue;
        let m: { t?: string; name?: string; result?: unknown };
        try {
          m = JSON.parse(line) as typeof m;
        } catch {
          continue;
        }
        if (m.t === 'table') table = m.name;
        else if (m.t === 'done' && code === 0) return done({ ok: true, result: m.result });
      }
      const detail = err.trim().split('\n').filter((l) => l !== '').slice(0, 3).join(' / ');
      const where = `${join(dir, LMDB_DATA_FILE)}${table !== undefined ? ` in table ${table}` : ''}`;
      done(
        signal !== null
          ? { ok: false, crashed: true, message: `LMDB crashed (${signal}) reading ${where}${detail !== '' ? ` (${detail})` : ''}`, ...(table !== undefined ? { table } : {}) }
          : { ok: false, crashed: false, message: `the storage check of ${where} failed (exit code ${code}${detail !== '' ? `: ${detail}` : ''})` },
      );
    });
  });
}
