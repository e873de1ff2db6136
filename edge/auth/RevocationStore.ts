// Durable token revocations: the bounded in-memory set (Revocations.ts), which the JWT verifier
// reads on every login, backed by a storage table so a revocation survives a restart. A
// revocation takes effect in memory at once (logins with that jti are refused and live
// sessions holding it are told to end, through `onRevoked`), and `revoke` resolves only once
// it is durable. If the write fails the revocation still holds on this node until it restarts,
// and the caller is told `storage_failed` so it can retry.
//
// Table `revocations`: key (untilMs, jti), empty value. Ordering by `untilMs` makes pruning a
// range read from the start of the table: rows whose token has expired are removed at open and
// a bounded number of them with every later write, so the table never holds more than the
// live revocations plus those expired since the last write.
//
// Cluster use: revocations received from other nodes go through `apply` (or `merge` for a
// snapshot), which record them durably and end live sessions exactly like a local `revoke`;
// `revoke`'s result carries the plain-data `Revocation` to broadcast. Every path is
// idempotent, so repeated or reordered deliveries converge (see Revocations.ts).

import type { Clock, Logger, StorageEngine, StorageOp, StorageTable } from '../../runtime/Env.js';
import type { RevocationCheck } from './JwtVerifier.js';
import type { Revocation, RevocationSnapshot, Revocations, RevokeResult } from './Revocations.js';

export const REVOCATIONS_TABLE = 'revocations';
/** Expired rows removed per write at most, so one revocation does bounded work. */
export const REVOCATION_PRUNE_BATCH = 1000;

const EMPTY = new Uint8Array(0);
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** `revoked`: now in the set; `already_revoked`: it was, at least as long; `already_expired`: the token is dead anyway, nothing stored. */
export type RevocationOutcome = 'revoked' | 'already_revoked' | 'already_expired';

export type RecordRevocationResult =
  | {
      readonly ok: true;
      readonly outcome: RevocationOutcome;
      /** The revocation as stored (what to broadcast); null when already expired. */
      readonly revocation: Revocation | null;
      /** Live sessions told to end because of it. */
      readonly sessionsEnded: number;
    }
  | {
      readonly ok: false;
      /** `invalid_jti`: empty, too long or not well-formed text; `revocations_full`: the entry cap is reached; `storage_failed`: in effect on this node, not durable. */
      readonly code: 'invalid_jti' | 'revocations_full' | 'storage_failed';
      readonly message: string;
    };

export interface RevocationStoreOptions {
  readonly storage: StorageEngine;
  /** The in-memory set the verifier reads; filled from the table at open. */
  readonly revocations: Revocations;
  readonly clock: Clock;
  readonly log: Logger;
  /** Called for every revocation in effect (new or repeated); returns the sessions it ended (LiveTokens.revoked). */
  readonly onRevoked?: (jti: string) => number;
}

/** What `open` found in the table. */
export interface RevocationStoreLoad {
  readonly loaded: number;
  /** Rows of expired tokens removed. */
  readonly pruned: number;
  /** Rows that could not be loaded (malformed, or over the entry cap); kept, and logged. */
  readonly refused: number;
}

export class RevocationStore implements RevocationCheck {
  private readonly table: StorageTable;

  private constructor(private readonly opts: RevocationStoreOptions) {
    this.table = opts.storage.table(REVOCATIONS_TABLE);
  }

  /** Loads every stored revocation into `revocations` and removes the expired rows. */
  static async open(opts: RevocationStoreOptions): Promise<{ store: RevocationStore; load: RevocationStoreLoad }> {
    const store = new RevocationStore(opts);
    const nowMs = opts.clock.wallMs();
    let loaded = 0;
    let refused = 0;
    const expired: StorageOp[] = [];
    for (const { key } of store.table.getRange({})) {
      const [untilMs, jti] = key;
      if (key.length !== 2 || typeof untilMs !== 'number' || typeof jti !== 'string') {
        refused++;
        continue;
      }
      if (untilMs <= nowMs) {
        expired.push({ type: 'remove', table: REVOCATIONS_TABLE, key });
        continue;
      }
      const r = opts.revocations.apply({ jti, untilMs });
      if (r.ok) loaded++;
      else if (r.code === 'already_expired') expired.push({ type: 'remove', table: REVOCATIONS_TABLE, key });
      else refused++;
    }
    if (refused > 0) opts.log.warn({ table: REVOCATIONS_TABLE, refused }, 'some stored revocations could not be loaded (malformed rows, or more than the entry cap)');
    let pruned = 0;
    if (expired.length > 0) {
      const w = await opts.storage.batch(expired);
      if (w.ok) pruned = expired.length;
      else opts.log.warn({ table: REVOCATIONS_TABLE, reason: w.reason, message: w.message }, 'could not remove expired revocations; they are retried with the next revocation');
    }
    return { store, load: { loaded, pruned, refused } };
  }

