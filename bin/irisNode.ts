/**
 * Assembles one Iris node from a validated config: the runtime (scheduler threads), durable
 * storage (LMDB in `wal_directory`), the offline mailbox, presence, the router shards, login
 * rules and limits, and the listeners (raw TCP for v1, uWebSockets.js for `/ws` and HTTP).
 * Every startup failure is a typed result naming what to fix; `stop()` closes in reverse.
 */
import { availableParallelism } from 'node:os';
import { MailboxInbox } from '../core/MailboxInbox.js';
import { OfflineMailbox } from '../core/OfflineMailbox.js';
import { PresenceTable } from '../core/Presence.js';
import { startRouter } from '../core/Router.js';
import type { IrisConfig } from '../core/Config.js';
import { JwtVerifier } from '../edge/auth/JwtVerifier.js';
import { Revocations } from '../edge/auth/Revocations.js';
import type { ClientListener } from '../edge/ClientLink.js';
import { acceptConnections } from '../edge/EdgeAcceptor.js';
import { listenTcp } from '../edge/listeners/TcpListener.js';
import { listenUws, loadNativeUws } from '../edge/listeners/UwsServer.js';
import { RateLimits } from '../edge/limits/RateLimits.js';
import { loginGate } from '../edge/LoginGate.js';
import { openLmdbStorage, type LmdbStorage } from '../runtime/node/LmdbStorage.js';
import { RuntimeNode } from '../runtime/node/RuntimeNode.js';
import { readFileSync } from 'node:fs';
import * as Supervisor from '../actors/Supervisor.js';
import { groupsService } from '../core/Groups.js';
import { keyDirectory } from '../core/KeyDirectory.js';
import type { UserKey } from '../core/UserId.js';
import type { Pid } from '../runtime/Pid.js';

const GROUPS_NAME = 'groups';
const KEYS_NAME = 'key_directory';

/** The single-writer state services (groups, key directory) under one supervisor. */
async function startServices(runtime: RuntimeNode, storage: LmdbStorage, shardFor: (u: UserKey) => Pid | string): Promise<{ ok: true } | { ok: false; message: string }> {
  const sup = await Supervisor.start(
    runtime.main,
    {
      flags: { strategy: 'one_for_one', intensity: 10, period: 10 },
      children: [
        { id: GROUPS_NAME, start: (ctx) => ({ ok: true as const, pid: ctx.spawnLink(groupsService({ storage, shardFor }), { name: GROUPS_NAME, label: 'Groups' }) }) },
        { id: KEYS_NAME, start: (ctx) => ({ ok: true as const, pid: ctx.spawnLink(keyDirectory(storage), { name: KEYS_NAME, label: 'KeyDirectory' }) }) },
      ],
    },
    { name: 'services_sup' },
  );
  return sup.ok ? { ok: true } : { ok: false, message: `services failed to start: ${JSON.stringify(sup.reason)}` };
}

export interface IrisNode {
  readonly runtime: RuntimeNode;
  readonly tcpPort: number;
  readonly httpPort: number;
  readonly config: IrisConfig;
  /** Stop listening, stop every process, flush and close storage. */
  stop(): Promise<void>;
}

export type StartIrisNodeResult = { ok: true; node: IrisNode } | { ok: false; message: string };

