/**
 * The node's configuration: the node's own keys (below) merged with the keys each layer
 * declares (core/CoreSettings.ts, edge/EdgeSettings.ts, edge/admin/AdminSettings.ts), validated with messages that name the
 * key and the fix. Values come from (lowest to highest) the defaults, a JSON config file,
 * `IRIS_<KEY>` environment variables and command-line flags. Keys keep the seeds' snake_case
 * names so an operator who knows the runbooks finds them. Pure: reading files and the
 * environment is the caller's job (bin/), so this runs anywhere, the simulator included.
 */
import { CORE_SETTINGS } from '../core/CoreSettings.js';
import { ADMIN_SETTINGS, adminTokenProblem } from '../edge/admin/AdminSettings.js';
import { EDGE_SETTINGS } from '../edge/EdgeSettings.js';
import { JWT_MIN_SECRET_BYTES } from '../edge/auth/JwtVerifier.js';
import { applyListenerModeDefaults, checkListenerSettings } from '../edge/listeners/ListenerSettings.js';
import { validNodeName } from '../runtime/Membership.js';
import { CLUSTER_DOWN_AFTER_MS, CLUSTER_HEARTBEAT_MS } from '../runtime/defaults.js';
import { coerceSetting, defaultsOf, type SettingProblem, type SettingSpec, type SettingsOf, type SettingsSchema } from '../runtime/Settings.js';

export type Mode = 'dev' | 'production';
export type ConsistencyMode = 'ap' | 'hardened_ap' | 'cp';

/** Keys that belong to the node as a whole (its identity, storage, threads, cluster). */
export const NODE_SETTINGS = {
  mode: { kind: 'enum', default: 'dev', values: ['dev', 'production'], doc: 'dev: loopback only, tokenless logins unless a secret is set. production: auth required, safety checks enforced.' },
  node_name: { kind: 'string', default: 'iris@local', doc: 'Node name used in pids and logs; unique in a cluster.' },
  host: { kind: 'string', default: '127.0.0.1', doc: 'Address the listeners bind to (dev mode forces loopback).' },
  wal_directory: { kind: 'string', default: './data', doc: 'Storage directory (the LMDB environment); never on tmpfs in production.' },
  schedulers: { kind: 'int', default: 0, min: 0, max: 256, doc: 'Scheduler threads (0 = one per core).' },
  log_level: { kind: 'enum', default: 'info', values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], doc: 'Lowest log level written.' },
  expected_cluster_nodes: { kind: 'int', default: 1, min: 1, max: 1000, doc: 'Nodes the cluster should have; fewer than a majority puts a node in safe mode.' },
  replication_factor: { kind: 'int', default: 1, min: 1, max: 5, doc: 'Copies of each shard group (3 for quorum durability).' },
  consistency_mode: { kind: 'enum', default: 'hardened_ap', values: ['ap', 'hardened_ap', 'cp'], doc: 'ap, hardened_ap (quorum + partition guard) or cp.' },
  region_id: { kind: 'string', default: 'local', doc: 'This node’s region.' },
  allow_table_nuke: { kind: 'bool', default: false, doc: 'Never delete tables to "repair" storage unless this is on.' },
  verify_storage_at_start: {
    kind: 'bool',
    default: true,
    doc: 'Before a node opens an existing LMDB environment, read every record of every table in a child process; a damaged file is reported (naming it and the fix) and the node does not start. Costs a read of the whole file at each start.',
  },
  cluster_name: { kind: 'string', default: 'iris', doc: 'Name of the cluster this node joins (its NATS subjects and JetStream streams); nodes of other clusters are invisible.' },
  roles: { kind: 'list', default: ['edge', 'core'], doc: 'What this node does in a cluster: edge (client connections), core (owns shard groups), or both.' },
  nats_servers: { kind: 'list', default: [], doc: 'NATS servers of the cluster (nats://host:port, comma-separated); empty = a single node without NATS. `iris start --join URL` sets it.' },
  nats_discover_servers: { kind: 'bool', default: true, doc: 'Also use the servers the NATS cluster advertises; false pins the node to nats_servers (behind a proxy or NAT).' },
  nats_user: { kind: 'string', default: '', doc: 'NATS user name (with nats_password).' },
  nats_password: { kind: 'string', default: '', doc: 'NATS password of nats_user.' },
  nats_token: { kind: 'string', default: '', doc: 'NATS authentication token (instead of a user and password).' },
  nats_creds_file: { kind: 'string', default: '', doc: 'NATS credentials file (.creds: a user JWT and nkey seed).' },
  nats_tls_ca_file: { kind: 'string', default: '', doc: 'PEM CA bundle to verify the NATS servers with; setting any nats_tls_* key requires TLS.' },
  nats_tls_cert_file: { kind: 'string', default: '', doc: 'PEM client certificate for NATS servers that verify clients (with nats_tls_key_file).' },
  nats_tls_key_file: { kind: 'string', default: '', doc: 'PEM private key of nats_tls_cert_file.' },
  cluster_heartbeat_ms: { kind: 'int', default: CLUSTER_HEARTBEAT_MS, min: 20, max: 60_000, doc: 'How often a node tells the cluster it is alive.' },
  cluster_down_after_ms: {
    kind: 'int',
    default: CLUSTER_DOWN_AFTER_MS,
    min: 100,
    max: 600_000,
    doc: 'A node not heard from this long is down: its shard groups fail over (at least 3 heartbeats).',
  },
  drain_timeout_ms: {
    kind: 'int',
    default: 60_000,
    min: 1_000,
    max: 3_600_000,
    doc: 'A drain (iris node drain, SIGTERM of a cluster node) waits this long for the node\'s shard groups to move; then it goes on, and groups not yet moved fail over when the node stops.',
  },
  drain_client_grace_ms: {
    kind: 'int',
    default: 5_000,
    min: 0,
    max: 600_000,
    doc: 'How long a draining node\'s clients, told node_draining, have to close before the node closes their connections.',
  },
  // ---- several node processes on one machine (`iris start --processes N`, server/NodeProcessSupervisor.ts) ----
  processes: {
    kind: 'int',
    default: 1,
    min: 0,
    max: 256,
    doc: 'Node processes `iris start` runs on this machine as one cluster sharing the client ports (0 = one per core; 1 = the single node process).',
  },
  process_restart_intensity: { kind: 'int', default: 5, min: 0, max: 1000, doc: 'Restarts of node processes (and of the local nats-server) allowed within process_restart_period_s; one more stops everything.' },
  process_restart_period_s: { kind: 'int', default: 60, min: 1, max: 86_400, doc: 'The window, in seconds, over which process_restart_intensity counts restarts.' },
  process_restart_backoff_ms: { kind: 'int', default: 500, min: 0, max: 600_000, doc: 'Delay before a dead node process is started again; doubles with each restart of it inside the period.' },
  process_restart_backoff_max_ms: { kind: 'int', default: 10_000, min: 0, max: 3_600_000, doc: 'The longest delay before a dead node process is started again.' },
  local_nats_server: {
    kind: 'string',
    default: 'nats-server',
    doc: 'The nats-server executable (a path, or a name on PATH) that `iris start --processes` runs for its nodes when nats_servers is empty.',
  },
} as const;

