/**
 * The node's configuration: one typed record, its defaults in one place, and validation that
 * names the key and the fix for every problem. Values come from (lowest to highest) the
 * defaults, a JSON config file, `IRIS_<KEY>` environment variables and command-line flags.
 * Keys keep the seeds' snake_case names so an operator who knows the runbooks finds them.
 * Pure: reading files and the environment is the caller's job (bin/), so this runs anywhere.
 */

import { LISTENER_DEFAULTS, LISTENER_SCHEMA, applyListenerModeDefaults, checkListenerSettings, type ListenerSettings } from '../edge/listeners/ListenerSettings.js';

export type Mode = 'dev' | 'production';
export type ConsistencyMode = 'ap' | 'hardened_ap' | 'cp';

/** The listener keys (ws_*, tcp_keepalive_idle_s, tls_client_*) are declared in edge/listeners/ListenerSettings.ts. */
export interface IrisConfig extends ListenerSettings {
  /** `dev` (default): loopback only, tokenless logins unless a secret is set. `production`: auth required, safety checks enforced. */
  mode: Mode;
  /** Node name used in pids and logs. */
  node_name: string;
  /** Address the listeners bind to (dev mode forces loopback). */
  host: string;
  /** Raw TCP port for v1 clients. */
  port: number;
  /** HTTP port: WebSocket `/ws`, `/health`, admin. */
  http_port: number;
  /** Storage directory (LMDB environment). */
  wal_directory: string;
  /** Require a JWT at login. Default: on in production, off in dev unless jwt_secret is set. */
  auth_enabled: boolean;
  /** HS256 secret, at least 32 bytes, identical on every node. */
  jwt_secret: string;
  jwt_issuer: string;
  /** Longest accepted token lifetime, seconds. */
  jwt_max_lifetime_s: number;
  /** Messages kept per offline inbox before new ones are refused. */
  inbox_cap: number;
  /** Unacknowledged deliveries are resent after this long. */
  retransmit_ms: number;
  /** Router shards on this node. */
  router_pool_size: number;
  /** Scheduler threads (0 = one per core). */
  schedulers: number;
  /** Per-connection input buffer cap, bytes. */
  max_input_buffer_bytes: number;
  /** Connections this node accepts at most. */
  max_connections: number;
  /** A connection that has not logged in after this long is closed. */
  login_timeout_ms: number;
  /** A client whose output stays backed up (not reading) this long is disconnected; its messages stay stored. */
  slow_client_timeout_ms: number;
  /** Messages per user: a burst of this many ... */
  rate_limit_messages_burst: number;
  /** ... then this many per second. */
  rate_limit_messages_per_s: number;
  /** New connections per client address (IPv6 per /64): burst, then per second. */
  rate_limit_connections_per_ip_burst: number;
  rate_limit_connections_per_ip_per_s: number;
  /** Failed logins per account before it is refused (one more is allowed per minute). */
  rate_limit_failed_logins: number;
  tls_cert_file: string;
  tls_key_file: string;
  expected_cluster_nodes: number;
  replication_factor: number;
  consistency_mode: ConsistencyMode;
  region_id: string;
  /** Never delete tables to "repair" storage. */
  allow_table_nuke: boolean;
  log_level: string;
}

export const DEFAULT_CONFIG: Readonly<IrisConfig> = Object.freeze({
  mode: 'dev',
  node_name: 'iris@local',
  host: '127.0.0.1',
  port: 8085,
  http_port: 8086,
  wal_directory: './data',
  auth_enabled: false,
  jwt_secret: '',
  jwt_issuer: 'iris',
  jwt_max_lifetime_s: 24 * 3600,
  inbox_cap: 10_000,
  retransmit_ms: 5_000,
  router_pool_size: 8,
  schedulers: 0,
  max_input_buffer_bytes: 1024 * 1024,
  max_connections: 19_900,
  login_timeout_ms: 30_000,
  slow_client_timeout_ms: 30_000,
  rate_limit_messages_burst: 1000,
  rate_limit_messages_per_s: 200,
  rate_limit_connections_per_ip_burst: 500,
  rate_limit_connections_per_ip_per_s: 100,
  rate_limit_failed_logins: 10,
  tls_cert_file: '',
  tls_key_file: '',
  expected_cluster_nodes: 1,
  replication_factor: 1,
  consistency_mode: 'hardened_ap',
  region_id: 'local',
  allow_table_nuke: false,
  log_level: 'info',
  ...LISTENER_DEFAULTS,
});

/** Minimum HS256 secret length in bytes (seeds' deployment guide). */
export const MIN_JWT_SECRET_BYTES = 32;

type Kind = 'string' | 'int' | 'bool' | 'enum';
interface KeySpec {
  kind: Kind;
  min?: number;
  max?: number;
  values?: readonly string[];
}

