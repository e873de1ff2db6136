#!/usr/bin/env node
/**
 * The `iris` command line. `iris start` runs a messaging node (config from defaults, a JSON
 * file, IRIS_* environment variables and flags) until SIGINT/SIGTERM; `iris token` issues and
 * revokes login tokens; `iris group` administers groups through a running node's admin API;
 * `iris node drain` takes a node out of its cluster; `iris cluster status` shows the members and
 * shard groups of a running cluster; `iris demo` runs the runtime demo application across scheduler threads. Exit codes
 * (bin/exitCodes.ts): 2 for bad flags or config (the message names the key and the fix),
 * 1 for a node that cannot start or be reached, 3 for a request the node refused.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { CONFIG_FLAG_OPTIONS, reportConfigProblems, resolveCliConfig } from './configLayers.js';
import { EXIT_FAILURE, EXIT_USAGE } from './exitCodes.js';
import { BACKUP_USAGE, backupCommand, restoreCommand } from './backupCommand.js';
import { CLUSTER_USAGE, clusterCommand } from './clusterCommand.js';
import { GROUP_USAGE, groupCommand } from './groupCommand.js';
import { NODE_USAGE, nodeCommand } from './nodeCommand.js';
import { TOKEN_USAGE, tokenCommand } from './tokenCommand.js';

/** `iris start`: resolve the config (defaults < file < environment < flags), start the node. */
async function start(argv: string[]): Promise<void> {
  // The runtime, LMDB and uWS load only for the commands that run a node: the others start fast.
  const { isTmpfs } = await import('../runtime/node/LmdbStorage.js');
  const { startIrisNode } = await import('../server/IrisNode.js');
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        ...CONFIG_FLAG_OPTIONS,
        mode: { type: 'string' },
        port: { type: 'string' },
        'http-port': { type: 'string' },
        data: { type: 'string' },
        host: { type: 'string' },
        name: { type: 'string' },
        join: { type: 'string', multiple: true },
        processes: { type: 'string' },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  // --join may be repeated, each one URL or a comma-separated list.
  const join = values['join'];
  if (Array.isArray(join)) values['join'] = join.join(',');
  // --processes N is `processes` (bin/startProcesses.ts runs them).
  if (typeof values['processes'] === 'string') values['set'] = [`processes=${values['processes']}`, ...((values['set'] as string[] | undefined) ?? [])];
  const shortcuts = [['mode', 'mode'], ['port', 'port'], ['http-port', 'http_port'], ['data', 'wal_directory'], ['host', 'host'], ['name', 'node_name'], ['join', 'nats_servers']] as const;
  const resolved = resolveCliConfig(values, shortcuts, isTmpfs);
  if (!resolved.ok) process.exit(reportConfigProblems(resolved.problems));
  const cfg = resolved.config;
  for (const w of resolved.warnings) console.error(`iris: WARNING: ${w}`);
  if (cfg.processes !== 1) return (await import('./startProcesses.js')).startProcesses(cfg);
  const started = await startIrisNode(cfg);
  if (!started.ok) {
    console.error(`iris: cannot start: ${started.message}`);
    process.exit(EXIT_FAILURE);
  }
  const node = started.node;
  console.error(
    `iris: node ${cfg.node_name} (${cfg.mode} mode) is up.\n` +
      `  v1 over TCP:        ${cfg.host}:${node.tcpPort}\n` +
      `  v1 over WebSocket:  ws://${cfg.host}:${node.httpPort}/ws  (binary frames)\n` +
      `  health:             http://${cfg.host}:${node.httpPort}/health\n` +
      (cfg.nats_servers.length > 0
        ? `  cluster:            ${cfg.cluster_name} over NATS ${cfg.nats_servers.join(', ')} as ${cfg.roles.join('+')} (expected nodes: ${cfg.expected_cluster_nodes}); status at http://${cfg.host}:${node.httpPort}/cluster/status\n`
        : '') +
      `  admin API:          http://${cfg.host}:${node.httpPort}/admin/  (bearer token: ${node.adminTokenFile ?? 'admin_token'})\n` +
      `  browser origins:    ${cfg.ws_allowed_origins.length === 0 ? 'none: only clients that send no Origin (set ws_allowed_origins)' : cfg.ws_allowed_origins.join(', ')}\n` +
      `  data:               ${cfg.wal_directory}\n` +
      `  auth:               ${cfg.auth_enabled ? 'JWT (HS256) required: LOGIN is "user:token"' : 'off (dev): LOGIN is just the user name'}\n` +
      `iris: try it: node dist/bin/v1chat.js --port ${node.tcpPort} --user alice   (see README)`,
  );
  // A stop signal drains a cluster node first when the cluster can spare it (server/IrisNode.ts
  // shutdown); a second signal stops at once. A drain started through the admin API ends the
  // process the same way once it is done.
  let signals = 0;
  const onSignal = async (signal: string) => {
    signals++;
    node.runtime.log.info({ signal }, signals === 1 ? 'stopping' : 'stopping now (second signal)');
    await (signals === 1 ? node.shutdown() : node.stop());
    process.exit(0);
  };
  process.on('SIGINT', () => void onSignal('SIGINT'));
  process.on('SIGTERM', () => void onSignal('SIGTERM'));
  void node.drain.done.then(async () => {
    await node.stop();
    console.error(`iris: node ${cfg.node_name} was drained and has left the cluster`);
    process.exit(0);
  });
}

