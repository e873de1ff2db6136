/**
 * Draining a cluster node: taking it out of a running cluster without losing or repeating
 * anything. `start` first checks that the cluster can spare it (core/cluster/LeaveCheck.ts:
 * the nodes that stay keep a majority of expected_cluster_nodes and, for a core node, enough
 * core nodes to keep every shard group writable) and refuses `would_lose_quorum` otherwise,
 * changing nothing. Then, in order:
 *
 * 1. `handing_off`: new client connections are refused (ERROR node_draining, /health answers
 *    503 `draining` so load balancers look elsewhere); the node is recorded as drained in the
 *    control stream, so placement moves every shard group it owns or stands by for to the other
 *    core nodes, `rebalance_max_moves` at a time, each one a hand-off (no loss, no repeat).
 *    Connected clients are served meanwhile (their messages follow the moves). Bounded by
 *    `drain_timeout_ms`: a hand-off not finished by then is logged and the drain goes on; those
 *    groups fail over when the node stops, as after a crash (nothing acknowledged is lost).
 * 2. `closing_clients`: every connection is told `node_draining` (edge/ClientDrain.ts): its
 *    client closes and logs in elsewhere; the connection handles what it read, waits for its
 *    owners to confirm every message and ACK, and exits. Bounded by `drain_client_grace_ms`
 *    plus `route_horizon_ms`.
 * 3. `done`: `done` resolves (after DRAIN_LINGER_MS, so a poller sees the state); the node then
 *    stops (server/IrisNode.ts): goodbye to the cluster (the others see it leave at once),
 *    storage closed, and the process exits 0 (bin/iris.ts).
 *
 * A single node is not drained (`not_clustered`): it has nowhere to hand its work to. The
 * drain never runs twice; a second `start` answers the one under way.
 */
import type { ClientDrain } from '../edge/ClientDrain.js';
import type { DrainAdmin, DrainStartResult, DrainState, DrainStatus, DrainTrigger } from '../edge/admin/DrainAdmin.js';
import type { Clock, Logger } from '../runtime/Env.js';
import type { Scheduler } from '../runtime/Scheduler.js';
import type { ClusterCore } from './ClusterCore.js';
import type { IrisConfig } from './NodeConfig.js';

/** After the drain is done, the node keeps answering this long (GET /admin/drain shows `done`) before it stops. */
export const DRAIN_LINGER_MS = 500;
/** A hand-off request the control plane refused at once (its stream unreachable) is asked again after this long. */
export const DRAIN_HANDOFF_RETRY_MS = 500;

export type NodeDrainConfig = Pick<IrisConfig, 'node_name' | 'drain_timeout_ms' | 'drain_client_grace_ms' | 'route_horizon_ms'>;

export interface NodeDrainDeps {
  /** Scheduler 0: the connections' and the control plane's. */
  readonly scheduler: Scheduler;
  readonly clients: ClientDrain;
  /** The cluster core; null on a single node (which is never drained). */
  readonly cluster: ClusterCore | null;
  readonly config: NodeDrainConfig;
  readonly clock: Clock;
  readonly log: Logger;
}

export class NodeDrain implements DrainAdmin {
  private state: DrainState = 'serving';
  private trigger: DrainTrigger | null = null;
  private startedAt = 0;
  private error: string | null = null;
  private finished!: () => void;
  /** Resolves once the drain is done: the node should stop now. */
  readonly done: Promise<void> = new Promise((r) => (this.finished = r));

  constructor(private readonly d: NodeDrainDeps) {}

  /** Whether a drain is under way (or done). */
  get started(): boolean {
    return this.state !== 'serving';
  }

  start(trigger: DrainTrigger = 'admin'): DrainStartResult {
    if (this.started) return { ok: true, started: false, status: this.status() };
    const cluster = this.d.cluster;
    if (cluster === null) return { ok: false, code: 'not_clustered', message: 'this node runs alone (no nats_servers): there is no other node to hand its clients and data to; stop it with SIGTERM instead' };
    const check = cluster.leaveCheck();
    if (!check.ok) return { ok: false, code: check.code, message: check.message };
    this.state = 'handing_off';
    this.trigger = trigger;
    this.startedAt = this.d.clock.monotonicMs();
    void this.run(cluster);
    return { ok: true, started: true, status: this.status() };
  }

  status(): DrainStatus {
    const cluster = this.d.cluster;
    return {
      node: this.d.config.node_name,
      state: this.state,
      trigger: this.trigger,
      elapsed_ms: this.started ? Math.round(this.d.clock.monotonicMs() - this.startedAt) : null,
      shard_groups_held: cluster !== null && cluster.isCore ? cluster.groupsHeld() : null,
      connections: this.d.clients.connections,
      error: this.error,
    };
  }

  private async run(cluster: ClusterCore): Promise<void> {
    const { clients, config, log, clock, scheduler } = this.d;
    clients.refuseNew();
    log.info({ trigger: this.trigger, shard_groups_held: cluster.isCore ? cluster.groupsHeld() : null, connections: clients.connections }, 'drain: new clients are refused; handing off shard groups');
    if (cluster.isCore) {
      const deadline = clock.monotonicMs() + config.drain_timeout_ms;
      let why = '';
      for (;;) {
        const left = deadline - clock.monotonicMs();
        if (left <= 0) break;
        const r = await cluster.handOff(left);
        if (r.ok) {
          why = '';
          break;
        }
        why = r.message;
        await new Promise<void>((resolve) => scheduler.env.timers.setTimer(DRAIN_HANDOFF_RETRY_MS, resolve));
      }
      const held = cluster.groupsHeld();
      if (held > 0) {
        this.error = `${held} shard group(s) not handed off within drain_timeout_ms (${config.drain_timeout_ms} ms)${why !== '' ? `: ${why}` : ''}; they fail over when this node stops`;
        log.error({ shard_groups_held: held }, `drain: ${this.error}`);
      } else log.info({ elapsed_ms: this.elapsedMs() }, 'drain: every shard group handed off');
    }
    this.state = 'closing_clients';
    const told = await clients.tellAll(scheduler, config.drain_client_grace_ms, config.drain_client_grace_ms + config.route_horizon_ms);
    if (told.remaining > 0) log.warn({ told: told.told, remaining: told.remaining }, 'drain: some connections had not finished when their time was up');
    else log.info({ told: told.told, elapsed_ms: this.elapsedMs() }, 'drain: every client connection has left');
    this.state = 'done';
    log.info({ elapsed_ms: this.elapsedMs(), error: this.error }, 'drain done: leaving the cluster');
    scheduler.env.timers.setTimer(DRAIN_LINGER_MS, () => this.finished());
  }

  private elapsedMs(): number {
    return Math.round(this.d.clock.monotonicMs() - this.startedAt);
  }
}