  isRevoked(jti: string): boolean {
    return this.opts.revocations.isRevoked(jti);
  }

  /**
   * Revokes `jti` on this node, durably. Give the token's `exp` (seconds) when known: the entry
   * then lives until exp plus the grace period, otherwise for the longest a token can live.
   */
  revoke(jti: string, tokenExpSeconds?: number): Promise<RecordRevocationResult> {
    if (!wellFormed(jti)) return Promise.resolve(invalidJti());
    const previousUntil = this.opts.revocations.untilOf(jti);
    return this.record(jti, previousUntil, this.opts.revocations.revoke(jti, tokenExpSeconds));
  }

  /** Records a revocation received from another node (broadcast), durably. */
  apply(revocation: Revocation): Promise<RecordRevocationResult> {
    if (typeof revocation.jti !== 'string' || !wellFormed(revocation.jti)) return Promise.resolve(invalidJti());
    const previousUntil = this.opts.revocations.untilOf(revocation.jti);
    return this.record(revocation.jti, previousUntil, this.opts.revocations.apply(revocation));
  }

  /** Records every entry of another node's snapshot; resolves once all are durable. */
  async merge(snapshot: RevocationSnapshot): Promise<{ applied: number; refused: number; storageFailed: number }> {
    const results = await Promise.all(snapshot.entries.map((e) => this.apply(e)));
    let applied = 0;
    let refused = 0;
    let storageFailed = 0;
    for (const r of results) {
      if (r.ok) applied += r.outcome === 'already_expired' ? 0 : 1;
      else if (r.code === 'storage_failed') storageFailed++;
      else refused++;
    }
    return { applied, refused, storageFailed };
  }

  /** Every live revocation of this node, as plain data (for the resync between nodes). */
  snapshot(): RevocationSnapshot {
    return this.opts.revocations.snapshot();
  }

  get size(): number {
    return this.opts.revocations.size;
  }

  private async record(jti: string, previousUntil: number | undefined, r: RevokeResult): Promise<RecordRevocationResult> {
    if (!r.ok) {
      if (r.code === 'already_expired') return { ok: true, outcome: 'already_expired', revocation: null, sessionsEnded: 0 };
      if (r.code === 'invalid_jti') return invalidJti();
      return { ok: false, code: 'revocations_full', message: 'the revocation set is full; rotate jwt_secret to invalidate every token at once' };
    }
    const sessionsEnded = this.opts.onRevoked?.(jti) ?? 0;
    const { untilMs } = r.revocation;
    const ops: StorageOp[] = [{ type: 'put', table: REVOCATIONS_TABLE, key: [untilMs, jti], value: EMPTY }];
    if (previousUntil !== undefined && previousUntil !== untilMs) ops.push({ type: 'remove', table: REVOCATIONS_TABLE, key: [previousUntil, jti] });
    for (const { key } of this.table.getRange({ end: [this.opts.clock.wallMs()], limit: REVOCATION_PRUNE_BATCH })) {
      ops.push({ type: 'remove', table: REVOCATIONS_TABLE, key });
    }
    // Written even when nothing changed: the put then also waits out any earlier write of the
    // same revocation still in flight (durability is a prefix), so "done" always means durable.
    const w = await this.opts.storage.batch(ops);
    if (!w.ok) {
      this.opts.log.error({ table: REVOCATIONS_TABLE, jti, reason: w.reason, message: w.message }, 'revocation not stored; it holds on this node until restart');
      return { ok: false, code: 'storage_failed', message: `the revocation holds on this node but was not stored (${w.reason}: ${w.message}); retry` };
    }
    return { ok: true, outcome: r.changed ? 'revoked' : 'already_revoked', revocation: r.revocation, sessionsEnded };
  }
}

function wellFormed(jti: string): boolean {
  return !LONE_SURROGATE.test(jti);
}

function invalidJti(): RecordRevocationResult {
  return { ok: false, code: 'invalid_jti', message: 'jti must be 1..256 characters of well-formed text' };
}
