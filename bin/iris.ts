#!/usr/bin/env node
/**
 * The `iris` command line. `iris start` runs a messaging node (config from defaults, a JSON
 * file, IRIS_* environment variables and flags) until SIGINT/SIGTERM; `iris demo` runs the
 * runtime demo application across scheduler threads. Bad flags or config get a message
 * naming the key and exit code 2; a node that cannot start exits 1.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { startApplications } from '../actors/Application.js';
import { RuntimeNode } from '../runtime/node/RuntimeNode.js';
import { demoApplication } from './demoApplication.js';
import { readFileSync } from 'node:fs';
import { layerFromEnv, resolveConfig, type RawLayer } from '../server/NodeConfig.js';
import { isTmpfs } from '../runtime/node/LmdbStorage.js';
import { startIrisNode } from '../server/IrisNode.js';

/** `iris start`: resolve the config (defaults < file < environment < flags), start the node. */
async function start(argv: string[]): Promise<void> {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        mode: { type: 'string' },
        port: { type: 'string' },
        'http-port': { type: 'string' },
        data: { type: 'string' },
        host: { type: 'string' },
        set: { type: 'string', multiple: true },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  const layers: Array<[string, RawLayer]> = [];
  const file = values['config'] as string | undefined;
  if (file !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      fail(`--config ${file}: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail(`--config ${file}: must hold a JSON object of config keys`);
    layers.push([file, parsed as RawLayer]);
  }
  layers.push(['environment', layerFromEnv(process.env)]);
  const flags: RawLayer = {};
  const flagKeys: Array<[string, string]> = [['mode', 'mode'], ['port', 'port'], ['http-port', 'http_port'], ['data', 'wal_directory'], ['host', 'host']];
  for (const [flag, key] of flagKeys) if (values[flag] !== undefined) flags[key] = values[flag];
  for (const kv of (values['set'] as string[] | undefined) ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) fail(`--set ${kv}: expected key=value`);
    flags[kv.slice(0, i)] = kv.slice(i + 1);
  }
  layers.push(['flags', flags]);
  const resolved = resolveConfig(layers, isTmpfs);
  if (!resolved.ok) {
    console.error('iris: the configuration is not valid:');
    for (const p of resolved.problems) console.error(`  - ${p.message}`);
    process.exit(2);
  }
  const cfg = resolved.config;
  for (const w of resolved.warnings) console.error(`iris: WARNING: ${w}`);
  const started = await startIrisNode(cfg);
  if (!started.ok) {
    console.error(`iris: cannot start: ${started.message}`);
    process.exit(1);
  }
  const node = started.node;
  console.error(
    `iris: node ${cfg.node_name} (${cfg.mode} mode) is up.\n` +
      `  v1 over TCP:        ${cfg.host}:${node.tcpPort}\n` +
      `  v1 over WebSocket:  ws://${cfg.host}:${node.httpPort}/ws  (binary frames)\n` +
      `  health:             http://${cfg.host}:${node.httpPort}/health\n` +
      `  browser origins:    ${cfg.ws_allowed_origins.length === 0 ? 'none: only clients that send no Origin (set ws_allowed_origins)' : cfg.ws_allowed_origins.join(', ')}\n` +
      `  data:               ${cfg.wal_directory}\n` +
      `  auth:               ${cfg.auth_enabled ? 'JWT (HS256) required: LOGIN is "user:token"' : 'off (dev): LOGIN is just the user name'}\n` +
      `iris: try it: node dist/bin/v1chat.js --port ${node.tcpPort} --user alice   (see README)`,
  );
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    node.runtime.log.info({ signal }, 'stopping');
    await node.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

const USAGE = `usage: iris <command> [flags]

  start   run a messaging node until interrupted (SIGINT/SIGTERM stop it cleanly)
          --config FILE      JSON config file (keys as in docs/configuration.md)
          --mode dev|production
          --port N           raw TCP port for v1 clients (default 8085)
          --http-port N      WebSocket /ws and HTTP port (default 8086)
          --data DIR         storage directory, wal_directory (default ./data)
          --host ADDR        bind address (dev mode: loopback only)
          --set key=value    any other config key (repeatable)
          Environment: IRIS_<KEY> for any key, e.g. IRIS_JWT_SECRET.
  demo    run the runtime demo application (supervised processes across threads)
          --schedulers N     scheduler threads in total (default: cores = ${availableParallelism()})
          --name NODE        node name used in pids (default iris@local)
          --heartbeat-ms MS  demo heartbeat period (default 5000)`;

function fail(msg: string): never {
  console.error(`iris: ${msg}\n\n${USAGE}`);
  process.exit(2);
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
  case undefined:
  case 'help':
  case '--help':
  case '-h':
    console.log(USAGE);
    break;
  default:
    fail(`unknown command '${cmd}'`);
}
