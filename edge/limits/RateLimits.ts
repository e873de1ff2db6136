// Abuse limits of one edge node (requirements M11): per-user message rate, per-IP connection
// rate, failed logins per account (a lockout that lifts gradually) and the node's connection cap.
// Every check answers {ok:true} or {ok:false, retryAfterMs}: the caller sends RATE_LIMITED (0xFF,
// retry_after_ms u32) for a message, or the plain text RATE_LIMITED at login; never silence.
//
// Memory stays bounded under a flood of distinct users or addresses: each table keeps at most
// `maxTrackedKeys` buckets in least-recently-used order, drops buckets that have refilled
// completely (they carry no information) as it goes, and checks of unknown keys store nothing
// unless a token is taken. Time is the injected Clock's monotonic milliseconds.

import type { Clock } from '../../runtime/Env.js';
import { CONNECTION_CAP_RETRY_AFTER_MS, MAX_KEY_CHARS, RATE_LIMITS_DEFAULT } from './defaults.js';
import { KeyedBuckets } from './KeyedBuckets.js';
import { RATE_OK, checkTokenBucketRate, type RateDecision, type TokenBucketRate } from './TokenBucket.js';

export interface RateLimitsConfig {
  /** Messages per user; a batch of n items costs n tokens (at most the burst). */
  readonly messages: TokenBucketRate;
  /** New connections per client address (IPv4 address, IPv6 /64). */
  readonly connectionsPerIp: TokenBucketRate;
  /** Failed logins per account; when spent, logins of that account are refused until one refills. */
  readonly failedLogins: TokenBucketRate;
  /** Open connections this node accepts. */
  readonly maxConnections: number;
  /** Buckets each table keeps at most. */
  readonly maxTrackedKeys: number;
  /** Addresses exempt from the per-IP connection rate (not from the connection cap). */
  readonly connectionRateExemptIps: readonly string[];
}

/** A configuration value RateLimits refuses, with the key and the fix. */
export interface RateLimitsConfigError {
  readonly code: 'invalid_rate_limits';
  readonly key: string;
  readonly reason: string;
}

export type CreateRateLimitsResult =
  | { readonly ok: true; readonly limits: RateLimits }
  | { readonly ok: false; readonly error: RateLimitsConfigError };

/** Gauges and counters for /metrics. */
export interface RateLimitsStats {
  readonly openConnections: number;
  readonly trackedUsers: number;
  readonly trackedIps: number;
  readonly trackedAccounts: number;
  /** Buckets dropped before they had refilled, because a table was full. */
  readonly evictedBeforeRefill: number;
  readonly refusedMessages: number;
  readonly refusedConnections: number;
  readonly refusedLogins: number;
}

export class RateLimits {
  private readonly users: KeyedBuckets;
  private readonly ips: KeyedBuckets;
  private readonly accounts: KeyedBuckets;
  private readonly exemptIps: ReadonlySet<string>;
  private openConnections = 0;
  private refusedMessages = 0;
  private refusedConnections = 0;
  private refusedLogins = 0;

  private constructor(
    private readonly config: RateLimitsConfig,
    clock: Clock,
  ) {
    this.users = new KeyedBuckets(config.messages, config.maxTrackedKeys, clock);
    this.ips = new KeyedBuckets(config.connectionsPerIp, config.maxTrackedKeys, clock);
    this.accounts = new KeyedBuckets(config.failedLogins, config.maxTrackedKeys, clock);
    this.exemptIps = new Set(config.connectionRateExemptIps.map(ipRateKey));
  }

  /** Limits from the defaults (edge/limits/defaults.ts) overridden by `overrides`. */
  static create(clock: Clock, overrides: Partial<RateLimitsConfig> = {}): CreateRateLimitsResult {
    const config: RateLimitsConfig = { ...RATE_LIMITS_DEFAULT, ...overrides };
    for (const key of ['messages', 'connectionsPerIp', 'failedLogins'] as const) {
      const problem = checkTokenBucketRate(config[key]);
      if (problem !== undefined) return { ok: false, error: { code: 'invalid_rate_limits', key, reason: problem } };
    }
    for (const key of ['maxConnections', 'maxTrackedKeys'] as const) {
      if (!(Number.isSafeInteger(config[key]) && config[key] > 0)) {
        return { ok: false, error: { code: 'invalid_rate_limits', key, reason: `must be a positive whole number (got ${String(config[key])})` } };
      }
    }
    return { ok: true, limits: new RateLimits(config, clock) };
  }

