/**
 * The manifest of a node backup (`iris-backup.json` beside the copied `data.mdb`): which node
 * and cluster it came from, when it was taken, every shard group's applied stream position in
 * the copy, and each file's size and SHA-256, so `iris restore` can refuse a damaged or
 * incomplete backup before it touches anything. Written last and atomically: a directory
 * without a manifest is not a backup (the copy did not finish). JSON, readable by any tool.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncPath } from '../runtime/node/LmdbSnapshot.js';
import type { AppliedPosition } from './StorageInspection.js';

export const BACKUP_MANIFEST_FILE = 'iris-backup.json';
/** Bumped when the layout changes; a restore refuses a format it does not know. */
export const BACKUP_FORMAT = 1;
export const BACKUP_KIND = 'iris-node-backup';

export interface BackupFile {
  /** File name inside the backup directory. */
  name: string;
  bytes: number;
  sha256: string;
}

export interface BackupManifest {
  kind: typeof BACKUP_KIND;
  format: typeof BACKUP_FORMAT;
  /** node_name of the node backed up. */
  node: string;
  /** cluster_name, or null for a single node (no nats_servers). */
  cluster: string | null;
  /** When the copy's read transaction started (wall clock). */
  created_at: string;
  /** The data directory copied. */
  source: string;
  /** Each shard group's applied position in the copy (empty on a single node). */
  groups: Array<{ group: number; applied_seq: number; applied_msg_id: string }>;
  tables: number;
  records: number;
  /** Milliseconds the copy and its check took. */
  took_ms: number;
  files: BackupFile[];
}

export function groupsOf(positions: readonly AppliedPosition[]): BackupManifest['groups'] {
  return positions.map((p) => ({ group: p.group, applied_seq: p.seq, applied_msg_id: p.msgId }));
}

/** SHA-256 (hex) and size of a file, read as a stream. */
export function sha256File(path: string): Promise<{ sha256: string; bytes: number }> {
  return new Promise((done, fail) => {
    const h = createHash('sha256');
    let bytes = 0;
    createReadStream(path)
      .on('data', (d) => {
        h.update(d as Buffer);
        bytes += (d as Buffer).length;
      })
      .once('error', fail)
      .once('end', () => done({ sha256: h.digest('hex'), bytes }));
  });
}

/** Write the manifest into `dir` atomically and durably (temp file, fsync, rename, fsync dir). */
export function writeManifest(dir: string, m: BackupManifest): void {
  const tmp = join(dir, `${BACKUP_MANIFEST_FILE}.tmp`);
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, JSON.stringify(m, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, BACKUP_MANIFEST_FILE));
  fsyncPath(dir);
}

export type ManifestRead = { ok: true; manifest: BackupManifest } | { ok: false; reason: 'not_a_backup' | 'corrupt_backup'; message: string };

/** Read and check the shape of `dir`'s manifest. */
export function readManifest(dir: string): ManifestRead {
  const file = join(dir, BACKUP_MANIFEST_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    return { ok: false, reason: 'not_a_backup', message: code === 'ENOENT' ? `${file} does not exist: ${dir} is not a backup made by iris backup, or the backup did not finish` : `cannot read ${file}: ${(e as Error).message}` };
  }
  const bad = (why: string): ManifestRead => ({ ok: false, reason: 'corrupt_backup', message: `${file} is not a valid backup manifest (${why}); use another backup` });
  let m: Partial<BackupManifest>;
  try {
    m = JSON.parse(text) as Partial<BackupManifest>;
  } catch (e) {
    return bad(`not JSON: ${(e as Error).message}`);
  }
  if (typeof m !== 'object' || m === null || m.kind !== BACKUP_KIND) return bad(`kind is not ${BACKUP_KIND}`);
  if (m.format !== BACKUP_FORMAT) return { ok: false, reason: 'corrupt_backup', message: `${file} has backup format ${String(m.format)}; this release reads format ${BACKUP_FORMAT}: restore it with the release that made it` };
  if (typeof m.node !== 'string' || typeof m.created_at !== 'string' || !Array.isArray(m.groups) || !Array.isArray(m.files) || m.files.length === 0) return bad('fields missing');
  for (const f of m.files) {
    if (typeof f?.name !== 'string' || f.name.includes('/') || !Number.isSafeInteger(f.bytes) || typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256)) return bad('a file entry is malformed');
  }
  for (const g of m.groups) {
    if (!Number.isSafeInteger(g?.group) || !Number.isSafeInteger(g.applied_seq) || typeof g.applied_msg_id !== 'string') return bad('a group entry is malformed');
  }
  return { ok: true, manifest: m as BackupManifest };
}

/** Check every file the manifest lists: present, same size, same SHA-256. */
export async function verifyBackupFiles(dir: string, m: BackupManifest): Promise<{ ok: true } | { ok: false; message: string }> {
  for (const f of m.files) {
    const path = join(dir, f.name);
    let size: number;
    try {
      size = statSync(path).size;
    } catch (e) {
      return { ok: false, message: `${path} is missing (${(e as Error).message})` };
    }
    if (size !== f.bytes) return { ok: false, message: `${path} is ${size} bytes, the manifest says ${f.bytes} (truncated or replaced)` };
    const h = await sha256File(path);
    if (h.sha256 !== f.sha256) return { ok: false, message: `${path} has SHA-256 ${h.sha256}, the manifest says ${f.sha256} (its bytes changed since the backup)` };
  }
  return { ok: true };
}
