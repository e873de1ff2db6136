/**
 * The configuration keys of the edge layer (listeners, login, connections, abuse limits), with
 * their bounds and defaults declared here once. The composition root merges them into the node
 * configuration; edge code reads defaults from EDGE_DEFAULTS, never a copy of the numbers.
 *
 * Rates are token buckets per user (or per address): a burst, then so many per second. Message
 * sends are shaped (the connection stops reading until the budget refills), never refused.
 */
import { defaultsOf, type SettingsOf } from '../runtime/Settings.js';
import { LISTENER_SETTINGS } from './listeners/ListenerSettings.js';
import { V1_INPUT_BUFFER_CAP_DEFAULT } from './protocol/v1Limits.js';

const MiB = 1024 * 1024;
const RATE_MAX = 100_000_000;

export const EDGE_SETTINGS = {
  port: { kind: 'int', default: 8085, min: 0, max: 65535, doc: 'Raw TCP port for v1 clients (0 = any free port).' },
  http_port: { kind: 'int', default: 8086, min: 0, max: 65535, doc: 'HTTP port: WebSocket /ws, /health, /metrics and the admin API.' },
  auth_enabled: { kind: 'bool', default: false, doc: 'Require a JWT at login. On in production; in dev mode on when jwt_secret is set.' },
  jwt_secret: { kind: 'string', default: '', doc: 'HS256 secret, at least 32 bytes, identical on every node.' },
  jwt_issuer: { kind: 'string', default: 'iris', doc: 'Required `iss` claim of login tokens.' },
  jwt_max_lifetime_s: { kind: 'int', default: 24 * 3600, min: 60, max: 30 * 24 * 3600, doc: 'Longest accepted token lifetime, seconds.' },
  tls_cert_file: { kind: 'string', default: '', doc: 'PEM certificate: with tls_key_file, the TCP port and the HTTP port speak TLS only.' },
  tls_key_file: { kind: 'string', default: '', doc: 'PEM private key of tls_cert_file.' },
  max_connections: { kind: 'int', default: 19_900, min: 1, max: 10_000_000, doc: 'Client connections this node accepts at most (refused with RATE_LIMITED beyond).' },
  max_input_buffer_bytes: {
    kind: 'int',
    default: V1_INPUT_BUFFER_CAP_DEFAULT,
    min: 4096,
    max: 64 * MiB,
    doc: 'Bytes a logged-in connection may hold while a packet arrives; a packet of legal length is never refused by it. Before login the cap is the largest legal LOGIN.',
  },
  login_timeout_ms: { kind: 'int', default: 30_000, min: 100, max: 3_600_000, doc: 'A connection that has not logged in after this long is closed.' },
  slow_client_timeout_ms: {
    kind: 'int',
    default: 30_000,
    min: 100,
    max: 3_600_000,
    doc: 'A client whose output stays backed up (not reading) this long is disconnected; its messages stay stored.',
  },
  request_timeout_ms: {
    kind: 'int',
    default: 10_000,
    min: 100,
    max: 600_000,
    doc: 'A request waiting this long for its service (groups, keys) is answered ERROR request_timeout in its turn, so later answers are not held back.',
  },
  route_retry_ms: {
    kind: 'int',
    default: 500,
    min: 50,
    max: 60_000,
    doc: 'In a cluster, a message its shard group owner has not confirmed after this long (at least: longer while the owners answer slowly, up to 8×) is sent again (with the same key, in order); also on every ownership change.',
  },
  route_window: {
    kind: 'int',
    default: 1_024,
    min: 1,
    max: 4_096,
    doc: 'In a cluster, messages one connection may have awaiting their owner\'s confirmation; beyond it the connection stops reading (shaping).',
  },
  route_in_flight: {
    kind: 'int',
    default: 4,
    min: 1,
    max: 4_096,
    doc: 'In a cluster, messages one connection has sent to one shard group and not had confirmed, at most; the rest of its route_window waits at the edge, in order, and is sent as confirmations come (only these are sent again on a timeout).',
  },
  route_horizon_ms: {
    kind: 'int',
    default: 30_000,
    min: 1_000,
    max: 120_000,
    doc: 'In a cluster, a message still unconfirmed this long after it was first sent is given up: the sender gets ERROR request_timeout (its fate is unknown).',
  },
  delivery_window_messages: {
    kind: 'int',
    default: 10_000,
    min: 1,
    max: 1_000_000,
    doc: 'Deliveries written to one connection and not yet acknowledged, at most; more wait in the inbox until ACKs free room.',
  },
  delivery_window_bytes: {
    kind: 'int',
    default: 16 * MiB,
    min: 256 * 1024 + 64,
    max: 1024 * MiB,
    doc: 'Payload bytes written to one connection and not yet acknowledged, at most (at least one largest message).',
  },
  rate_limit_messages_burst: { kind: 'int', default: 1000, min: 1, max: RATE_MAX, doc: 'Messages per user in a burst (a batch counts each item), then ...' },
  rate_limit_messages_per_s: { kind: 'int', default: 200, min: 1, max: RATE_MAX, doc: '... this many per second. Beyond, the connection is read more slowly (shaped), never refused.' },
  rate_limit_receipts_burst: { kind: 'int', default: 1000, min: 1, max: RATE_MAX, doc: 'Read receipts per user in a burst, then ...' },
  rate_limit_receipts_per_s: { kind: 'int', default: 200, min: 1, max: RATE_MAX, doc: '... this many per second (shaped like messages).' },
  rate_limit_typing_burst: { kind: 'int', default: 20, min: 1, max: RATE_MAX, doc: 'Typing notices per user in a burst, then ...' },
  rate_limit_typing_per_s: { kind: 'int', default: 5, min: 1, max: RATE_MAX, doc: '... this many per second; the rest are dropped (typing is best effort).' },
  rate_limit_status_burst: { kind: 'int', default: 200, min: 1, max: RATE_MAX, doc: 'GET_STATUS queries per connection in a burst, then ...' },
  rate_limit_status_per_s: { kind: 'int', default: 50, min: 1, max: RATE_MAX, doc: '... this many per second (shaped).' },
  rate_limit_prekey_fetches_burst: { kind: 'int', default: 50, min: 1, max: RATE_MAX, doc: 'FETCH_PREKEYS per user in a burst, then ...' },
  rate_limit_prekey_fetches_per_s: { kind: 'int', default: 5, min: 1, max: RATE_MAX, doc: '... this many per second (shaped).' },
  rate_limit_prekey_fetches_per_target_per_min: {
    kind: 'int',
    default: 5,
    min: 1,
    max: RATE_MAX,
    doc: 'FETCH_PREKEYS of one target by one user per minute (burst the same); beyond it the answer is error rate_limited, so no one can drain a pool.',
  },
  rate_limit_connections_per_ip_burst: { kind: 'int', default: 500, min: 1, max: RATE_MAX, doc: 'New connections per client address (IPv6 per /64) in a burst, then ...' },
  rate_limit_connections_per_ip_per_s: { kind: 'int', default: 100, min: 1, max: RATE_MAX, doc: '... this many per second; refused with RATE_LIMITED beyond.' },
  rate_limit_failed_logins: { kind: 'int', default: 10, min: 1, max: 1_000_000, doc: 'Failed logins per (account, client address) before that address is refused for that account ...' },
  rate_limit_failed_logins_per_min: { kind: 'int', default: 1, min: 1, max: 1_000_000, doc: '... then this many more per minute. A valid token always gets in.' },
  // WebSocket limits and origins, TCP keepalive, TLS client certificates.
  ...LISTENER_SETTINGS,
} as const;

export type EdgeSettings = SettingsOf<typeof EDGE_SETTINGS>;
export const EDGE_DEFAULTS = defaultsOf(EDGE_SETTINGS);
