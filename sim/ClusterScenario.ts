/**
 * A cluster scenario: everything a cluster run depends on besides the code. The seed drives
 * every random stream; the rest sizes the deployment (Iris nodes, NATS servers, shard groups),
 * the workload and the phases, and says which faults the nemesis may draw (swarm testing: a
 * random subset per seed, so rare combinations get their turn). `clusterScenarioFromSeed`
 * derives a whole scenario from one number (`npm run sim -- --nodes 3 --nats 3 --seed …`);
 * `clusterScenarioArbitrary` builds them field by field for fast-check, so a failure shrinks
 * toward a small, fault-free run.
 */
import fc from 'fast-check';
import { CLUSTER_CANARY_NAMES, type CanaryName } from '../core/Canaries.js';
import type { Durability } from '../core/cluster/ReplicatedStorage.js';
import { SimRandom } from './SimRandom.js';

export const CLUSTER_FAULT_NAMES = [
  /** An Iris node is killed (SIGKILL) and restarted a few seconds later: a new incarnation. */
  'node_crash',
  /** An Iris node stops for 0.2–4 s (GC pause, stopped VM): sometimes past the membership's down-after. */
  'node_pause',
  /** Node clocks skewed from the start, wall clocks jumping back and forth. */
  'clock',
  /** kill -9 of a NATS server (its page cache survives), restarted later. */
  'server_kill',
  /** OS crash or power loss under a NATS server (what it did not sync is lost), restarted later. */
  'server_os_crash',
  /** A NATS server stops for a while. */
  'server_pause',
  /** A silent cut between an Iris node and its server, or the node from every server; symmetric or one-way. */
  'partition_node',
  /** A silent cut between two NATS servers (routes lost by ping timeout), symmetric or one-way. */
  'partition_servers',
  /** fsync takes 20–500 ms on one node's disk. */
  'slow_disk',
  /** One node's disk fails writes with disk_full for a while. */
  'disk_full',
  /** One node's fsyncs fail (io_error) now and then. */
  'fsync_fail',
  /** A core node is drained (its groups handed off), leaves, and joins again later. */
  'drain',
  /** Every core node in turn: drained, stopped, started again. */
  'rolling_restart',
  /** Every user connected through one node moves to other nodes at once (an edge lost: a reconnect storm). */
  'storm',
  /** Users move between nodes now and then, and resend their last SEND_SEQ messages after moving. */
  'move',
] as const;
export type ClusterFaultName = (typeof CLUSTER_FAULT_NAMES)[number];

/**
 * Stream trimming in every cluster run (stream_trim_interval_ms, stream_keep_entries): short
 * and close, so shard streams are trimmed many times within a run and a replica that falls
 * behind or comes back without its copy (a drained node rejoining with a wiped disk) needs a
 * peer's snapshot.
 */
export const SIM_STREAM_TRIM_INTERVAL_MS = 700;
export const SIM_STREAM_KEEP_ENTRIES = 4;

/**
 * Who the users are: `core`, sessions driving the clustered core directly (sim/ClusterWorkload.ts,
 * the default); `v1`, SimClients speaking protocol v1 to the nodes' edges, every node running the
 * whole service in cluster mode (sim/V1ClusterWorkload.ts).
 */
export const CLUSTER_WORKLOADS = ['core', 'v1'] as const;
export type ClusterWorkloadKind = (typeof CLUSTER_WORKLOADS)[number];

export interface ClusterScenario {
  /** Drives every random stream of the run (32-bit). */
  seed: number;
  /** Iris nodes, each with the edge and core roles (3..7). */
  nodes: number;
  /** NATS servers (the streams are R3: at least 3). */
  servers: number;
  /** shard_groups. */
  shardGroups: number;
  durability: Durability;
  /** Simulated users (each connected through one node at a time). */
  users: number;
  /** Messages per virtual second over the whole cluster. */
  rate: number;
  /** Virtual ms of the safety phase (faults on). */
  safetyMs: number;
  /** Virtual ms after the heal (once the cluster settled) during which users keep sending; all must get through. */
  livenessSendMs: number;
  /** Enabled faults. */
  faults: ClusterFaultName[];
  /** The workload (absent: `core`). */
  workload?: ClusterWorkloadKind;
  /** A planted bug (canary tests only). */
  canary?: CanaryName;
}

/** A scenario's dimensions the CLI may fix (`--nodes`, `--nats`, `--workload`). */
export interface ClusterScenarioShape {
  nodes?: number;
  servers?: number;
  /** The workload; the seed draws the same scenario for either. */
  workload?: ClusterWorkloadKind;
}

