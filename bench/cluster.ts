/**
 * The cluster bench (P5 across nodes, P9): 3 Iris node processes (`iris start`, production
 * defaults: timings, 16 shard groups, durability quorum) on 3 nats-servers (JetStream, R3) on
 * this machine, driven over v1 by load generator processes (bench/loadgen). In one run:
 * - delivered msgs/s with the senders on one node and their recipients on another, beside the
 *   same load on one standalone node (no NATS) and within one node of the cluster, in
 *   alternating rounds;
 * - cross-node latency at half (a quarter, a tenth) of the cross-node peak, open loop;
 * - kill -9 of the nats-server leading the most shard streams, under traffic: the longest pause;
 * - kill -9 of a core node owning shard groups, under traffic: until its users' writes go through;
 * - kill -9 of an edge holding 10,000 clients: until every one has logged in on another node and
 *   got back what it had not acknowledged;
 * - after the cluster is stopped, lock-step v1 through one node process against one per core
 *   (`all_cores_vs_one`, bench/allCores.ts).
 * Every process it starts is stopped by pid at the end. Writes bench/results/cluster.json.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterNames } from '../core/cluster/ClusterNames.js';
import { ShardGroups } from '../core/cluster/ShardGroups.js';
import { userKey } from '../core/UserId.js';
import { DEFAULT_CONFIG } from '../server/NodeConfig.js';
import { IrisCluster } from '../test/support/irisCluster.js';
import type { LoadgenConfig, LoadgenResult, ResumeResult, TrafficResult } from './loadgen/types.js';
import { measureAllCoresVsOne } from './allCores.js';
import { describeMachine } from './machine.js';
import { OwnershipWatch } from './ownershipWatch.js';
import { metric } from '../test/support/nodeHttp.js';
import { Children, cpuMs, listenOverflows, runLoadgen, startLoadgen, startServer } from './serviceProcesses.js';

export interface ClusterBenchOptions {
  /** Sender/recipient pairs of the throughput and latency runs (2 connections each). */
  pairs?: number;
  /** Closed loop: messages in flight per sender; each depth is run in every round (the best run counts). */
  windows?: number[];
  msgBytes?: number;
  warmupMs?: number;
  durationMs?: number;
  /** Throughput rounds (single node, cross-node, same node of the cluster, alternating); the best of each counts. */
  rounds?: number;
  /** Pairs of the open-loop runs under which a server or a node is killed. */
  killPairs?: number;
  /** Clients of the edge killed in the reconnect run, and the generator processes holding them. */
  reconnectClients?: number;
  reconnectLoadgens?: number;
}

const CLUSTER = 'bench';
/** The senders' node, the recipients' node, and the node killed (it hosts no client of the traffic runs). */
const SENDERS = 'a';
const RECIPIENTS = 'b';
const VICTIM = 'c';
const SHARD_GROUPS = DEFAULT_CONFIG.shard_groups;
const NODE_SETS = [`cluster_name=${CLUSTER}`, 'log_level=warn'];
const QUIET = { log_level: 'warn' };

/** P5 across two nodes (ms), P9 (s), and the issue's throughput ratio. */
const P5_CROSS_NODE_P99_MS = 15;
const P9_FAILOVER_S = 5;
const P9_RECONNECT_S = 10;
const CLUSTER_VS_SINGLE_TARGET = 0.5;
/** Fractions of the cross-node peak for the open-loop latency runs; the first is P5's "half of peak". */
const LATENCY_FRACTIONS = [0.5, 0.25, 0.1];
/** Fraction of the cross-node peak sent during the kill runs (a load the cluster sustains). */
const KILL_LOAD_FRACTION = 0.25;
const KILL_MIN_RATE = 500;
/** After a closed-loop window: how long messages still in flight may take to arrive (seconds each at the cluster's peak). */
const CLOSED_LOOP_DRAIN_MS = 15_000;
/** A kill happens this long into the measured window of its run. */
const KILL_AFTER_MS = 3_000;
const KILL_WINDOW_MS = 25_000;
const KILL_DRAIN_MS = 20_000;
/** A delivery gap counts as the kill's if it starts no later than this after the kill. */
const GAP_AFTER_KILL_SLACK_MS = 1_000;
/** How often a surviving node's /health is read to see the victim declared down. */
const HEALTH_POLL_MS = 50;
/** Bounds on the waits for the cluster to settle and for streams to be whole again. */
const SETTLE_MS = 180_000;
const STREAMS_WHOLE_MS = 180_000;
/** Explicit source ports for the reconnect run's first connections: below the ephemeral range. */
const LOCAL_PORT_BASE = 10_000;
const EPHEMERAL_PORTS_START = 32_768;
const LOADGEN_MAX_RUNTIME_MS = 300_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round2 = (x: number) => Math.round(x * 100) / 100;
const seconds = (ms: number) => Math.round(ms / 10) / 100;
const log = (msg: string) => console.error(`bench cluster: ${msg}`);

/** A traffic run's figures plus the generator's own CPU time. */
type Run = TrafficResult & { loadgen_cpu_ms: number };

/** A throughput run with what the servers spent on it during the measured window. */
type CostedRun = Run & {
  /** Messages in flight per sender. */
  window: number;
  /** CPU (user + system) of the server processes (Iris nodes and nats-servers) in the window, per process name. */
  server_cpu_ms: Record<string, number>;
  /** Their sum per message delivered in the window, µs. */
  server_cpu_us_per_msg: number;
  /** Cluster runs: routes and acknowledgements sent again, repeats the owners answered, shard-stream entries appended, in the window. */
  cluster?: { route_resends: number; ack_resends: number; route_dedup_hits: number; stream_entries: number; stream_entries_per_msg: number };
};

