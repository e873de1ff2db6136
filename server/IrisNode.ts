/**
 * Assembles one Iris node from a validated config: the runtime (scheduler threads), durable
 * storage (LMDB in `wal_directory`), the messaging service on top (server/IrisService.ts) and
 * the listeners (raw TCP for v1, uWebSockets.js for `/ws`, `/health`, `/metrics`,
 * `/cluster/status` and the authenticated admin API under `/admin/`, whose token is
 * admin_token or the generated token file, server/AdminTokenFile.ts).
 *
 * With `nats_servers` the node joins a cluster: the runtime connects to NATS (the distribution
 * layer, and JetStream as the Env's `streams`), LMDB is opened with room for every shard
 * group's tables, and the service assembles the clustered core (server/ClusterCore.ts). Without
 * it the node is the single node, unchanged. A cluster node can be drained (server/NodeDrain.ts,
 * `POST /admin/drain`); `shutdown` (SIGTERM) drains it first when the cluster can spare it.
 * An existing LMDB environment is read through once before it is opened
 * (`verify_storage_at_start`, server/StorageInspection.ts): a damaged file stops the start with
 * a message naming it and the fix, and is left as it is.
 * Every startup failure is a typed result naming what to fix; `stop()` closes in reverse.
 */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { IrisConfig } from './NodeConfig.js';
import type { ClientListener } from '../edge/ClientLink.js';
import { AdminAuth } from '../edge/admin/AdminAuth.js';
import { adminRoutes } from '../edge/admin/AdminApi.js';
import { ADMIN_MAX_REQUEST_BODY_BYTES, ADMIN_SERVICE_TIMEOUT_MS } from '../edge/admin/AdminSettings.js';
import { groupsAdmin } from '../edge/admin/GroupsAdmin.js';
import { ensureAdminToken } from './AdminTokenFile.js';
import { NodeDrain } from './NodeDrain.js';
import { describeInspectionFailure, INSPECTION_MAX_TABLES, inspectStorage } from './StorageInspection.js';
import { startIrisService, type IrisService } from './IrisService.js';
import { isClustered } from './NodeConfig.js';
import { clusterStorageTables } from '../core/cluster/ShardGroups.js';
import type { ClusterOptions } from '../runtime/node/RuntimeNode.js';
import { metricsText } from './Metrics.js';
import { listenTcp } from '../edge/listeners/TcpListener.js';
import { listenUws, loadNativeUws } from '../edge/listeners/UwsServer.js';
import { OriginPolicy } from '../edge/listeners/OriginPolicy.js';
import { openLmdbStorage, type LmdbStorage } from '../runtime/node/LmdbStorage.js';
import { RuntimeNode } from '../runtime/node/RuntimeNode.js';

export interface IrisNode {
  readonly runtime: RuntimeNode;
  /** The messaging service (revocations, live tokens, presence …). */
  readonly service: IrisService;
  readonly tcpPort: number;
  readonly httpPort: number;
  readonly config: IrisConfig;
  /** Where the admin API's token is kept; null when it comes from the config key admin_token. */
  readonly adminTokenFile: string | null;
  /** The node's drain (`POST /admin/drain`); its `done` resolves when the node should stop. */
  readonly drain: NodeDrain;
  /**
   * Stop on a signal: a cluster node that may leave (LeaveCheck) drains first (shard groups
   * handed off, clients told node_draining), bounded by drain_timeout_ms and the clients'
   * grace; a single node, or a cluster node whose leave would cost the cluster its majority
   * (logged), stops at once. Then `stop`.
   */
  shutdown(): Promise<void>;
  /** Stop listening, stop every process, say goodbye to the cluster, flush and close storage; every caller gets the same promise. */
  stop(): Promise<void>;
}

export type StartIrisNodeResult = { ok: true; node: IrisNode } | { ok: false; message: string };

/** What the listeners need from files and lists in the config, read and checked before anything starts. */
function listenerInputs(config: IrisConfig): { ok: true; origins: OriginPolicy; clientCa: Buffer | null } | { ok: false; message: string } {
  const origins = OriginPolicy.parse(config.ws_allowed_origins);
  if (!origins.ok) return { ok: false, message: `ws_allowed_origins: '${origins.entry}' is ${origins.reason}` };
  let clientCa: Buffer | null = null;
  if (config.tls_client_auth !== 'none') {
    try {
      clientCa = readFileSync(config.tls_client_ca_file);
      new X509Certificate(clientCa);
    } catch (err) {
      return { ok: false, message: `tls_client_ca_file: cannot use ${config.tls_client_ca_file} (${(err as Error).message.split('\n')[0]}); point it at the PEM file of the CA that signs client certificates` };
    }
  }
  return { ok: true, origins: origins.policy, clientCa };
}

