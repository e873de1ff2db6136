/**
 * The control plane of one node: a GenServer that keeps the node's ownership table current and,
 * on a core node, decides what this node does about each shard group — and nothing else. It
 * compares the table with the membership and the placement (core/cluster/Placement.ts) and:
 *
 * - **bootstrap**: a group without a record gets its epoch-1 record (written by the live core
 *   node whose name sorts first, with `expectLastSubjectSeq: 0`: of racing writers one wins);
 * - **failover**: the owner's incarnation is not up → the first live node among the successor
 *   (a hand-off was under way), the standbys in order, then the placement's choice, takes the
 *   group over (its replica catches up, claims, writes its marker);
 * - **standbys**: the owner replaces standbys that are down, draining or not core at once, and
 *   moves them toward the placement a few at a time;
 * - **rebalancing and drain**: the owner moves a group toward the placement's owner — first it
 *   makes that node a standby, and once it has caught up (within MOVE_MAX_LAG_ENTRIES) it
 *   records it as `successor` and hands off; at most `rebalance_max_moves` groups move at a time,
 *   counted over the whole table so every node sees the same count. A drained node
 *   (`drain`) is left out of the placement, so all its groups move away;
 * - **replicas**: a replica process runs for each group this node owns or stands by for
 *   (core/cluster/GroupReplica.ts); the others are stopped; a replica that serves a group the
 *   table gives to someone else is demoted.
 *
 * Records are written only by compare-and-append over the record read (OwnershipTable.ts); the
 * writer applies its record to its own table and publishes a notice. Nothing is decided in safe
 * mode (the partition guard), nor during STARTUP_SETTLE_MS after start or after this node's NATS
 * link went down or came back (the membership must have heard every live node before anyone is
 * declared gone: a lost link declares every other node down at once, and a link back after
 * 100 ms still shows them down until their next heartbeats). Reads of the table are local: the
 * table object is shared (`ControlPlaneHandle.table`). The decisions are the pure function
 * `decide`, tested on its own.
 */
import * as GenServer from '../../actors/GenServer.js';
import type { From } from '../../actors/Call.js';
import { isExitMessage } from '../../runtime/ExitReason.js';
import type { ClusterTransport, StorageEngine, StreamStore } from '../../runtime/Env.js';
import { isNodeDownMessage, isNodeUpMessage, type NodeMember } from '../../runtime/Membership.js';
import type { Pid } from '../../runtime/Pid.js';
import type { ProcessContext } from '../../runtime/ProcessContext.js';
import type { Scheduler } from '../../runtime/Scheduler.js';
import { CLUSTER_DOWN_AFTER_MS } from '../../runtime/defaults.js';
import { CLUSTER_STREAM_REPLICAS, HANDOFF_TIMEOUT_MS, MOVE_MAX_LAG_ENTRIES, SHARD_RETRY_MS, TAKEOVER_BACKOFF_MS } from '../defaults.js';
import { clusterNames, type ClusterNames } from './ClusterNames.js';
import { groupReplica, newReplicaStatus, type ReplicaChanged, type ReplicaCommand, type ReplicaStatus, type TakeoverReason } from './GroupReplica.js';
import type { GroupServicesDeps, StartGroupServicesResult } from './GroupServices.js';
import { ControlStream, decodeNotice, encodeNotice, OwnershipTable, type DrainingNode, type OwnershipReason, type OwnershipRecord, type TableChange } from './OwnershipTable.js';
import type { PartitionGuard } from './PartitionGuard.js';
import { placeGroups, PLACEMENT_REPLICAS } from './Placement.js';
import type { Durability } from './ReplicatedStorage.js';
import { ShardGroups } from './ShardGroups.js';
import { shardStreamSpec } from './ShardStream.js';

/** No failover or bootstrap decision this soon after start or a change of the NATS link (the membership first hears every live node). */
export const STARTUP_SETTLE_MS = CLUSTER_DOWN_AFTER_MS;
/** How long the control plane keeps trying to set its streams up at start. */
export const SETUP_DEADLINE_MS = 20_000;
/** The role that owns shard groups. */
export const CORE_ROLE = 'core';

// ---- decisions (pure) ----------------------------------------------------------------------

