/**
 * The messaging service of one node, assembled on a scheduler and an Env that carries
 * storage: the core (a single node's router and servers, server/SingleNodeCore.ts, or a
 * cluster node's shard groups, server/ClusterCore.ts, behind one ServiceCore shape), login
 * rules and limits, durable token revocations with the registry of live token sessions they
 * end, the function that turns each client link into a connection, and the node's open
 * connections for a drain (edge/ClientDrain.ts). It knows nothing of
 * sockets, threads or files, so the production node (server/IrisNode.ts, with LMDB and real
 * listeners) and the simulator (sim/, with virtual storage and links) run exactly this code.
 */
import type { CoreCounters } from '../core/CoreCounters.js';
import type { Inbox } from '../core/Inbox.js';
import type { PresenceTable } from '../core/Presence.js';
import type { Router } from '../core/Router.js';
import { JwtVerifier } from '../edge/auth/JwtVerifier.js';
import { LiveTokens, type TokenEnded } from '../edge/auth/LiveTokens.js';
import { RevocationStore } from '../edge/auth/RevocationStore.js';
import { Revocations } from '../edge/auth/Revocations.js';
import { ClientDrain } from '../edge/ClientDrain.js';
import type { AcceptLink } from '../edge/ClientLink.js';
import type { ConnectionDeps } from '../edge/ConnectionDeps.js';
import { acceptConnections } from '../edge/EdgeAcceptor.js';
import { FAILED_LOGINS_PER_SOURCE_DEFAULT } from '../edge/limits/defaults.js';
import { RateLimits } from '../edge/limits/RateLimits.js';
import { UserRates } from '../edge/limits/UserRates.js';
import { loginGate } from '../edge/LoginGate.js';
import type { Env, StorageEngine } from '../runtime/Env.js';
import type { Pid } from '../runtime/Pid.js';
import type { Scheduler } from '../runtime/Scheduler.js';
import { startClusterCore, type ClusterCore, type ClusterCoreOptions } from './ClusterCore.js';
import type { IrisConfig } from './NodeConfig.js';
import type { CoreHealth, ServiceCore } from './ServiceCore.js';
import { GROUPS_NAME, KEYS_NAME, startSingleNodeCore } from './SingleNodeCore.js';

export { GROUPS_NAME, KEYS_NAME };

/** The body of `/health`: the node, its connections, and its place in the cluster. */
export interface ServiceHealth extends CoreHealth {
  /** `draining` while the node drains (it refuses new clients), else `safe_mode` while the partition guard refuses writes. */
  status: 'ok' | 'safe_mode' | 'draining';
  /** The node drains: new clients are refused, connected ones are told to go. */
  draining: boolean;
  node: string;
  mode: string;
  connections: number;
  /** Users online as this node knows them (in a cluster, every node's, from the presence feed). */
  online_users: number;
}

export interface IrisService {
  /** Hand every new client link here (TCP, TLS, WebSocket or simulated). */
  readonly accept: AcceptLink;
  readonly presence: PresenceTable;
  /** The core: a single node's, or a cluster node's (server/ServiceCore.ts). */
  readonly core: ServiceCore;
  /** The same core when the node is in a cluster (drain, leave check), else null. */
  readonly cluster: ClusterCore | null;
  /** The node's open connections, refused and told to go when the node drains. */
  readonly clients: ClientDrain;
  /** A single node's router (null in a cluster). */
  readonly router: Router | null;
  readonly counters: CoreCounters;
  readonly limits: RateLimits;
  readonly rates: UserRates;
  /** Durable token revocations (the admin API records them here; the verifier reads them). */
  readonly revocations: RevocationStore;
  /** Sessions a revocation of their token's jti ends (edge/auth/LiveTokens.ts). */
  readonly liveTokens: LiveTokens;
  /** Read receipts for offline users dropped because their receipt store was full. */
  droppedReceipts(): number;
  /** Open client connections. */
  connections(): number;
  /** The body of `/health`. */
  health(): ServiceHealth;
  /** Stop what runs outside processes (the core's subscriptions); processes stop with the scheduler. */
  stop(): void;
}

export interface IrisServiceOptions {
  /** Wraps the inbox the router and sessions use (the simulator records what becomes durable); in a cluster, each group's. */
  wrapInbox?: (inner: Inbox, group?: number) => Inbox;
  /**
   * Join a cluster: the node's membership (the Env must carry `transport` and `streams`). Without
   * it the service is a single node.
   */
  cluster?: Omit<ClusterCoreOptions, 'fanoutAllowed' | 'wrapInbox'>;
}

export type StartIrisServiceResult = { ok: true; service: IrisService } | { ok: false; message: string };

