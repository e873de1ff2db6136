/**
 * Decides a v1 login (protocol-v1.md §4). First the client-certificate rules, when TLS client
 * authentication asks for them (the link's `peerCertificate`); then, with auth enabled, the
 * token, checked before any limit, so a valid token always gets in whoever else has been
 * failing for the same account. A failed login spends one try of its (account, source
 * address) pair (edge/limits/RateLimits.ts) and, once that pair's allowance is spent, is
 * answered `rate_limited` instead of `auth_failed`; a certificate for another user counts as a
 * failure, a missing certificate guesses nothing and does not. The connection sends
 * `rate_limited` as the plain text RATE_LIMITED and `auth_failed` as AUTH_FAILED; a
 * certificate refusal is logged here with its reason (the connection logs only the code).
 * Pure and synchronous: it touches no process, socket or storage.
 *
 * A successful decision carries what the connection needs to end the session later: the
 * token's expiry and its `jti` (see edge/auth/LiveTokens.ts for how a revocation reaches it).
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

/** `user` is the raw login name, `token` the bytes after ':' (null without one), `link` the client's. */
export type LoginGate = (user: Uint8Array, token: Uint8Array | null, link: Pick<ClientLink, 'remoteAddress'> & Partial<Pick<ClientLink, 'transport' | 'peerCertificate'>>) => LoginCheck;

const ACCEPTED_WITHOUT_AUTH: LoginCheck = Object.freeze({ ok: true as const });
const AUTH_FAILED: LoginCheck = Object.freeze({ ok: false as const, code: 'auth_failed' as const });
const RATE_LIMITED: LoginCheck = Object.freeze({ ok: false as const, code: 'rate_limited' as const });

export function loginGate(opts: LoginGateOptions): LoginGate {
  const { verifier, limits } = opts;
  const certPolicy = opts.clientCertificate ?? NO_CLIENT_CERTIFICATE_POLICY;
  const failed = (user: Uint8Array, address: string): LoginCheck => (limits.loginFailed(user, address).ok ? AUTH_FAILED : RATE_LIMITED);
  return (user, token, link) => {
    const peer = link.peerCertificate ?? null;
    const refused = certificateRefusal(certPolicy, user, peer);
    if (refused !== null) {
      opts.log?.info(
        { remote: link.remoteAddress, transport: link.transport, reason: refused, ...(peer?.status === 'verified' ? { subject: peer.subject } : {}) },
        refused === 'client_certificate_required' ? 'login refused: it needs a verified client certificate' : 'login refused: the user is not a name in its client certificate',
      );
      return refused === 'client_certificate_user_mismatch' ? failed(user, link.remoteAddress) : AUTH_FAILED;
    }
    if (verifier === null) return ACCEPTED_WITHOUT_AUTH;
    const r = verifier.verify(token ?? undefined, user);
    if (r.ok) return r.jti === undefined ? { ok: true, expiresAtMs: r.exp * 1000 } : { ok: true, expiresAtMs: r.exp * 1000, jti: r.jti };
    return failed(user, link.remoteAddress);
  };
}