const USAGE = `usage: iris <command> [flags]

  start   run a messaging node until interrupted (SIGINT/SIGTERM stop it cleanly; a cluster
          node drains first when the cluster can spare it, a second signal stops at once)
          --config FILE      JSON config file (keys as in docs/configuration.md)
          --mode dev|production
          --port N           raw TCP port for v1 clients (default 8085)
          --http-port N      WebSocket /ws and HTTP port (default 8086)
          --data DIR         storage directory, wal_directory (default ./data)
          --host ADDR        bind address (dev mode: loopback only)
          --name NODE        node name, node_name (unique in a cluster)
          --join URL         join a cluster through these NATS servers, nats_servers
                             (nats://host:port; repeat it or separate with commas)
          --processes N      run N node processes as one cluster sharing the client
                             ports, supervised (0 = one per core; default 1)
          --set key=value    any other config key (repeatable)
          Environment: IRIS_<KEY> for any key, e.g. IRIS_JWT_SECRET.
${TOKEN_USAGE}
${GROUP_USAGE}
${NODE_USAGE}
${CLUSTER_USAGE}
${BACKUP_USAGE}
  demo    run the runtime demo application (supervised processes across threads)
          --schedulers N     scheduler threads in total (default: cores = ${availableParallelism()})
          --name NODE        node name used in pids (default iris@local)
          --heartbeat-ms MS  demo heartbeat period (default 5000)`;

function fail(msg: string): never {
  console.error(`iris: ${msg}\n\n${USAGE}`);
  process.exit(EXIT_USAGE);
}

function positiveInt(flag: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) fail(`${flag} must be a whole number >= 1 (got '${v}')`);
  return n;
}

async function demo(argv: string[]): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { schedulers: { type: 'string' }, name: { type: 'string' }, 'heartbeat-ms': { type: 'string' } },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  const schedulers = positiveInt('--schedulers', values['schedulers'] as string | undefined, availableParallelism());
  const heartbeatMs = positiveInt('--heartbeat-ms', values['heartbeat-ms'] as string | undefined, 5000);
  const { RuntimeNode } = await import('../runtime/node/RuntimeNode.js');
  const { startApplications } = await import('../actors/Application.js');
  const { demoApplication } = await import('./demoApplication.js');
  const node = await RuntimeNode.start({ schedulers, name: (values['name'] as string | undefined) ?? 'iris@local' });
  const started = await startApplications([demoApplication({ schedulers, heartbeatMs })], node.main);
  if (!started.ok) {
    node.log.error({ result: started }, 'application failed to start');
    await node.stop();
    process.exit(1);
  }
  const running = started.running;
  console.error(
    `iris: node ${node.name} running ${schedulers} scheduler(s), applications: ${running.startOrder.join(', ')}.\n` +
      `iris: logs are JSON on stdout (IRIS_LOG_LEVEL=debug for more); Ctrl-C stops the node.`,
  );
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    node.log.info({ signal }, 'stopping');
    await running.stop();
    await node.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  const t = await running.terminated;
  if (!stopping) {
    node.log.error({ termination: t }, 'applications terminated');
    await node.stop();
    process.exit(1);
  }
}

const [cmd, ...rest] = process.argv.slice(2);
switch (cmd) {
  case 'start':
    await start(rest);
    break;
  case 'demo':
    await demo(rest);
    break;
  case 'token':
    process.exitCode = await tokenCommand(rest);
    break;
  case 'group':
    process.exitCode = await groupCommand(rest);
    break;
  case 'node':
    process.exitCode = await nodeCommand(rest);
    break;
  case 'cluster':
    process.exitCode = await clusterCommand(rest);
    break;
  case 'backup':
    process.exitCode = await backupCommand(rest);
    break;
  case 'restore':
    process.exitCode = await restoreCommand(rest);
    break;
  case undefined:
  case 'help':
  case '--help':
  case '-h':
    console.log(USAGE);
    break;
  default:
    fail(`unknown command '${cmd}'`);
}
