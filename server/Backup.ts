/**
 * Taking a backup of a node's data directory, online: the LMDB environment is copied under one
 * read transaction while the node keeps running (server/StorageInspection.ts `copyStorage`, in
 * a child process), the copy is walked (every record read, every shard group's applied
 * position decoded), hashed, and described by a manifest written last
 * (server/BackupManifest.ts). The backup is complete once the manifest exists; every file is
 * fsync'd before it is written. The node's own files are only read.
 *
 * A clustered node's copy holds each group's tables together with the stream position they
 * reflect, so a node restored from it catches up from those positions on the shard streams.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LMDB_DATA_FILE } from '../runtime/node/LmdbSnapshot.js';
import { BACKUP_FORMAT, BACKUP_KIND, groupsOf, sha256File, writeManifest, type BackupManifest } from './BackupManifest.js';
import { copyStorage, describeInspectionFailure, INSPECTION_MAX_TABLES, inspectStorage } from './StorageInspection.js';

export interface BackupRequest {
  /** The node's data directory (wal_directory). */
  dataDir: string;
  /** Where the backup goes: a directory that does not exist or is empty. */
  to: string;
  /** node_name, for the manifest. */
  node: string;
  /** cluster_name, and whether the node is configured for a cluster (nats_servers set). */
  cluster: string;
  clustered: boolean;
}

export type BackupFailure =
  /** `to` holds files already. */
  | 'target_not_empty'
  /** The data directory holds no environment. */
  | 'no_data'
  /** The copy or its check failed (the message says where; a damaged source is named). */
  | 'failed';

export type BackupResult = { ok: true; dir: string; manifest: BackupManifest } | { ok: false; reason: BackupFailure; message: string };

export async function takeBackup(req: BackupRequest): Promise<BackupResult> {
  const source = resolve(req.dataDir);
  const dir = resolve(req.to);
  const t0 = Date.now();
  try {
    if (statSync(dir).isDirectory() && readdirSync(dir).length > 0) {
      return { ok: false, reason: 'target_not_empty', message: `${dir} is not empty: back up into a new or empty directory (a backup never overwrites another)` };
    }
  } catch (e) {
    if ((e as { code?: string }).code !== 'ENOENT') return { ok: false, reason: 'failed', message: `cannot use ${dir}: ${(e as Error).message}` };
  }
  const createdAt = new Date().toISOString();
  const copied = await copyStorage(source, dir, INSPECTION_MAX_TABLES);
  if (!copied.ok) {
    if (copied.reason === 'missing') return { ok: false, reason: 'no_data', message: `nothing to back up: ${copied.message} (is --data-dir the node's wal_directory?)` };
    if (copied.reason === 'corrupt') return { ok: false, reason: 'failed', message: describeInspectionFailure(source, { ok: false, reason: 'corrupt', message: copied.message }) };
    return { ok: false, reason: 'failed', message: copied.message };
  }
  // The copy is checked, not the source: the manifest describes exactly what was written.
  const report = await inspectStorage(dir, INSPECTION_MAX_TABLES);
  if (!report.ok) {
    return { ok: false, reason: 'failed', message: `the copy in ${dir} does not read back, so no manifest was written (it is not a backup): ${describeInspectionFailure(dir, report)}` };
  }
  const hash = await sha256File(join(dir, LMDB_DATA_FILE));
  const manifest: BackupManifest = {
    kind: BACKUP_KIND,
    format: BACKUP_FORMAT,
    node: req.node,
    // A copy holding shard groups is a cluster node's, whatever the configuration given.
    cluster: req.clustered || report.groups.length > 0 ? req.cluster : null,
    created_at: createdAt,
    source,
    groups: groupsOf(report.groups),
    tables: report.tables,
    records: report.records,
    took_ms: Date.now() - t0,
    files: [{ name: LMDB_DATA_FILE, bytes: hash.bytes, sha256: hash.sha256 }],
  };
  try {
    writeManifest(dir, manifest);
  } catch (e) {
    return { ok: false, reason: 'failed', message: `cannot write the manifest in ${dir}: ${(e as Error).message}` };
  }
  return { ok: true, dir, manifest };
}
