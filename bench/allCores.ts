/**
 * Every core of one machine, measured: v1 delivery through one node process (`iris start`,
 * the single node) against one node process per core (`iris start --processes 0`: a cluster on
 * a local nats-server sharing the client ports), side by side in one run, driven by the v1 load
 * generator (bench/loadgen/) over TCP. The figure is lock-step throughput: `pairs`
 * sender→recipient pairs with one message in flight per pair (a message is sent when the
 * previous one arrived), so it measures what a message costs end to end; the pairs are the
 * generator's ring (connection i sends to connection i+1, so each connection is the sender of
 * one pair and the recipient of the next), every message delivered and acknowledged.
 * Pipelined throughput (`window` in flight per sender) is measured too. Rounds alternate between the two
 * arrangements and the best round of each counts, as in the service bench. Every run checks
 * that nothing was lost, duplicated or reordered. Last, what the processes give that one
 * process cannot: idle logged-in connections beyond one process's file-descriptor ceiling
 * (`max_connections`, 19,900 here), each process filled by its own generator process.
 *
 * `measureAllCoresVsOne` is what bench/cluster.ts reports as `all_cores_vs_one`;
 * `npm run bench -- cores` runs it alone and writes bench/results/cores.json, with the idle part:
 * 100,000 logged-in connections held by one machine over several node processes (P3).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClusterStatusBody } from '../server/ServiceCore.js';
import type { LoadgenConfig, LoadgenResult, TrafficResult } from './loadgen/types.js';
import { describeMachine, type MachineInfo } from './machine.js';
import { DEFAULT_CONFIG } from '../server/NodeConfig.js';
import { Children, holdLoadgen, rssKb, runLoadgen, startServer, type HeldLoad, type ServerHandle } from './serviceProcesses.js';

export interface AllCoresOptions {
  /** Sender→recipient pairs (default 100). */
  pairs?: number;
  /** Node processes of the all-cores arrangement (default 0: one per core). */
  processes?: number;
  /** Messages in flight per sender in the pipelined runs (default 16; 0 skips them). */
  pipelinedWindow?: number;
  msgBytes?: number;
  warmupMs?: number;
  durationMs?: number;
  /** Runs of each arrangement, alternating; the best counts (default 3). */
  rounds?: number;
  /** Extra `key=value` settings for both arrangements. */
  sets?: Record<string, string>;
  /**
   * Idle logged-in connections one machine holds in the last part (default 100,000, P3), spread
   * over as many node processes as that needs at `IDLE_PER_PROCESS` each; 0 skips it.
   */
  idleTotal?: number;
}

export interface IdleAcrossProcesses {
  processes: number;
  /** What one node process holds at most: max_connections, its fd ceiling here. */
  one_process_ceiling: number;
  offered: number;
  /** Logged-in connections the processes held (their /health), in total and each. */
  held: number;
  held_per_process: Record<string, number>;
  logins_per_s: number;
  rss_mb_per_process: Record<string, number>;
}

export interface ArrangementRun {
  delivered_per_s: number;
  p50_ms: number;
  p99_ms: number;
  /** Server CPU (every process of the arrangement) per delivered message, µs. */
  server_cpu_us_per_msg: number;
  /** Server CPU over the measured window, in cores. */
  server_cores_busy: number;
  lost: number;
  dup_or_reordered: number;
  errors: number;
}

export interface ComparedFigure {
  one_process_msgs_per_s: number;
  all_cores_msgs_per_s: number;
  /** all cores / one process: above 1, the processes give more. */
  ratio: number;
  one_process_runs: ArrangementRun[];
  all_cores_runs: ArrangementRun[];
}

export interface AllCoresResult extends ComparedFigure {
  /** What the headline figure is. */
  figure: string;
  processes: number;
  pairs: number;
  msg_bytes: number;
  pipelined: (ComparedFigure & { window: number }) | null;
  idle_connections: IdleAcrossProcesses | null;
  machine: MachineInfo;
}

const QUIET = { log_level: 'warn' };
const STATUS_TIMEOUT_MS = 60_000;

const round2 = (x: number) => Math.round(x * 100) / 100;