/** Everything `decide` looks at. */
export interface ControlView {
  readonly self: { readonly name: string; readonly incarnation: number };
  readonly groups: number;
  readonly records: ReadonlyArray<OwnershipRecord | undefined>;
  /** Nodes up now, this one included, by name. */
  readonly members: ReadonlyMap<string, NodeMember>;
  /** Drained nodes (name and incarnation). */
  readonly draining: readonly DrainingNode[];
  /** This node's replicas, by group. */
  readonly replicas: ReadonlyMap<number, Pick<ReplicaStatus, 'phase' | 'since' | 'appliedSeq' | 'standbyApplied' | 'takeoverFailedAt'>>;
  /** No claims, no writes (safe mode, or too soon after start). */
  readonly quiet: boolean;
  readonly maxMoves: number;
  readonly now: number;
  readonly handoffTimeoutMs: number;
  readonly replicasPerGroup: number;
}

export type ControlAction =
  | { readonly t: 'bootstrap'; readonly records: readonly OwnershipRecord[] }
  | { readonly t: 'start_replica'; readonly group: number }
  | { readonly t: 'stop_replica'; readonly group: number }
  | { readonly t: 'take_over'; readonly group: number; readonly reason: TakeoverReason }
  | { readonly t: 'demote'; readonly group: number }
  | { readonly t: 'hand_off'; readonly group: number; readonly to: string }
  /** Compare-and-append `record` over the group's current one. */
  | { readonly t: 'write'; readonly record: OwnershipRecord };

function isCore(m: NodeMember | undefined): m is NodeMember {
  return m !== undefined && m.roles.includes(CORE_ROLE);
}

/** The live core nodes that placement may use (not draining), sorted. */
export function placementNodes(view: Pick<ControlView, 'members' | 'draining'>): string[] {
  const out: string[] = [];
  for (const m of view.members.values()) if (isCore(m) && !view.draining.some((d) => d.name === m.name && d.incarnation === m.incarnation)) out.push(m.name);
  return out.sort();
}

