/**
 * Configuration rules: defaults, layering, validation messages that name the key and the
 * fix, dev-mode loopback and tokenless warning, and the production safety checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_CONFIG, layerFromEnv, resolveConfig } from '../../server/NodeConfig.js';
import { DEV_WS_ALLOWED_ORIGINS, LISTENER_DEFAULTS } from '../../edge/listeners/ListenerSettings.js';

const SECRET = 'x'.repeat(40);

test('defaults give a dev node on loopback with auth off and a loud warning', () => {
  const r = resolveConfig([]);
  assert.ok(r.ok);
  assert.equal(r.config.mode, 'dev');
  assert.equal(r.config.host, '127.0.0.1');
  assert.equal(r.config.port, 8085);
  assert.equal(r.config.auth_enabled, false);
  assert.ok(r.warnings.some((w) => w.startsWith('AUTH DISABLED')));
});

test('later layers override earlier ones and strings are coerced by type', () => {
  const r = resolveConfig([
    ['file', { port: 9000, inbox_cap: 5 }],
    ['env', layerFromEnv({ IRIS_PORT: '9001', IRIS_ALLOW_TABLE_NUKE: 'false' })],
  ]);
  assert.ok(r.ok);
  assert.equal(r.config.port, 9001);
  assert.equal(r.config.inbox_cap, 5);
  assert.equal(r.config.allow_table_nuke, false);
});

test('a bad value names the key, its source and what is expected', () => {
  const r = resolveConfig([['flags', { port: 'eighty' }]]);
  assert.ok(!r.ok);
  assert.deepEqual(r.problems, [{ key: 'port', message: "port (from flags): must be a whole number, got 'eighty'" }]);
});

test('an unknown key is refused with the list of known keys', () => {
  const r = resolveConfig([['file', { prot: 1 }]]);
  assert.ok(!r.ok);
  assert.equal(r.problems[0]!.key, 'prot');
  assert.match(r.problems[0]!.message, /unknown key; known keys are mode, node_name/);
});

test('production mode turns auth on and refuses a short secret with how to make one', () => {
  const r = resolveConfig([['file', { mode: 'production', jwt_secret: 'short' }]]);
  assert.ok(!r.ok);
  const p = r.problems.find((x) => x.key === 'jwt_secret');
  assert.ok(p);
  assert.match(p.message, /at least 32 bytes .* openssl rand/);
});

test('production mode refuses auth_enabled=false', () => {
  const r = resolveConfig([['file', { mode: 'production', jwt_secret: SECRET, auth_enabled: false }]]);
  assert.ok(!r.ok);
  assert.ok(r.problems.some((p) => p.key === 'auth_enabled'));
});

test('production mode refuses storage on tmpfs', () => {
  const r = resolveConfig([['file', { mode: 'production', jwt_secret: SECRET }]], () => true);
  assert.ok(!r.ok);
  assert.ok(r.problems.some((p) => p.key === 'wal_directory' && /tmpfs/.test(p.message)));
});

test('production mode with a good secret starts with auth on and may bind any address', () => {
  const r = resolveConfig([['file', { mode: 'production', jwt_secret: SECRET, host: '0.0.0.0' }]], () => false);
  assert.ok(r.ok);
  assert.equal(r.config.auth_enabled, true);
  assert.equal(r.config.host, '0.0.0.0');
});

test('dev mode keeps listeners on loopback even when another host is asked for', () => {
  const r = resolveConfig([['flags', { host: '0.0.0.0' }]]);
  assert.ok(r.ok);
  assert.equal(r.config.host, '127.0.0.1');
  assert.ok(r.warnings.some((w) => w.includes('loopback')));
});

test('dev mode with a secret turns auth on by default', () => {
  const r = resolveConfig([['env', layerFromEnv({ IRIS_JWT_SECRET: SECRET })]]);
  assert.ok(r.ok);
  assert.equal(r.config.auth_enabled, true);
});

test('the defaults record is frozen', () => {
  assert.ok(Object.isFrozen(DEFAULT_CONFIG));
});

// ---------------------------------------------------------------------------------------------
// Listener keys (declared in edge/listeners/ListenerSettings.ts)

/** The problems of a config that should be refused, as [key, message] pairs. */
function refused(layer: Record<string, unknown>): Array<[string, string]> {
  const r = resolveConfig([['file', layer]]);
  assert.ok(!r.ok, 'expected the config to be refused');
  return r.problems.map((p) => [p.key, p.message]);
}

test('the listener keys default to their declared values, and the WebSocket limits are sized in KiB', () => {
  const r = resolveConfig([]);
  assert.ok(r.ok);
  for (const [k, v] of Object.entries(LISTENER_DEFAULTS)) assert.deepEqual(r.config[k as keyof typeof LISTENER_DEFAULTS], v, k);
  assert.equal(r.config.ws_output_high_water_bytes, 256 * 1024);
  assert.equal(r.config.ws_output_limit_bytes, 768 * 1024);
  assert.equal(r.config.ws_paused_input_limit_bytes, 1024 * 1024 + 1024 + 256 * 1024);
  assert.deepEqual(r.config.ws_allowed_origins, DEV_WS_ALLOWED_ORIGINS);
  assert.equal(r.config.tls_client_auth, 'none');
});

