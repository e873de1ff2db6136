#!/usr/bin/env node
/**
 * The `iris` command line. `iris start` runs a node on embedded defaults: N scheduler
 * threads (one per core) and the demo application, until SIGINT/SIGTERM, then stops the
 * applications in reverse order and the node. Bad flags get a message and exit code 2.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { startApplications } from '../actors/Application.js';
import { RuntimeNode } from '../runtime/node/RuntimeNode.js';
import { demoApplication } from './demoApplication.js';

const USAGE = `usage: iris start [--schedulers N] [--name NODE] [--heartbeat-ms MS]

  start   run a node with the demo application until interrupted
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

async function start(argv: string[]): Promise<void> {
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
  case undefined:
  case 'help':
  case '--help':
  case '-h':
    console.log(USAGE);
    break;
  default:
    fail(`unknown command '${cmd}'`);
}