async function clusterFigures(opts: ClusterBenchOptions) {
  const pairs = opts.pairs ?? 1_000;
  const windows = opts.windows ?? [16, 4];
  const msgBytes = opts.msgBytes ?? 128;
  const warmupMs = opts.warmupMs ?? 2_000;
  const durationMs = opts.durationMs ?? 5_000;
  const rounds = opts.rounds ?? 2;
  const killPairs = opts.killPairs ?? 160;
  const reconnectClients = opts.reconnectClients ?? 10_000;
  const reconnectLoadgens = opts.reconnectLoadgens ?? 2;

  const base = mkdtempSync(join(tmpdir(), 'iris-cluster-bench-'));
  const children = new Children();
  const loadAtStart = loadavg().map(round2);
  let cluster: IrisCluster | null = null;
  let watch: OwnershipWatch | null = null;
  try {
    // --- the processes -------------------------------------------------------------------
    log('starting a standalone node, 3 nats-servers (JetStream) and 3 Iris nodes with production defaults');
    const singleDir = join(base, 'single');
    mkdirSync(singleDir);
    const single = await startServer(children, singleDir, QUIET);
    cluster = await IrisCluster.start({ timings: 'production', direct: true, sets: NODE_SETS });
    const c = cluster;
    for (const n of [SENDERS, RECIPIENTS, VICTIM]) await c.startNode(n);
    await c.waitSettled(SETTLE_MS);
    watch = await OwnershipWatch.start(c.nats.urls, CLUSTER);
    const port = (n: string) => c.node(n).tcpPort;
    const singlePids = { single: single.pid };
    const clusterPids = (): Record<string, number> => {
      const out: Record<string, number> = {};
      for (const n of c.live) out[n.name] = n.child.pid;
      for (let i = 0; i < c.nats.size; i++) out[c.nats.serverName(i)] = c.nats.pid(i)!;
      return out;
    };

    // --- throughput: single node, cross-node, same node of the cluster -------------------
    const closed = { host: '127.0.0.1', conns: 2 * pairs, msgBytes, warmupMs, durationMs, drainMs: CLOSED_LOOP_DRAIN_MS };
    const singles: CostedRun[] = [];
    const crosses: CostedRun[] = [];
    const sames: CostedRun[] = [];
    for (let r = 0; r < rounds; r++) {
      for (const window of windows) {
        const at = { ...closed, window };
        log(`round ${r + 1}/${rounds}, ${window} in flight per sender, ${pairs} pairs: standalone node`);
        singles.push(await costed(children, { ...at, ...pairsOn(single.tcpPort, single.tcpPort), userPrefix: `s${r}w${window}_` }, singlePids, null));
        log(`round ${r + 1}/${rounds}, ${window} in flight per sender: senders on node ${SENDERS}, recipients on node ${RECIPIENTS}`);
        crosses.push(await costed(children, { ...at, ...pairsOn(port(SENDERS), port(RECIPIENTS)), userPrefix: `x${r}w${window}_` }, clusterPids(), c));
        log(`round ${r + 1}/${rounds}, ${window} in flight per sender: senders and recipients on node ${SENDERS}`);
        sames.push(await costed(children, { ...at, ...pairsOn(port(SENDERS), port(SENDERS)), userPrefix: `y${r}w${window}_` }, clusterPids(), c));
      }
    }
    await children.stop(single.child);
    const best = <R extends Run>(xs: R[]): R => xs.reduce((x, y) => (y.delivered_per_s > x.delivered_per_s ? y : x));
    const byWindow = (xs: CostedRun[]) => Object.fromEntries(windows.map((w) => [w, best(xs.filter((x) => x.window === w)).delivered_per_s]));
    const singleBest = best(singles);
    const crossBest = best(crosses);
    const sameBest = best(sames);
    const crossPeak = crossBest.delivered_per_s;

    // --- cross-node latency at fractions of the cross-node peak ---------------------------
    const latency: Array<{ fraction: number; rate: number; run: Run }> = [];
    for (const fraction of LATENCY_FRACTIONS) {
      const rate = Math.max(100, Math.round(crossPeak * fraction));
      log(`cross-node latency at ${fraction} of the cross-node peak: ${rate} msgs/s open loop`);
      const run = await traffic(children, { ...closed, ...pairsOn(port(SENDERS), port(RECIPIENTS)), userPrefix: `l${Math.round(fraction * 100)}_`, rate, warmupMs: 1_000 });
      latency.push({ fraction, rate, run });
    }
    const half = latency[0]!;
    const withinP5 = latency.filter((l) => l.run.latency_ms.p99 <= P5_CROSS_NODE_P99_MS).map((l) => l.run.delivered_per_s);

    // --- the kill runs --------------------------------------------------------------------
    const killRate = Math.max(KILL_MIN_RATE, Math.round(crossPeak * KILL_LOAD_FRACTION));
    const killCfg = (prefix: string): LoadgenConfig => ({
      mode: 'deliver',
      transport: 'tcp',
      host: '127.0.0.1',
      conns: 2 * killPairs,
      msgBytes,
      shape: 'pairs',
      port: port(SENDERS),
      recipientPort: port(RECIPIENTS),
      userPrefix: prefix,
      rate: killRate,
      warmupMs: 2_000,
      durationMs: KILL_WINDOW_MS,
      drainMs: KILL_DRAIN_MS,
      trackGaps: true,
      maxRuntimeMs: LOADGEN_MAX_RUNTIME_MS,
    });

    log(`kill -9 of the nats-server leading the most shard streams, under ${killRate} msgs/s across nodes`);
    const natsLoss = await settled(() => natsServerLoss(children, c, watch!, killCfg('n_')));
    log('restarting the nats-server; waiting until every stream is whole and the cluster settled');
    const natsRecovery = await settled(async () => {
      const t0 = Date.now();
      for (let i = 0; i < c.nats.size; i++) if (!c.nats.running(i)) await c.nats.restart(i);
      const whole = await settled(() => streamsWhole(c));
      const wholeAt = Date.now();
      const behind = whole.ok ? {} : { not_whole: whole.error.split('\n')[0], streams_behind: await streamsBehind(c) };
      await c.waitSettled(SETTLE_MS);
      return { streams_whole_after_s: whole.ok ? seconds(wholeAt - t0) : null, ...behind, jetstream_usage: await jetstreamUsage(c) };
    });

    log(`kill -9 of core node ${VICTIM} (owning shard groups), under ${killRate} msgs/s from ${SENDERS} to ${RECIPIENTS}`);
    const failover = await settled(() => coreNodeFailover(children, c, watch!, killCfg('f_')));
    log(`starting node ${VICTIM} again (a new data directory); waiting until the groups are balanced`);
    await c.startNode(VICTIM);
    await balanced(c);

    log(`${reconnectClients} clients on edge ${VICTIM} over ${reconnectLoadgens} generator processes; kill -9 of ${VICTIM}`);
    const reconnect = await settled(() => edgeReconnect(children, c, watch!, reconnectClients, reconnectLoadgens));

    // --- the report -----------------------------------------------------------------------
    const ratio = round2(crossPeak / singleBest.delivered_per_s);
    const check = (value: number | null, cmp: '>=' | '<=', target: number) => ({ value, target, cmp, met: value !== null && (cmp === '>=' ? value >= target : value <= target) });
    const fo = failover.ok ? failover.value : null;
    const nl = natsLoss.ok ? natsLoss.value : null;
    const rc = reconnect.ok ? reconnect.value : null;
    const d = DEFAULT_CONFIG;
    return {
      bench: 'cluster',
      when: new Date().toISOString(),
      machine: describeMachine(),
      method: {
        processes: `3 Iris node processes (node dist/bin/iris.js start, roles edge+core, log_level=warn, every other key at its default: ${SHARD_GROUPS} shard groups, durability ${d.durability}, stream_replicas ${d.stream_replicas}, schedulers one per core) joined through 3 nats-server 2.9.10 processes (JetStream file store, routed, loopback), each node given every server's URL; one standalone node (no NATS: durability local) for the single-node figure; each load generator its own process (dist/bench/loadgen/main.js); the bench process itself only starts, kills and watches (a NATS client subscribed to the ownership notices, /health reads). All share the 2 cores, with whatever else runs on the machine (load average at start in details)`,
        throughput: `closed loop: ${pairs} pairs (${2 * pairs} TCP connections, users fresh each run), the first half send, connection i to the user of connection ${pairs}+i, ${windows.join(' or ')} messages in flight per sender (each depth in every round: the cluster collapses into resends when far more is in flight than it serves in a retry wait, so the lighter depth shows its peak), ${msgBytes}-byte payloads, every RELIABLE_MSG ACKed; ${warmupMs} ms warm-up, ${durationMs} ms measured; count = deliveries received in the window. cross-node: senders on node ${SENDERS}, recipients on node ${RECIPIENTS} (each recipient's shard group owned by any of the 3 nodes: a message goes sender's edge → owner (JetStream R3 append, standby fsync at quorum) → recipient's edge, its ACK back to the owner); same node: senders and recipients both on node ${SENDERS}; single node: both on the standalone node. ${rounds} rounds alternating single / cross / same at each depth; best of each arrangement`,
        cost: 'server_cpu_us_per_msg: CPU time (user + system, /proc/<pid>/stat) of the server processes during the measured window (cluster: the 3 Iris nodes and the 3 nats-servers; single node: the standalone node) / messages delivered in it; the load generator\'s own CPU is loadgen_cpu_ms. Cluster runs also count, over the window, routes and acknowledgements the edges sent again (iris_route_resends_total, iris_ack_resends_total), repeats the owners answered (iris_route_dedup_hits_total) and shard-stream entries appended (last sequences from the servers\' /jsz)',
        latency: `open loop (1 ms ticker, round-robin over the senders) at ${LATENCY_FRACTIONS.join(', ')} of the cross-node peak, same shape across nodes, fresh users, 1 s warm-up, ${durationMs} ms measured; latency = receipt - send time stamped in the payload (one process clock), including the generator's own delays`,
        kill_runs: `open loop at ${KILL_LOAD_FRACTION} of the cross-node peak (at least ${KILL_MIN_RATE} msgs/s) over ${killPairs} pairs, senders on ${SENDERS}, recipients on ${RECIPIENTS}; the kill comes ${KILL_AFTER_MS} ms into a ${KILL_WINDOW_MS} ms window, then up to ${KILL_DRAIN_MS} ms drain; for each recipient the generator keeps the longest gap between two deliveries; a recipient's pause = end of its gap that spans the kill - the kill (the first delivery after it, of a message sent before or after the kill); a group's = its recipients' longest; no message may be lost`,
        nats_server_loss: 'the nats-server leading the most shard streams (by the servers\' /jsz) is SIGKILLed; nats_server_loss_pause_s = longest group pause; then it is restarted and every stream is caught up before the next run',
        failover: `node ${VICTIM} (core and edge, owning shard groups, no client of the run on it) is SIGKILLed; failover_s = the longest pause among the groups it owned (kill → writes to its users accepted and delivered again); detection = node ${SENDERS}'s /health node_count drops (polled every ${HEALTH_POLL_MS} ms); claim = the new owner's ownership notice seen on NATS; timings are the production defaults, listed under defaults`,
        reconnect: `${reconnectClients} clients logged in on node ${VICTIM} (from ${reconnectLoadgens} generator processes, so each stays far below its 20,000 open files), each sends itself 2 messages and leaves them unacknowledged once delivered; then ${VICTIM} is SIGKILLed (it also owns shard groups: their failover is inside the figure) and each client logs in again at once on node ${SENDERS} or ${RECIPIENTS} (alternating; ${'at most 2,000 connects/logins in flight per process, a refused attempt retried after 100 ms'}); reconnect_resume_s = kill → the last client has both messages back`,
        all_cores_vs_one: `after the cluster is stopped: lock-step v1 (${ALL_CORES_PAIRS} pairs, one message in flight each) through one node process against one node process per core (iris start --processes 0), ${ALL_CORES_ROUNDS} alternating rounds, best of each (bench/allCores.ts; npm run bench -- cores adds pipelined runs and 100,000 idle connections)`,
        noise: 'the machine is shared with other work; figures are from one run and vary between runs; ratios come from runs side by side in the same run',
      },
      defaults: {
        cluster_heartbeat_ms: d.cluster_heartbeat_ms,
        cluster_down_after_ms: d.cluster_down_after_ms,
        partition_grace_ms: d.partition_grace_ms,
        ownership_refresh_ms: d.ownership_refresh_ms,
        route_retry_ms: d.route_retry_ms,
        route_in_flight: d.route_in_flight,
        route_horizon_ms: d.route_horizon_ms,
        shard_groups: SHARD_GROUPS,
        durability: d.durability,
        stream_replicas: d.stream_replicas,
      },
      results: {
        cross_node_delivered_msgs_per_s: crossPeak,
        single_node_delivered_msgs_per_s: singleBest.delivered_per_s,
        cluster_same_node_delivered_msgs_per_s: sameBest.delivered_per_s,
        delivered_msgs_per_s_by_window: { single_node: byWindow(singles), cross_node: byWindow(crosses), cluster_same_node: byWindow(sames) },
        server_cpu_us_per_msg_single_node: singleBest.server_cpu_us_per_msg,
        server_cpu_us_per_msg_cross_node: crossBest.server_cpu_us_per_msg,
        server_cpu_us_per_msg_cluster_same_node: sameBest.server_cpu_us_per_msg,
        latency_load_msgs_per_s_cross_node: half.run.delivered_per_s,
        p50_ms_cross_node: half.run.latency_ms.p50,
        p99_ms_cross_node: half.run.latency_ms.p99,
        p999_ms_cross_node: half.run.latency_ms.p999,
        max_ms_cross_node: half.run.latency_ms.max,
        max_msgs_per_s_cross_node_with_p99_le_15ms: withinP5.length > 0 ? Math.max(...withinP5) : 0,
        failover_s: fo?.failover_s ?? null,
        failover_detection_s: fo?.detection_s ?? null,
        failover_claims_s: fo?.claims_s ?? null,
        failover_dominated_by: fo?.dominated_by ?? null,
        nats_server_loss_pause_s: nl?.pause_s ?? null,
        reconnect_resume_s: rc?.resume_s ?? null,
        reconnect_clients: rc?.clients ?? null,
        all_cores_vs_one: null as number | null,
      },
      ratios: {
        cluster_vs_single_node: ratio,
        cluster_same_node_vs_single_node: round2(sameBest.delivered_per_s / singleBest.delivered_per_s),
      },
      targets: { cluster_vs_single_node: CLUSTER_VS_SINGLE_TARGET },
      absolute_targets: {
        p99_ms_cross_node: check(half.run.latency_ms.p99, '<=', P5_CROSS_NODE_P99_MS),
        failover_s: check(fo?.failover_s ?? null, '<=', P9_FAILOVER_S),
        reconnect_resume_s: check(rc?.resume_s ?? null, '<=', P9_RECONNECT_S),
      },
      details: {
        load_average_at_start: loadAtStart,
        load_average_at_end: loadavg().map(round2),
        single_rounds: singles.map(trim),
        cross_node_rounds: crosses.map(trim),
        same_node_rounds: sames.map(trim),
        latency_runs: latency.map((l) => ({ fraction: l.fraction, target_rate: l.rate, ...trim(l.run) })),
        kill_rate_msgs_per_s: killRate,
        nats_server_loss: natsLoss.ok ? natsLoss.value : { error: natsLoss.error },
        nats_server_recovery: natsRecovery.ok ? natsRecovery.value : { error: natsRecovery.error },
        failover: failover.ok ? failover.value : { error: failover.error },
        reconnect: reconnect.ok ? reconnect.value : { error: reconnect.error },
        node_warnings_and_errors: nodeComplaints(c),
      },
    };
  } finally {
    await watch?.close();
    await children.stopAll();
    await cluster?.close();
    rmSync(base, { recursive: true, force: true });
  }
}