export async function measureAllCoresVsOne(opts: AllCoresOptions = {}): Promise<AllCoresResult> {
  const pairs = opts.pairs ?? 100;
  const processes = opts.processes ?? 0;
  const pipelinedWindow = opts.pipelinedWindow ?? 16;
  const msgBytes = opts.msgBytes ?? 128;
  const warmupMs = opts.warmupMs ?? 2_000;
  const durationMs = opts.durationMs ?? 5_000;
  const rounds = opts.rounds ?? 3;
  const sets = { ...QUIET, ...(opts.sets ?? {}) };
  const idleTotal = opts.idleTotal ?? IDLE_TOTAL;
  const log = (msg: string) => console.error(`bench cores: ${msg}`);

  const base = mkdtempSync(join(tmpdir(), 'iris-cores-bench-'));
  const dir = (name: string) => {
    const d = join(base, name);
    mkdirSync(d);
    return d;
  };
  const children = new Children();
  try {
    log('starting one node process');
    const one = await startServer(children, dir('one'), sets);
    log(`starting ${processes === 0 ? 'one node process per core' : `${processes} node processes`} (--processes ${processes})`);
    const all = await startServer(children, dir('all'), { ...sets, processes: String(processes) });
    const allPids = await waitServing(all);
    log(`the processes serve every shard group (pids ${allPids.join(', ')})`);

    let runN = 0;
    const run = async (server: ServerHandle, pids: number[], window: number): Promise<ArrangementRun> => {
      const cfg: LoadgenConfig = {
        mode: 'deliver',
        transport: 'tcp',
        host: '127.0.0.1',
        port: server.tcpPort,
        conns: pairs,
        userPrefix: `r${runN++}_`,
        window,
        msgBytes,
        warmupMs,
        durationMs,
        drainMs: 5_000,
      };
      const cpu0 = cpuMs(pids);
      const t0 = Date.now();
      const r = await runLoadgen(children, cfg);
      const cpu = cpuMs(pids) - cpu0;
      const wallMs = Date.now() - t0;
      if (r.traffic === undefined) throw new Error('load generator returned no traffic figures');
      if (r.login.failed > 0 || r.connect.failed > 0) throw new Error(`${r.connect.failed} connects and ${r.login.failed} logins failed`);
      return summary(r.traffic, cpu, wallMs);
    };
    const compare = async (window: number, label: string): Promise<ComparedFigure> => {
      const oneRuns: ArrangementRun[] = [];
      const allRuns: ArrangementRun[] = [];
      for (let i = 0; i < rounds; i++) {
        oneRuns.push(await run(one, [one.pid], window));
        log(`${label} round ${i + 1}/${rounds}: one process ${oneRuns[i]!.delivered_per_s} msgs/s`);
        allRuns.push(await run(all, allPids, window));
        log(`${label} round ${i + 1}/${rounds}: all cores ${allRuns[i]!.delivered_per_s} msgs/s`);
      }
      const best = (runs: ArrangementRun[]) => Math.max(...runs.map((x) => x.delivered_per_s));
      const oneBest = best(oneRuns);
      const allBest = best(allRuns);
      return { one_process_msgs_per_s: oneBest, all_cores_msgs_per_s: allBest, ratio: round2(allBest / oneBest), one_process_runs: oneRuns, all_cores_runs: allRuns };
    };

    const lockstep = await compare(1, `lock-step (${pairs} pairs, 1 in flight each)`);
    const pipelined = pipelinedWindow > 0 ? { window: pipelinedWindow, ...(await compare(pipelinedWindow, `pipelined (${pipelinedWindow} in flight per sender)`)) } : null;
    await children.stop(all.child, 30_000);
    await children.stop(one.child);
    const idle = idleTotal > 0 ? await idleAcrossProcesses(children, dir('idle'), idleTotal, sets, log) : null;
    return {
      figure: `v1 messages/s delivered and acknowledged, ${pairs} sender→recipient pairs (a ring of ${pairs} connections), one message in flight per pair, over TCP; best of ${rounds} alternating rounds`,
      processes: processes === 0 ? availableParallelism() : processes,
      pairs,
      msg_bytes: msgBytes,
      ...lockstep,
      pipelined,
      idle_connections: idle,
      machine: describeMachine(),
    };
  } finally {
    await children.stopAll();
    rmSync(base, { recursive: true, force: true });
  }
}

