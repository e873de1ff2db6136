// The logged-in sessions that a revocation must end: every connection that logged in with a
// JWT carrying a `jti` registers here, and is told to close when that jti is revoked
// (requirements M2: within 60 s on every node). The registry never closes anything itself: it
// sends the connection a `TokenEnded` message (through the `end` function it was given), and
// the connection writes its refusal and closes in its own handler. (A token's expiry needs no
// registry: the connection arms its own timeout from the login decision's `expiresAtMs`.)
//
// How a connection uses it (the v1 connection, edge/v1/):
//   - at login, in the same handler turn as the LoginGate decision `{ok: true, jti?, expiresAtMs?}`:
//       if (check.jti !== undefined) this.liveToken = deps.liveTokens.register(ctx.self, check.jti);
//     (same turn, so no revocation can slip between the check and the registration; a jti
//     revoked by then ends the session at once);
//   - on `{t: 'token_ended', code: 'token_revoked'}`: write ERROR `token_revoked` and close;
//   - when it closes for any reason: `deps.liveTokens.unregister(this.liveToken)`.
// Revocations reach it through `revoked(jti)`: RevocationStore calls it for every revocation
// it records, local or received from another node.
//
// Single-threaded by design: it lives on the scheduler that runs the connections (scheduler 0,
// with the listeners) and is read and written by direct calls, like the presence table; a node
// with connections on several schedulers would keep one registry per scheduler and hand each
// revocation to all of them. Memory: one small entry per registered session, in a list per jti
// (usually of one). A session whose process dies without unregistering costs its entry until
// its jti is revoked; the connection's close path is the place to unregister.

import type { Pid } from '../../runtime/Pid.js';
import type { RevocationCheck } from './JwtVerifier.js';

/** Why a live session's token ended; also the v1 ERROR reason the connection sends. */
export type TokenEndCode = 'token_revoked';

/** The message a connection receives when its token is revoked. */
export interface TokenEnded {
  readonly t: 'token_ended';
  readonly code: TokenEndCode;
}

export const TOKEN_REVOKED: TokenEnded = Object.freeze({ t: 'token_ended', code: 'token_revoked' });

export interface LiveTokensOptions {
  /** Delivers `ended` to the session's process; production sends it as a message to `pid`. */
  readonly end: (pid: Pid, ended: TokenEnded) => void;
  /** Checked at registration, so a token revoked after its login check still ends the session. */
  readonly revocations?: RevocationCheck;
}

/** The handle `register` returns; pass it to `unregister`. */
export class LiveToken {
  /** False once ended or unregistered. */
  live = true;
  constructor(
    readonly pid: Pid,
    readonly jti: string,
  ) {}
}

export class LiveTokens {
  private readonly endFn: (pid: Pid, ended: TokenEnded) => void;
  private readonly revocations: RevocationCheck | undefined;
  /** jti → the live sessions logged in with it (usually one). */
  private readonly byJti = new Map<string, LiveToken[]>();
  private liveCount = 0;

  constructor(options: LiveTokensOptions) {
    this.endFn = options.end;
    this.revocations = options.revocations;
  }

  /** Sessions registered and not yet ended or unregistered. */
  get size(): number {
    return this.liveCount;
  }

  /** Registers the session of `pid`, logged in with a token whose id is `jti`; a jti already revoked ends it at once. */
  register(pid: Pid, jti: string): LiveToken {
    const entry = new LiveToken(pid, jti);
    if (this.revocations?.isRevoked(jti) === true) {
      entry.live = false;
      this.endFn(pid, TOKEN_REVOKED);
      return entry;
    }
    this.liveCount++;
    const list = this.byJti.get(jti);
    if (list === undefined) this.byJti.set(jti, [entry]);
    else list.push(entry);
    return entry;
  }

  /** The session ended for another reason (closed, replaced, expired). Idempotent. */
  unregister(entry: LiveToken): void {
    if (entry.live) this.drop(entry);
  }

  /** Ends every live session logged in with `jti`; returns how many. */
  revoked(jti: string): number {
    const list = this.byJti.get(jti);
    if (list === undefined) return 0;
    let n = 0;
    for (const entry of [...list]) {
      this.drop(entry);
      this.endFn(entry.pid, TOKEN_REVOKED);
      n++;
    }
    return n;
  }

  private drop(entry: LiveToken): void {
    entry.live = false;
    this.liveCount--;
    const list = this.byJti.get(entry.jti);
    if (list === undefined) return;
    const i = list.indexOf(entry);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byJti.delete(entry.jti);
  }
}