/**
 * What the nodes logged (warnings and errors) between `from` and `to` (wall ms): per node, each
 * message with its count and the first and last time after `from`, s.
 */
function nodeLog(c: IrisCluster, from: number, to: number): Record<string, Record<string, { n: number; first_s: number; last_s: number }>> {
  const out: Record<string, Record<string, { n: number; first_s: number; last_s: number }>> = {};
  c.nodes.forEach((node, i) => {
    const seen: Record<string, { n: number; first_s: number; last_s: number }> = {};
    for (const line of node.child.output().split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const r = JSON.parse(line) as { level?: number; time?: number; msg?: string; reason?: string; why?: string };
        if ((r.level ?? 0) < 40 || r.time === undefined || r.time < from || r.time > to) continue;
        const detail = r.reason ?? r.why;
        const key = `${r.level === 40 ? 'warn' : 'error'}: ${r.msg ?? '?'}${detail !== undefined ? ` (${String(detail).slice(0, 120)})` : ''}`;
        const at = seconds(r.time - from);
        const e = (seen[key] ??= { n: 0, first_s: at, last_s: at });
        e.n++;
        e.last_s = at;
      } catch {
        /* not a log record */
      }
    }
    if (Object.keys(seen).length > 0) out[`${node.name}#${i + 1}`] = seen;
  });
  return out;
}

