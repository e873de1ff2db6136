/**
 * `npm run sim -- …`: replay one seed (`--seed 0x2a`), run many (`--seeds 500 [--from 1]`),
 * or run a scenario given as JSON (`--scenario '{…}'`); `--canary <name>` plants a bug,
 * `--replay` runs each seed twice and compares trace hashes, `--trace` writes the trace file
 * even when the run passes. `--nodes N` and/or `--nats M` run the cluster simulation instead
 * (N Iris nodes running the clustered core, M NATS servers; each seed draws the rest);
 * `--workload v1` drives it with v1 clients on the nodes' edges (implies the cluster).
 * Exit 0 when every run passes, 1 when one fails, 2 on bad flags.
 */
import { CANARY_NAMES, CLUSTER_CANARY_NAMES, NODE_CANARY_NAMES, type CanaryName } from '../core/Canaries.js';
import { CLUSTER_WORKLOADS, clusterScenarioFromSeed, parseClusterScenario, type ClusterScenario, type ClusterScenarioShape, type ClusterWorkloadKind } from './ClusterScenario.js';
import { runClusterScenario } from './ClusterSimulation.js';
import { describeClusterFailure, describeFailure, seedHex, writeClusterTraceFile, writeTraceFile } from './Report.js';
import { replayCheck, replayClusterCheck } from './Replay.js';
import { parseScenario, scenarioFromSeed, type Scenario } from './Scenario.js';
import { runScenario } from './Simulation.js';

const USAGE = `usage: npm run sim -- [--nodes <N>] [--nats <M>] [--workload core|v1] [--seed <n|0xhex> | --seeds <count> [--from <n>] | --scenario '<json>'] [--canary <name>] [--replay] [--trace]
  --nodes/--nats: the cluster simulation (N Iris nodes, 1..16; M NATS servers, 3..9)
  --workload: the cluster simulation's users (core: sessions on the clustered core, the default; v1: v1 clients on the edges)
canaries (one node): ${NODE_CANARY_NAMES.join(', ')}
canaries (cluster):  ${CLUSTER_CANARY_NAMES.join(', ')}`;

