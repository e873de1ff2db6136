#!/usr/bin/env node
/**
 * One node process of `iris start --processes N` (server/NodeProcessSupervisor.ts forks it as
 * a node:cluster worker; it is not meant to be run by hand). It takes its configuration from
 * the supervisor over the IPC channel, starts the node (server/IrisNode.ts) and reports that it
 * listens, or why it cannot. It stops cleanly when the supervisor says so, on SIGTERM, or
 * once drained (`POST /admin/drain`: it exits and the supervisor starts it again), and
 * ignores SIGINT: a terminal's Ctrl-C reaches the whole process group, and the supervisor
 * stops its processes in order. When the supervisor dies, node:cluster ends this process as its
 * IPC channel closes.
 */
import cluster from 'node:cluster';
import type { IrisNode } from '../server/IrisNode.js';
import type { FromNodeProcess, ToNodeProcess } from '../server/NodeProcessSupervisor.js';
import { EXIT_FAILURE, EXIT_USAGE } from './exitCodes.js';

if (cluster.isPrimary || process.send === undefined) {
  console.error('iris: dist/bin/nodeProcess.js is started by `iris start --processes N`, not by hand');
  process.exit(EXIT_USAGE);
}

const tell = (m: FromNodeProcess): void => {
  process.send?.(m);
};

let node: IrisNode | null = null;
let stopping = false;

async function stop(reason: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  if (node !== null) {
    node.runtime.log.info({ reason }, 'stopping');
    await node.stop();
  }
  process.exit(0);
}

async function start(m: Extract<ToNodeProcess, { t: 'start' }>): Promise<void> {
  const { startIrisNode } = await import('../server/IrisNode.js');
  const started = await startIrisNode(m.config);
  if (!started.ok) {
    tell({ t: 'failed', message: started.message });
    console.error(`iris: node process ${m.config.node_name} cannot start: ${started.message}`);
    process.exit(EXIT_FAILURE);
  }
  node = started.node;
  tell({ t: 'up', tcpPort: node.tcpPort, httpPort: node.httpPort });
  // A drain through the admin API (the shared HTTP port reaches one process) ends it as a stop
  // does, once its shard groups and clients have moved; the supervisor starts it again.
  void node.drain.done.then(() => stop('drained'));
}

process.on('SIGINT', () => {});
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('message', (m: ToNodeProcess) => {
  if (m.t === 'start' && node === null) void start(m);
  else if (m.t === 'stop') void stop('asked by the supervisor');
});
tell({ t: 'ready' });