test('production mode allows no browser origin unless ws_allowed_origins is set, and warns about *', () => {
  const quiet = resolveConfig([['file', { mode: 'production', jwt_secret: SECRET }]], () => false);
  assert.ok(quiet.ok);
  assert.deepEqual(quiet.config.ws_allowed_origins, []);
  const set = resolveConfig([['file', { mode: 'production', jwt_secret: SECRET, ws_allowed_origins: 'https://chat.example.com' }]], () => false);
  assert.ok(set.ok);
  assert.deepEqual(set.config.ws_allowed_origins, ['https://chat.example.com']);
  const env = resolveConfig([['env', layerFromEnv({ IRIS_MODE: 'production', IRIS_JWT_SECRET: SECRET, IRIS_WS_ALLOWED_ORIGINS: 'https://a.example, http://localhost:*' })]], () => false);
  assert.ok(env.ok);
  assert.deepEqual(env.config.ws_allowed_origins, ['https://a.example', 'http://localhost:*']);
  const star = resolveConfig([['file', { mode: 'production', jwt_secret: SECRET, ws_allowed_origins: ['*'] }]], () => false);
  assert.ok(star.ok);
  assert.ok(star.warnings.some((w) => w.startsWith('ws_allowed_origins is *')));
});

test('a malformed ws_allowed_origins entry is refused naming the entry and the syntax', () => {
  assert.deepEqual(refused({ ws_allowed_origins: ['http://localhost:*', 'chat.example.com'] }), [
    [
      'ws_allowed_origins',
      "ws_allowed_origins: 'chat.example.com' is not an origin: write scheme://host, scheme://host:port or scheme://host:* (no path, no trailing slash); separate entries with commas, e.g. https://chat.example.com, http://localhost:*",
    ],
  ]);
});

test('client certificates need a CA file and TLS; user matching needs client certificates', () => {
  assert.deepEqual(refused({ tls_client_auth: 'required', tls_cert_file: 'c.pem', tls_key_file: 'k.pem' }), [
    ['tls_client_ca_file', 'tls_client_ca_file: required when tls_client_auth is required; set it to the PEM file of the CA that signs client certificates, or set tls_client_auth=none'],
  ]);
  assert.deepEqual(refused({ tls_client_auth: 'optional', tls_client_ca_file: 'ca.pem' }), [
    ['tls_client_auth', 'tls_client_auth: optional needs TLS on the client ports; set tls_cert_file and tls_key_file, or set tls_client_auth=none'],
  ]);
  assert.deepEqual(refused({ tls_client_cert_user_match: true }), [
    ['tls_client_cert_user_match', 'tls_client_cert_user_match: needs client certificates; set tls_client_auth=required (or optional), or turn the match off'],
  ]);
  const ok = resolveConfig([['file', { tls_client_auth: 'required', tls_client_ca_file: 'ca.pem', tls_cert_file: 'c.pem', tls_key_file: 'k.pem', tls_client_cert_user_match: 'true' }]]);
  assert.ok(ok.ok);
  assert.equal(ok.config.tls_client_cert_user_match, true);
  assert.deepEqual(refused({ tls_client_auth: 'sometimes' }), [['tls_client_auth', "tls_client_auth (from file): must be one of none, optional, required, got 'sometimes'"]]);
});

test('ws_idle_timeout_s outside what uWS accepts (8..960 s) is refused rather than abort the process', () => {
  assert.deepEqual(refused({ ws_idle_timeout_s: 4 }), [['ws_idle_timeout_s', 'ws_idle_timeout_s (from file): must be at least 8, got 4']]);
  assert.deepEqual(refused({ ws_idle_timeout_s: 0 }), [['ws_idle_timeout_s', 'ws_idle_timeout_s (from file): must be at least 8, got 0']]);
  assert.deepEqual(refused({ ws_idle_timeout_s: 961 }), [['ws_idle_timeout_s', 'ws_idle_timeout_s (from file): must be at most 960, got 961']]);
});

test('WebSocket limits that contradict each other are refused with the relation to keep', () => {
  assert.deepEqual(refused({ ws_output_limit_bytes: 256 * 1024 }), [
    ['ws_output_limit_bytes', 'ws_output_limit_bytes: must be above ws_output_high_water_bytes (262144); the default leaves 512 KiB between them'],
  ]);
  assert.deepEqual(refused({ ws_paused_input_limit_bytes: 64 * 1024 }), [
    ['ws_paused_input_limit_bytes', 'ws_paused_input_limit_bytes: must be at least ws_max_frame_bytes (1049600), or one large frame from a paused client closes its link'],
  ]);
});