function fail(msg: string): never {
  process.stderr.write(`${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseSeed(v: string | undefined, flag: string): number {
  if (v === undefined) fail(`${flag} needs a value`);
  const n = /^0x[0-9a-f]+$/i.test(v) ? parseInt(v.slice(2), 16) : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) fail(`${flag}: expected an integer in [0, 2^32) (decimal or 0x hex), got ${v}`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  let scenarios: Scenario[] = [];
  let canary: CanaryName | undefined;
  let replay = false;
  let trace = false;
  let count: number | null = null;
  let from = 1;
  let single: number | null = null;
  let json: string | null = null;
  let nodes: number | undefined;
  let servers: number | undefined;
  let workload: ClusterWorkloadKind | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--nodes') nodes = parseCount(argv[++i], '--nodes', 1, 16);
    else if (a === '--workload') {
      const w = argv[++i];
      if (w === undefined || !(CLUSTER_WORKLOADS as readonly string[]).includes(w)) fail(`--workload: expected one of ${CLUSTER_WORKLOADS.join(', ')}`);
      workload = w as ClusterWorkloadKind;
    }
    else if (a === '--nats') servers = parseCount(argv[++i], '--nats', 3, 9);
    else if (a === '--seed') single = parseSeed(argv[++i], '--seed');
    else if (a === '--seeds') count = parseSeed(argv[++i], '--seeds');
    else if (a === '--from') from = parseSeed(argv[++i], '--from');
    else if (a === '--scenario') json = argv[++i] ?? fail('--scenario needs a JSON value');
    else if (a === '--canary') {
      const c = argv[++i];
      if (c === undefined || !CANARY_NAMES.includes(c as CanaryName)) fail(`--canary: expected one of ${CANARY_NAMES.join(', ')}`);
      canary = c as CanaryName;
    } else if (a === '--replay') replay = true;
    else if (a === '--trace') trace = true;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    } else fail(`unknown argument ${a}`);
  }
  if (nodes !== undefined || servers !== undefined || workload !== undefined) {
    if (canary !== undefined && !CLUSTER_CANARY_NAMES.includes(canary) && workload !== 'v1') fail(`--canary: the cluster simulation plants ${CLUSTER_CANARY_NAMES.join(', ')} (and, with --workload v1, ${NODE_CANARY_NAMES.join(', ')})`);
    return clusterMain({ nodes, servers, workload }, { single, count, from, json, canary, replay, trace });
  }
  if (canary !== undefined && !NODE_CANARY_NAMES.includes(canary)) fail(`--canary ${canary} is a cluster canary: add --nodes`);
  if (json !== null) {
    const p = parseScenario(json);
    if (!p.ok) fail(p.message);
    scenarios = [canary !== undefined ? { ...p.scenario, canary } : p.scenario];
  } else if (single !== null) scenarios = [scenarioFromSeed(single, canary)];
  else {
    const n = count ?? 100;
    for (let i = 0; i < n; i++) scenarios.push(scenarioFromSeed((from + i) >>> 0, canary));
  }

  let failed = 0;
  let events = 0;
  let simMs = 0;
  const t0 = Date.now();
  for (const s of scenarios) {
    let r = await runScenario(s, { recordTrace: trace || scenarios.length === 1 });
    if (!r.ok && r.trace === null) r = await runScenario(s, { recordTrace: true });
    events += r.events;
    simMs += r.simMs;
    if (!r.ok) {
      failed++;
      process.stdout.write(`${describeFailure(r)}\n  trace file: ${writeTraceFile(r)}\n`);
    } else if (trace) process.stdout.write(`trace file: ${writeTraceFile(r)}\n`);
    if (replay) {
      const rp = await replayCheck(s);
      if (!rp.ok) {
        failed++;
        process.stdout.write(`NON-DETERMINISTIC seed ${seedHex(s.seed)}: ${rp.divergence}\n`);
      }
    }
    if (scenarios.length === 1) process.stdout.write(`seed ${seedHex(s.seed)}: ${r.ok ? 'ok' : 'FAILED'}, trace hash ${r.traceHash}, ${r.events} events, ${(r.simMs / 1000).toFixed(1)} virtual s, ${r.wallMs} ms wall; sent ${r.stats.sent}, delivered ${r.stats.delivered}, stored ${r.stats.claims}, node restarts ${r.stats.crashes}\n`);
  }
  const wall = Date.now() - t0;
  if (scenarios.length > 1)
    process.stdout.write(`${scenarios.length - failed}/${scenarios.length} seeds passed${replay ? ' (each replayed)' : ''}; ${events} events, ${(simMs / 1000).toFixed(0)} virtual s in ${(wall / 1000).toFixed(1)} s wall\n`);
  return failed === 0 ? 0 : 1;
}

function parseCount(v: string | undefined, flag: string, lo: number, hi: number): number {
  const n = v !== undefined && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < lo || n > hi) fail(`${flag}: expected an integer in [${lo}, ${hi}], got ${v ?? 'nothing'}`);
  return n;
}

interface Selection {
  single: number | null;
  count: number | null;
  from: number;
  json: string | null;
  canary: CanaryName | undefined;
  replay: boolean;
  trace: boolean;
}

async function clusterMain(shape: ClusterScenarioShape, o: Selection): Promise<number> {
  let scenarios: ClusterScenario[];
  if (o.json !== null) {
    const p = parseClusterScenario(o.json);
    if (!p.ok) fail(p.message);
    scenarios = [{ ...p.scenario, ...(shape.nodes !== undefined ? { nodes: shape.nodes } : {}), ...(shape.servers !== undefined ? { servers: shape.servers } : {}), ...(shape.workload !== undefined ? { workload: shape.workload } : {}), ...(o.canary !== undefined ? { canary: o.canary } : {}) }];
  } else if (o.single !== null) scenarios = [clusterScenarioFromSeed(o.single, shape, o.canary)];
  else scenarios = Array.from({ length: o.count ?? 100 }, (_, i) => clusterScenarioFromSeed((o.from + i) >>> 0, shape, o.canary));
  let failed = 0;
  let events = 0;
  let simMs = 0;
  const t0 = Date.now();
  for (const s of scenarios) {
    let r = await runClusterScenario(s, { recordTrace: o.trace || scenarios.length === 1 });
    if (!r.ok && r.trace === null) r = await runClusterScenario(s, { recordTrace: true });
    events += r.events;
    simMs += r.simMs;
    if (!r.ok) {
      failed++;
      process.stdout.write(`${describeClusterFailure(r)}\n  trace file: ${writeClusterTraceFile(r)}\n`);
    } else if (o.trace) process.stdout.write(`trace file: ${writeClusterTraceFile(r)}\n`);
    if (o.replay) {
      const rp = await replayClusterCheck(s);
      if (!rp.ok) {
        failed++;
        process.stdout.write(`NON-DETERMINISTIC cluster seed ${seedHex(s.seed)}: ${rp.divergence}\n`);
      }
    }
    if (scenarios.length === 1) {
      const st = r.stats;
      process.stdout.write(`cluster seed ${seedHex(s.seed)} (${s.nodes} nodes, ${s.servers} servers, ${s.shardGroups} groups, ${s.durability}${s.workload === 'v1' ? ', v1 clients' : ''}): ${r.ok ? 'ok' : 'FAILED'}, trace hash ${r.traceHash}, ${r.events} events, ${(r.simMs / 1000).toFixed(1)} virtual s, ${r.wallMs} ms wall; settled ${r.settleMs} ms after the heal; sent ${st.sent}, delivered ${st.delivered}, stored ${st.stored}, failed appends ${st.failedAppends}, refusals ${st.refusals}, node restarts ${st.nodeRestarts}\n`);
    }
  }
  const wall = Date.now() - t0;
  if (scenarios.length > 1) process.stdout.write(`${scenarios.length - failed}/${scenarios.length} cluster seeds passed${o.replay ? ' (each replayed)' : ''}; ${events} events, ${(simMs / 1000).toFixed(0)} virtual s in ${(wall / 1000).toFixed(1)} s wall\n`);
  return failed === 0 ? 0 : 1;
}

// A reader that stops early (`| head`) is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 0 : 1));

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`sim: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