/** The roles a node may take (config key `roles`). */
export const NODE_ROLES = ['edge', 'core'] as const;

/** Every key of the node configuration: the node's own and each layer's. */
export const CONFIG_SCHEMA = { ...NODE_SETTINGS, ...CORE_SETTINGS, ...EDGE_SETTINGS, ...ADMIN_SETTINGS } as const satisfies SettingsSchema;

export type IrisConfig = SettingsOf<typeof CONFIG_SCHEMA>;

export const DEFAULT_CONFIG: Readonly<IrisConfig> = defaultsOf(CONFIG_SCHEMA);

/**
 * Keys an older release knew that mean nothing now: accepted with a warning that says why,
 * so an existing config file keeps working.
 */
const RETIRED_KEYS: Readonly<Record<string, string>> = {
  retransmit_ms:
    'retransmit_ms is no longer used: a delivery is written once per connection, and what a client has not acknowledged comes back at its next login; remove the key',
};

export type ConfigProblem = SettingProblem;

export type ConfigResult = { ok: true; config: IrisConfig; warnings: string[] } | { ok: false; problems: ConfigProblem[] };

/** A layer of raw settings: values may be strings (environment, flags) or JSON values (file). */
export type RawLayer = Record<string, unknown>;

/** Environment variables `IRIS_<KEY>` as a raw layer (e.g. IRIS_JWT_SECRET). */
export function layerFromEnv(env: Record<string, string | undefined>): RawLayer {
  const out: RawLayer = {};
  for (const key of Object.keys(CONFIG_SCHEMA)) {
    const v = env[`IRIS_${key.toUpperCase()}`];
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/**
 * Merge layers over the defaults, validate every key, apply the mode's rules and the
 * production safety checks. `layers` are [name, values] from lowest to highest precedence.
 * `storageOnTmpfs` reports whether wal_directory is on tmpfs (checked by the caller).
 */
export function resolveConfig(layers: Array<[string, RawLayer]>, storageOnTmpfs?: (dir: string) => boolean): ConfigResult {
  const problems: ConfigProblem[] = [];
  const warnings: string[] = [];
  const merged: Record<string, unknown> = { ...DEFAULT_CONFIG };
  const explicit = new Set<string>();
  const schema: Readonly<Record<string, SettingSpec | undefined>> = CONFIG_SCHEMA;
  for (const [source, layer] of layers) {
    for (const [key, raw] of Object.entries(layer)) {
      if (raw === undefined) continue;
      const retired = RETIRED_KEYS[key];
      if (retired !== undefined) {
        warnings.push(`${retired} (from ${source})`);
        continue;
      }
      const spec = schema[key];
      if (spec === undefined) {
        problems.push({ key, message: `${key} (from ${source}): unknown key; known keys are ${Object.keys(CONFIG_SCHEMA).join(', ')}` });
        continue;
      }
      const r = coerceSetting(key, spec, raw, source);
      if (!r.ok) problems.push(r.problem);
      else {
        merged[key] = r.value;
        explicit.add(key);
      }
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  const c = merged as unknown as IrisConfig;
  const secretBytes = new TextEncoder().encode(c.jwt_secret).length;

  if (c.mode === 'production') {
    if (!explicit.has('auth_enabled')) c.auth_enabled = true;
    if (!c.auth_enabled) problems.push({ key: 'auth_enabled', message: 'auth_enabled: must be true in production mode; set mode=dev for tokenless logins' });
    if (secretBytes < JWT_MIN_SECRET_BYTES) {
      problems.push({ key: 'jwt_secret', message: `jwt_secret: needs at least ${JWT_MIN_SECRET_BYTES} bytes in production mode (got ${secretBytes}); generate one with: openssl rand -base64 48` });
    }
    if ((c.tls_cert_file === '') !== (c.tls_key_file === '')) {
      problems.push({ key: 'tls_cert_file', message: 'tls_cert_file and tls_key_file: set both to enable TLS, or neither' });
    }
    if (storageOnTmpfs?.(c.wal_directory) === true) {
      problems.push({ key: 'wal_directory', message: `wal_directory: ${c.wal_directory} is on tmpfs, which loses every message at reboot; point it at a persistent disk` });
    }
    if (c.expected_cluster_nodes > 1 && c.replication_factor < 3 && c.consistency_mode !== 'ap') {
      warnings.push('replication_factor < 3 with a multi-node cluster: quorum durability needs 3 replicas');
    }
  } else {
    if (c.host !== '127.0.0.1' && c.host !== 'localhost' && c.host !== '::1') {
      warnings.push(`dev mode binds to loopback only; host ${c.host} ignored (set mode=production to listen on other addresses)`);
      c.host = '127.0.0.1';
    }
    if (!explicit.has('auth_enabled')) c.auth_enabled = secretBytes > 0;
    if (c.auth_enabled && secretBytes < JWT_MIN_SECRET_BYTES) {
      problems.push({ key: 'jwt_secret', message: `jwt_secret: needs at least ${JWT_MIN_SECRET_BYTES} bytes when auth_enabled is true (got ${secretBytes})` });
    }
    if (!c.auth_enabled) warnings.push('AUTH DISABLED (dev mode): any client can log in as any user without a token; never expose this node');
  }
  applyListenerModeDefaults(c, c.mode, explicit);
  const listeners = checkListenerSettings(c, c.mode, c.tls_cert_file !== '' && c.tls_key_file !== '');
  problems.push(...listeners.problems);
  warnings.push(...listeners.warnings);
  if (c.allow_table_nuke) warnings.push('allow_table_nuke is on: corrupted tables may be deleted instead of refusing to start');
  if (c.roles.length === 0 || c.roles.some((r) => !(NODE_ROLES as readonly string[]).includes(r))) {
    problems.push({ key: 'roles', message: `roles: must be edge, core or both (got '${c.roles.join(',')}')` });
  }
  if (c.cluster_name === '' || !validNodeName(c.cluster_name)) {
    problems.push({ key: 'cluster_name', message: `cluster_name: must be 1-255 printable characters without spaces (got '${c.cluster_name}')` });
  }
  checkProcessSettings(c, explicit, problems);
  checkClusterSettings(c, explicit, problems, warnings);
  const adminProblem = adminTokenProblem(c.admin_token);
  if (adminProblem !== undefined) problems.push({ key: 'admin_token', message: adminProblem });
  if (c.port !== 0 && c.port === c.http_port) problems.push({ key: 'http_port', message: `http_port: must differ from port (both ${c.port})` });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, config: c, warnings };
}

/** Whether the node joins a cluster (nats_servers given) rather than running alone. */
export function isClustered(c: Pick<IrisConfig, 'nats_servers'>): boolean {
  return c.nats_servers.length > 0;
}

/** How many node processes `iris start` runs: `processes`, with 0 meaning one per core. */
export function nodeProcessCount(c: Pick<IrisConfig, 'processes'>, cores: number): number {
  return c.processes === 0 ? cores : c.processes;
}

/**
 * Whether `iris start` runs several node processes (any `processes` but 1), and then, without
 * nats_servers, what their one local nats-server implies: R1 streams (one server holds one
 * copy), durability `local` (a standby on the same disk adds no copy a crash would spare) and
 * expected_cluster_nodes 1 (the nodes cannot be partitioned from each other while they share
 * the server; a dead one's groups fail over instead of stopping every write). Each node
 * process runs one scheduler unless `schedulers` says otherwise: the processes are the cores.
 * Keys set explicitly win, except a stream_replicas one server cannot hold.
 */
function checkProcessSettings(c: IrisConfig, explicit: ReadonlySet<string>, problems: ConfigProblem[]): void {
  if (c.processes === 1) return;
  if (!explicit.has('schedulers')) c.schedulers = 1;
  if (c.process_restart_backoff_max_ms < c.process_restart_backoff_ms) {
    problems.push({ key: 'process_restart_backoff_max_ms', message: `process_restart_backoff_max_ms: must be at least process_restart_backoff_ms (${c.process_restart_backoff_ms}), got ${c.process_restart_backoff_max_ms}` });
  }
  if (isClustered(c)) return;
  if (explicit.has('stream_replicas') && c.stream_replicas !== 1) {
    problems.push({
      key: 'stream_replicas',
      message: `stream_replicas: the node processes of one machine share one local nats-server, which holds one copy of a stream (got ${c.stream_replicas}); remove the key (it is 1 there) or set nats_servers to a 3-server NATS cluster`,
    });
  }
  c.stream_replicas = 1;
  if (!explicit.has('durability')) c.durability = 'local';
  if (!explicit.has('expected_cluster_nodes')) c.expected_cluster_nodes = 1;
}

/** The cluster keys: NATS addresses and credentials, timings, and what a cluster needs in production. */
function checkClusterSettings(c: IrisConfig, explicit: ReadonlySet<string>, problems: ConfigProblem[], warnings: string[]): void {
  for (const url of c.nats_servers) {
    if (!/^((nats|tls):\/\/)?[^\s/:]+(:\d+)?$/.test(url)) problems.push({ key: 'nats_servers', message: `nats_servers: '${url}' is not a NATS address; use nats://host:port` });
  }
  if ((c.nats_user === '') !== (c.nats_password === '')) problems.push({ key: 'nats_user', message: 'nats_user and nats_password: set both, or neither' });
  if (c.nats_token !== '' && c.nats_user !== '') problems.push({ key: 'nats_token', message: 'nats_token: use a token or a user and password, not both' });
  if ((c.nats_tls_cert_file === '') !== (c.nats_tls_key_file === '')) problems.push({ key: 'nats_tls_cert_file', message: 'nats_tls_cert_file and nats_tls_key_file: set both for a client certificate, or neither' });
  if (c.cluster_down_after_ms < 3 * c.cluster_heartbeat_ms) {
    problems.push({ key: 'cluster_down_after_ms', message: `cluster_down_after_ms: must be at least 3 heartbeats (3 × cluster_heartbeat_ms = ${3 * c.cluster_heartbeat_ms}), got ${c.cluster_down_after_ms}` });
  }
  if (!isClustered(c)) {
    if (c.roles.length !== 2) problems.push({ key: 'roles', message: `roles: a node without nats_servers is a single node and must be both edge and core (got '${c.roles.join(',')}'); set nats_servers to join a cluster` });
    return;
  }
  if (c.mode === 'production') {
    if (!explicit.has('expected_cluster_nodes')) problems.push({ key: 'expected_cluster_nodes', message: 'expected_cluster_nodes: set it to the number of nodes of the cluster (the partition guard counts a majority of it)' });
    if (!explicit.has('node_name')) problems.push({ key: 'node_name', message: 'node_name: give every node of a cluster its own name (e.g. iris@host1)' });
  }
  if (c.expected_cluster_nodes === 1) {
    warnings.push('expected_cluster_nodes is 1 with nats_servers: this node counts only itself, so it never enters safe mode on a partition; set it to the number of nodes');
  }
}
