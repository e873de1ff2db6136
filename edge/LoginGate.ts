/**
 * Decides a v1 login (protocol-v1.md §4). With auth enabled the token is checked first, so a
 * valid token always gets in, whoever else has been failing for the same account; a failed
 * login spends one try of its (account, source address) pair (edge/limits/RateLimits.ts) and,
 * once that pair's allowance is spent, is answered `rate_limited` instead of `auth_failed`.
 * The connection sends `rate_limited` as the plain text RATE_LIMITED and `auth_failed` as
 * AUTH_FAILED. Pure and synchronous: it touches no process, socket or storage.
 *
 * A successful decision carries what the connection needs to end the session later: the
 * token's expiry and its `jti` (see edge/auth/LiveTokens.ts for how a revocation reaches it).
 */
import type { JwtVerifier } from './auth/JwtVerifier.js';
import type { ClientLink } from './ClientLink.js';
import type { LoginCheck } from './ConnectionDeps.js';
import type { RateLimits } from './limits/RateLimits.js';

export interface LoginGateOptions {
  /** Null when auth is disabled (dev mode): any well-formed user is accepted. */
  verifier: JwtVerifier | null;
  limits: RateLimits;
}

/** `user` is the raw login name, `token` the bytes after ':' (null without one), `link` the client's (for its address). */
export type LoginGate = (user: Uint8Array, token: Uint8Array | null, link: Pick<ClientLink, 'remoteAddress'>) => LoginCheck;

const ACCEPTED_WITHOUT_AUTH: LoginCheck = Object.freeze({ ok: true as const });
const AUTH_FAILED: LoginCheck = Object.freeze({ ok: false as const, code: 'auth_failed' as const });
const RATE_LIMITED: LoginCheck = Object.freeze({ ok: false as const, code: 'rate_limited' as const });

export function loginGate(opts: LoginGateOptions): LoginGate {
  const { verifier, limits } = opts;
  return (user, token, link) => {
    if (verifier === null) return ACCEPTED_WITHOUT_AUTH;
    const r = verifier.verify(token ?? undefined, user);
    if (r.ok) return r.jti === undefined ? { ok: true, expiresAtMs: r.exp * 1000 } : { ok: true, expiresAtMs: r.exp * 1000, jti: r.jti };
    return limits.loginFailed(user, link.remoteAddress).ok ? AUTH_FAILED : RATE_LIMITED;
  };
}
