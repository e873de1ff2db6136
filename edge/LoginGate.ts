/**
 * Decides a v1 login: the failed-login limit for the account, then the client-certificate
 * rules (when TLS client authentication asks for them: the link's `peerCertificate`), then the
 * token rules (when auth is enabled), counting failures so a guessing client is locked out.
 * Answers with the codes the connection turns into `AUTH_FAILED` or `RATE_LIMITED`; a
 * certificate refusal is logged here with its reason (the connection logs only the code).
 */
import type { Logger } from '../runtime/Env.js';
import type { JwtVerifier } from './auth/JwtVerifier.js';
import type { ClientLink, PeerCertificate } from './ClientLink.js';
import type { LoginCheck } from './ConnectionDeps.js';
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
  /** Where certificate refusals are logged, with their reason. */
  log?: Logger;
}

/** Why the certificate rules refused a login (logged; the client sees AUTH_FAILED). */
export type CertificateRefusal = 'client_certificate_required' | 'client_certificate_user_mismatch';

const utf8 = new TextEncoder();

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The certificate rules alone: null when they let the login through, else why not. */
export function certificateRefusal(policy: ClientCertificatePolicy, user: Uint8Array, peer: PeerCertificate | null): CertificateRefusal | null {
  if (!policy.required && !policy.userMatch) return null;
  if (peer === null || peer.status !== 'verified') return 'client_certificate_required';
  if (policy.userMatch && !peer.names.some((n) => sameBytes(utf8.encode(n), user))) return 'client_certificate_user_mismatch';
  return null;
}

export function loginGate(opts: LoginGateOptions): (user: Uint8Array, token: Uint8Array | null, link: ClientLink) => LoginCheck {
  const certPolicy = opts.clientCertificate ?? NO_CLIENT_CERTIFICATE_POLICY;
  return (user, token, link) => {
    const allowed = opts.limits.loginAllowed(user);
    if (!allowed.ok) return { ok: false, code: 'rate_limited' };
    const peer = link.peerCertificate ?? null;
    const refused = certificateRefusal(certPolicy, user, peer);
    if (refused !== null) {
      opts.log?.info(
        { remote: link.remoteAddress, transport: link.transport, reason: refused, ...(peer?.status === 'verified' ? { subject: peer.subject } : {}) },
        refused === 'client_certificate_required' ? 'login refused: it needs a verified client certificate' : 'login refused: the user is not a name in its client certificate',
      );
      // A certificate for another user counts as a failed login; a missing one guesses nothing.
      if (refused === 'client_certificate_user_mismatch') opts.limits.loginFailed(user);
      return { ok: false, code: 'auth_failed' };
    }
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
