/**
 * Every core of one machine: `iris start --processes N` runs N node processes as one cluster
 * that shares the client ports, and supervises them.
 *
 * - **Ports.** The raw TCP port is shared through node:cluster: this process (the primary)
 *   listens and hands accepted sockets to the node processes in turn (round robin), so
 *   connections are spread evenly. The WebSocket/HTTP port is shared by the kernel:
 *   uWebSockets.js binds with SO_REUSEPORT on Linux, so every node process listens on the same
 *   port and the kernel spreads new connections over them. A port of 0 is resolved to a free
 *   port here first, so every process gets the same one.
 * - **NATS.** With `nats_servers` the processes join that cluster. Without, this process runs a
 *   local nats-server (server/LocalNatsServer.ts: loopback, a port it picks, a token, JetStream
 *   in `<wal_directory>/nats`), restarts it if it dies and stops it last.
 * - **Node processes.** Process i is `<node_name>-i` on `<wal_directory>/node-i`
 *   (server/NodeProcessConfig.ts), a node:cluster worker running bin/nodeProcess.ts, which gets
 *   its configuration over the IPC channel (secrets never appear in argv or the environment).
 *   One that dies is started again after `process_restart_backoff_ms`, doubled for each
 *   restart of it inside `process_restart_period_s` up to `process_restart_backoff_max_ms`;
 *   more than `process_restart_intensity` restarts (nats-server's included) inside the period
 *   and the supervisor gives up: it stops everything and `ended` says why, as an OTP
 *   supervisor would.
 * - **Stop.** `stop()` asks every node process to stop (each closes its listeners, leaves the
 *   cluster and closes its storage), kills one that has not exited after
 *   NODE_PROCESS_STOP_TIMEOUT_MS, then stops the nats-server. Node processes ignore SIGINT
 *   (a terminal's Ctrl-C reaches the whole process group): the supervisor stops them in order.
 *   If the supervisor itself is killed, node:cluster ends each worker when its IPC channel
 *   closes, and the next start stops a nats-server left behind.
 */
import cluster, { type Worker } from 'node:cluster';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import type { Logger } from '../runtime/Env.js';
import { ensureAdminToken } from './AdminTokenFile.js';
import { LocalNatsServer } from './LocalNatsServer.js';
import { isClustered, nodeProcessCount, type IrisConfig } from './NodeConfig.js';
import { localNatsDir, nodeProcessConfig, nodeProcessDataDir, nodeProcessName, type LocalNatsAccess } from './NodeProcessConfig.js';

/** How long a node process may take from fork to listening. */
export const NODE_PROCESS_START_TIMEOUT_MS = 60_000;
/** How long a node process may take to stop cleanly before it is killed. */
export const NODE_PROCESS_STOP_TIMEOUT_MS = 15_000;

/** What the supervisor tells a node process over IPC. */
export type ToNodeProcess = { readonly t: 'start'; readonly config: IrisConfig } | { readonly t: 'stop' };
/** What a node process tells the supervisor over IPC. */
export type FromNodeProcess =
  | { readonly t: 'ready' }
  | { readonly t: 'up'; readonly tcpPort: number; readonly httpPort: number }
  | { readonly t: 'failed'; readonly message: string };

export interface NodeProcessView {
  readonly index: number;
  readonly name: string;
  readonly dataDir: string;
  /** The live process, null while it is being restarted. */
  readonly pid: number | null;
  /** Times it was started again since the supervisor started. */
  readonly restarts: number;
}

export type SupervisorEnd = { readonly reason: 'stopped' } | { readonly reason: 'gave_up'; readonly message: string };

/** Things worth telling the operator, besides the log. */
export type SupervisorEvent =
  | { readonly kind: 'node_exited'; readonly name: string; readonly pid: number; readonly code: number | null; readonly signal: string | null; readonly restartInMs: number | null }
  | { readonly kind: 'node_restarted'; readonly name: string; readonly pid: number }
  | { readonly kind: 'nats_exited'; readonly pid: number; readonly code: number | null; readonly signal: string | null }
  | { readonly kind: 'nats_restarted'; readonly pid: number };

export interface NodeProcessSupervisor {
  /** The command's configuration. */
  readonly config: IrisConfig;
  readonly tcpPort: number;
  readonly httpPort: number;
  /** The nats-server this supervisor runs; null when the processes joined nats_servers. */
  readonly nats: { readonly url: string; readonly pid: number; readonly dir: string } | null;
  /** Where the shared admin token is kept; null when it is the config key admin_token. */
  readonly adminTokenFile: string | null;
  nodes(): NodeProcessView[];
  /** Resolves once the supervisor stopped everything, asked to or giving up. */
  readonly ended: Promise<SupervisorEnd>;
  stop(): Promise<void>;
}

export interface NodeProcessSupervisorOptions {
  /** The node process's entry script (dist/bin/nodeProcess.js). */
  readonly entry: string;
  /** Cores of this machine, for processes = 0. */
  readonly cores: number;
  readonly log: Logger;
  readonly onEvent?: (e: SupervisorEvent) => void;
  /** Aborted (a signal) while starting: everything started so far is stopped and the start fails. */
  readonly abort?: AbortSignal;
}

