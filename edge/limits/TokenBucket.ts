// A token bucket on an injected clock: at most `burst` tokens, refilled continuously at `refill`
// tokens per `intervalMs`, starting full. Arithmetic is in integers (one token = `intervalMs`
// units, one elapsed millisecond adds `refill` units, time is read in whole milliseconds), so a
// bucket never grants more than burst + refill × elapsed / intervalMs and `retryAfterMs` is exact:
// the same request is refused one millisecond earlier and granted at that instant.
//
// The state is two numbers (`BucketState`), so keyed tables (RateLimits) hold one small object
// per key; `TokenBucket` wraps one state with its clock for single owners such as a session.

import type { Clock } from '../../runtime/Env.js';

/** Bucket shape: `burst` tokens at most; `refill` tokens added per `intervalMs`, continuously. */
export interface TokenBucketRate {
  readonly burst: number;
  readonly refill: number;
  readonly intervalMs: number;
}

/** A limiter's answer: go ahead, or retry after this many milliseconds. */
export type RateDecision = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

export const RATE_OK: RateDecision = Object.freeze({ ok: true });

/** `rate` tokens per second with a burst of `burst`. */
export function perSecond(rate: number, burst: number): TokenBucketRate {
  return { burst, refill: rate, intervalMs: 1000 };
}

/** Why `rate` is unusable (the field and the fix), or undefined when it is fine. */
export function checkTokenBucketRate(rate: TokenBucketRate): string | undefined {
  for (const key of ['burst', 'refill', 'intervalMs'] as const) {
    const v = rate[key];
    if (!(Number.isSafeInteger(v) && v > 0)) return `${key} must be a positive whole number (got ${String(v)})`;
  }
  // Keeps every intermediate (units + elapsed × refill before clamping) far from 2^53.
  if (rate.burst * rate.intervalMs > 2 ** 40 || rate.refill > 2 ** 40) return 'burst × intervalMs and refill must each stay below 2^40';
  return undefined;
}

/** Mutable state of one bucket: `units` (1 token = intervalMs units) as of `atMs`. */
export interface BucketState {
  units: number;
  atMs: number;
}

export function fullBucket(rate: TokenBucketRate, nowMs: number): BucketState {
  return { units: rate.burst * rate.intervalMs, atMs: Math.floor(nowMs) };
}

/** Brings `state` up to `nowMs`. A clock that steps back adds nothing and moves nothing. */
export function refillBucket(state: BucketState, rate: TokenBucketRate, nowMs: number): void {
  const now = Math.floor(nowMs);
  const elapsed = now - state.atMs;
  if (elapsed <= 0) return;
  const capacity = rate.burst * rate.intervalMs;
  state.units = Math.min(capacity, state.units + elapsed * rate.refill);
  state.atMs = now;
}

/** Takes `n` tokens if available; otherwise takes nothing and says when they will be. */
export function takeFromBucket(state: BucketState, rate: TokenBucketRate, nowMs: number, n = 1): RateDecision {
  const decision = peekBucket(state, rate, nowMs, n);
  if (decision.ok) state.units -= n * rate.intervalMs;
  return decision;
}

/**
 * Takes as many of `n` tokens as there are now (possibly none, possibly all); when it took
 * fewer than `n`, `retryAfterMs` says when the next one will be there. For shaping: a batch of
 * n messages goes on as the budget allows, never charged less than one token each.
 */
export function takeUpToFromBucket(state: BucketState, rate: TokenBucketRate, nowMs: number, n: number): { taken: number; retryAfterMs: number } {
  refillBucket(state, rate, nowMs);
  const taken = Math.max(0, Math.min(n, Math.floor(state.units / rate.intervalMs)));
  state.units -= taken * rate.intervalMs;
  if (taken === n) return { taken, retryAfterMs: 0 };
  return { taken, retryAfterMs: ceilDiv(rate.intervalMs - state.units, rate.refill) };
}

/** Like takeFromBucket, but takes nothing either way. */
export function peekBucket(state: BucketState, rate: TokenBucketRate, nowMs: number, n = 1): RateDecision {
  assertTokens(rate, n);
  refillBucket(state, rate, nowMs);
  const deficit = n * rate.intervalMs - state.units;
  if (deficit <= 0) return RATE_OK;
  return { ok: false, retryAfterMs: ceilDiv(deficit, rate.refill) };
}

/** True when the bucket has refilled completely: it then carries no information and may be dropped. */
export function isBucketFull(state: BucketState, rate: TokenBucketRate, nowMs: number): boolean {
  refillBucket(state, rate, nowMs);
  return state.units >= rate.burst * rate.intervalMs;
}

/** One bucket with its own clock (monotonic time). */
export class TokenBucket {
  private readonly state: BucketState;

  /** Throws RangeError on a rate that checkTokenBucketRate refuses: validate configuration first. */
  constructor(
    readonly rate: TokenBucketRate,
    private readonly clock: Clock,
  ) {
    const problem = checkTokenBucketRate(rate);
    if (problem !== undefined) throw new RangeError(`TokenBucket: ${problem}`);
    this.state = fullBucket(rate, clock.monotonicMs());
  }

  /** Takes `n` tokens (1 ≤ n ≤ burst) or answers when they will be there. */
  take(n = 1): RateDecision {
    return takeFromBucket(this.state, this.rate, this.clock.monotonicMs(), n);
  }

  /** Answers as `take` would, without taking. */
  peek(n = 1): RateDecision {
    return peekBucket(this.state, this.rate, this.clock.monotonicMs(), n);
  }

  /** Whole tokens available now. */
  available(): number {
    refillBucket(this.state, this.rate, this.clock.monotonicMs());
    return Math.floor(this.state.units / this.rate.intervalMs);
  }
}

function assertTokens(rate: TokenBucketRate, n: number): void {
  // A request above the burst could never be granted: that is a caller's bug, not a refusal.
  if (!(Number.isSafeInteger(n) && n >= 1 && n <= rate.burst)) throw new RangeError(`TokenBucket: cannot take ${n} tokens (burst ${rate.burst})`);
}

/** ceil(a / b) for positive integers, exact even where the float quotient rounds. */
function ceilDiv(a: number, b: number): number {
  let q = Math.ceil(a / b);
  if ((q - 1) * b >= a) q--;
  else if (q * b < a) q++;
  return q;
}