/** Per node process (dead ones too), how many warn/error log lines of each message it wrote (log_level=warn). */
function nodeComplaints(c: IrisCluster): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  c.nodes.forEach((n, i) => {
    const counts: Record<string, number> = {};
    for (const line of n.child.output().split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const r = JSON.parse(line) as { level?: number; msg?: string; reason?: string };
        if ((r.level ?? 0) < 40) continue;
        const key = `${r.level === 40 ? 'warn' : 'error'}: ${r.msg ?? '?'}${r.reason !== undefined ? ` (${r.reason.slice(0, 120)})` : ''}`;
        counts[key] = (counts[key] ?? 0) + 1;
      } catch {
        /* not a log record */
      }
    }
    out[`${n.name}#${i + 1}${n.alive ? '' : ' (killed)'}`] = counts;
  });
  return out;
}

function pairsOn(senderPort: number, recipientPort: number): Pick<LoadgenConfig, 'mode' | 'transport' | 'port' | 'recipientPort' | 'shape'> {
  return { mode: 'deliver', transport: 'tcp', shape: 'pairs', port: senderPort, recipientPort };
}

function trim<R extends Run>(t: R): Omit<R, 'latency_sparse_us' | 'recipient_gaps'> {
  const { latency_sparse_us: _l, recipient_gaps: _g, ...rest } = t;
  return rest;
}