const SCHEMA: Record<keyof IrisConfig, KeySpec> = {
  mode: { kind: 'enum', values: ['dev', 'production'] },
  node_name: { kind: 'string' },
  host: { kind: 'string' },
  port: { kind: 'int', min: 0, max: 65535 },
  http_port: { kind: 'int', min: 0, max: 65535 },
  wal_directory: { kind: 'string' },
  auth_enabled: { kind: 'bool' },
  jwt_secret: { kind: 'string' },
  jwt_issuer: { kind: 'string' },
  jwt_max_lifetime_s: { kind: 'int', min: 60, max: 30 * 24 * 3600 },
  inbox_cap: { kind: 'int', min: 1, max: 10_000_000 },
  retransmit_ms: { kind: 'int', min: 10, max: 3_600_000 },
  router_pool_size: { kind: 'int', min: 1, max: 4096 },
  schedulers: { kind: 'int', min: 0, max: 256 },
  max_input_buffer_bytes: { kind: 'int', min: 4096, max: 64 * 1024 * 1024 },
  max_connections: { kind: 'int', min: 1, max: 10_000_000 },
  login_timeout_ms: { kind: 'int', min: 100, max: 3_600_000 },
  slow_client_timeout_ms: { kind: 'int', min: 100, max: 3_600_000 },
  rate_limit_messages_burst: { kind: 'int', min: 1, max: 100_000_000 },
  rate_limit_messages_per_s: { kind: 'int', min: 1, max: 100_000_000 },
  rate_limit_connections_per_ip_burst: { kind: 'int', min: 1, max: 100_000_000 },
  rate_limit_connections_per_ip_per_s: { kind: 'int', min: 1, max: 100_000_000 },
  rate_limit_failed_logins: { kind: 'int', min: 1, max: 1_000_000 },
  tls_cert_file: { kind: 'string' },
  tls_key_file: { kind: 'string' },
  expected_cluster_nodes: { kind: 'int', min: 1, max: 1000 },
  replication_factor: { kind: 'int', min: 1, max: 5 },
  consistency_mode: { kind: 'enum', values: ['ap', 'hardened_ap', 'cp'] },
  region_id: { kind: 'string' },
  allow_table_nuke: { kind: 'bool' },
  log_level: { kind: 'enum', values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] },
  ...LISTENER_SCHEMA,
};

export interface ConfigProblem {
  key: string;
  /** What is wrong and how to fix it, in one sentence. */
  message: string;
}

export type ConfigResult = { ok: true; config: IrisConfig; warnings: string[] } | { ok: false; problems: ConfigProblem[] };

/** A layer of raw settings: values may be strings (environment, flags) or JSON values (file). */
export type RawLayer = Record<string, unknown>;

/** Environment variables `IRIS_<KEY>` as a raw layer (e.g. IRIS_JWT_SECRET). */
export function layerFromEnv(env: Record<string, string | undefined>): RawLayer {
  const out: RawLayer = {};
  for (const key of Object.keys(SCHEMA)) {
    const v = env[`IRIS_${key.toUpperCase()}`];
    if (v !== undefined) out[key] = v;
  }
  return out;
}

function coerce(key: string, spec: KeySpec, v: unknown, source: string): { ok: true; value: unknown } | { ok: false; problem: ConfigProblem } {
  const bad = (why: string) => ({ ok: false as const, problem: { key, message: `${key} (from ${source}): ${why}` } });
  switch (spec.kind) {
    case 'string':
      if (typeof v !== 'string') return bad(`must be a string, got ${typeof v}`);
      return { ok: true, value: v };
    case 'bool':
      if (typeof v === 'boolean') return { ok: true, value: v };
      if (v === 'true' || v === '1') return { ok: true, value: true };
      if (v === 'false' || v === '0') return { ok: true, value: false };
      return bad(`must be true or false, got '${String(v)}'`);
    case 'enum':
      if (typeof v === 'string' && spec.values!.includes(v)) return { ok: true, value: v };
      return bad(`must be one of ${spec.values!.join(', ')}, got '${String(v)}'`);
    case 'int': {
      const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
      if (!Number.isInteger(n)) return bad(`must be a whole number, got '${String(v)}'`);
      if (spec.min !== undefined && n < spec.min) return bad(`must be at least ${spec.min}, got ${n}`);
      if (spec.max !== undefined && n > spec.max) return bad(`must be at most ${spec.max}, got ${n}`);
      return { ok: true, value: n };
    }
  }
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
  for (const [source, layer] of layers) {
    for (const [key, raw] of Object.entries(layer)) {
      if (raw === undefined) continue;
      const spec = (SCHEMA as Record<string, KeySpec | undefined>)[key];
      if (spec === undefined) {
        problems.push({ key, message: `${key} (from ${source}): unknown key; known keys are ${Object.keys(SCHEMA).join(', ')}` });
        continue;
      }
      const r = coerce(key, spec, raw, source);
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
    if (secretBytes < MIN_JWT_SECRET_BYTES) {
      problems.push({ key: 'jwt_secret', message: `jwt_secret: needs at least ${MIN_JWT_SECRET_BYTES} bytes in production mode (got ${secretBytes}); generate one with: openssl rand -base64 48` });
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
    if (c.auth_enabled && secretBytes < MIN_JWT_SECRET_BYTES) {
      problems.push({ key: 'jwt_secret', message: `jwt_secret: needs at least ${MIN_JWT_SECRET_BYTES} bytes when auth_enabled is true (got ${secretBytes})` });
    }
    if (!c.auth_enabled) warnings.push('AUTH DISABLED (dev mode): any client can log in as any user without a token; never expose this node');
  }
  applyListenerModeDefaults(c, c.mode, explicit);
  const listeners = checkListenerSettings(c, c.mode, c.tls_cert_file !== '' && c.tls_key_file !== '');
  problems.push(...listeners.problems);
  warnings.push(...listeners.warnings);
  if (c.allow_table_nuke) warnings.push('allow_table_nuke is on: corrupted tables may be deleted instead of refusing to start');
  if (c.port !== 0 && c.port === c.http_port) problems.push({ key: 'http_port', message: `http_port: must differ from port (both ${c.port})` });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, config: c, warnings };
}
