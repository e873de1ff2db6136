// The logged-in sessions that a token can still end: every connection that logged in with a
// JWT registers here, and is told to close when its token is revoked (requirements M2: within
// 60 s on every node) or when the token expires. The registry never closes anything itself:
// it sends the connection a `TokenEnded` message (through the `end` function it was given),
// and the connection writes its refusal and closes in its own handler.
//
// How a connection uses it (edge/Connection.ts):
//   - at login, in the same handler turn as the LoginGate decision `{ok: true, jti?, expiresAtMs?}`:
//       if (d.expiresAtMs !== undefined) this.liveToken = deps.liveTokens.register(ctx.self, d);
//     (same turn, so no revocation can slip between the check and the registration; a token
//     revoked or expired by then is ended at once);
//   - on `{t: 'token_ended', code}`: write ERROR `code` ('token_revoked' or 'token_expired')
//     and close;
//   - when it closes for any reason: `deps.liveTokens.unregister(this.liveToken)`.
// Revocations reach it through `revoked(jti)` (RevocationStore calls it for every revocation
// it records or receives from another node); expiry through one timer for the earliest expiry.
//
// Single-threaded by design: it lives on the scheduler that runs the connections (scheduler 0,
// with the listeners) and is read and written by direct calls, like the presence table; a
// node with connections on several schedulers would keep one registry per scheduler and hand
// each revocation to all of them. Memory: one small entry per registered session plus its
// slot in the expiry heap; unregistered entries leave the heap lazily and the heap is compacted
// when they outnumber live ones.

import type { Clock, TimerHandle, Timers } from '../../runtime/Env.js';
import type { Pid } from '../../runtime/Pid.js';
import type { RevocationCheck } from './JwtVerifier.js';

/** Why a live session's token ended; also the v1 ERROR reason the connection sends. */
export type TokenEndCode = 'token_revoked' | 'token_expired';

/** The message a connection receives when its token ends. */
export interface TokenEnded {
  readonly t: 'token_ended';
  readonly code: TokenEndCode;
}

export const TOKEN_REVOKED: TokenEnded = Object.freeze({ t: 'token_ended', code: 'token_revoked' });
export const TOKEN_EXPIRED: TokenEnded = Object.freeze({ t: 'token_ended', code: 'token_expired' });

/**
 * Timer granularity: a session ends at most this long after its token's `exp`, and the expiry
 * timer is re-armed at most once per this interval however many sessions log in.
 */
export const LIVE_TOKEN_EXPIRY_RESOLUTION_MS = 1000;
/** Unregistered entries tolerated in the expiry heap beyond the live ones before it is compacted. */
const HEAP_SLACK = 64;

/** What the login decision says about the token (LoginGate's success result fits). */
export interface LiveTokenFacts {
  readonly jti?: string;
  /** Wall-clock ms since the Unix epoch. */
  readonly expiresAtMs: number;
}

export interface LiveTokensOptions {
  /** Wall clock (the time base of `exp`). */
  readonly clock: Clock;
  readonly timers: Timers;
  /** Delivers `ended` to the session's process; production sends it as a message to `pid`. */
  readonly end: (pid: Pid, ended: TokenEnded) => void;
  /** Checked at registration, so a token revoked after its login check still ends the session. */
  readonly revocations?: RevocationCheck;
}

/** The handle `register` returns; pass it to `unregister`. Opaque to callers. */
export class LiveToken {
  /** False once ended or unregistered. */
  live = true;
  constructor(
    readonly pid: Pid,
    readonly jti: string | undefined,
    readonly expiresAtMs: number,
  ) {}
}

export class LiveTokens {
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly endFn: (pid: Pid, ended: TokenEnded) => void;
  private readonly revocations: RevocationCheck | undefined;
  /** jti → the live sessions logged in with it (usually one). */
  private readonly byJti = new Map<string, LiveToken[]>();
  /** Min-heap on expiresAtMs; may hold entries no longer live. */
  private heap: LiveToken[] = [];
  private liveCount = 0;
  private timer: TimerHandle | undefined = undefined;
  /** Wall-clock ms the armed timer is for. */
  private timerAtMs = Infinity;
  private closed = false;

  constructor(options: LiveTokensOptions) {
    this.clock = options.clock;
    this.timers = options.timers;
    this.endFn = options.end;
    this.revocations = options.revocations;
  }

  /** Sessions registered and not yet ended or unregistered. */
  get size(): number {
    return this.liveCount;
  }

