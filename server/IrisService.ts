/**
 * The messaging service of one node, assembled on a scheduler and an Env that carries
 * storage: the offline mailboxes, presence, the router shards, the groups and key-directory
 * servers, login rules and limits, durable token revocations with the registry of live token
 * sessions they end, and the function that turns each client link into a connection. It
 * knows nothing of sockets, threads or files, so the production node (server/IrisNode.ts,
 * with LMDB and real listeners) and the simulator (sim/, with virtual storage and links) run
 * exactly this code.
 */
import * as Supervisor from '../actors/Supervisor.js';
import { newCoreCounters, type CoreCounters } from '../core/CoreCounters.js';
import { CORE_SUPERVISOR_INTENSITY, CORE_SUPERVISOR_PERIOD_S } from '../core/defaults.js';
import { GROUPS_NAME, startGroups } from '../core/Groups.js';
import type { Inbox } from '../core/Inbox.js';
import { KEYS_NAME, startKeyDirectory } from '../core/KeyDirectory.js';
import { MailboxInbox } from '../core/MailboxInbox.js';
import { OfflineMailbox } from '../core/OfflineMailbox.js';
import { PresenceTable } from '../core/Presence.js';
import { startRouter, type Router } from '../core/Router.js';
import type { UserKey } from '../core/UserId.js';
import { JwtVerifier } from '../edge/auth/JwtVerifier.js';
import { LiveTokens, type TokenEnded } from '../edge/auth/LiveTokens.js';
import { RevocationStore } from '../edge/auth/RevocationStore.js';
import { Revocations } from '../edge/auth/Revocations.js';
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
import type { IrisConfig } from './NodeConfig.js';

export { GROUPS_NAME, KEYS_NAME };

/** The table of receipts kept for offline users (apart from the message inbox). */
const RECEIPTS_TABLE = 'receipts';

export interface IrisService {
  /** Hand every new client link here (TCP, TLS, WebSocket or simulated). */
  readonly accept: AcceptLink;
  readonly presence: PresenceTable;
  readonly router: Router;
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
  health(): { status: 'ok'; node: string; mode: string; connections: number; online_users: number };
}

export interface IrisServiceOptions {
  /** Wraps the inbox the router and sessions use (the simulator records what becomes durable). */
  wrapInbox?: (inner: Inbox) => Inbox;
}

export type StartIrisServiceResult = { ok: true; service: IrisService } | { ok: false; message: string };

/** The single-writer state servers (groups, key directory) under one supervisor. */
async function startServers(
  s: Scheduler,
  storage: StorageEngine,
  shardFor: (u: UserKey) => Pid | string,
  fanoutAllowed: (u: UserKey, n: number) => boolean,
  counters: CoreCounters,
): Promise<{ ok: true } | { ok: false; message: string }> {
  const sup = await Supervisor.start(
    s,
    {
      flags: { strategy: 'one_for_one', intensity: CORE_SUPERVISOR_INTENSITY, period: CORE_SUPERVISOR_PERIOD_S },
      children: [
        { id: GROUPS_NAME, start: (ctx) => startGroups(ctx, { storage, shardFor, fanoutAllowed, counters }) },
        { id: KEYS_NAME, start: (ctx) => startKeyDirectory(ctx, storage) },
      ],
    },
    { name: 'services_sup' },
  );
  return sup.ok ? { ok: true } : { ok: false, message: `services failed to start: ${JSON.stringify(sup.reason)}` };
}

/** Start the service's processes on `s`; every failure names what to fix. */
export async function startIrisService(s: Scheduler, env: Env, storage: StorageEngine, config: IrisConfig, opts: IrisServiceOptions = {}): Promise<StartIrisServiceResult> {
  const withStorage = { ...env, storage };
  const messages = OfflineMailbox.open(withStorage, { capacityPerUser: config.inbox_cap, maxBytesPerUser: config.inbox_max_bytes });
  if (!messages.ok) return { ok: false, message: `offline mailbox: ${messages.message}` };
  const receipts = OfflineMailbox.open(withStorage, { capacityPerUser: config.receipt_inbox_cap, table: RECEIPTS_TABLE });
  if (!receipts.ok) return { ok: false, message: `receipt store: ${receipts.message}` };
  const plain = new MailboxInbox(messages.mailbox, receipts.mailbox, storage, env.clock, env.log);
  const inbox = opts.wrapInbox !== undefined ? opts.wrapInbox(plain) : plain;
  const presence = new PresenceTable();
  const counters = newCoreCounters();
  const routed = await startRouter(s, config.router_pool_size, { inbox, presence, storage, counters });
  if (!routed.ok) return { ok: false, message: `router failed to start: ${JSON.stringify(routed.reason)}` };
  const router = routed.router;

  const rates = new UserRates(env.clock, config);
  const servers = await startServers(s, storage, router.shardFor, (u, n) => rates.fanout(u, n), counters);
  if (!servers.ok) return servers;

  const limitsR = RateLimits.create(env.clock, {
    maxConnections: config.max_connections,
    messages: { burst: config.rate_limit_messages_burst, refill: config.rate_limit_messages_per_s, intervalMs: 1000 },
    connectionsPerIp: { burst: config.rate_limit_connections_per_ip_burst, refill: config.rate_limit_connections_per_ip_per_s, intervalMs: 1000 },
    failedLogins: { ...FAILED_LOGINS_PER_SOURCE_DEFAULT, burst: config.rate_limit_failed_logins, refill: config.rate_limit_failed_logins_per_min },
  });
  if (!limitsR.ok) return { ok: false, message: `rate limits: ${limitsR.error.key}: ${limitsR.error.reason}` };
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
    if (!v.ok) return { ok: false, message: `jwt_secret: ${JSON.stringify(v.error)}` };
    verifier = v.verifier;
  }

  const deps: ConnectionDeps = {
    shardFor: router.shardFor,
    groups: GROUPS_NAME,
    keys: KEYS_NAME,
    presence,
    inbox,
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
  const accept = acceptConnections(s, deps, {
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
      router,
      counters,
      limits,
      rates,
      revocations,
      liveTokens,
      droppedReceipts: () => plain.droppedNotices,
      connections: () => connections,
      health: () => ({ status: 'ok', node: config.node_name, mode: config.mode, connections, online_users: presence.onlineCount() }),
    },
  };
}