export type StartNodeProcessesResult = { readonly ok: true; readonly supervisor: NodeProcessSupervisor } | { readonly ok: false; readonly message: string };

interface Slot {
  readonly index: number;
  readonly name: string;
  readonly config: IrisConfig;
  worker: Worker | null;
  pid: number | null;
  /** When it was restarted, for its backoff (pruned to the period). */
  restartTimes: number[];
  restarts: number;
  timer: NodeJS.Timeout | null;
}

type Started = { ok: true } | { ok: false; message: string };

export async function startNodeProcesses(config: IrisConfig, opts: NodeProcessSupervisorOptions): Promise<StartNodeProcessesResult> {
  const abortedWhileStarting = { ok: false as const, message: 'stopped while starting' };
  const count = nodeProcessCount(config, opts.cores);
  const dataDir = resolve(config.wal_directory);
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (err) {
    return { ok: false, message: `wal_directory: cannot create ${dataDir} (${(err as Error).message})` };
  }
  if (existsSync(join(dataDir, 'data.mdb'))) {
    return {
      ok: false,
      message: `wal_directory: ${dataDir} holds the storage of a single node process, which node processes (kept in ${join(dataDir, 'node-<i>')}) would not see; start them on another --data directory, or run this one with processes=1`,
    };
  }
  const adminToken = ensureAdminToken(config);
  if (!adminToken.ok) return { ok: false, message: `admin_token: ${adminToken.message}` };
  const ports = await sharedPorts(config);
  if (!ports.ok) return ports;
  const command: IrisConfig = { ...config, port: ports.tcp, http_port: ports.http };

  let nats: LocalNatsServer | null = null;
  if (!isClustered(config)) {
    const started = await LocalNatsServer.start({ binary: config.local_nats_server, dir: localNatsDir(config) });
    if (!started.ok) return started;
    nats = started.server;
    if (opts.abort?.aborted === true) {
      await nats.stop();
      return abortedWhileStarting;
    }
    opts.log.info({ url: nats.url, pid: nats.pid, dir: localNatsDir(config) }, 'local nats-server started for the node processes');
  }
  const access: LocalNatsAccess | null = nats !== null ? { url: nats.url, token: nats.token } : null;
  const slots: Slot[] = [];
  for (let i = 1; i <= count; i++) {
    slots.push({ index: i, name: nodeProcessName(config, i), config: nodeProcessConfig(command, i, adminToken.token, access), worker: null, pid: null, restartTimes: [], restarts: 0, timer: null });
  }

  cluster.schedulingPolicy = cluster.SCHED_RR;
  cluster.setupPrimary({ exec: opts.entry, args: [], silent: false });

  let phase: 'starting' | 'running' | 'stopping' = 'starting';
  /** Restarts of anything (node processes, nats-server) inside the period. */
  const restartTimes: number[] = [];
  const periodMs = config.process_restart_period_s * 1000;
  let endedResolve!: (e: SupervisorEnd) => void;
  const ended = new Promise<SupervisorEnd>((r) => (endedResolve = r));
  let stopping: Promise<void> | null = null;

  const prune = (times: number[], now: number) => {
    while (times.length > 0 && times[0]! <= now - periodMs) times.shift();
  };

  /** Fork the slot's process; resolves when it listens, or with why it could not. */
  const fork = (slot: Slot): Promise<Started> => {
    const worker = cluster.fork();
    slot.worker = worker;
    slot.pid = worker.process.pid ?? null;
    return new Promise<Started>((done) => {
      let settled = false;
      const settle = (r: Started) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        done(r);
      };
      const timer = setTimeout(() => {
        settle({ ok: false, message: `node process ${slot.name} did not listen within ${NODE_PROCESS_START_TIMEOUT_MS} ms` });
        worker.process.kill('SIGKILL');
      }, NODE_PROCESS_START_TIMEOUT_MS);
      worker.on('message', (m: FromNodeProcess) => {
        if (m.t === 'ready') send(worker, { t: 'start', config: slot.config });
        else if (m.t === 'up') settle({ ok: true });
        else if (m.t === 'failed') settle({ ok: false, message: m.message });
      });
      worker.once('exit', (code, signal) => {
        settle({ ok: false, message: `node process ${slot.name} exited (${signal ?? code}) before it listened` });
        if (slot.worker === worker) {
          slot.worker = null;
          slot.pid = null;
        }
        onNodeExit(slot, worker.process.pid ?? 0, code, signal);
      });
    });
  };

  /** Counts a restart against the intensity; false when it is one too many. */
  const mayRestart = (now: number): boolean => {
    prune(restartTimes, now);
    if (restartTimes.length >= config.process_restart_intensity) return false;
    restartTimes.push(now);
    return true;
  };

  const onNodeExit = (slot: Slot, pid: number, code: number | null, signal: string | null) => {
    if (phase !== 'running') return;
    const now = Date.now();
    if (!mayRestart(now)) {
      opts.onEvent?.({ kind: 'node_exited', name: slot.name, pid, code, signal, restartInMs: null });
      void giveUp(`node process ${slot.name} exited (${signal ?? code}) after ${config.process_restart_intensity} restarts within ${config.process_restart_period_s} s (process_restart_intensity)`);
      return;
    }
    prune(slot.restartTimes, now);
    const delay = Math.min(config.process_restart_backoff_max_ms, config.process_restart_backoff_ms * 2 ** slot.restartTimes.length);
    slot.restartTimes.push(now);
    opts.log.warn({ node: slot.name, pid, code, signal, restart_in_ms: delay }, 'node process exited; restarting it');
    opts.onEvent?.({ kind: 'node_exited', name: slot.name, pid, code, signal, restartInMs: delay });
    slot.timer = setTimeout(() => {
      slot.timer = null;
      if (phase !== 'running') return;
      slot.restarts++;
      void fork(slot).then((r) => {
        if (!r.ok || phase !== 'running' || slot.pid === null) return; // a failed start exits, and is handled there
        opts.log.info({ node: slot.name, pid: slot.pid }, 'node process restarted');
        opts.onEvent?.({ kind: 'node_restarted', name: slot.name, pid: slot.pid });
      });
    }, delay);
  };

  const watchNats = (server: LocalNatsServer) => {
    const pid = server.pid;
    void server.exited.then(async ({ code, signal }) => {
      if (phase !== 'running' || server.stopped) return;
      opts.log.error({ pid, code, signal, output: server.output() }, 'the local nats-server exited; restarting it');
      opts.onEvent?.({ kind: 'nats_exited', pid, code, signal });
      if (!mayRestart(Date.now())) {
        await giveUp(`the local nats-server exited (${signal ?? code}) after ${config.process_restart_intensity} restarts within ${config.process_restart_period_s} s (process_restart_intensity)`);
        return;
      }
      const again = await server.restart();
      if (!again.ok) {
        await giveUp(again.message);
        return;
      }
      opts.log.info({ pid: server.pid, url: server.url }, 'local nats-server restarted');
      opts.onEvent?.({ kind: 'nats_restarted', pid: server.pid });
      watchNats(server);
    });
  };

  const stopAll = async (): Promise<void> => {
    phase = 'stopping';
    for (const s of slots) {
      if (s.timer !== null) clearTimeout(s.timer);
      s.timer = null;
    }
    await Promise.all(slots.map((s) => stopWorker(s.worker)));
    await nats?.stop();
  };

  const giveUp = async (message: string) => {
    if (stopping !== null) return;
    opts.log.error({ reason: message }, 'giving up: stopping every node process');
    stopping = stopAll();
    await stopping;
    endedResolve({ reason: 'gave_up', message });
  };

  const aborted = new Promise<Started>((r) => {
    if (opts.abort?.aborted === true) r(abortedWhileStarting);
    opts.abort?.addEventListener('abort', () => r(abortedWhileStarting), { once: true });
  });
  const started = await Promise.race([Promise.all(slots.map(fork)), aborted.then((r) => [r])]);
  const failed = started.find((r): r is { ok: false; message: string } => !r.ok);
  if (failed !== undefined) {
    await stopAll();
    return { ok: false, message: failed.message };
  }
  phase = 'running';
  if (nats !== null) watchNats(nats);

  const natsView = nats;
  return {
    ok: true,
    supervisor: {
      config: command,
      tcpPort: command.port,
      httpPort: command.http_port,
      get nats() {
        return natsView !== null ? { url: natsView.url, pid: natsView.pid, dir: localNatsDir(config) } : null;
      },
      adminTokenFile: adminToken.file,
      nodes: () => slots.map((s) => ({ index: s.index, name: s.name, dataDir: nodeProcessDataDir(config, s.index), pid: s.pid, restarts: s.restarts })),
      ended,
      stop: async () => {
        if (stopping === null) {
          stopping = stopAll().then(() => endedResolve({ reason: 'stopped' }));
        }
        await stopping;
      },
    },
  };
}

function send(worker: Worker, m: ToNodeProcess): void {
  try {
    worker.send(m);
  } catch {
    // its channel closed: it is exiting, and its exit is handled
  }
}

/** Ask a node process to stop; kill it if it has not exited in time. */
async function stopWorker(worker: Worker | null): Promise<void> {
  if (worker === null || worker.isDead()) return;
  const exited = new Promise<void>((r) => worker.once('exit', () => r()));
  send(worker, { t: 'stop' });
  const timer = setTimeout(() => worker.process.kill('SIGKILL'), NODE_PROCESS_STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** The client ports every node process shares; 0 becomes a port free right now on `host`. */
async function sharedPorts(config: IrisConfig): Promise<{ ok: true; tcp: number; http: number } | { ok: false; message: string }> {
  try {
    const tcp = config.port !== 0 ? config.port : await freePort(config.host);
    let http = config.http_port !== 0 ? config.http_port : await freePort(config.host);
    while (http === tcp) http = await freePort(config.host);
    return { ok: true, tcp, http };
  } catch (err) {
    return { ok: false, message: `host: cannot find a free port on ${config.host} (${(err as Error).message}); set port and http_port` };
  }
}

function freePort(host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      s.close(() => resolvePort(port));
    });
  });
}
