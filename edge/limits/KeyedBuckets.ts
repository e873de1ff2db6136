/**
 * Token buckets by key (user, address, account…) in least-recently-used order, bounded: at most
 * `maxKeys` buckets; buckets that have refilled completely carry no information and are dropped
 * as the table is used; a check of an unknown key stores nothing unless a token is taken.
 */
import type { Clock } from '../../runtime/Env.js';
import { RATE_OK, fullBucket, isBucketFull, peekBucket, takeFromBucket, takeUpToFromBucket, type BucketState, type RateDecision, type TokenBucketRate } from './TokenBucket.js';

/** Buckets by key in least-recently-used order (a Map keeps insertion order; a touch re-inserts). */
export class KeyedBuckets {
  private readonly buckets = new Map<string, BucketState>();
  evictedBeforeRefill = 0;

  constructor(
    private readonly rate: TokenBucketRate,
    private readonly maxKeys: number,
    private readonly clock: Clock,
  ) {}

  get size(): number {
    return this.buckets.size;
  }

  take(key: string, n: number): RateDecision {
    return this.withBucket(key, (state, now) => takeFromBucket(state, this.rate, now, n));
  }

  /** Takes as many of `n` tokens as `key` has now (see takeUpToFromBucket). */
  takeUpTo(key: string, n: number): { taken: number; retryAfterMs: number } {
    return this.withBucket(key, (state, now) => takeUpToFromBucket(state, this.rate, now, n));
  }

  /** Run `use` on `key`'s bucket (a full one for a new key) and keep it as the most recently used. */
  private withBucket<R>(key: string, use: (state: BucketState, now: number) => R): R {
    const now = this.clock.monotonicMs();
    this.dropRefilledOldest(now);
    let state = this.buckets.get(key);
    if (state === undefined) {
      state = fullBucket(this.rate, now);
      this.makeRoom(now);
    } else {
      this.buckets.delete(key);
    }
    const r = use(state, now);
    this.buckets.set(key, state);
    return r;
  }

  /** Answers as take() would, without taking; an unknown key stores nothing. */
  peek(key: string, n: number): RateDecision {
    const state = this.buckets.get(key);
    return state === undefined ? RATE_OK : peekBucket(state, this.rate, this.clock.monotonicMs(), n);
  }

  forget(key: string): void {
    this.buckets.delete(key);
  }

  sweep(): number {
    const now = this.clock.monotonicMs();
    let dropped = 0;
    for (const [key, state] of this.buckets) {
      if (isBucketFull(state, this.rate, now)) {
        this.buckets.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  /** Looks at the two least recently used buckets: a bucket that has refilled is forgotten. */
  private dropRefilledOldest(now: number): void {
    for (let i = 0; i < 2; i++) {
      const oldest = this.buckets.entries().next();
      if (oldest.done === true || !isBucketFull(oldest.value[1], this.rate, now)) return;
      this.buckets.delete(oldest.value[0]);
    }
  }

  private makeRoom(now: number): void {
    if (this.buckets.size < this.maxKeys) return;
    const oldest = this.buckets.entries().next();
    if (oldest.done === true) return;
    this.buckets.delete(oldest.value[0]);
    if (!isBucketFull(oldest.value[1], this.rate, now)) this.evictedBeforeRefill++;
  }
}
