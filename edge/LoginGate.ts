/**
 * Decides a v1 login: the failed-login limit for the account, then the token rules (when
 * auth is enabled), counting failures so a guessing client is locked out. Answers with the
 * codes the connection turns into `AUTH_FAILED` or `RATE_LIMITED`.
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

export function loginGate(opts: LoginGateOptions): (user: Uint8Array, token: Uint8Array | null, link: ClientLink) => LoginCheck {
  return (user, token) => {
    const allowed = opts.limits.loginAllowed(user);
    if (!allowed.ok) return { ok: false, code: 'rate_limited' };
    if (opts.verifier === null) return { ok: true };
    const r = opts.verifier.verify(token ?? undefined, user);
    if (!r.ok) {
      opts.limits.loginFailed(user);
      return { ok: false, code: 'auth_failed' };
    }
    opts.limits.loginSucceeded(user);
    return r.jti !== undefined ? { ok: true, expiresAtMs: r.exp * 1000, jti: r.jti } : { ok: true, expiresAtMs: r.exp * 1000 };
  };
}