test('nats_servers joins a cluster: production needs expected_cluster_nodes and a node_name, and one expected node is warned about', () => {
  const prod = resolveConfig([['file', { mode: 'production', jwt_secret: SECRET, nats_servers: 'nats://10.0.0.1:4222, nats://10.0.0.2:4222' }]]);
  assert.ok(!prod.ok);
  assert.deepEqual(prod.problems.map((p) => p.key).sort(), ['expected_cluster_nodes', 'node_name']);
  const ok = resolveConfig([['file', { mode: 'production', jwt_secret: SECRET, nats_servers: 'nats://10.0.0.1:4222', expected_cluster_nodes: 3, node_name: 'iris@host1' }]]);
  assert.ok(ok.ok);
  assert.deepEqual(ok.config.nats_servers, ['nats://10.0.0.1:4222']);
  const dev = resolveConfig([['flags', { nats_servers: 'nats://127.0.0.1:4222' }]]);
  assert.ok(dev.ok);
  assert.ok(dev.warnings.some((w) => w.startsWith('expected_cluster_nodes is 1 with nats_servers')));
});

test('NATS addresses are checked, credentials and client certificates come in pairs, and the down-after time holds three heartbeats', () => {
  const r = resolveConfig([
    [
      'file',
      {
        nats_servers: ['http://x:1'],
        nats_user: 'iris',
        nats_token: 't',
        nats_tls_cert_file: '/c.pem',
        cluster_heartbeat_ms: 500,
        cluster_down_after_ms: 1000,
      },
    ],
  ]);
  assert.ok(!r.ok);
  assert.deepEqual(r.problems.map((p) => p.key).sort(), ['cluster_down_after_ms', 'nats_servers', 'nats_tls_cert_file', 'nats_token', 'nats_user']);
});

test('a node without nats_servers is a single node and must be both edge and core', () => {
  const r = resolveConfig([['flags', { roles: 'edge' }]]);
  assert.ok(!r.ok);
  assert.deepEqual(r.problems.map((p) => p.key), ['roles']);
  const clustered = resolveConfig([['flags', { roles: 'edge', nats_servers: 'nats://127.0.0.1:4222', expected_cluster_nodes: '3' }]]);
  assert.ok(clustered.ok);
});

test('the default is one node process: the single node, with the cluster keys at their defaults', () => {
  const r = resolveConfig([]);
  assert.ok(r.ok);
  assert.equal(r.config.processes, 1);
  assert.equal(r.config.schedulers, 0);
  assert.equal(r.config.stream_replicas, 3);
  assert.equal(r.config.durability, 'quorum');
});

test('several node processes without nats_servers share one local nats-server: R1 streams, local durability, one expected node and one scheduler each, unless set', () => {
  const r = resolveConfig([['flags', { processes: '0' }]]);
  assert.ok(r.ok);
  assert.equal(r.config.processes, 0);
  assert.equal(r.config.stream_replicas, 1);
  assert.equal(r.config.durability, 'local');
  assert.equal(r.config.expected_cluster_nodes, 1);
  assert.equal(r.config.schedulers, 1);
  const set = resolveConfig([['flags', { processes: '4', durability: 'quorum', expected_cluster_nodes: '3', schedulers: '2', stream_replicas: '1' }]]);
  assert.ok(set.ok);
  assert.equal(set.config.durability, 'quorum');
  assert.equal(set.config.expected_cluster_nodes, 3);
  assert.equal(set.config.schedulers, 2);
});

test('several node processes on one local nats-server refuse a stream_replicas it cannot hold, naming the key and the fix', () => {
  const r = resolveConfig([['flags', { processes: '2', stream_replicas: '3' }]]);
  assert.ok(!r.ok);
  assert.deepEqual(r.problems.map((p) => p.key), ['stream_replicas']);
  assert.match(r.problems[0]!.message, /one local nats-server.*remove the key.*or set nats_servers/);
});

test('several node processes joining nats_servers keep the cluster keys as configured', () => {
  const r = resolveConfig([['flags', { processes: '2', nats_servers: 'nats://127.0.0.1:4222', expected_cluster_nodes: '3' }]]);
  assert.ok(r.ok);
  assert.equal(r.config.stream_replicas, 3);
  assert.equal(r.config.durability, 'quorum');
  assert.equal(r.config.expected_cluster_nodes, 3);
  assert.equal(r.config.schedulers, 1);
});

test('a restart backoff ceiling below the first backoff is refused', () => {
  const r = resolveConfig([['flags', { processes: '2', process_restart_backoff_ms: '5000', process_restart_backoff_max_ms: '1000' }]]);
  assert.ok(!r.ok);
  assert.deepEqual(r.problems.map((p) => p.key), ['process_restart_backoff_max_ms']);
});
