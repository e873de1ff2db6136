// Default abuse limits of the edge (requirements M11), written down once. They are generous on
// purpose: an old v1 client sends 100–150 messages back to back and must get every one through
// (protocol-v1.md §5); stricter limits are configuration. Nothing else repeats these numbers;
// the connection cap is the node config key max_connections and is only re-exported here.

import { EDGE_DEFAULTS } from '../EdgeSettings.js';
import type { RateLimitsConfig } from './RateLimits.js';
import type { TokenBucketRate } from './TokenBucket.js';

/** Per user (config keys rate_limit_messages_*): bursts of 1000, then 200 messages/s sustained. */
export const MESSAGE_RATE_DEFAULT: TokenBucketRate = { burst: EDGE_DEFAULTS.rate_limit_messages_burst, refill: EDGE_DEFAULTS.rate_limit_messages_per_s, intervalMs: 1000 };

/** Per client IP (IPv6 per /64) (rate_limit_connections_per_ip_*): NAT and reconnect-storm friendly. */
export const CONNECTION_RATE_PER_IP_DEFAULT: TokenBucketRate = {
  burst: EDGE_DEFAULTS.rate_limit_connections_per_ip_burst,
  refill: EDGE_DEFAULTS.rate_limit_connections_per_ip_per_s,
  intervalMs: 1000,
};

/** Per account (rate_limit_failed_logins): 10 failed logins, then one more per minute. */
export const FAILED_LOGINS_PER_ACCOUNT_DEFAULT: TokenBucketRate = { burst: EDGE_DEFAULTS.rate_limit_failed_logins, refill: EDGE_DEFAULTS.rate_limit_failed_logins_per_min, intervalMs: 60_000 };

/** Open client connections per node: the config key max_connections (its default lives in edge/EdgeSettings.ts). */
export const MAX_CONNECTIONS_PER_NODE_DEFAULT = EDGE_DEFAULTS.max_connections;

/** retry_after_ms suggested when the node is at its connection cap (no bucket says when a slot frees). */
export const CONNECTION_CAP_RETRY_AFTER_MS = 1_000;

/** Keys each limiter table remembers (users, IPs, accounts); beyond it the least recently used goes. */
export const MAX_TRACKED_KEYS_DEFAULT = 65_536;

/** Addresses the per-IP connection rate does not apply to (local load tests and health checks). */
export const CONNECTION_RATE_EXEMPT_IPS_DEFAULT: readonly string[] = ['127.0.0.1', '::1'];

/** Longest key a table stores, in characters; longer ones (bogus addresses) are cut. */
export const MAX_KEY_CHARS = 512;

export const RATE_LIMITS_DEFAULT: RateLimitsConfig = {
  messages: MESSAGE_RATE_DEFAULT,
  connectionsPerIp: CONNECTION_RATE_PER_IP_DEFAULT,
  failedLogins: FAILED_LOGINS_PER_ACCOUNT_DEFAULT,
  maxConnections: MAX_CONNECTIONS_PER_NODE_DEFAULT,
  maxTrackedKeys: MAX_TRACKED_KEYS_DEFAULT,
  connectionRateExemptIps: CONNECTION_RATE_EXEMPT_IPS_DEFAULT,
};