export async function startIrisNode(config: IrisConfig): Promise<StartIrisNodeResult> {
  const uws = loadNativeUws();
  if (!uws.ok) return { ok: false, message: uws.reason };
  const inputs = listenerInputs(config);
  if (!inputs.ok) return inputs;
  const clustered = isClustered(config);
  if (config.verify_storage_at_start) {
    // In a child process: a damaged page can crash the process that reads it.
    const checked = await inspectStorage(config.wal_directory, INSPECTION_MAX_TABLES);
    if (!checked.ok && checked.reason !== 'missing') {
      const skip = checked.reason === 'check_failed' ? '; to start without the check, set verify_storage_at_start=false' : '';
      return { ok: false, message: `wal_directory: ${describeInspectionFailure(config.wal_directory, checked)}${skip}` };
    }
  }
  const opened = openLmdbStorage({
    path: config.wal_directory,
    productionChecks: config.mode === 'production',
    ...(clustered ? { maxTables: clusterStorageTables(config.shard_groups) } : {}),
  });
  if (!opened.ok) return { ok: false, message: `wal_directory: ${opened.message}` };
  const storage: LmdbStorage = opened.engine;
  // After the storage opened: the data directory exists, and the token file lives in it.
  const adminToken = ensureAdminToken(config);
  const adminAuth = adminToken.ok ? AdminAuth.create(adminToken.token) : { ok: false as const, message: adminToken.message };
  if (!adminAuth.ok) {
    await storage.close();
    return { ok: false, message: adminAuth.message };
  }

  let runtime: RuntimeNode;
  try {
    runtime = await RuntimeNode.start({
      name: config.node_name,
      schedulers: config.schedulers === 0 ? availableParallelism() : config.schedulers,
      logLevel: config.log_level,
      ...(clustered ? { cluster: clusterOptions(config) } : {}),
    });
  } catch (err) {
    await storage.close();
    return { ok: false, message: `nats_servers: ${(err as Error).message}; check that the NATS servers run and the nats_* credentials` };
  }
  const fail = async (message: string): Promise<StartIrisNodeResult> => {
    await runtime.stop();
    await storage.close();
    return { ok: false, message };
  };
  const started = await startIrisService(runtime.main, runtime.env, storage, config, runtime.cluster !== null ? { cluster: { membership: runtime.cluster } } : {});
  if (!started.ok) return fail(started.message);
  const service = started.service;
  const { accept } = service;
  if (runtime.cluster !== null) logClusterStart(runtime, config, service.health().safe_mode);
  const drain = new NodeDrain({ scheduler: runtime.main, clients: service.clients, cluster: service.cluster, config, clock: runtime.env.clock, log: runtime.env.log });

  const tls =
    config.tls_cert_file !== '' && config.tls_key_file !== ''
      ? { cert: readFileSync(config.tls_cert_file), key: readFileSync(config.tls_key_file) }
      : undefined;
  const clientAuth = tls !== undefined && inputs.clientCa !== null && config.tls_client_auth !== 'none' ? { mode: config.tls_client_auth, ca: inputs.clientCa } : undefined;
  logListenerPolicy(runtime, config, inputs.origins);
  let tcp: ClientListener;
  let http: ClientListener;
  try {
    tcp = await listenTcp({ host: config.host, port: config.port, tls, clientAuth, keepAliveIdleSec: config.tcp_keepalive_idle_s, log: runtime.log }, accept);
  } catch (err) {
    return fail(`port: cannot listen on ${config.host}:${config.port} (${(err as Error).message}); choose another port`);
  }
  try {
    http = await listenUws(
      {
        host: config.host,
        port: config.http_port,
        tls:
          tls !== undefined
            ? { keyFile: config.tls_key_file, certFile: config.tls_cert_file, ...(clientAuth !== undefined ? { clientCaFile: config.tls_client_ca_file } : {}) }
            : undefined,
        maxRequestBodyBytes: ADMIN_MAX_REQUEST_BODY_BYTES,
        maxFrameBytes: config.ws_max_frame_bytes,
        outputHighWaterBytes: config.ws_output_high_water_bytes,
        outputLimitBytes: config.ws_output_limit_bytes,
        pausedInputLimitBytes: config.ws_paused_input_limit_bytes,
        idleTimeoutSec: config.ws_idle_timeout_s,
        autoPing: config.ws_auto_ping,
        origins: inputs.origins,
        log: runtime.log,
        routes: {
          '/health': () => {
            const h = service.health();
            // 503 in safe mode or while draining: a load balancer sends new clients to a node that can take them.
            return { status: h.safe_mode || h.draining ? 503 : 200, body: JSON.stringify({ ...h, memory: memoryMb() }) };
          },
          '/metrics': () => ({ status: 200, contentType: 'text/plain; version=0.0.4', body: metricsText(service) }),
          '/cluster/status': async () => {
            const body = await service.core.clusterStatus();
            return body === null
              ? { status: 404, body: JSON.stringify({ code: 'not_clustered', message: 'this node runs alone (no nats_servers)' }) }
              : { status: 200, body: JSON.stringify(body) };
          },
          ...adminRoutes({
            auth: adminAuth.auth,
            revocations: service.revocations,
            groups: groupsAdmin(runtime.main, (gid) => service.core.groupsServer(gid), ADMIN_SERVICE_TIMEOUT_MS),
            drain,
            log: runtime.env.log,
          }),
        },
      },
      accept,
    );
  } catch (err) {
    await tcp.close(true);
    return fail(`http_port: cannot listen on ${config.host}:${config.http_port} (${(err as Error).message}); choose another port`);
  }

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await tcp.close(true);
      await http.close(true);
      service.stop();
      await runtime.stop();
      await storage.close();
    })());
  return {
    ok: true,
    node: {
      runtime,
      service,
      config,
      adminTokenFile: adminToken.ok ? adminToken.file : null,
      tcpPort: tcp.port,
      httpPort: http.port,
      drain,
      async shutdown() {
        if (!drain.started && service.cluster !== null) {
          const r = drain.start('signal');
          if (!r.ok) runtime.log.warn({ code: r.code, reason: r.message }, 'stopping without a drain (the cluster cannot spare this node now); its shard groups fail over if the other nodes keep a majority');
        }
        if (drain.started) await drain.done;
        await stop();
      },
      stop,
    },
  };
}