/**
 * A throughput run, with the CPU the server processes `pids` spent in its measured window and,
 * for a cluster run, the cluster's counters over that window.
 */
async function costed(children: Children, cfg: LoadgenConfig, pids: Record<string, number>, c: IrisCluster | null): Promise<CostedRun> {
  const lg = startLoadgen(children, cfg);
  await lg.event('measuring');
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)]));
  const k0 = c === null ? null : await clusterCounters(c);
  await sleep(cfg.durationMs!);
  const cpu = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, Math.round(cpuMs(pid) - cpu0[k]!)]));
  const k1 = c === null ? null : await clusterCounters(c);
  const run = asRun(await lg.result);
  const total = Object.values(cpu).reduce((x, y) => x + y, 0);
  const perMsg = Math.round((total * 1000) / Math.max(1, run.received_in_window));
  const out: CostedRun = { ...run, window: cfg.window!, server_cpu_ms: cpu, server_cpu_us_per_msg: perMsg };
  if (k0 !== null && k1 !== null) {
    const entries = k1.entries - k0.entries;
    out.cluster = {
      route_resends: k1.routeResends - k0.routeResends,
      ack_resends: k1.ackResends - k0.ackResends,
      route_dedup_hits: k1.dedupHits - k0.dedupHits,
      stream_entries: entries,
      stream_entries_per_msg: Math.round((entries / Math.max(1, run.received_in_window)) * 1000) / 1000,
    };
  }
  return out;
}

/** The cluster's resend and dedup counters (summed over the live nodes) and its shard-stream entries. */
async function clusterCounters(c: IrisCluster): Promise<{ routeResends: number; ackResends: number; dedupHits: number; entries: number }> {
  let routeResends = 0;
  let ackResends = 0;
  let dedupHits = 0;
  for (const n of c.live) {
    routeResends += await metric(n.httpPort, 'iris_route_resends_total');
    ackResends += await metric(n.httpPort, 'iris_ack_resends_total');
    dedupHits += await metric(n.httpPort, 'iris_route_dedup_hits_total');
  }
  const names = clusterNames(CLUSTER);
  let entries = 0;
  for (let g = 0; g < SHARD_GROUPS; g++) {
    const views = await c.nats.streamViews(names.groupStream(g));
    entries += Math.max(0, ...views.map((v) => v.lastSeq ?? 0));
  }
  return { routeResends, ackResends, dedupHits, entries };
}

async function traffic(children: Children, cfg: LoadgenConfig): Promise<Run> {
  return asRun(await runLoadgen(children, cfg));
}

function asRun(r: LoadgenResult): Run {
  if (r.traffic === undefined) throw new Error('load generator returned no traffic figures');
  if (r.login.failed > 0 || r.connect.failed > 0) throw new Error(`traffic run: ${r.connect.failed} connects and ${r.login.failed} logins failed`);
  return { ...r.traffic, loadgen_cpu_ms: r.cpu_ms };
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: string };

/** A destructive phase's outcome, or why it failed (the report keeps the other phases). */
async function settled<T>(phase: () => Promise<T>): Promise<Settled<T>> {
  try {
    return { ok: true, value: await phase() };
  } catch (err) {
    log(`phase failed: ${String((err as Error)?.stack ?? err)}`);
    return { ok: false, error: String((err as Error)?.message ?? err) };
  }
}

// ---------------------------------------------------------------------------------------------
// Pauses seen by the recipients of a kill run

const groups = new ShardGroups(SHARD_GROUPS);
const groupOf = (user: string): number => groups.ofUser(userKey(new TextEncoder().encode(user)));

interface GroupPause {
  group: number;
  recipients: number;
  /** Longest (kill → first delivery after the gap spanning the kill) among its recipients, ms; null: one never resumed. */
  resumed_after_kill_ms: number | null;
  /** Recipients whose longest gap did not span the kill (no pause seen). */
  not_paused: number;
}

