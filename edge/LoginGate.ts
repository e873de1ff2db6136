/**
 * Decides a v1 login (protocol-v1.md §4). With auth enabled the token is checked first, so a
 * valid token always gets in, whoever else has been failing for the same account; a failed
 * login spends one try of its (account, source address) pair (edge/limits/RateLimits.ts) and,
 * once that pair's allowance is spent, is answered `rate_limited` instead of its refusal code.
 * The connection turns `rate_limited` into the plain text RATE_LIMITED and any other code into
 * AUTH_FAILED. Pure and synchronous: it touches no process, socket or storage.
 *
 * A successful decision carries what the connection needs to end the session later: the
 * token's `jti` (to be closed if it is revoked) and its expiry (to be closed when it expires);
 * see edge/auth/LiveTokens.ts for how a connection registers them.
 */
import type { JwtRefusalCode, JwtVerifier } from './auth/JwtVerifier.js';
import type { RateLimits } from './limits/RateLimits.js';

export interface LoginGateOptions {
  /** Null when auth is disabled (dev mode): any well-formed user is accepted. */
  verifier: JwtVerifier | null;
  limits: RateLimits;
}

/** Why a login is refused: a token rule (JwtVerifier's codes) or the failed-login limit. */
export type LoginRefusal = JwtRefusalCode | 'rate_limited';

export type LoginDecision =
  | {
      readonly ok: true;
      /** The token's `jti`, when auth is on and the token has one. */
      readonly jti?: string;
      /** When the token expires (wall-clock ms since the Unix epoch); absent without auth. */
      readonly expiresAtMs?: number;
    }
  | { readonly ok: false; readonly code: LoginRefusal };

/** `user` is the raw login name, `token` the bytes after ':' (null without one), `remoteAddress` the peer's address text. */
export type LoginGate = (user: Uint8Array, token: Uint8Array | null, remoteAddress: string) => LoginDecision;

const ACCEPTED_WITHOUT_AUTH: LoginDecision = Object.freeze({ ok: true as const });
const RATE_LIMITED: LoginDecision = Object.freeze({ ok: false as const, code: 'rate_limited' as const });

export function loginGate(opts: LoginGateOptions): LoginGate {
  const { verifier, limits } = opts;
  return (user, token, remoteAddress) => {
    if (verifier === null) return ACCEPTED_WITHOUT_AUTH;
    const r = verifier.verify(token ?? undefined, user);
    if (r.ok) return r.jti === undefined ? { ok: true, expiresAtMs: r.exp * 1000 } : { ok: true, jti: r.jti, expiresAtMs: r.exp * 1000 };
    return limits.loginFailed(user, remoteAddress).ok ? { ok: false, code: r.code } : RATE_LIMITED;
  };
}