/** Start the service's processes on `s`; every failure names what to fix. */
export async function startIrisService(s: Scheduler, env: Env, storage: StorageEngine, config: IrisConfig, opts: IrisServiceOptions = {}): Promise<StartIrisServiceResult> {
  const rates = new UserRates(env.clock, config);
  const fanoutAllowed = (u: Parameters<UserRates['fanout']>[0], n: number): boolean => rates.fanout(u, n);
  const wrapInbox = opts.wrapInbox;
  let cluster: ClusterCore | null = null;
  let core: ServiceCore;
  if (opts.cluster !== undefined) {
    const started = await startClusterCore(s, env, storage, config, { ...opts.cluster, fanoutAllowed, ...(wrapInbox !== undefined ? { wrapInbox } : {}) });
    if (!started.ok) return started;
    core = cluster = started.core;
  } else {
    const started = await startSingleNodeCore(s, env, storage, config, { fanoutAllowed, ...(wrapInbox !== undefined ? { wrapInbox: (i: Inbox) => wrapInbox(i) } : {}) });
    if (!started.ok) return started;
    core = started.core;
  }
  const { presence, counters } = core;

  const limitsR = RateLimits.create(env.clock, {
    maxConnections: config.max_connections,
    messages: { burst: config.rate_limit_messages_burst, refill: config.rate_limit_messages_per_s, intervalMs: 1000 },
    connectionsPerIp: { burst: config.rate_limit_connections_per_ip_burst, refill: config.rate_limit_connections_per_ip_per_s, intervalMs: 1000 },
    failedLogins: { ...FAILED_LOGINS_PER_SOURCE_DEFAULT, burst: config.rate_limit_failed_logins, refill: config.rate_limit_failed_logins_per_min },
  });
  if (!limitsR.ok) {
    core.stop();
    return { ok: false, message: `rate limits: ${limitsR.error.key}: ${limitsR.error.reason}` };
  }
  const limits = limitsR.limits;
  const revocationSet = new Revocations({ clock: env.clock, maxLifetimeSeconds: config.jwt_max_lifetime_s });
  const liveTokens = new LiveTokens({ revocations: revocationSet, end: (pid: Pid, ended: TokenEnded) => s.send(pid, ended, null) });
  const { store: revocations, load } = await RevocationStore.open({ storage, revocations: revocationSet, clock: env.clock, log: env.log, onRevoked: (jti) => liveTokens.revoked(jti) });
  if (load.loaded > 0 || load.pruned > 0) env.log.info({ ...load }, 'token revocations loaded');
  let verifier: JwtVerifier | null = null;
  if (config.auth_enabled) {
    const v = JwtVerifier.create({
      secret: config.jwt_secret,
      clock: env.clock,
      issuer: config.jwt_issuer,
      maxLifetimeSeconds: config.jwt_max_lifetime_s,
      revocations: revocationSet,
    });
    if (!v.ok) {
      core.stop();
      return { ok: false, message: `jwt_secret: ${JSON.stringify(v.error)}` };
    }
    verifier = v.verifier;
  }

  const deps: ConnectionDeps = {
    ...core.routing,
    presence,
    authenticate: loginGate({
      verifier,
      limits,
      clientCertificate: { required: config.tls_client_auth === 'required', userMatch: config.tls_client_cert_user_match },
      log: env.log,
    }),
    limits,
    rates,
    liveTokens,
    settings: {
      loginTimeoutMs: config.login_timeout_ms,
      slowClientTimeoutMs: config.slow_client_timeout_ms,
      maxInputBufferBytes: config.max_input_buffer_bytes,
      windowMessages: config.delivery_window_messages,
      windowBytes: config.delivery_window_bytes,
      pageMessages: config.inbox_page_messages,
      pageBytes: config.inbox_page_bytes,
      noticeLimit: config.receipt_inbox_cap,
      requestTimeoutMs: config.request_timeout_ms,
      statusBeforeLogin: config.mode !== 'production',
    },
  };
  let connections = 0;
  const clients = new ClientDrain();
  const accept = acceptConnections(s, deps, {
    clients,
    admit: (link) => limits.connectionOpened(link.remoteAddress),
    opened: () => connections++,
    closed: () => {
      connections--;
      limits.connectionClosed();
    },
  });
  return {
    ok: true,
    service: {
      accept,
      presence,
      core,
      cluster,
      clients,
      router: core.router,
      counters,
      limits,
      rates,
      revocations,
      liveTokens,
      droppedReceipts: () => core.droppedReceipts(),
      connections: () => connections,
      health: () => {
        const h = core.health();
        const status = clients.draining ? 'draining' : h.safe_mode ? 'safe_mode' : 'ok';
        return { status, draining: clients.draining, node: config.node_name, mode: config.mode, connections, online_users: presence.onlineCount(), ...h };
      },
      stop: () => core.stop(),
    },
  };
}