/** Per shard group, how long its recipients waited after the kill (from the run's recipient gaps). */
function groupPauses(run: Run, killWall: number): GroupPause[] {
  const by = new Map<number, GroupPause>();
  for (let g = 0; g < SHARD_GROUPS; g++) by.set(g, { group: g, recipients: 0, resumed_after_kill_ms: 0, not_paused: 0 });
  for (const [user, , start, end] of run.recipient_gaps ?? []) {
    const p = by.get(groupOf(user))!;
    p.recipients++;
    const spans = start <= killWall + GAP_AFTER_KILL_SLACK_MS && (end === null || end >= killWall);
    if (!spans) {
      p.not_paused++;
      continue;
    }
    if (end === null || p.resumed_after_kill_ms === null) p.resumed_after_kill_ms = null;
    else p.resumed_after_kill_ms = Math.max(p.resumed_after_kill_ms, end - killWall);
  }
  return [...by.values()];
}

/** Start a kill run, kill `kill()` KILL_AFTER_MS into its measured window; the run and the kill's wall time. */
async function killUnderTraffic(children: Children, cfg: LoadgenConfig, kill: () => Promise<void>): Promise<{ run: Run; killWall: number }> {
  const lg = startLoadgen(children, cfg);
  await lg.event('measuring');
  await sleep(KILL_AFTER_MS);
  const killWall = Date.now();
  await kill();
  const run = asRun(await lg.result);
  return { run, killWall };
}

function lossless(run: Run): object {
  return { sent: run.sent, received: run.received, missing_after_drain: run.missing_after_drain, dup_or_reordered: run.dup_or_reordered, duplicates: run.duplicates, reordered: run.reordered, disorder_samples: run.disorder_samples, errors: run.errors, error_reasons: run.error_reasons, rate_limited: run.rate_limited, skipped: run.skipped };
}

// ---------------------------------------------------------------------------------------------
// kill -9 of a nats-server

async function natsServerLoss(children: Children, c: IrisCluster, watch: OwnershipWatch, cfg: LoadgenConfig) {
  const names = clusterNames(CLUSTER);
  const led = new Map<number, number[]>();
  const leaders: Record<string, string | null> = {};
  for (let g = 0; g < SHARD_GROUPS; g++) {
    const l = await c.nats.streamLeader(names.groupStream(g));
    leaders[names.groupStream(g)] = l === null ? null : c.nats.serverName(l);
    if (l !== null) led.set(l, [...(led.get(l) ?? []), g]);
  }
  const ctl = await c.nats.streamLeader(names.ctlStream);
  leaders[names.ctlStream] = ctl === null ? null : c.nats.serverName(ctl);
  const [server, itsGroups] = [...led.entries()].reduce((x, y) => (y[1].length > x[1].length ? y : x));
  const usage = await jetstreamUsage(c);
  const { run, killWall } = await killUnderTraffic(children, cfg, () => c.nats.kill(server));
  const endWall = Date.now();
  const pauses = groupPauses(run, killWall);
  const worst = pauses.reduce<number | null>((m, p) => (m === null || p.resumed_after_kill_ms === null ? null : Math.max(m, p.resumed_after_kill_ms)), 0);
  const ledPauses = pauses.filter((p) => itsGroups.includes(p.group));
  const otherPauses = pauses.filter((p) => !itsGroups.includes(p.group));
  const maxOf = (ps: GroupPause[]) => ps.reduce<number | null>((m, p) => (m === null || p.resumed_after_kill_ms === null ? null : Math.max(m, p.resumed_after_kill_ms)), 0);
  const led2 = maxOf(ledPauses);
  const other = maxOf(otherPauses);
  return {
    server,
    killed_server: c.nats.serverName(server),
    stream_leaders_before: leaders,
    groups_led_by_killed_server: itsGroups,
    control_stream_led_by_killed_server: ctl === server,
    jetstream_usage_before_kill: usage,
    pause_s: worst === null ? null : seconds(worst),
    pause_s_groups_it_led: led2 === null ? null : seconds(led2),
    pause_s_other_groups: other === null ? null : seconds(other),
    group_pauses_s: Object.fromEntries(pauses.map((p) => [p.group, p.resumed_after_kill_ms === null ? null : seconds(p.resumed_after_kill_ms)])),
    recipients_without_pause: pauses.reduce((n, p) => n + p.not_paused, 0),
    ownership_changes: ownershipChanges(watch, killWall, endWall),
    node_log: nodeLog(c, killWall, endWall),
    traffic: lossless(run),
    latency_ms: run.latency_ms,
  };
}

/** Ownership records appended between `from` and `to` (wall ms), each with its delay after `from`. */
function ownershipChanges(watch: OwnershipWatch, from: number, to: number): Array<{ after_s: number; group: number; epoch: number; owner: string; reason: string }> {
  return watch.seen.filter((s) => s.at >= from && s.at <= to).map((s) => ({ after_s: seconds(s.at - from), group: s.record.group, epoch: s.record.epoch, owner: s.record.owner, reason: s.record.reason }));
}

/** The streams not caught up on every server, with each server's view (leader, last sequence, replicas current). */
async function streamsBehind(c: IrisCluster): Promise<Record<string, string[]>> {
  const names = clusterNames(CLUSTER);
  const out: Record<string, string[]> = {};
  for (const s of [names.ctlStream, ...Array.from({ length: SHARD_GROUPS }, (_, g) => names.groupStream(g))]) {
    if (await c.nats.streamCaughtUp(s)) continue;
    out[s] = (await c.nats.streamViews(s)).map((v) => `${c.nats.serverName(v.server)}: leader ${v.leader ?? '-'}, last ${v.lastSeq ?? '-'}, replicas ${v.replicas.map((r) => `${r.name}${r.current ? '' : ' (behind)'}`).join(' ')}`);
  }
  return out;
}