  /** A sending packet of `user` carrying `count` messages (1, or a batch's item count). */
  message(user: Uint8Array, count = 1): RateDecision {
    // A batch larger than the burst costs the whole burst: it passes only on a full bucket.
    const n = Math.min(Math.max(1, Math.floor(count)), this.config.messages.burst);
    const decision = this.users.take(bytesKey(user), n);
    if (!decision.ok) this.refusedMessages++;
    return decision;
  }

  /**
   * Up to `count` messages of `user`, as many as its budget allows now: a batch is charged one
   * token per message and goes on as the budget refills (`retryAfterMs` until the next token).
   */
  messagesUpTo(user: Uint8Array, count: number): { taken: number; retryAfterMs: number } {
    const r = this.users.takeUpTo(bytesKey(user), count);
    if (r.taken < count) this.refusedMessages++;
    return r;
  }

  /**
   * A connection from `ip` wants in. On ok it counts as open until connectionClosed(); a
   * refused one holds nothing.
   */
  connectionOpened(ip: string): RateDecision {
    if (this.openConnections >= this.config.maxConnections) {
      this.refusedConnections++;
      return { ok: false, retryAfterMs: CONNECTION_CAP_RETRY_AFTER_MS };
    }
    const key = ipRateKey(ip);
    if (!this.exemptIps.has(key)) {
      const decision = this.ips.take(key, 1);
      if (!decision.ok) {
        this.refusedConnections++;
        return decision;
      }
    }
    this.openConnections++;
    return RATE_OK;
  }

  /** A connection admitted by connectionOpened() has closed. */
  connectionClosed(): void {
    if (this.openConnections > 0) this.openConnections--;
  }

  /** May `user` attempt a login now? Refused while its failed-login allowance is spent. */
  loginAllowed(user: Uint8Array): RateDecision {
    const decision = this.accounts.peek(bytesKey(user), 1);
    if (!decision.ok) this.refusedLogins++;
    return decision;
  }

  /** A login of `user` failed (bad token, wrong subject …): spends one failure. */
  loginFailed(user: Uint8Array): void {
    this.accounts.take(bytesKey(user), 1);
  }

  /** A login of `user` succeeded: its past failures are forgotten. */
  loginSucceeded(user: Uint8Array): void {
    this.accounts.forget(bytesKey(user));
  }

  /** Drops every bucket that has refilled completely (for a periodic timer; checks also do it as they go). */
  sweep(): number {
    return this.users.sweep() + this.ips.sweep() + this.accounts.sweep();
  }

  stats(): RateLimitsStats {
    return {
      openConnections: this.openConnections,
      trackedUsers: this.users.size,
      trackedIps: this.ips.size,
      trackedAccounts: this.accounts.size,
      evictedBeforeRefill: this.users.evictedBeforeRefill + this.ips.evictedBeforeRefill + this.accounts.evictedBeforeRefill,
      refusedMessages: this.refusedMessages,
      refusedConnections: this.refusedConnections,
      refusedLogins: this.refusedLogins,
    };
  }
}

/**
 * The key an address is limited under: IPv4 as is (also when IPv4-mapped), IPv6 by its /64
 * prefix (one subscriber usually holds a whole /64), zone ids dropped. Unparseable text is used
 * as given, cut to MAX_KEY_CHARS.
 */
export function ipRateKey(ip: string): string {
  let s = ip.trim().toLowerCase();
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (s.startsWith('::ffff:') && s.indexOf('.') > 0) return s.slice('::ffff:'.length);
  if (s.indexOf(':') < 0) return s.slice(0, MAX_KEY_CHARS);
  const groups = ipv6Groups(s);
  return groups === undefined ? s.slice(0, MAX_KEY_CHARS) : `${groups.slice(0, 4).join(':')}::/64`;
}

// ---------------------------------------------------------------------------------------------
// Internal

export function bytesKey(bytes: Uint8Array): string {
  // One char per byte (latin1); fromCharCode costs half a Buffer decode and allocates nothing else.
  const b = bytes.byteLength > MAX_KEY_CHARS ? bytes.subarray(0, MAX_KEY_CHARS) : bytes;
  return String.fromCharCode.apply(null, b as unknown as number[]);
}

/** The eight 16-bit groups of an IPv6 address as lowercase hex without leading zeros, or undefined. */
function ipv6Groups(s: string): string[] | undefined {
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string): string[] | undefined => {
    if (part === '') return [];
    const out: string[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (i === pieces.length - 1 && /^\d{1,3}(\.\d{1,3}){3}$/.test(p)) {
        out.push('0', '0'); // an embedded IPv4 tail fills the last two groups, never the /64
      } else if (/^[0-9a-f]{1,4}$/.test(p)) {
        out.push(parseInt(p, 16).toString(16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  return [...head, ...Array.from({ length: missing }, () => '0'), ...tail];
}
