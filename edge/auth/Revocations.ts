// The set of revoked login-token ids (`jti`) that JwtVerifier consults. A revocation is kept
// only until the token it names would have expired anyway, so memory is bounded by one token
// lifetime of revocations (and by a hard entry cap that refuses rather than forgets).
//
// Cluster use (protocol-v1.md §4: a revocation reaches every node within 60 s): `revoke` returns
// a plain-data `Revocation` to publish; every node feeds received ones to `apply`. Because core
// pub/sub is at most once, nodes also exchange `snapshot()`s every REVOCATION_RESYNC_INTERVAL_MS
// and `merge` them. Both are idempotent and commutative (a jti maps to the latest `untilMs` seen),
// so any order or repetition of deliveries converges to the same set.

import type { Clock } from '../../runtime/Env.js';
import { JWT_DEFAULT_MAX_LIFETIME_SECONDS, type RevocationCheck } from './JwtVerifier.js';

/** Entry cap (config key jwt_revocations_max). Mass revocation beyond it calls for a new secret. */
export const REVOCATIONS_DEFAULT_MAX_ENTRIES = 100_000;
/** Extra time an entry outlives its token's exp: covers clock differences between nodes. */
export const REVOCATION_GRACE_MS = 60_000;
/** Period of the snapshot exchange that repairs lost broadcasts, well inside the 60 s budget. */
export const REVOCATION_RESYNC_INTERVAL_MS = 30_000;
/** Longest jti accepted for revocation (in UTF-16 code units). */
export const REVOCATION_MAX_JTI_LENGTH = 256;
/** Expiry buckets: entries are pruned a bucket at a time. */
const BUCKET_MS = 60_000;

/** One revoked token id, kept until `untilMs` (wall-clock ms since the Unix epoch). */
export interface Revocation {
  readonly jti: string;
  readonly untilMs: number;
}

/** Every live revocation of one node, as plain data (msgpack / JSON friendly). */
export interface RevocationSnapshot {
  readonly version: 1;
  readonly entries: readonly Revocation[];
}

export type RevokeResult =
  | {
      readonly ok: true;
      /** What to broadcast to the other nodes. */
      readonly revocation: Revocation;
      /** False when the jti was already revoked at least that long. */
      readonly changed: boolean;
    }
  | { readonly ok: false; readonly code: 'invalid_jti' | 'revocations_full' | 'already_expired' };

export interface MergeResult {
  readonly applied: number;
  readonly refused: number;
}

export interface RevocationsOptions {
  /** Wall-clock source; the same time base as the tokens' exp. */
  readonly clock: Clock;
  /** Default REVOCATIONS_DEFAULT_MAX_ENTRIES. */
  readonly maxEntries?: number;
  /** The verifiers' lifetime cap: no live token outlives now + this. Default 24 h. */
  readonly maxLifetimeSeconds?: number;
  /** Default REVOCATION_GRACE_MS. */
  readonly graceMs?: number;
}

export class Revocations implements RevocationCheck {
  private readonly clock: Clock;
  private readonly maxEntries: number;
  private readonly horizonMs: number;
  private readonly graceMs: number;
  /** jti → until (ms). */
  private readonly until = new Map<string, number>();
  /** Bucket number (ceil(until / BUCKET_MS)) → the jtis whose `until` falls in it. */
  private readonly buckets = new Map<number, Set<string>>();
  private nextPruneMs = 0;

  constructor(options: RevocationsOptions) {
    this.clock = options.clock;
    this.maxEntries = options.maxEntries ?? REVOCATIONS_DEFAULT_MAX_ENTRIES;
    this.graceMs = options.graceMs ?? REVOCATION_GRACE_MS;
    this.horizonMs = (options.maxLifetimeSeconds ?? JWT_DEFAULT_MAX_LIFETIME_SECONDS) * 1000 + this.graceMs;
  }

  /**
   * Revokes `jti` on this node. Give the token's `exp` (seconds) when known: the entry then
   * lives until exp + grace; otherwise until the longest a token could still be valid.
   */
  revoke(jti: string, tokenExpSeconds?: number): RevokeResult {
    const nowMs = this.clock.wallMs();
    const untilMs = tokenExpSeconds === undefined ? nowMs + this.horizonMs : tokenExpSeconds * 1000 + this.graceMs;
    return this.insert(jti, untilMs, nowMs);
  }

  /** Applies a revocation received from another node (broadcast). */
  apply(revocation: Revocation): RevokeResult {
    return this.insert(revocation.jti, revocation.untilMs, this.clock.wallMs());
  }

  /** Applies every entry of another node's snapshot. */
  merge(snapshot: RevocationSnapshot): MergeResult {
    let applied = 0;
    let refused = 0;
    const nowMs = this.clock.wallMs();
    for (const entry of snapshot.entries) {
      const r = this.insert(entry.jti, entry.untilMs, nowMs);
      if (r.ok) applied++;
      else if (r.code !== 'already_expired') refused++;
    }
    return { applied, refused };
  }

  isRevoked(jti: string): boolean {
    const untilMs = this.until.get(jti);
    return untilMs !== undefined && untilMs > this.clock.wallMs();
  }

  /** Until when `jti` is revoked (wall-clock ms), if it is in the set (possibly just expired). */
  untilOf(jti: string): number | undefined {
    return this.until.get(jti);
  }

  /** Live entries (expired ones may linger until the next prune). */
  get size(): number {
    return this.until.size;
  }

  snapshot(): RevocationSnapshot {
    const nowMs = this.clock.wallMs();
    const entries: Revocation[] = [];
    for (const [jti, untilMs] of this.until) if (untilMs > nowMs) entries.push({ jti, untilMs });
    return { version: 1, entries };
  }

  /** Drops entries whose token has expired; returns how many. Runs by itself at most once a bucket. */
  prune(): number {
    const nowMs = this.clock.wallMs();
    this.nextPruneMs = nowMs + BUCKET_MS;
    let dropped = 0;
    for (const [bucket, jtis] of this.buckets) {
      if (bucket * BUCKET_MS > nowMs) continue;
      for (const jti of jtis) this.until.delete(jti);
      dropped += jtis.size;
      this.buckets.delete(bucket);
    }
    return dropped;
  }

  private insert(jti: string, requestedUntilMs: number, nowMs: number): RevokeResult {
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > REVOCATION_MAX_JTI_LENGTH || !Number.isFinite(requestedUntilMs)) {
      return { ok: false, code: 'invalid_jti' };
    }
    if (nowMs >= this.nextPruneMs) this.prune();
    // No token valid now outlives now + cap, so a later `until` would only hold memory.
    const untilMs = Math.min(requestedUntilMs, nowMs + this.horizonMs);
    if (untilMs <= nowMs) return { ok: false, code: 'already_expired' };
    const previous = this.until.get(jti);
    if (previous !== undefined && previous >= untilMs) return { ok: true, revocation: { jti, untilMs: previous }, changed: false };
    if (previous === undefined && this.until.size >= this.maxEntries) {
      this.prune();
      if (this.until.size >= this.maxEntries) return { ok: false, code: 'revocations_full' };
    }
    if (previous !== undefined) this.buckets.get(bucketOf(previous))?.delete(jti);
    this.until.set(jti, untilMs);
    const bucket = bucketOf(untilMs);
    let jtis = this.buckets.get(bucket);
    if (jtis === undefined) this.buckets.set(bucket, (jtis = new Set()));
    jtis.add(jti);
    return { ok: true, revocation: { jti, untilMs }, changed: true };
  }
}

function bucketOf(untilMs: number): number {
  return Math.ceil(untilMs / BUCKET_MS);
}