  /**
   * Registers the session of `pid` logged in with `token`. A token already revoked or expired
   * ends the session at once (the handle comes back not live).
   */
  register(pid: Pid, token: LiveTokenFacts): LiveToken {
    const entry = new LiveToken(pid, token.jti, token.expiresAtMs);
    if (this.closed) {
      entry.live = false;
      return entry;
    }
    if (token.jti !== undefined && this.revocations?.isRevoked(token.jti) === true) return this.endNow(entry, TOKEN_REVOKED);
    if (token.expiresAtMs <= this.clock.wallMs()) return this.endNow(entry, TOKEN_EXPIRED);
    this.liveCount++;
    if (entry.jti !== undefined) {
      const list = this.byJti.get(entry.jti);
      if (list === undefined) this.byJti.set(entry.jti, [entry]);
      else list.push(entry);
    }
    this.heapPush(entry);
    this.armFor(entry.expiresAtMs);
    return entry;
  }

  /** The session ended for another reason (closed, replaced). Idempotent. */
  unregister(entry: LiveToken): void {
    if (!entry.live) return;
    this.drop(entry);
    this.compactIfSparse();
  }

  /** Ends every live session logged in with `jti`; returns how many. */
  revoked(jti: string): number {
    const list = this.byJti.get(jti);
    if (list === undefined) return 0;
    let n = 0;
    for (const entry of [...list]) {
      if (!entry.live) continue;
      this.drop(entry);
      this.endFn(entry.pid, TOKEN_REVOKED);
      n++;
    }
    this.compactIfSparse();
    return n;
  }

  /** Ends every live session whose token has expired by now; returns how many. The timer calls it. */
  expireDue(): number {
    const now = this.clock.wallMs();
    let n = 0;
    while (this.heap.length > 0 && this.heap[0]!.expiresAtMs <= now) {
      const entry = this.heapPop()!;
      if (!entry.live) continue;
      this.drop(entry);
      this.endFn(entry.pid, TOKEN_EXPIRED);
      n++;
    }
    return n;
  }

  /** Stops the timer and forgets every session, without ending any (the node is stopping). */
  close(): void {
    this.closed = true;
    this.disarm();
    for (const entry of this.heap) entry.live = false;
    this.heap = [];
    this.byJti.clear();
    this.liveCount = 0;
  }

  // ---- internal ------------------------------------------------------------------------

  private endNow(entry: LiveToken, ended: TokenEnded): LiveToken {
    entry.live = false;
    this.endFn(entry.pid, ended);
    return entry;
  }

  /** Marks `entry` gone and removes it from the jti index; its heap slot goes lazily. */
  private drop(entry: LiveToken): void {
    entry.live = false;
    this.liveCount--;
    if (entry.jti === undefined) return;
    const list = this.byJti.get(entry.jti);
    if (list === undefined) return;
    const i = list.indexOf(entry);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byJti.delete(entry.jti);
  }

  /** Makes sure a timer fires no later than one resolution step after `atMs`; keeps an armed one that does. */
  private armFor(atMs: number): void {
    if (this.timer !== undefined && this.timerAtMs <= atMs + LIVE_TOKEN_EXPIRY_RESOLUTION_MS) return;
    this.disarm();
    this.timerAtMs = atMs;
    this.timer = this.timers.setTimer(Math.max(0, atMs - this.clock.wallMs()), () => this.onTimer());
  }

  private disarm(): void {
    if (this.timer !== undefined) this.timers.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAtMs = Infinity;
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAtMs = Infinity;
    if (this.closed) return;
    this.expireDue();
    while (this.heap.length > 0 && !this.heap[0]!.live) this.heapPop();
    // The next firing is at least one resolution step away, so sessions expiring a few
    // milliseconds apart share a firing. (A timer can also fire a little before the wall clock
    // reaches its deadline: the same deadline is then simply armed again.)
    if (this.heap.length > 0) this.armFor(Math.max(this.heap[0]!.expiresAtMs, this.clock.wallMs() + LIVE_TOKEN_EXPIRY_RESOLUTION_MS));
  }

  private compactIfSparse(): void {
    if (this.heap.length <= 2 * this.liveCount + HEAP_SLACK) return;
    const live = this.heap.filter((e) => e.live);
    this.heap = [];
    for (const e of live) this.heapPush(e);
  }

  private heapPush(entry: LiveToken): void {
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.expiresAtMs <= entry.expiresAtMs) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = entry;
  }

  private heapPop(): LiveToken | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && h[r]!.expiresAtMs < h[l]!.expiresAtMs ? r : l;
      if (h[c]!.expiresAtMs >= last.expiresAtMs) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
    return top;
  }
}