/** Each running nats-server's JetStream usage (its /jsz): streams' messages and bytes, its store's bytes. */
async function jetstreamUsage(c: IrisCluster): Promise<Record<string, { messages: number; bytes: number; storage: number } | null>> {
  const out: Record<string, { messages: number; bytes: number; storage: number } | null> = {};
  for (let i = 0; i < c.nats.size; i++) {
    if (!c.nats.running(i)) {
      out[c.nats.serverName(i)] = null;
      continue;
    }
    try {
      const z = (await (await fetch(`${c.nats.monitorUrl(i)}/jsz`)).json()) as { messages?: number; bytes?: number; storage?: number };
      out[c.nats.serverName(i)] = { messages: z.messages ?? 0, bytes: z.bytes ?? 0, storage: z.storage ?? 0 };
    } catch {
      out[c.nats.serverName(i)] = null;
    }
  }
  return out;
}

/**
 * Each stream of the cluster has had a leader counting every replica current and every server
 * holding all of it (checked stream by stream: a stream written meanwhile need not stand still
 * while the others are read).
 */
async function streamsWhole(c: IrisCluster): Promise<void> {
  const names = clusterNames(CLUSTER);
  const streams = [names.ctlStream, ...Array.from({ length: SHARD_GROUPS }, (_, g) => names.groupStream(g))];
  const deadline = Date.now() + STREAMS_WHOLE_MS;
  for (const s of streams) await c.waitFor(`stream ${s} caught up on every server`, () => c.nats.streamCaughtUp(s), Math.max(1, deadline - Date.now()));
}

// ---------------------------------------------------------------------------------------------
// kill -9 of a core node

async function coreNodeFailover(children: Children, c: IrisCluster, watch: OwnershipWatch, cfg: LoadgenConfig) {
  const status = await c.waitSettled(SETTLE_MS);
  const owned = status.groups.filter((g) => g.owner === VICTIM).map((g) => g.group);
  if (owned.length === 0) throw new Error(`node ${VICTIM} owns no shard group`);
  let detectedAt: number | null = null;
  let polling = true;
  let killWall = Number.MAX_SAFE_INTEGER;
  const poll = (async () => {
    for (let i = 0; polling && i < 100_000; i++) {
      const h = await c.health(SENDERS).catch(() => null);
      if (h !== null && Date.now() >= killWall && h.node_count < 3 && detectedAt === null) detectedAt = Date.now();
      await sleep(HEALTH_POLL_MS);
    }
  })();
  let run: Run;
  try {
    const r = await killUnderTraffic(children, cfg, async () => {
      killWall = Date.now();
      await c.kill(VICTIM);
    });
    run = r.run;
    killWall = r.killWall;
  } finally {
    polling = false;
    await poll;
  }
  const pauses = groupPauses(run, killWall);
  const victimPauses = pauses.filter((p) => owned.includes(p.group));
  const otherPauses = pauses.filter((p) => !owned.includes(p.group));
  const worst = (ps: GroupPause[]) => ps.reduce<number | null>((m, p) => (m === null || p.resumed_after_kill_ms === null ? null : Math.max(m, p.resumed_after_kill_ms)), 0);
  const failoverMs = worst(victimPauses);
  const claims = owned.map((g) => {
    const s = watch.firstNewOwner(g, VICTIM, killWall);
    return { group: g, claim_s: s === undefined ? null : seconds(s.at - killWall), new_owner: s?.record.owner ?? null, reason: s?.record.reason ?? null, epoch: s?.record.epoch ?? null };
  });
  const claimTimes = claims.map((x) => x.claim_s).filter((x): x is number => x !== null);
  const lastClaimS = claimTimes.length === owned.length ? Math.max(...claimTimes) : null;
  const detectionS = detectedAt === null ? null : seconds(detectedAt - killWall);
  const failoverS = failoverMs === null ? null : seconds(failoverMs);
  // Where the time went: detection (cluster_down_after_ms after the last heartbeat), the takeover
  // (catch-up, claim, marker), then the edge's resend and the recipient's session registering
  // again with the new owner (owners_changed notice, else route_retry_ms).
  const parts: Record<string, number | null> = {
    'detection (cluster_down_after_ms, cluster_heartbeat_ms)': detectionS,
    'takeover: catch-up, claim, marker (JetStream round trips)': detectionS !== null && lastClaimS !== null ? round2(lastClaimS - detectionS) : null,
    'resend and session re-registration (route_retry_ms)': lastClaimS !== null && failoverS !== null ? round2(failoverS - lastClaimS) : null,
  };
  const known = Object.entries(parts).filter((e): e is [string, number] => e[1] !== null);
  const dominated = known.length > 0 ? known.reduce((x, y) => (y[1] > x[1] ? y : x))[0] : null;
  return {
    victim: VICTIM,
    groups_owned: owned,
    failover_s: failoverS,
    detection_s: detectionS,
    claims_s: lastClaimS,
    claims,
    breakdown_s: parts,
    dominated_by: dominated,
    group_pauses_s: Object.fromEntries(victimPauses.map((p) => [p.group, p.resumed_after_kill_ms === null ? null : seconds(p.resumed_after_kill_ms)])),
    other_groups_longest_pause_s: (() => {
      const o = worst(otherPauses);
      return o === null ? null : seconds(o);
    })(),
    victim_groups_without_recipients: victimPauses.filter((p) => p.recipients === 0).map((p) => p.group),
    node_log: nodeLog(c, killWall, Date.now()),
    traffic: lossless(run),
    latency_ms: run.latency_ms,
  };
}

/** The cluster settled with every live node owning its share of the groups (after a node joined). */
async function balanced(c: IrisCluster): Promise<void> {
  await c.waitFor('every node owning its share of the shard groups', async () => {
    const s = await c.waitSettled(SETTLE_MS).catch(() => null);
    if (s === null) return false;
    const floor = Math.floor(SHARD_GROUPS / c.live.length);
    return c.live.every((n) => s.groups.filter((g) => g.owner === n.name).length >= floor) && s.groups.every((g) => g.successor === null);
  }, SETTLE_MS);
}