export async function startIrisNode(config: IrisConfig): Promise<StartIrisNodeResult> {
  const uws = loadNativeUws();
  if (!uws.ok) return { ok: false, message: uws.reason };
  const opened = openLmdbStorage({ path: config.wal_directory, productionChecks: config.mode === 'production' });
  if (!opened.ok) return { ok: false, message: `wal_directory: ${opened.message}` };
  const storage: LmdbStorage = opened.engine;

  const runtime = await RuntimeNode.start({
    name: config.node_name,
    schedulers: config.schedulers === 0 ? availableParallelism() : config.schedulers,
    logLevel: config.log_level,
  });
  const fail = async (message: string): Promise<StartIrisNodeResult> => {
    await runtime.stop();
    await storage.close();
    return { ok: false, message };
  };
  const env = { ...runtime.env, storage };
  const log = runtime.log;

  const mb = OfflineMailbox.open(env, { capacityPerUser: config.inbox_cap });
  if (!mb.ok) return fail(`offline mailbox: ${mb.message}`);
  const inbox = new MailboxInbox(mb.mailbox, storage, env.clock, log);
  const presence = new PresenceTable();
  const routed = await startRouter(runtime.main, config.router_pool_size, { inbox, presence, storage });
  if (!routed.ok) return fail(`router failed to start: ${JSON.stringify(routed.reason)}`);
  const router = routed.router;

  const services = await startServices(runtime, storage, router.shardFor);
  if (!services.ok) return fail(services.message);

  const limitsR = RateLimits.create(env.clock, {
    maxConnections: config.max_connections,
    messages: { burst: config.rate_limit_messages_burst, refill: config.rate_limit_messages_per_s, intervalMs: 1000 },
    connectionsPerIp: { burst: config.rate_limit_connections_per_ip_burst, refill: config.rate_limit_connections_per_ip_per_s, intervalMs: 1000 },
    failedLogins: { burst: config.rate_limit_failed_logins, refill: 1, intervalMs: 60_000 },
  });
  if (!limitsR.ok) return fail(`rate limits: ${limitsR.error.key}: ${limitsR.error.reason}`);
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
    if (!v.ok) return fail(`jwt_secret: ${JSON.stringify(v.error)}`);
    verifier = v.verifier;
  }
  const authenticate = loginGate({ verifier, limits });

  const deps = {
    shardFor: router.shardFor,
    groups: GROUPS_NAME,
    keys: KEYS_NAME,
    presence,
    inbox,
    authenticate,
    messageAllowed: (user: Uint8Array, n: number) => limits.message(user, n),
    retransmitMs: config.retransmit_ms,
    loginTimeoutMs: config.login_timeout_ms,
    slowClientTimeoutMs: config.slow_client_timeout_ms,
    maxInputBufferBytes: config.max_input_buffer_bytes,
    inboxCap: config.inbox_cap,
  };
  let connections = 0;
  const accept = acceptConnections(runtime.main, deps, {
    admit: (link) => limits.connectionOpened(link.remoteAddress),
    opened: () => connections++,
    closed: () => {
      connections--;
      limits.connectionClosed();
    },
  });

  const tls =
    config.tls_cert_file !== '' && config.tls_key_file !== ''
      ? { cert: readFileSync(config.tls_cert_file), key: readFileSync(config.tls_key_file) }
      : undefined;
  let tcp: ClientListener;
  let http: ClientListener;
  try {
    tcp = await listenTcp({ host: config.host, port: config.port, tls }, accept);
  } catch (err) {
    return fail(`port: cannot listen on ${config.host}:${config.port} (${(err as Error).message}); choose another port`);
  }
  try {
    http = await listenUws(
      {
        host: config.host,
        port: config.http_port,
        tls: tls !== undefined ? { keyFile: config.tls_key_file, certFile: config.tls_cert_file } : undefined,
        routes: {
          '/health': () => ({
            status: 200,
            body: JSON.stringify({ status: 'ok', node: config.node_name, mode: config.mode, connections, online_users: presence.onlineCount() }),
          }),
        },
      },
      accept,
    );
  } catch (err) {
    await tcp.close(true);
    return fail(`http_port: cannot listen on ${config.host}:${config.http_port} (${(err as Error).message}); choose another port`);
  }

  let stopped = false;
  return {
    ok: true,
    node: {
      runtime,
      config,
      tcpPort: tcp.port,
      httpPort: http.port,
      async stop() {
        if (stopped) return;
        stopped = true;
        await tcp.close(true);
        await http.close(true);
        await runtime.stop();
        await storage.close();
      },
    },
  };
}
