/**
 * The messaging service of one node, assembled on a scheduler and an Env that carries
 * storage: the offline mailbox, presence, the router shards, the groups and key-directory
 * services, login rules and limits, and the function that turns each client link into a
 * connection. It knows nothing of sockets, threads or files, so the production node
 * (bin/irisNode.ts, with LMDB and real listeners) and the simulator (sim/, with virtual
 * storage and links) run exactly this code.
 */
import * as Supervisor from '../actors/Supervisor.js';
import type { IrisConfig } from './NodeConfig.js';
import { CORE_SUPERVISOR_INTENSITY, CORE_SUPERVISOR_PERIOD_S } from '../core/defaults.js';
import { groupsService } from '../core/Groups.js';
import type { Inbox } from '../core/Inbox.js';
import { keyDirectory } from '../core/KeyDirectory.js';
import { MailboxInbox } from '../core/MailboxInbox.js';
import { OfflineMailbox } from '../core/OfflineMailbox.js';
import { PresenceTable } from '../core/Presence.js';
import { startRouter, type Router } from '../core/Router.js';
import type { UserKey } from '../core/UserId.js';
import type { Env, StorageEngine } from '../runtime/Env.js';
import type { Pid } from '../runtime/Pid.js';
import type { Scheduler } from '../runtime/Scheduler.js';
import { JwtVerifier } from '../edge/auth/JwtVerifier.js';
import { Revocations } from '../edge/auth/Revocations.js';
import type { AcceptLink } from '../edge/ClientLink.js';
import { acceptConnections } from '../edge/EdgeAcceptor.js';
import { RateLimits } from '../edge/limits/RateLimits.js';
import { loginGate } from '../edge/LoginGate.js';

export const GROUPS_NAME = 'groups';
export const KEYS_NAME = 'key_directory';

export interface IrisService {
  /** Hand every new client link here (TCP, TLS, WebSocket or simulated). */
  readonly accept: AcceptLink;
  readonly presence: PresenceTable;
  readonly router: Router;
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

/** The single-writer state services (groups, key directory) under one supervisor. */
async function startServices(s: Scheduler, storage: StorageEngine, shardFor: (u: UserKey) => Pid | string): Promise<{ ok: true } | { ok: false; message: string }> {
  const sup = await Supervisor.start(
    s,
    {
      flags: { strategy: 'one_for_one', intensity: CORE_SUPERVISOR_INTENSITY, period: CORE_SUPERVISOR_PERIOD_S },
      children: [
        { id: GROUPS_NAME, start: (ctx) => ({ ok: true as const, pid: ctx.spawnLink(groupsService({ storage, shardFor }), { name: GROUPS_NAME, label: 'Groups' }) }) },
        { id: KEYS_NAME, start: (ctx) => ({ ok: true as const, pid: ctx.spawnLink(keyDirectory(storage), { name: KEYS_NAME, label: 'KeyDirectory' }) }) },
      ],
    },
    { name: 'services_sup' },
  );
  return sup.ok ? { ok: true } : { ok: false, message: `services failed to start: ${JSON.stringify(sup.reason)}` };
}

/** Start the service's processes on `s`; every failure names what to fix. */
export async function startIrisService(s: Scheduler, env: Env, storage: StorageEngine, config: IrisConfig, opts: IrisServiceOptions = {}): Promise<StartIrisServiceResult> {
  const mb = OfflineMailbox.open({ ...env, storage }, { capacityPerUser: config.inbox_cap });
  if (!mb.ok) return { ok: false, message: `offline mailbox: ${mb.message}` };
  const plain = new MailboxInbox(mb.mailbox, storage, env.clock, env.log);
  const inbox = opts.wrapInbox !== undefined ? opts.wrapInbox(plain) : plain;
  const presence = new PresenceTable();
  const routed = await startRouter(s, config.router_pool_size, { inbox, presence, storage });
  if (!routed.ok) return { ok: false, message: `router failed to start: ${JSON.stringify(routed.reason)}` };
  const router = routed.router;

  const services = await startServices(s, storage, router.shardFor);
  if (!services.ok) return services;

  const limitsR = RateLimits.create(env.clock, {
    maxConnections: config.max_connections,
    messages: { burst: config.rate_limit_messages_burst, refill: config.rate_limit_messages_per_s, intervalMs: 1000 },
    connectionsPerIp: { burst: config.rate_limit_connections_per_ip_burst, refill: config.rate_limit_connections_per_ip_per_s, intervalMs: 1000 },
    failedLogins: { burst: config.rate_limit_failed_logins, refill: config.rate_limit_failed_logins_per_min, intervalMs: 60_000 },
  });
  if (!limitsR.ok) return { ok: false, message: `rate limits: ${limitsR.error.key}: ${limitsR.error.reason}` };
  const limits = limitsR.limits;
  let verifier: JwtVerifier | null = null;
  if (config.auth_enabled) {
    const v = JwtVerifier.create({
      secret: config.jwt_secret,
      clock: env.clock,
      issuer: config.jwt_issuer,
      maxLifetimeSeconds: config.jwt_max_lifetime_s,
      revocations: new Revocations({ clock: env.clock }),
    });
    if (!v.ok) return { ok: false, message: `jwt_secret: ${JSON.stringify(v.error)}` };
    verifier = v.verifier;
  }
  const authenticate = loginGate({
    verifier,
    limits,
    clientCertificate: { required: config.tls_client_auth === 'required', userMatch: config.tls_client_cert_user_match },
  });

  const deps = {
    shardFor: router.shardFor,
    groups: GROUPS_NAME,
    keys: KEYS_NAME,
    presence,
    inbox,
    authenticate,
    messageAllowed: (user: Uint8Array, n: number) => limits.message(user, n),
    retransmitMs: 5_000,
    loginTimeoutMs: config.login_timeout_ms,
    slowClientTimeoutMs: config.slow_client_timeout_ms,
    maxInputBufferBytes: config.max_input_buffer_bytes,
    inboxCap: config.inbox_cap,
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
      connections: () => connections,
      health: () => ({ status: 'ok', node: config.node_name, mode: config.mode, connections, online_users: presence.onlineCount() }),
    },
  };
}
