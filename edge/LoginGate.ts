/**
 * Decides a v1 login: the failed-login limit for the account, then the client-certificate
 * rules (when TLS client authentication asks for them), then the token rules (when auth is
 * enabled), counting failures so a guessing client is locked out. Answers with the codes the
 * connection turns into `AUTH_FAILED` or `RATE_LIMITED` (and logs).
 */
import type { JwtVerifier } from './auth/JwtVerifier.js';
import type { PeerCertificate } from './ClientLink.js';
import type { LoginCheck } from './Connection.js';
import type { RateLimits } from './limits/RateLimits.js';

/** What a login needs from the link's client certificate. */
export interface ClientCertificatePolicy {
  /** Every login needs a verified certificate (`tls_client_auth=required`). */
  required: boolean;
  /** The user must be one of the certificate's names (`tls_client_cert_user_match`); implies a verified certificate. */
  userMatch: boolean;
}

export const NO_CLIENT_CERTIFICATE_POLICY: ClientCertificatePolicy = Object.freeze({ required: false, userMatch: false });

export interface LoginGateOptions {
  /** Null when auth is disabled (dev mode): any well-formed user is accepted. */
  verifier: JwtVerifier | null;
  limits: RateLimits;
  /** Default: no certificate rules. */
  clientCertificate?: ClientCertificatePolicy;
}

/** Decides one login given what the link proved: its address and its client certificate (null: none). */
export type LoginDecision = (user: Uint8Array, token: Uint8Array | null, remoteAddress: string, peer: PeerCertificate | null) => LoginCheck;

/** Refusal codes of the certificate rules (logged by the connection; the client sees AUTH_FAILED). */
export const CERT_REQUIRED = 'client_certificate_required';
export const CERT_USER_MISMATCH = 'client_certificate_user_mismatch';

const utf8 = new TextEncoder();

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The certificate rules alone: null when they let the login through, else the refusal code. */
function certificateRefusal(policy: ClientCertificatePolicy, user: Uint8Array, peer: PeerCertificate | null): string | null {
  if (!policy.required && !policy.userMatch) return null;
  if (peer === null || peer.status !== 'verified') return CERT_REQUIRED;
  if (policy.userMatch && !peer.names.some((n) => sameBytes(utf8.encode(n), user))) return CERT_USER_MISMATCH;
  return null;
}

export function loginGate(opts: LoginGateOptions): LoginDecision {
  const certPolicy = opts.clientCertificate ?? NO_CLIENT_CERTIFICATE_POLICY;
  return (user, token, _remoteAddress, peer) => {
    const allowed = opts.limits.loginAllowed(user);
    if (!allowed.ok) return { ok: false, code: 'rate_limited' };
    const refused = certificateRefusal(certPolicy, user, peer);
    if (refused !== null) {
      // A certificate for another user counts as a failed login; a missing one guesses nothing.
      if (refused === CERT_USER_MISMATCH) opts.limits.loginFailed(user);
      return { ok: false, code: refused };
    }
    if (opts.verifier === null) return { ok: true };
    const r = opts.verifier.verify(token ?? undefined, user);
    if (!r.ok) {
      opts.limits.loginFailed(user);
      return { ok: false, code: r.code };
    }
    opts.limits.loginSucceeded(user);
    return { ok: true };
  };
}