/** What this node should do now, given `view`. */
export function decide(view: ControlView): ControlAction[] {
  const actions: ControlAction[] = [];
  const me = view.self.name;
  const nodes = placementNodes(view);
  const liveCore = (name: string | null): boolean => name !== null && isCore(view.members.get(name));
  const draining = (name: string): boolean => view.draining.some((d) => d.name === name && d.incarnation === view.members.get(name)?.incarnation);
  const placement = placeGroups(view.groups, nodes, view.records.map((r) => (r === undefined ? undefined : { owner: r.owner, standbys: r.standbys })), view.replicasPerGroup);

  // Bootstrap: by the first live core node, once, for every group without a record.
  const missing = view.records.map((r, g) => (r === undefined ? g : -1)).filter((g) => g >= 0);
  if (missing.length > 0 && !view.quiet && placement !== null && nodes[0] === me) {
    actions.push({
      t: 'bootstrap',
      records: missing.map((g) => {
        const a = placement[g]!;
        return { group: g, epoch: 1, owner: a.owner, ownerIncarnation: view.members.get(a.owner)!.incarnation, standbys: a.standbys, successor: null, reason: 'bootstrap' };
      }),
    });
  }

  // Moves under way, over the whole table: hand-offs announced, and moves prepared (the owner
  // added the wanted node as a standby for it) that have not reached their hand-off yet.
  const preparing = (r: OwnershipRecord, g: number): boolean => (r.reason === 'rebalance' || r.reason === 'drain') && placement !== null && placement[g]!.owner !== r.owner;
  let moves = 0;
  for (let g = 0; g < view.groups; g++) {
    const r = view.records[g];
    if (r !== undefined && (r.successor !== null || preparing(r, g))) moves++;
  }

  for (let g = 0; g < view.groups; g++) {
    const r = view.records[g];
    if (r === undefined) continue;
    const rep = view.replicas.get(g);
    const phase = rep?.phase;
    const ownerLive = view.members.get(r.owner)?.incarnation === r.ownerIncarnation;
    const iOwn = r.owner === me && r.ownerIncarnation === view.self.incarnation;
    const iFollow = r.standbys.includes(me) || r.successor === me;
    // A takeover that was given up is not tried again at once (each attempt may claim an epoch).
    const backingOff = rep?.takeoverFailedAt !== null && rep?.takeoverFailedAt !== undefined && view.now - rep.takeoverFailedAt < TAKEOVER_BACKOFF_MS;

    // Failover: the first live candidate claims.
    if (!ownerLive) {
      const ranked = [...(r.successor !== null ? [r.successor] : []), ...r.standbys, ...(placement !== null ? [placement[g]!.owner] : [])].filter(liveCore);
      const candidates = [...ranked.filter((n) => !draining(n)), ...ranked.filter(draining)];
      const first = candidates[0];
      if (first === me && !view.quiet && !backingOff && phase !== 'taking_over' && phase !== 'owner' && phase !== 'failed') {
        if (rep === undefined) actions.push({ t: 'start_replica', group: g });
        actions.push({ t: 'take_over', group: g, reason: 'failover' });
        continue;
      }
    }

    // A replica serving a group the table gives to another owner (or another life of this node) stops serving.
    if (!iOwn && (phase === 'owner' || phase === 'handing_off')) {
      actions.push({ t: 'demote', group: g });
      continue;
    }
    // Replica processes: one while owner or follower; the others stop.
    if (iOwn || iFollow) {
      if (rep === undefined) actions.push({ t: 'start_replica', group: g });
    } else if (rep !== undefined && phase !== 'taking_over') {
      actions.push({ t: 'stop_replica', group: g });
      continue;
    }
    if (!iOwn || view.quiet) continue;

    // This node owns the group.
    if (rep === undefined || phase === 'standby' || phase === 'failed') {
      // Recorded owner without a serving replica (bootstrap, or the replica restarted): claim anew.
      if (phase !== 'failed' && !backingOff) actions.push({ t: 'take_over', group: g, reason: r.reason === 'bootstrap' ? 'bootstrap' : 'failover' });
      continue;
    }
    if (phase === 'handed_off') {
      if (!backingOff && (r.successor === null || !liveCore(r.successor) || view.now - rep.since > view.handoffTimeoutMs)) actions.push({ t: 'take_over', group: g, reason: 'failover' });
      continue;
    }
    if (phase !== 'owner' || placement === null) continue;
    if (r.successor !== null) {
      if (liveCore(r.successor)) actions.push({ t: 'hand_off', group: g, to: r.successor });
      else actions.push({ t: 'write', record: next(r, { successor: null, reason: 'standbys', standbys: r.standbys.filter((s) => s !== r.successor) }) });
      continue;
    }
    const wanted = placement[g]!;
    const k = wanted.standbys.length;
    const reason: OwnershipReason = draining(me) ? 'drain' : 'rebalance';
    if (wanted.owner !== me) {
      const d = wanted.owner;
      const counted = preparing(r, g);
      if (r.standbys.includes(d)) {
        if (caughtUp(rep, d) && (counted || moves < view.maxMoves)) {
          if (!counted) moves++;
          actions.push({ t: 'write', record: next(r, { successor: d, reason }) });
        }
      } else if (moves < view.maxMoves) {
        moves++;
        const keep = r.standbys.filter((s) => s !== d && liveCore(s) && !draining(s));
        actions.push({ t: 'write', record: next(r, { standbys: [d, ...keep].slice(0, Math.max(1, k)), reason }) });
      }
      continue;
    }
    if (sameList(r.standbys, wanted.standbys)) continue;
    const broken = r.standbys.length !== k || r.standbys.some((s) => !liveCore(s) || draining(s) || s === me);
    if (broken || moves < view.maxMoves) {
      if (!broken) moves++;
      actions.push({ t: 'write', record: next(r, { standbys: wanted.standbys, reason: 'standbys' }) });
    }
  }
  return actions;
}

function caughtUp(rep: Pick<ReplicaStatus, 'appliedSeq' | 'standbyApplied'>, node: string): boolean {
  return (rep.standbyApplied.get(node) ?? -1) >= rep.appliedSeq - MOVE_MAX_LAG_ENTRIES;
}