/** How the runtime joins the cluster, from the nats_* and cluster_* keys. */
function clusterOptions(config: IrisConfig): ClusterOptions {
  const tls =
    config.nats_tls_ca_file !== '' || config.nats_tls_cert_file !== ''
      ? {
          ...(config.nats_tls_ca_file !== '' ? { caFile: config.nats_tls_ca_file } : {}),
          ...(config.nats_tls_cert_file !== '' ? { certFile: config.nats_tls_cert_file, keyFile: config.nats_tls_key_file } : {}),
        }
      : undefined;
  const addresses: Record<string, string> = {};
  if (config.port !== 0) addresses['tcp'] = `${config.host}:${config.port}`;
  if (config.http_port !== 0) addresses['http'] = `${config.host}:${config.http_port}`;
  return {
    cluster: config.cluster_name,
    servers: config.nats_servers,
    roles: config.roles,
    addresses,
    ...(config.nats_user !== '' ? { user: config.nats_user, pass: config.nats_password } : {}),
    ...(config.nats_token !== '' ? { token: config.nats_token } : {}),
    ...(config.nats_creds_file !== '' ? { credsFile: config.nats_creds_file } : {}),
    ...(tls !== undefined ? { tls } : {}),
    heartbeatMs: config.cluster_heartbeat_ms,
    downAfterMs: config.cluster_down_after_ms,
    ignoreClusterUpdates: !config.nats_discover_servers,
  };
}

function logClusterStart(runtime: RuntimeNode, config: IrisConfig, safeMode: boolean): void {
  runtime.log.info(
    {
      cluster: config.cluster_name,
      nats_servers: config.nats_servers,
      roles: config.roles,
      expected_cluster_nodes: config.expected_cluster_nodes,
      shard_groups: config.shard_groups,
      durability: config.durability,
      incarnation: runtime.cluster?.self.incarnation,
      safe_mode: safeMode,
    },
    safeMode ? 'joined the cluster; writes are refused (safe mode) until a majority of the expected nodes is visible' : 'joined the cluster',
  );
}

/** Say at startup which browser pages may connect and what client certificates are asked for. */
function logListenerPolicy(runtime: RuntimeNode, config: IrisConfig, origins: OriginPolicy): void {
  runtime.log.info(
    { ws_allowed_origins: origins.description, tcp_keepalive_idle_s: config.tcp_keepalive_idle_s, ws_idle_timeout_s: config.ws_idle_timeout_s },
    origins.allowsBrowsers ? 'WebSocket upgrades allowed from clients without an Origin and from the listed browser origins' : 'WebSocket upgrades allowed only from clients without an Origin (no browser page); set ws_allowed_origins to allow pages',
  );
  if (config.tls_client_auth === 'none') return;
  runtime.log.info({ tls_client_auth: config.tls_client_auth, tls_client_ca_file: config.tls_client_ca_file, tls_client_cert_user_match: config.tls_client_cert_user_match }, 'client certificates requested on the TLS ports');
  if (config.tls_client_auth === 'required' || config.tls_client_cert_user_match) {
    runtime.log.warn(
      {},
      'WSS logins will be refused: uWebSockets.js 20.30 verifies a client certificate presented on the WebSocket port but cannot report whether there was one or whose it is; clients that need a certificate must use the TLS port',
    );
  }
}

/** The process's memory in /health, in MB: resident, V8 heap used and reserved, buffers outside it. */
export interface NodeMemoryMb {
  rss: number;
  heap_used: number;
  heap_total: number;
  external: number;
}

function memoryMb(): NodeMemoryMb {
  const m = process.memoryUsage();
  const mb = (b: number) => Math.round((b / 1048576) * 10) / 10;
  return { rss: mb(m.rss), heap_used: mb(m.heapUsed), heap_total: mb(m.heapTotal), external: mb(m.external) };
}