// ---------------------------------------------------------------------------------------------
// kill -9 of an edge holding many clients

async function edgeReconnect(children: Children, c: IrisCluster, watch: OwnershipWatch, clients: number, loadgens: number) {
  const status = await c.waitSettled(SETTLE_MS);
  const owned = status.groups.filter((g) => g.owner === VICTIM).map((g) => g.group);
  const per = Math.ceil(clients / loadgens);
  const runs = [];
  for (let k = 0; k < loadgens; k++) {
    const conns = Math.min(per, clients - k * per);
    if (conns <= 0) break;
    const portBase = LOCAL_PORT_BASE + k * (per + 500);
    runs.push(
      startLoadgen(children, {
        mode: 'resume',
        transport: 'tcp',
        host: '127.0.0.1',
        port: c.node(VICTIM).tcpPort,
        conns,
        userPrefix: 'r_',
        userOffset: k * per,
        unacked: 2,
        reconnectPorts: [c.node(SENDERS).tcpPort, c.node(RECIPIENTS).tcpPort],
        localPortBase: portBase + per + 500 <= EPHEMERAL_PORTS_START ? portBase : 0,
        maxRuntimeMs: LOADGEN_MAX_RUNTIME_MS,
      }),
    );
  }
  const primed = await Promise.all(runs.map((r) => r.event('primed')));
  const primedClients = primed.reduce((n, e) => n + Number(e['primed']), 0);
  if (primedClients !== clients) log(`only ${primedClients} of ${clients} clients had both messages within the priming deadline; killing ${VICTIM} anyway`);
  // The surviving servers' CPU from the kill until every generator reported.
  const pids: Record<string, number> = {};
  for (const n of c.live) if (n.name !== VICTIM) pids[n.name] = n.child.pid;
  for (let i = 0; i < c.nats.size; i++) if (c.nats.running(i)) pids[c.nats.serverName(i)] = c.nats.pid(i)!;
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)]));
  const overflows0 = listenOverflows();
  const killWall = Date.now();
  await c.kill(VICTIM);
  const results = await Promise.all(runs.map((r) => r.result));
  const endWall = Date.now();
  const overflows = listenOverflows() - overflows0;
  const serverCpuS = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, seconds(cpuMs(pid) - cpu0[k]!)]));
  const res = results.map((r) => r.resume).filter((r): r is ResumeResult => r !== undefined);
  const logins = res.flatMap((r) => r.login_wall_ms).sort((x, y) => x - y);
  const resumed = res.flatMap((r) => r.resumed_wall_ms).sort((x, y) => x - y);
  const sum = (f: (r: ResumeResult) => number) => res.reduce((n, r) => n + f(r), 0);
  const pct = (xs: number[], p: number) => (xs.length === 0 ? null : seconds(xs[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]! - killWall));
  const all = resumed.length >= primedClients;
  const claims = owned.map((g) => {
    const s = watch.firstNewOwner(g, VICTIM, killWall);
    return s === undefined ? null : seconds(s.at - killWall);
  });
  return {
    edge: VICTIM,
    clients,
    primed: primedClients,
    generators: res.length,
    groups_owned_by_edge: owned,
    its_groups_claimed_after_s: claims,
    resume_s: all ? pct(resumed, 100) : null,
    resumed: resumed.length,
    resume_p50_s: pct(resumed, 50),
    resume_p99_s: pct(resumed, 99),
    logged_in_again: logins.length,
    login_p50_s: pct(logins, 50),
    login_p99_s: pct(logins, 99),
    login_last_s: pct(logins, 100),
    closed_seen_after_s: res.map((r) => (r.last_close_wall_ms === null ? null : seconds(r.last_close_wall_ms - killWall))),
    prime_ms: res.map((r) => r.prime_ms),
    duplicates: sum((r) => r.duplicates),
    unexpected: sum((r) => r.unexpected),
    retries: sum((r) => r.retries),
    errors: sum((r) => r.errors),
    error_reasons: [...new Set(res.flatMap((r) => r.error_reasons))],
    server_cpu_s_kill_to_end: serverCpuS,
    kernel_listen_overflows: overflows,
    kill_to_end_s: seconds(endWall - killWall),
    generator_cpu_ms: results.map((r) => r.cpu_ms),
    generator_rss_mb: results.map((r) => r.rss_mb),
    node_log: nodeLog(c, killWall, endWall),
  };
}


/** Lock-step pairs and rounds of the all-cores figure (`all_cores_vs_one`). */
const ALL_CORES_PAIRS = 100;
const ALL_CORES_ROUNDS = 2;

/** `npm run bench -- cluster`: the cluster's figures, then one process against one per core. */
export async function clusterBench(opts: ClusterBenchOptions = {}): Promise<object> {
  const report = await clusterFigures(opts);
  console.error('bench cluster: all cores vs one (lock-step, the cluster stopped)');
  const cores = await measureAllCoresVsOne({ pairs: ALL_CORES_PAIRS, rounds: ALL_CORES_ROUNDS, pipelinedWindow: 0, idleTotal: 0 });
  report.results.all_cores_vs_one = cores.ratio;
  return {
    ...report,
    ratios: { ...report.ratios, all_cores_vs_one: cores.ratio },
    details: {
      ...report.details,
      all_cores: { processes: cores.processes, one_process_msgs_per_s: cores.one_process_msgs_per_s, all_cores_msgs_per_s: cores.all_cores_msgs_per_s, one_process_runs: cores.one_process_runs, all_cores_runs: cores.all_cores_runs },
    },
  };
}