function next(r: OwnershipRecord, change: Partial<Pick<OwnershipRecord, 'standbys' | 'successor' | 'reason'>> & { reason: OwnershipReason }): OwnershipRecord {
  return { ...r, ...change, epoch: r.epoch + 1 };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// ---- the process -----------------------------------------------------------------------------

export interface ControlPlaneSettings {
  /** shard_groups as configured (must match the cluster's record). */
  shardGroups: number;
  durability: Durability;
  ownershipRefreshMs: number;
  rebalanceMaxMoves: number;
  /** stream_trim_interval_ms (0: never) and stream_keep_entries; absent: never trims. */
  streamTrimIntervalMs?: number;
  streamKeepEntries?: number;
}

export interface ControlPlaneOptions {
  /** cluster_name. */
  cluster: string;
  /** This node (its name, incarnation and roles: without `core` it only keeps the table). */
  self: NodeMember;
  streams: StreamStore;
  transport: ClusterTransport;
  /** The node's storage engine (every group's local copy lives in it). */
  storage: StorageEngine;
  guard: PartitionGuard;
  settings: ControlPlaneSettings;
  /** What the groups' services need (presence, counters, routing, fan-out budget). */
  services: Omit<GroupServicesDeps, 'groups'>;
  /** Replicas of the control and shard streams (default CLUSTER_STREAM_REPLICAS). */
  streamReplicas?: number;
  startupSettleMs?: number;
  handoffTimeoutMs?: number;
  startServices?: (ctx: ProcessContext, group: number, storage: StorageEngine, deps: GroupServicesDeps) => Promise<StartGroupServicesResult>;
}

/** What the node gets back: the shared table and the replicas' status, both read without a call. */
export interface ControlPlaneHandle {
  readonly pid: Pid;
  readonly names: ClusterNames;
  readonly groups: ShardGroups;
  readonly table: OwnershipTable;
  /** This node's replicas, by group (owner or standby), updated in place. */
  readonly replicas: ReadonlyMap<number, ReplicaStatus>;
}

/** The local name of the control plane. */
export const CONTROL_PLANE_NAME = 'cluster_control_plane';

export type ControlPlaneRequest = { t: 'drain' } | { t: 'status' };
export type DrainResult = { ok: true } | { ok: false; message: string };

/**
 * Start the node's control plane on scheduler `where` (scheduler 0, with the node's other
 * services). Resolves once the streams exist and the table is loaded.
 */
export async function startControlPlane(where: Scheduler | ProcessContext, o: ControlPlaneOptions): Promise<{ ok: true; plane: ControlPlaneHandle } | { ok: false; message: string }> {
  const groups = new ShardGroups(o.settings.shardGroups);
  const table = new OwnershipTable(groups.count);
  const names = clusterNames(o.cluster);
  const replicas = new Map<number, ReplicaStatus>();
  const args: PlaneArgs = { o, groups, table, names, replicas };
  const r = await GenServer.start(where, planeBehaviour, args, { name: CONTROL_PLANE_NAME, label: 'ControlPlane', timeoutMs: SETUP_DEADLINE_MS + 5_000 });
  if (!r.ok) return { ok: false, message: `cluster control plane: ${typeof r.reason === 'object' && r.reason !== null && 'message' in r.reason ? String((r.reason as { message: unknown }).message) : JSON.stringify(r.reason)}` };
  return { ok: true, plane: { pid: r.pid, names, groups, table, replicas } };
}

/**
 * Drain this node: record it as drained (placement leaves it out, so every group it owns or
 * stands by for moves away, `rebalance_max_moves` at a time) and resolve once it holds none.
 */
export async function drain(via: ProcessContext | Scheduler, timeoutMs: number): Promise<DrainResult> {
  const req = { t: 'drain' } satisfies ControlPlaneRequest;
  const r = 'self' in via ? await GenServer.call<DrainResult>(via, CONTROL_PLANE_NAME, req, timeoutMs) : await GenServer.callFrom<DrainResult>(via, CONTROL_PLANE_NAME, req, timeoutMs);
  return r.ok ? r.value : { ok: false, message: `drain: ${JSON.stringify(r.reason)}` };
}

interface PlaneArgs {
  o: ControlPlaneOptions;
  groups: ShardGroups;
  table: OwnershipTable;
  names: ClusterNames;
  replicas: Map<number, ReplicaStatus>;
}

interface PlaneState extends PlaneArgs {
  control: ControlStream;
  core: boolean;
  /** Decisions wait STARTUP_SETTLE_MS after this (monotonic ms): the start, then each change of the NATS link. */
  settleFrom: number;
  /** Replica pids by group. */
  pids: Map<number, Pid>;
  /** Groups with a record write in flight (one at a time per group). */
  writing: Set<number>;
  bootstrapping: boolean;
  /** Commands already sent, so an evaluation does not repeat them: group → command key. */
  sent: Map<number, string>;
  /** Groups whose replica exited, and when (restarted after SHARD_RETRY_MS). */
  exited: Map<number, number>;
  drainWaiters: From[];
  evaluateScheduled: boolean;
  lastLoadedSeq: number;
  stops: Array<() => void>;
  refreshTimer: unknown;
}

type PlaneInfo =
  | { t: 'evaluate' }
  | { t: 'notice'; data: Uint8Array }
  | { t: 'refresh' }
  | { t: 'link'; up: boolean }
  | { t: 'written'; group: number }
  | { t: 'bootstrapped' }
  | ReplicaChanged;

const planeBehaviour: GenServer.Behaviour<PlaneState, PlaneArgs, ControlPlaneRequest, unknown> = {
  async init(args, ctx) {
    const o = args.o;
    const control = new ControlStream(o.streams, args.names, o.streamReplicas ?? CLUSTER_STREAM_REPLICAS);
    const core = o.self.roles.includes(CORE_ROLE);
    const setup = await setUp(ctx, args, control, core);
    if (!setup.ok) return { stop: { error: setup.message, message: setup.message } };
    ctx.trapExit(true);
    ctx.monitorNodes(true);
    const st: PlaneState = {
      ...args,
      control,
      core,
      settleFrom: ctx.env.clock.monotonicMs(),
      pids: new Map(),
      writing: new Set(),
      bootstrapping: false,
      sent: new Map(),
      exited: new Map(),
      drainWaiters: [],
      evaluateScheduled: false,
      lastLoadedSeq: setup.lastSeq,
      stops: [],
      refreshTimer: null,
    };
    const self = ctx.self;
    const sub = o.transport.subscribe(args.names.ctlNotice, (data) => ctx.send(self, { t: 'notice', data } satisfies PlaneInfo));
    st.stops.push(() => sub.unsubscribe());
    st.stops.push(o.transport.onLinkState((s) => ctx.send(self, { t: 'link', up: s === 'up' } satisfies PlaneInfo)));
    st.stops.push(o.guard.subscribe(() => ctx.send(self, { t: 'evaluate' } satisfies PlaneInfo)));
    st.stops.push(args.table.subscribe((c) => onTableChange(st, ctx, c)));
    st.refreshTimer = ctx.sendAfter(o.settings.ownershipRefreshMs, { t: 'refresh' } satisfies PlaneInfo);
    // Decisions wait for the membership to settle; evaluate once it has.
    ctx.sendAfter((o.startupSettleMs ?? STARTUP_SETTLE_MS) + 1, { t: 'evaluate' } satisfies PlaneInfo);
    schedule(st, ctx);
    return { state: st };
  },

  handleCall(req, from, st, ctx) {
    if (req.t === 'status') return { reply: { table: st.table.all(), replicas: [...st.replicas.values()] }, state: st };
    // drain
    if (!st.core) return { reply: { ok: false, message: 'not a core node' } satisfies DrainResult, state: st };
    st.drainWaiters.push(from);
    void addDrain(st, ctx).then((r) => {
      if (!r.ok) {
        for (const w of st.drainWaiters.splice(0)) GenServer.reply(ctx, w, r);
        return;
      }
      ctx.send(ctx.self, { t: 'evaluate' } satisfies PlaneInfo);
    });
    return { noreply: true, state: st };
  },

  handleInfo(msg, st, ctx) {
    if (isNodeUpMessage(msg) || isNodeDownMessage(msg)) {
      schedule(st, ctx);
      return { noreply: true, state: st };
    }
    if (isExitMessage(msg)) {
      for (const [g, pid] of st.pids) {
        if (pid.key !== msg.from.key) continue;
        st.pids.delete(g);
        st.replicas.delete(g);
        st.sent.delete(g);
        if (msg.reason !== 'normal') st.exited.set(g, ctx.env.clock.monotonicMs());
        ctx.sendAfter(SHARD_RETRY_MS, { t: 'evaluate' } satisfies PlaneInfo);
      }
      return { noreply: true, state: st };
    }
    const m = msg as PlaneInfo;
    switch (m.t) {
      case 'evaluate':
        st.evaluateScheduled = false;
        evaluate(st, ctx);
        break;
      case 'notice': {
        const n = decodeNotice(m.data);
        if (n?.t === 'group') st.table.apply(n.record, n.seq);
        else if (n?.t === 'drains') st.table.applyDrains(n.nodes, n.seq);
        break;
      }
      case 'refresh':
        // Also a periodic evaluation: some decisions wait on time (start-up, back-offs, hand-off timeouts).
        st.refreshTimer = ctx.sendAfter(st.o.settings.ownershipRefreshMs, { t: 'refresh' } satisfies PlaneInfo);
        void reload(st, ctx, false);
        schedule(st, ctx);
        break;
      case 'link':
        // The membership now shows other nodes down that may be alive: wait until it has heard them again.
        st.settleFrom = ctx.env.clock.monotonicMs();
        ctx.sendAfter((st.o.startupSettleMs ?? STARTUP_SETTLE_MS) + 1, { t: 'evaluate' } satisfies PlaneInfo);
        if (m.up) void reload(st, ctx, true);
        break;
      case 'written':
        st.writing.delete(m.group);
        schedule(st, ctx);
        break;
      case 'bootstrapped':
        st.bootstrapping = false;
        schedule(st, ctx);
        break;
      case 'replica_changed':
        st.sent.delete(m.group);
        schedule(st, ctx);
        break;
    }
    return { noreply: true, state: st };
  },

  terminate(_reason, st, ctx) {
    for (const s of st.stops.splice(0)) s();
    for (const pid of st.pids.values()) ctx.sendExit(pid, 'shutdown');
  },
};

/** Create the streams, settle the config record, load the table; retried until SETUP_DEADLINE_MS. */
async function setUp(ctx: ProcessContext, a: PlaneArgs, control: ControlStream, core: boolean): Promise<{ ok: true; lastSeq: number } | { ok: false; message: string }> {
  const deadline = ctx.env.clock.monotonicMs() + SETUP_DEADLINE_MS;
  let why = '';
  for (let attempt = 0; ctx.env.clock.monotonicMs() < deadline; attempt++) {
    if (attempt > 0) await new Promise<void>((r) => ctx.env.timers.setTimer(SHARD_RETRY_MS, r));
    if (core) {
      const e = await control.ensure();
      if (!e.ok) {
        why = e.message;
        continue;
      }
    }
    const c = core ? await control.settleConfig(a.groups.count) : await control.readConfig().then((r) => (r.ok ? (r.value !== undefined ? { ok: true as const, config: r.value } : { ok: false as const, message: 'the cluster has no configuration record yet (no core node started)' }) : r));
    if (!c.ok) {
      why = c.message;
      continue;
    }
    if (c.config.shardGroups !== a.groups.count) {
      return { ok: false, message: `the cluster ${a.names.cluster} was created with shard_groups=${c.config.shardGroups}; this node is configured with ${a.groups.count} (set shard_groups=${c.config.shardGroups})` };
    }
    if (core) {
      const specs = a.groups.all().map((g) => shardStreamSpec(a.names, g, a.o.streamReplicas ?? CLUSTER_STREAM_REPLICAS));
      const made = await Promise.all(specs.map((s) => a.o.streams.ensureStream(s)));
      const bad = made.find((r) => !r.ok);
      if (bad !== undefined && !bad.ok) {
        why = `shard streams: ${bad.reason}: ${bad.message}`;
        continue;
      }
    }
    const lastSeq = await control.lastSeq();
    const loaded = await control.load(a.table);
    if (!loaded.ok) {
      why = loaded.message;
      continue;
    }
    return { ok: true, lastSeq: lastSeq ?? 0 };
  }
  return { ok: false, message: `could not set up the cluster streams within ${SETUP_DEADLINE_MS} ms: ${why}` };
}

function schedule(st: PlaneState, ctx: ProcessContext): void {
  if (st.evaluateScheduled) return;
  st.evaluateScheduled = true;
  ctx.send(ctx.self, { t: 'evaluate' } satisfies PlaneInfo);
}

function onTableChange(st: PlaneState, ctx: ProcessContext, c: TableChange): void {
  if (c.t === 'group') {
    const pid = st.pids.get(c.group);
    if (pid !== undefined) ctx.send(pid, { t: 'record', record: c.record } satisfies ReplicaCommand);
  }
  schedule(st, ctx);
}

async function reload(st: PlaneState, ctx: ProcessContext, force: boolean): Promise<void> {
  const last = await st.control.lastSeq();
  if (last === null || (!force && last === st.lastLoadedSeq)) return;
  const r = await st.control.load(st.table);
  if (r.ok) st.lastLoadedSeq = last;
  else ctx.env.log.warn({ message: r.message }, 'ownership table reload failed');
}

function members(ctx: ProcessContext, self: NodeMember): Map<string, NodeMember> {
  const out = new Map<string, NodeMember>([[self.name, self]]);
  for (const m of ctx.nodes()) out.set(m.name, m);
  return out;
}

function view(st: PlaneState, ctx: ProcessContext): ControlView {
  const now = ctx.env.clock.monotonicMs();
  return {
    self: st.o.self,
    groups: st.groups.count,
    records: st.table.all(),
    members: members(ctx, st.o.self),
    draining: st.table.draining,
    replicas: st.replicas,
    quiet: st.o.guard.safeMode() || now - st.settleFrom < (st.o.startupSettleMs ?? STARTUP_SETTLE_MS),
    maxMoves: st.o.settings.rebalanceMaxMoves,
    now,
    handoffTimeoutMs: st.o.handoffTimeoutMs ?? HANDOFF_TIMEOUT_MS,
    replicasPerGroup: PLACEMENT_REPLICAS,
  };
}

function evaluate(st: PlaneState, ctx: ProcessContext): void {
  answerDrain(st, ctx);
  if (!st.core) return;
  const v = view(st, ctx);
  for (const a of decide(v)) act(st, ctx, a, v);
}

function act(st: PlaneState, ctx: ProcessContext, a: ControlAction, v: ControlView): void {
  switch (a.t) {
    case 'bootstrap':
      if (st.bootstrapping) return;
      st.bootstrapping = true;
      void (async () => {
        let failed = false;
        for (const r of a.records) {
          const w = await st.control.writeGroup(r, 0);
          if (w.ok) {
            st.table.apply(r, w.seq);
            st.o.transport.publish(st.names.ctlNotice, encodeNotice({ t: 'group', seq: w.seq, record: r }));
          } else if (w.reason !== 'conflict') failed = true;
        }
        if (a.records.some((r) => st.table.get(r.group) === undefined)) await reload(st, ctx, true);
        // A stream that answers at once (no NATS link, no leader) must not be written in a loop.
        afterRetry(ctx, failed, { t: 'bootstrapped' } satisfies PlaneInfo);
      })();
      return;
    case 'start_replica':
      startReplica(st, ctx, a.group);
      return;
    case 'stop_replica':
      command(st, ctx, a.group, 'stop', { t: 'stop' });
      return;
    case 'demote':
      command(st, ctx, a.group, 'demote', { t: 'demote' });
      return;
    case 'take_over':
      command(st, ctx, a.group, `take_over`, { t: 'take_over', reason: a.reason });
      return;
    case 'hand_off':
      command(st, ctx, a.group, `hand_off:${a.to}`, { t: 'hand_off', to: a.to });
      return;
    case 'write': {
      const g = a.record.group;
      if (st.writing.has(g)) return;
      const cur = v.records[g];
      if (cur === undefined || cur.epoch !== a.record.epoch - 1) return;
      st.writing.add(g);
      const expect = st.table.seqOf(g);
      void st.control.writeGroup(a.record, expect).then((w) => {
        if (w.ok) {
          st.table.apply(a.record, w.seq);
          st.o.transport.publish(st.names.ctlNotice, encodeNotice({ t: 'group', seq: w.seq, record: a.record }));
        } else if (w.reason === 'conflict') void reload(st, ctx, true);
        // A stream that answers at once (no NATS link, no leader) must not be written in a loop.
        afterRetry(ctx, !w.ok && w.reason !== 'conflict', { t: 'written', group: g } satisfies PlaneInfo);
      });
      return;
    }
  }
}

/** Tell the plane a write settled: at once, or after SHARD_RETRY_MS when it failed (so a failing stream is not hammered). */
function afterRetry(ctx: ProcessContext, failed: boolean, msg: PlaneInfo): void {
  if (failed) ctx.sendAfter(SHARD_RETRY_MS, msg);
  else ctx.send(ctx.self, msg);
}

/** Send `cmd` to group `g`'s replica unless the same command was sent since its last change. */
function command(st: PlaneState, ctx: ProcessContext, g: number, key: string, cmd: ReplicaCommand): void {
  const pid = st.pids.get(g);
  if (pid === undefined || st.sent.get(g) === key) return;
  st.sent.set(g, key);
  ctx.send(pid, cmd);
}

function startReplica(st: PlaneState, ctx: ProcessContext, g: number): void {
  if (st.pids.has(g)) return;
  const exitedAt = st.exited.get(g);
  if (exitedAt !== undefined && ctx.env.clock.monotonicMs() - exitedAt < SHARD_RETRY_MS) return;
  st.exited.delete(g);
  const o = st.o;
  const status = newReplicaStatus(g, ctx.env.clock.monotonicMs());
  st.replicas.set(g, status);
  const pid = ctx.spawnLink(
    groupReplica({
      group: g,
      self: o.self,
      names: st.names,
      streams: o.streams,
      transport: o.transport,
      local: o.storage,
      table: st.table,
      control: st.control,
      durability: o.settings.durability,
      ...((o.settings.streamTrimIntervalMs ?? 0) > 0 ? { trim: { intervalMs: o.settings.streamTrimIntervalMs!, keepEntries: o.settings.streamKeepEntries ?? 0 } } : {}),
      status,
      controlPlane: ctx.self,
      writable: () => !o.guard.safeMode(),
      mayClaim: (record, reason) => mayClaim(st, ctx, record, reason),
      standbyCandidates: () => new Set(placementNodes({ members: members(ctx, o.self), draining: st.table.draining })),
      services: { ...o.services, groups: st.groups, readable: () => !o.guard.safeMode() },
      ...(o.startServices !== undefined ? { startServices: o.startServices } : {}),
    }),
    { label: 'GroupReplica', name: `replica.${g}` },
  );
  st.pids.set(g, pid);
}

/** Re-check, just before a claim, that the record read from the stream still allows it. */
function mayClaim(st: PlaneState, ctx: ProcessContext, r: OwnershipRecord | undefined, reason: OwnershipReason): boolean {
  if (r === undefined || st.o.guard.safeMode()) return false;
  const self = st.o.self;
  const mine = r.owner === self.name && r.ownerIncarnation === self.incarnation;
  if (reason === 'handoff') return r.successor === self.name && !mine;
  if (mine) return true;
  const owner = members(ctx, self).get(r.owner);
  return owner === undefined || owner.incarnation !== r.ownerIncarnation;
}

async function addDrain(st: PlaneState, _ctx: ProcessContext): Promise<DrainResult> {
  const self = st.o.self;
  for (let attempt = 0; attempt < 10; attempt++) {
    const cur = await st.control.readDrains();
    if (!cur.ok) return { ok: false, message: cur.message };
    const nodes = (cur.value ?? []).filter((d) => d.name !== self.name);
    nodes.push({ name: self.name, incarnation: self.incarnation });
    const w = await st.control.writeDrains(nodes, cur.seq);
    if (w.ok) {
      st.table.applyDrains(nodes, w.seq);
      st.o.transport.publish(st.names.ctlNotice, encodeNotice({ t: 'drains', seq: w.seq, nodes }));
      return { ok: true };
    }
    if (w.reason !== 'conflict') return { ok: false, message: w.message };
  }
  return { ok: false, message: 'the drain record kept changing under this node' };
}

/** Answer drain calls once no group has this node as owner, standby or successor. */
function answerDrain(st: PlaneState, ctx: ProcessContext): void {
  if (st.drainWaiters.length === 0 || !st.table.isDraining(st.o.self.name, st.o.self.incarnation)) return;
  const me = st.o.self.name;
  for (const r of st.table.all()) if (r !== undefined && (r.owner === me || r.standbys.includes(me) || r.successor === me)) return;
  for (const w of st.drainWaiters.splice(0)) GenServer.reply(ctx, w, { ok: true } satisfies DrainResult);
}
