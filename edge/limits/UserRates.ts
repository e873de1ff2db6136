/**
 * Per-user budgets for what a logged-in client sends besides messages (RateLimits keeps the
 * message budget, connections and logins): read receipts and GET_STATUS queries (shaped: the
 * connection stops reading until the budget refills), typing notices (the excess is dropped:
 * typing is best effort), prekey fetches (shaped per requester; beyond a small allowance per
 * (requester, target) answered `rate_limited`, so nobody can drain another user's one-time
 * prekeys), and group fan-out (deliveries a sender's group messages cause; refused beyond).
 * Every table is bounded (KeyedBuckets); decisions are RateDecision values.
 */
import type { Clock } from '../../runtime/Env.js';
import type { EdgeSettings } from '../EdgeSettings.js';
import type { CoreSettings } from '../../core/CoreSettings.js';
import { MAX_TRACKED_KEYS_DEFAULT } from './defaults.js';
import { KeyedBuckets } from './KeyedBuckets.js';
import { bytesKey } from './RateLimits.js';
import type { RateDecision, TokenBucketRate } from './TokenBucket.js';

const perSecond = (burst: number, refill: number): TokenBucketRate => ({ burst, refill, intervalMs: 1000 });

type Settings = Pick<
  EdgeSettings,
  | 'rate_limit_receipts_burst'
  | 'rate_limit_receipts_per_s'
  | 'rate_limit_typing_burst'
  | 'rate_limit_typing_per_s'
  | 'rate_limit_status_burst'
  | 'rate_limit_status_per_s'
  | 'rate_limit_prekey_fetches_burst'
  | 'rate_limit_prekey_fetches_per_s'
  | 'rate_limit_prekey_fetches_per_target_per_min'
> &
  Pick<CoreSettings, 'group_fanout_burst' | 'group_fanout_per_s'>;

export class UserRates {
  private readonly receiptBuckets: KeyedBuckets;
  private readonly typingBuckets: KeyedBuckets;
  private readonly statusBuckets: KeyedBuckets;
  private readonly fetchBuckets: KeyedBuckets;
  private readonly fetchPairBuckets: KeyedBuckets;
  private readonly fanoutBuckets: KeyedBuckets;
  private readonly fanoutBurst: number;
  /** Typing notices dropped over budget (for /metrics). */
  droppedTyping = 0;

  constructor(clock: Clock, s: Settings, maxKeys = MAX_TRACKED_KEYS_DEFAULT) {
    this.receiptBuckets = new KeyedBuckets(perSecond(s.rate_limit_receipts_burst, s.rate_limit_receipts_per_s), maxKeys, clock);
    this.typingBuckets = new KeyedBuckets(perSecond(s.rate_limit_typing_burst, s.rate_limit_typing_per_s), maxKeys, clock);
    this.statusBuckets = new KeyedBuckets(perSecond(s.rate_limit_status_burst, s.rate_limit_status_per_s), maxKeys, clock);
    this.fetchBuckets = new KeyedBuckets(perSecond(s.rate_limit_prekey_fetches_burst, s.rate_limit_prekey_fetches_per_s), maxKeys, clock);
    const perTarget = s.rate_limit_prekey_fetches_per_target_per_min;
    this.fetchPairBuckets = new KeyedBuckets({ burst: perTarget, refill: perTarget, intervalMs: 60_000 }, maxKeys, clock);
    this.fanoutBuckets = new KeyedBuckets(perSecond(s.group_fanout_burst, s.group_fanout_per_s), maxKeys, clock);
    this.fanoutBurst = s.group_fanout_burst;
  }

  /** One read receipt of `user` (shaped). */
  receipt(user: Uint8Array): RateDecision {
    return this.receiptBuckets.take(bytesKey(user), 1);
  }

  /** One typing notice of `user`: false means drop it. */
  typing(user: Uint8Array): boolean {
    const ok = this.typingBuckets.take(bytesKey(user), 1).ok;
    if (!ok) this.droppedTyping++;
    return ok;
  }

  /** One GET_STATUS of `who` (a user, or a connection's address before login) (shaped). */
  status(who: string): RateDecision {
    return this.statusBuckets.take(who, 1);
  }

  /**
   * One FETCH_PREKEYS of `target` by `user`: `wait` when the requester's budget is spent
   * (shaped), `refuse` when this pair's allowance is (answered rate_limited).
   */
  prekeyFetch(user: Uint8Array, target: Uint8Array): { ok: true } | { ok: false; wait: number } | { ok: false; refuse: true } {
    const u = bytesKey(user);
    const pair = `${u.length}:${u}${bytesKey(target)}`;
    const mine = this.fetchBuckets.peek(u, 1);
    if (!mine.ok) return { ok: false, wait: mine.retryAfterMs };
    if (!this.fetchPairBuckets.take(pair, 1).ok) return { ok: false, refuse: true };
    this.fetchBuckets.take(u, 1);
    return { ok: true };
  }

  /** `n` group deliveries caused by `user` (a UserKey): false when its fan-out budget cannot cover them. */
  fanout(user: string, n: number): boolean {
    if (n <= 0) return true;
    // A fan-out larger than the burst costs the whole burst: it passes only on a full bucket.
    return this.fanoutBuckets.take(user, Math.min(n, this.fanoutBurst)).ok;
  }
}
