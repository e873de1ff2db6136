/**
 * Restoring a node's data directory from a backup (server/Backup.ts). Before anything is
 * written the manifest is read and every file's size and SHA-256 checked: a damaged or
 * incomplete backup is refused. The target must be empty (or missing); with `force`, the
 * LMDB files already there are moved aside into `<dir>/replaced-<time>/`, never deleted, and
 * only after checking that no process has the environment open. The data file is copied under
 * a temporary name, hashed while copied, fsync'd, renamed into place and the directory
 * fsync'd; then the restored environment is walked like at node start.
 *
 * What happens next is the node's: a single node serves what the backup held; a cluster node's
 * replicas catch up on each shard stream from the applied position restored with the group's
 * tables (core/cluster/GroupReplica.ts), or refuse the group if the stream no longer holds the
 * entries after it.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fsyncPath, LMDB_DATA_FILE } from '../runtime/node/LmdbSnapshot.js';
import { readManifest, verifyBackupFiles, type BackupManifest } from './BackupManifest.js';
import { describeInspectionFailure, INSPECTION_MAX_TABLES, inspectStorage, type InspectionReport } from './StorageInspection.js';

/** LMDB's lock file beside the data file. */
const LMDB_LOCK_FILE = 'lock.mdb';
/** What `force` moves aside: the environment's files. Other files (the admin token) stay. */
const ENVIRONMENT_FILES = [LMDB_DATA_FILE, LMDB_LOCK_FILE];
const COPY_CHUNK_BYTES = 1 << 20;

export interface RestoreRequest {
  /** The backup directory (holds iris-backup.json). */
  from: string;
  /** The node's data directory (wal_directory) to restore into. */
  dataDir: string;
  /** Restore into a directory that holds files: move its LMDB files aside first. */
  force: boolean;
}

export type RestoreFailure =
  /** No manifest: not a backup, or one that never finished. */
  | 'not_a_backup'
  /** The manifest or a file does not check out. */
  | 'corrupt_backup'
  /** The data directory holds files and `force` was not given. */
  | 'target_not_empty'
  /** A process (a running node) has the environment open. */
  | 'target_in_use'
  | 'failed';

export type RestoreResult =
  | { ok: true; manifest: BackupManifest; movedAside: string | null; report: InspectionReport & { ok: true } }
  | { ok: false; reason: RestoreFailure; message: string };

export async function restoreBackup(req: RestoreRequest): Promise<RestoreResult> {
  const from = resolve(req.from);
  const dir = resolve(req.dataDir);
  const read = readManifest(from);
  if (!read.ok) return read;
  const manifest = read.manifest;
  const verified = await verifyBackupFiles(from, manifest);
  if (!verified.ok) return { ok: false, reason: 'corrupt_backup', message: `the backup in ${from} is damaged and was not restored: ${verified.message}; use another backup` };

  let entries: string[] = [];
  try {
    mkdirSync(dir, { recursive: true });
    entries = readdirSync(dir);
  } catch (e) {
    return { ok: false, reason: 'failed', message: `cannot use ${dir}: ${(e as Error).message}` };
  }
  let movedAside: string | null = null;
  if (entries.length > 0) {
    if (!req.force) {
      return { ok: false, reason: 'target_not_empty', message: `${dir} is not empty (${entries.slice(0, 5).join(', ')}${entries.length > 5 ? ', …' : ''}): restore into an empty directory, or add --force to move its LMDB files aside into ${dir}/replaced-<time>/ (nothing is deleted)` };
    }
    const holders = lockHolders(join(dir, LMDB_LOCK_FILE));
    if (holders.length > 0) return { ok: false, reason: 'target_in_use', message: `process ${holders.join(', ')} has the environment in ${dir} open: stop the node before restoring into its data directory` };
    const present = ENVIRONMENT_FILES.filter((f) => entries.includes(f));
    if (present.length > 0) {
      movedAside = join(dir, `replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`);
      try {
        mkdirSync(movedAside);
        for (const f of present) renameSync(join(dir, f), join(movedAside, f));
        fsyncPath(movedAside);
        fsyncPath(dir);
      } catch (e) {
        return { ok: false, reason: 'failed', message: `cannot move the files of ${dir} aside into ${movedAside}: ${(e as Error).message}` };
      }
    }
  }

  const file = manifest.files.find((f) => f.name === LMDB_DATA_FILE);
  if (file === undefined) return { ok: false, reason: 'corrupt_backup', message: `the manifest in ${from} lists no ${LMDB_DATA_FILE}; use another backup` };
  const tmp = join(dir, `${LMDB_DATA_FILE}.restoring`);
  let copied: string;
  try {
    copied = copyHashed(join(from, LMDB_DATA_FILE), tmp);
  } catch (e) {
    return { ok: false, reason: 'failed', message: `copying ${join(from, LMDB_DATA_FILE)} to ${tmp} failed: ${(e as Error).message}` };
  }
  // Hashed again while copied: the backup's bytes could have changed since they were checked.
  if (copied !== file.sha256) return { ok: false, reason: 'corrupt_backup', message: `${join(from, LMDB_DATA_FILE)} changed while it was restored (SHA-256 ${copied}, the manifest says ${file.sha256}); ${tmp} was left for inspection and the node's data file was not replaced` };
  try {
    renameSync(tmp, join(dir, LMDB_DATA_FILE));
    fsyncPath(dir);
  } catch (e) {
    return { ok: false, reason: 'failed', message: `cannot put ${LMDB_DATA_FILE} in place in ${dir}: ${(e as Error).message}` };
  }
  const report = await inspectStorage(dir, INSPECTION_MAX_TABLES);
  if (!report.ok) return { ok: false, reason: 'failed', message: `the restored environment does not read back: ${describeInspectionFailure(dir, report)}` };
  return { ok: true, manifest, movedAside, report };
}

/** Copy `src` to a new file `dst` (fsync'd); returns the SHA-256 of the bytes written. */
function copyHashed(src: string, dst: string): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
  const inFd = openSync(src, 'r');
  try {
    const outFd = openSync(dst, 'wx', 0o644);
    try {
      for (;;) {
        const n = readSync(inFd, buf, 0, buf.length, null);
        if (n === 0) break;
        const chunk = buf.subarray(0, n);
        h.update(chunk);
        for (let off = 0; off < n; ) off += writeSync(outFd, chunk, off, n - off);
      }
      fsyncSync(outFd);
    } finally {
      closeSync(outFd);
    }
  } finally {
    closeSync(inFd);
  }
  return h.digest('hex');
}

/**
 * Pids holding a POSIX lock on `lockFile` (from /proc/locks): every process with an LMDB
 * environment open keeps a read lock on its lock file. Empty when the file is missing or the
 * system has no /proc/locks.
 */
export function lockHolders(lockFile: string): number[] {
  let ino: number;
  let dev: number;
  try {
    const st = statSync(lockFile);
    ino = st.ino;
    dev = st.dev;
  } catch {
    return [];
  }
  let locks: string;
  try {
    locks = readFileSync('/proc/locks', 'utf8');
  } catch {
    return [];
  }
  const major = (dev >> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  const pids = new Set<number>();
  // e.g. "1: POSIX  ADVISORY  READ 3401 fe:00:2170913 0 0"
  for (const m of locks.matchAll(/^\d+:\s+(?:->\s+)?\S+\s+\S+\s+\S+\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/gm)) {
    if (Number(m[4]) === ino && parseInt(m[2]!, 16) === major && parseInt(m[3]!, 16) === minor) pids.add(Number(m[1]));
  }
  return [...pids];
}