/** What one machine should hold in idle logged-in connections (P3). */
const IDLE_TOTAL = 100_000;
/**
 * Idle connections planned per node process: under max_connections (19,900, the fd ceiling)
 * with room for the listener's uneven spread (measured: 16,992 / 19,008 of 36,000 over two).
 */
const IDLE_PER_PROCESS = 15_000;
/** Each generator binds its own loopback source address (127.0.0.2, …) and ports from here up. */
const FIRST_LOCAL_PORT = 10_000;

/**
 * `total` idle logged-in connections over as many node processes (`iris start --processes N`,
 * one shared client port) as hold them at `IDLE_PER_PROCESS` each, opened by one generator
 * process per node process (each below its own 20,000 open files) from its own source address.
 */
async function idleAcrossProcesses(children: Children, dataDir: string, total: number, sets: Record<string, string>, log: (m: string) => void): Promise<IdleAcrossProcesses> {
  const processes = Math.ceil(total / IDLE_PER_PROCESS);
  // 127.0.0.1 is exempt from the per-address connection rate; the other loopback addresses are
  // not, so the rate is raised to what one generator opens (its connection cap still applies).
  const perAddress = { rate_limit_connections_per_ip_burst: String(IDLE_PER_PROCESS * 2), rate_limit_connections_per_ip_per_s: String(IDLE_PER_PROCESS * 2) };
  const server = await startServer(children, dataDir, { ...sets, ...perAddress, processes: String(processes) });
  const pids = await waitServing(server);
  const nodePids = pids.slice(1).filter((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('nodeProcess'));
  const n = nodePids.length;
  const perProcess = Math.ceil(total / n);
  if (FIRST_LOCAL_PORT + perProcess > 65_536 || n > 250) throw new Error(`${n} × ${perProcess} connections do not fit the loopback source addresses and ports`);
  log(`filling ${n} node processes with ${total} idle logged-in connections (${perProcess} per generator)`);
  const conns = (k: number) => Math.min(perProcess, total - k * perProcess);
  const held: HeldLoad[] = [];
  try {
    for (let k = 0; k < n; k++) {
      const h = holdLoadgen(children, {
        mode: 'hold',
        transport: 'tcp',
        host: '127.0.0.1',
        port: server.tcpPort,
        conns: conns(k),
        userPrefix: 'idle',
        userOffset: k * perProcess,
        localPortBase: FIRST_LOCAL_PORT,
        localAddress: `127.0.0.${k + 2}`,
      });
      held.push(h);
      await h.ready;
      log(`  generator ${k + 1}/${n}: ${conns(k)} connections logged in`);
    }
    await new Promise((r) => setTimeout(r, 1_500));
    // /health answers from the process the connection reaches (SO_REUSEPORT spreads new
    // connections by their source port): ask on a new connection each time until all answered.
    const counts: Record<string, number> = {};
    for (let i = 0; i < 100 * n && Object.keys(counts).length < n; i++) {
      const h = (await (await fetch(`http://127.0.0.1:${server.httpPort}/health`, { headers: { connection: 'close' } })).json()) as { node: string; connections: number };
      counts[h.node] = h.connections;
    }
    const rss: Record<string, number> = {};
    for (const pid of nodePids) rss[String(pid)] = Math.round(rssKb(pid) / 1024);
    const results: LoadgenResult[] = [];
    for (const h of held.splice(0)) results.push(await h.stop());
    const loginOk = results.reduce((a, r) => a + r.login.ok, 0);
    const loginMs = results.reduce((a, r) => a + r.login.ms, 0);
    return {
      processes: n,
      one_process_ceiling: DEFAULT_CONFIG.max_connections,
      offered: total,
      held: Object.values(counts).reduce((a, b) => a + b, 0),
      held_per_process: counts,
      logins_per_s: Math.round((loginOk / loginMs) * 1000),
      rss_mb_per_process: rss,
    };
  } finally {
    for (const h of held) await h.stop().catch(() => null);
    await children.stop(server.child, 30_000);
  }
}

/** `npm run bench -- cores`: the figures in the shape every bench result has. */
export async function coresBench(): Promise<object> {
  const r = await measureAllCoresVsOne();
  const idle = r.idle_connections;
  return {
    bench: 'cores',
    when: new Date().toISOString(),
    machine: r.machine,
    method: {
      figure: r.figure,
      arrangements: `one node process (iris start) against ${r.processes} node processes (iris start --processes 0: one per core, a cluster on a nats-server it starts, sharing the client ports), each a fresh data directory, log_level=warn, every other key at its default; the v1 load generator (bench/loadgen/) in its own process`,
      pipelined: r.pipelined === null ? 'not run' : `the same pairs with ${r.pipelined.window} messages in flight per sender`,
      idle: idle === null ? 'not run' : `${idle.offered} idle logged-in TCP connections to ${idle.processes} node processes (iris start --processes ${idle.processes}, one client port), opened by one generator process per node process, each from its own loopback source address (the per-address connection rate raised to ${IDLE_PER_PROCESS * 2}/s for them, as 127.0.0.1 is exempt by default); held = the sum of the processes' /health connection counts`,
      noise: 'the machine is shared with other work; the arrangements alternate in one run and the best round of each counts',
    },
    results: {
      one_process_msgs_per_s: r.one_process_msgs_per_s,
      all_cores_msgs_per_s: r.all_cores_msgs_per_s,
      pipelined_one_process_msgs_per_s: r.pipelined?.one_process_msgs_per_s ?? null,
      pipelined_all_cores_msgs_per_s: r.pipelined?.all_cores_msgs_per_s ?? null,
      idle_conns_held_one_machine: idle?.held ?? null,
      idle_processes: idle?.processes ?? null,
      idle_logins_per_s: idle?.logins_per_s ?? null,
    },
    ratios: {
      all_cores_vs_one: r.ratio,
      pipelined_all_cores_vs_one: r.pipelined?.ratio ?? null,
    },
    targets: {},
    absolute_targets: {
      idle_conns_held_one_machine: { value: idle?.held ?? null, target: IDLE_TOTAL, cmp: '>=', met: idle !== null && idle.held >= IDLE_TOTAL },
    },
    details: {
      processes: r.processes,
      pairs: r.pairs,
      msg_bytes: r.msg_bytes,
      one_process_runs: r.one_process_runs,
      all_cores_runs: r.all_cores_runs,
      pipelined: r.pipelined,
      idle_connections: idle,
    },
  };
}

function summary(t: TrafficResult, cpuMsUsed: number, wallMs: number): ArrangementRun {
  return {
    delivered_per_s: t.delivered_per_s,
    p50_ms: t.latency_ms.p50,
    p99_ms: t.latency_ms.p99,
    server_cpu_us_per_msg: t.received > 0 ? Math.round(((cpuMsUsed * 1000) / t.received) * 10) / 10 : 0,
    server_cores_busy: round2(cpuMsUsed / wallMs),
    lost: t.missing_after_drain,
    dup_or_reordered: t.dup_or_reordered,
    errors: t.errors,
  };
}

/**
 * Waits until the processes of `server` (a supervisor) serve every shard group, seen through
 * the shared HTTP port, and returns the pids of the supervisor, its node processes and its
 * nats-server.
 */
async function waitServing(server: ServerHandle): Promise<number[]> {
  const deadline = Date.now() + STATUS_TIMEOUT_MS;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${server.httpPort}/cluster/status`);
      const s = (await r.json()) as ClusterStatusBody;
      if (r.ok && s.groups.every((g) => g.owner !== null && g.head_seq !== null) && !s.safe_mode) break;
    } catch {
      // not answering yet
    }
    if (Date.now() > deadline) throw new Error(`the node processes did not serve every shard group within ${STATUS_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return [server.pid, ...childPids(server.pid)];
}

/** Every descendant of `pid` (node processes, nats-server). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  const direct = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter((x) => x !== '').map(Number);
  for (const c of direct) out.push(c, ...childPids(c));
  return out;
}

/** User + system CPU of these processes (all their threads), ms. */
function cpuMs(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    } catch {
      // exited
    }
  }
  return (ticks * 1000) / 100; // USER_HZ = 100 on Linux
}
