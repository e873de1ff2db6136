/**
 * `iris backup` and `iris restore`: an online backup of a node's data directory (the LMDB
 * environment copied under one read transaction while the node runs, checked, hashed, and
 * described by a manifest with every shard group's applied stream position) and its restore
 * into an empty data directory (the backup verified first; `--force` moves existing LMDB files
 * aside, never deletes them). Both read the node's configuration layers like `iris start`
 * (`--config`, IRIS_*, `--set`), so `wal_directory` and `node_name` need no flag on the node's
 * host. The work is server/Backup.ts and server/Restore.ts.
 */
import { isClustered } from '../server/NodeConfig.js';
import { CONFIG_FLAG_OPTIONS, parseFlags, reportConfigProblems, resolveCliConfig } from './configLayers.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './exitCodes.js';

export const BACKUP_USAGE = `  backup  copy a node's data directory while it runs, with a manifest (groups' stream positions, SHA-256)
          --to DIR           the backup directory (new or empty)
          --data-dir DIR     the node's data directory, wal_directory (default ./data)
          --json             print the manifest instead of a summary
          --config FILE, --set key=value, IRIS_*: as for start (node_name, cluster_name, wal_directory)
  restore put a backup into a stopped node's data directory (verified first; then start the node:
          a cluster node catches up from the shard streams)
          --from DIR         the backup directory (made by iris backup)
          --data-dir DIR     the node's data directory, wal_directory (default ./data); must be empty
          --force            restore into a directory with files: its data.mdb and lock.mdb are moved
                             into DIR/replaced-<time>/ (never deleted); refused while a node has it open
          --json             print {"manifest","moved_aside","tables","records"} instead of a summary`;

const SHORTCUTS = [['data-dir', 'wal_directory']] as const;

/** `iris backup …`; returns the exit code. */
export async function backupCommand(argv: readonly string[]): Promise<number> {
  const values = parseFlags(argv, { ...CONFIG_FLAG_OPTIONS, to: { type: 'string' }, 'data-dir': { type: 'string' }, json: { type: 'boolean' } });
  if (typeof values === 'string') return usage('backup', values);
  const to = values['to'];
  if (typeof to !== 'string' || to === '') return usage('backup', '--to is required: the directory the backup goes to (new or empty)');
  const cfg = resolveCliConfig(values, SHORTCUTS);
  if (!cfg.ok) return reportConfigProblems(cfg.problems);
  const config = cfg.config;
  const { takeBackup } = await import('../server/Backup.js');
  const r = await takeBackup({ dataDir: config.wal_directory, to, node: config.node_name, cluster: config.cluster_name, clustered: isClustered(config) });
  if (!r.ok) {
    console.error(`iris backup: ${r.message}`);
    return r.reason === 'target_not_empty' ? EXIT_USAGE : EXIT_FAILURE;
  }
  const m = r.manifest;
  if (values['json'] === true) {
    console.log(JSON.stringify(m));
    return EXIT_OK;
  }
  const f = m.files[0]!;
  console.log(
    `backup of node ${m.node}${m.cluster !== null ? ` (cluster ${m.cluster})` : ' (single node)'} in ${r.dir}, taken ${m.created_at} in ${m.took_ms} ms\n` +
      `  ${f.name}: ${f.bytes} bytes, sha256 ${f.sha256}\n` +
      `  ${m.tables} tables, ${m.records} records` +
      (m.groups.length > 0 ? `\n  shard groups (applied stream sequence): ${m.groups.map((g) => `${g.group}:${g.applied_seq}`).join(' ')}` : ''),
  );
  return EXIT_OK;
}

/** `iris restore …`; returns the exit code. */
export async function restoreCommand(argv: readonly string[]): Promise<number> {
  const values = parseFlags(argv, { ...CONFIG_FLAG_OPTIONS, from: { type: 'string' }, 'data-dir': { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' } });
  if (typeof values === 'string') return usage('restore', values);
  const from = values['from'];
  if (typeof from !== 'string' || from === '') return usage('restore', '--from is required: the backup directory (made by iris backup)');
  const cfg = resolveCliConfig(values, SHORTCUTS);
  if (!cfg.ok) return reportConfigProblems(cfg.problems);
  const dataDir = cfg.config.wal_directory;
  const { restoreBackup } = await import('../server/Restore.js');
  const r = await restoreBackup({ from, dataDir, force: values['force'] === true });
  if (!r.ok) {
    console.error(`iris restore: ${r.message}`);
    return r.reason === 'target_not_empty' ? EXIT_USAGE : EXIT_FAILURE;
  }
  const m = r.manifest;
  if (values['json'] === true) {
    console.log(JSON.stringify({ manifest: m, moved_aside: r.movedAside, tables: r.report.tables, records: r.report.records }));
    return EXIT_OK;
  }
  console.log(
    `restored the backup of node ${m.node} taken ${m.created_at} into ${dataDir} (${r.report.tables} tables, ${r.report.records} records, checked)` +
      (r.movedAside !== null ? `\n  the previous LMDB files are in ${r.movedAside}` : '') +
      (m.groups.length > 0 ? `\n  on start, each shard group catches up on its stream from: ${m.groups.map((g) => `${g.group}:${g.applied_seq}`).join(' ')}` : ''),
  );
  return EXIT_OK;
}

function usage(cmd: string, message: string): number {
  console.error(`iris ${cmd}: ${message}\n\nusage:\n${BACKUP_USAGE}`);
  return EXIT_USAGE;
}