export function clusterScenarioFromSeed(seed: number, shape: ClusterScenarioShape = {}, canary?: CanaryName): ClusterScenario {
  const r = SimRandom.stream(seed, 'cluster-scenario');
  const faults = CLUSTER_FAULT_NAMES.filter(() => r.chance(0.35));
  const s: ClusterScenario = {
    seed: seed >>> 0,
    nodes: shape.nodes ?? 3 + r.int(2),
    servers: shape.servers ?? 3,
    shardGroups: r.pick([4, 6, 8]),
    durability: r.chance(0.75) ? 'quorum' : 'local',
    users: r.between(4, 8),
    rate: r.between(5, 30),
    safetyMs: 6_000 + r.int(7) * 1_000,
    livenessSendMs: 2_000,
    faults,
  };
  if (shape.workload === 'v1') s.workload = 'v1';
  if (canary !== undefined) s.canary = canary;
  return s;
}

/** Scenarios for fast-check: each field shrinks toward a small, fault-free run. */
export function clusterScenarioArbitrary(opts: { canary?: CanaryName; faults?: readonly ClusterFaultName[]; workload?: ClusterWorkloadKind } = {}): fc.Arbitrary<ClusterScenario> {
  return fc
    .record({
      seed: fc.integer({ min: 0, max: 0xffffffff }),
      nodes: fc.integer({ min: 3, max: 5 }),
      shardGroups: fc.integer({ min: 2, max: 8 }),
      durability: fc.constantFrom<Durability>('quorum', 'local'),
      users: fc.integer({ min: 2, max: 8 }),
      rate: fc.integer({ min: 1, max: 30 }),
      safetyMs: fc.integer({ min: 1, max: 16 }).map((x) => x * 1_000),
      faults: fc.subarray([...(opts.faults ?? CLUSTER_FAULT_NAMES)]),
    })
    .map((x) => {
      const s: ClusterScenario = { ...x, servers: 3, livenessSendMs: 2_000 };
      if (opts.workload === 'v1') s.workload = 'v1';
      if (opts.canary !== undefined) s.canary = opts.canary;
      return s;
    });
}

/** Parse and check a cluster scenario given as JSON (the CLI's --scenario with --nodes). */
export function parseClusterScenario(json: string): { ok: true; scenario: ClusterScenario } | { ok: false; message: string } {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    return { ok: false, message: `--scenario: not JSON (${(e as Error).message})` };
  }
  if (typeof v !== 'object' || v === null) return { ok: false, message: '--scenario: expected an object' };
  const o = v as Partial<ClusterScenario>;
  const int = (x: unknown, lo: number, hi: number): boolean => typeof x === 'number' && Number.isInteger(x) && x >= lo && x <= hi;
  if (!int(o.seed, 0, 0xffffffff)) return { ok: false, message: '--scenario: seed must be an integer in [0, 2^32)' };
  if (!int(o.nodes, 1, 16)) return { ok: false, message: '--scenario: nodes must be an integer in [1, 16]' };
  if (!int(o.servers, 3, 9)) return { ok: false, message: '--scenario: servers must be an integer in [3, 9]' };
  if (!int(o.shardGroups, 1, 256)) return { ok: false, message: '--scenario: shardGroups must be an integer in [1, 256]' };
  if (o.durability !== 'quorum' && o.durability !== 'local') return { ok: false, message: '--scenario: durability must be quorum or local' };
  if (!int(o.users, 2, 10_000)) return { ok: false, message: '--scenario: users must be an integer in [2, 10000]' };
  if (typeof o.rate !== 'number' || !(o.rate > 0 && o.rate <= 10_000)) return { ok: false, message: '--scenario: rate must be a number in (0, 10000]' };
  if (!int(o.safetyMs, 0, 3_600_000)) return { ok: false, message: '--scenario: safetyMs must be an integer in [0, 3600000]' };
  if (!int(o.livenessSendMs, 0, 3_600_000)) return { ok: false, message: '--scenario: livenessSendMs must be an integer in [0, 3600000]' };
  if (!Array.isArray(o.faults) || !o.faults.every((f) => (CLUSTER_FAULT_NAMES as readonly string[]).includes(f))) return { ok: false, message: `--scenario: faults must be a list of ${CLUSTER_FAULT_NAMES.join(', ')}` };
  if (o.workload !== undefined && !(CLUSTER_WORKLOADS as readonly string[]).includes(o.workload)) return { ok: false, message: `--scenario: workload must be one of ${CLUSTER_WORKLOADS.join(', ')}` };
  if (o.canary !== undefined && !CLUSTER_CANARY_NAMES.includes(o.canary)) return { ok: false, message: `--scenario: canary must be one of ${CLUSTER_CANARY_NAMES.join(', ')}` };
  return { ok: true, scenario: o as ClusterScenario };
}

export function describeClusterScenario(s: ClusterScenario): string {
  return JSON.stringify(s);
}
