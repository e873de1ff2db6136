/**
 * `iris start` with `processes` other than 1 (`--processes N`, 0 = one per core): runs the
 * node processes of this machine as one cluster sharing the client ports, under the supervisor
 * of server/NodeProcessSupervisor.ts, prints where everything is, reports restarts, and stops
 * everything on SIGINT/SIGTERM. Exits 0 when stopped, 1 when the processes cannot start or the
 * supervisor gave up (too many restarts).
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { IrisConfig } from '../server/NodeConfig.js';
import { EXIT_FAILURE } from './exitCodes.js';

const ENTRY = fileURLToPath(new URL('./nodeProcess.js', import.meta.url));

export async function startProcesses(cfg: IrisConfig): Promise<void> {
  const { createLogger } = await import('../runtime/node/logger.js');
  const { startNodeProcesses } = await import('../server/NodeProcessSupervisor.js');
  const log = createLogger({ node: cfg.node_name, role: 'supervisor' }, cfg.log_level);
  // Signals are taken from the start: one that comes while the processes start stops them too.
  const abort = new AbortController();
  const onSignal = (signal: string) => {
    log.info({ signal }, 'stopping every node process');
    abort.abort();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  const started = await startNodeProcesses(cfg, {
    entry: ENTRY,
    cores: availableParallelism(),
    log,
    abort: abort.signal,
    onEvent: (e) => {
      switch (e.kind) {
        case 'node_exited':
          console.error(`iris: node process ${e.name} (pid ${e.pid}) exited (${e.signal ?? e.code}); ${e.restartInMs !== null ? `restarting it in ${e.restartInMs} ms` : 'too many restarts'}`);
          break;
        case 'node_restarted':
          console.error(`iris: node process ${e.name} (pid ${e.pid}) restarted`);
          break;
        case 'nats_exited':
          console.error(`iris: the local nats-server (pid ${e.pid}) exited (${e.signal ?? e.code}); restarting it`);
          break;
        case 'nats_restarted':
          console.error(`iris: the local nats-server (pid ${e.pid}) restarted`);
          break;
      }
    },
  });
  if (!started.ok) {
    if (abort.signal.aborted) process.exit(0);
    console.error(`iris: cannot start the node processes: ${started.message}`);
    process.exit(EXIT_FAILURE);
  }
  const sup = started.supervisor;
  const c = sup.config;
  const nodes = sup.nodes();
  console.error(
    `iris: ${nodes.length} node processes (${c.mode} mode) are up as one cluster '${c.cluster_name}', sharing the client ports:\n` +
      `  v1 over TCP:        ${c.host}:${sup.tcpPort}\n` +
      `  v1 over WebSocket:  ws://${c.host}:${sup.httpPort}/ws  (binary frames)\n` +
      `  health:             http://${c.host}:${sup.httpPort}/health  (answered by one of the processes)\n` +
      `  cluster status:     http://${c.host}:${sup.httpPort}/cluster/status\n` +
      (sup.nats !== null
        ? `  nats-server:        ${sup.nats.url} (pid ${sup.nats.pid}), started for these processes; JetStream R1 in ${sup.nats.dir}\n`
        : `  NATS:               ${c.nats_servers.join(', ')}\n`) +
      nodes.map((n) => `  node process:       ${n.name} (pid ${n.pid}), data in ${n.dataDir}\n`).join('') +
      `  supervisor:         pid ${process.pid}; a node process that dies is restarted (at most ${c.process_restart_intensity} restarts in ${c.process_restart_period_s} s)\n` +
      `  admin API:          http://${c.host}:${sup.httpPort}/admin/  (bearer token: ${sup.adminTokenFile ?? 'admin_token'})\n` +
      `  auth:               ${c.auth_enabled ? 'JWT (HS256) required: LOGIN is "user:token"' : 'off (dev): LOGIN is just the user name'}\n` +
      `iris: try it: node dist/bin/v1chat.js --port ${sup.tcpPort} --user alice   (see README)`,
  );
  if (abort.signal.aborted) void sup.stop();
  abort.signal.addEventListener('abort', () => void sup.stop(), { once: true });
  const end = await sup.ended;
  if (end.reason === 'gave_up') {
    console.error(`iris: gave up: ${end.message}`);
    process.exit(EXIT_FAILURE);
  }
  process.exit(0);
}
