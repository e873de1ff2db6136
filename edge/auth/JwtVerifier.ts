// Login tokens of protocol v1 §4: a compact JWS signed with HMAC-SHA256 whose claims name the
// user (`sub`), the issuer and a capped lifetime. Verification is synchronous (node:crypto HMAC,
// constant-time compare) so a login costs microseconds; issuing goes through jose. "Now" comes
// only from the injected Clock; this file never reads the system time.
//
// Rules, in the order they are checked (the first failing rule names the refusal):
//   token_missing        no token, or an empty one
//   token_malformed      not three base64url segments without padding, over JWT_MAX_TOKEN_BYTES,
//                        header or payload not a JSON object, a `crit` header, a claim of the
//                        wrong type, or no `exp`
//   alg_not_allowed      header `alg` is not exactly "HS256" (`none` included)
//   bad_signature        the HMAC over `header.payload` differs (compared in constant time)
//   token_expired        now >= exp (minus the clock tolerance)
//   token_not_yet_valid  now < nbf (plus the clock tolerance)
//   wrong_issuer         `iss` absent or not equal to the configured issuer (default "iris")
//   subject_mismatch     `sub` absent, or not equal to the login user decoded as strict UTF-8;
//                        a user whose bytes are not valid UTF-8 never matches
//   lifetime_too_long    exp - min(iat, now) exceeds the cap (default 24 h); without `iat`,
//                        exp - now; a future `iat` cannot stretch the window
//   token_revoked        `jti` is in the revocation set

import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Clock } from '../../runtime/Env.js';
import { EDGE_DEFAULTS } from '../EdgeSettings.js';
import { V1_MAX_TOKEN_BYTES } from '../protocol/v1Limits.js';

// ---------------------------------------------------------------------------------------------
// Limits and defaults. The configurable ones are the config keys jwt_issuer, jwt_max_lifetime_s
// (edge/EdgeSettings.ts holds their defaults); these names only re-export them for callers here.

/** The only signature algorithm accepted. */
export const JWT_ALGORITHM = 'HS256';
/** Shortest accepted HMAC secret, in bytes (deployment guide: 32+ bytes, same on every node). */
export const JWT_MIN_SECRET_BYTES = 32;
/** Issuer expected in `iss` unless configured otherwise ("iris"). */
export const JWT_DEFAULT_ISSUER = EDGE_DEFAULTS.jwt_issuer;
/** Longest accepted token lifetime (24 hours). */
export const JWT_DEFAULT_MAX_LIFETIME_SECONDS = EDGE_DEFAULTS.jwt_max_lifetime_s;
/** Leeway for clock differences between the issuer and this node when checking exp and nbf. */
export const JWT_DEFAULT_CLOCK_TOLERANCE_SECONDS = 0;
/** Tokens longer than this are refused before any decoding (bounds the work per login). */
export const JWT_MAX_TOKEN_BYTES = V1_MAX_TOKEN_BYTES;

// ---------------------------------------------------------------------------------------------
// Public types

/** Every reason a token is refused; stable codes for logs and metrics. */
export type JwtRefusalCode =
  | 'token_missing'
  | 'token_malformed'
  | 'bad_signature'
  | 'alg_not_allowed'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'wrong_issuer'
  | 'subject_mismatch'
  | 'token_revoked'
  | 'lifetime_too_long';

export type JwtVerifyResult =
  | {
      readonly ok: true;
      /** The login user, as given (raw bytes). */
      readonly user: Uint8Array;
      /** The token's `jti`, when it has one. */
      readonly jti?: string;
      /** The token's `exp`: seconds since the Unix epoch. */
      readonly exp: number;
    }
  | { readonly ok: false; readonly code: JwtRefusalCode };

/** Answers whether a token id has been revoked (Revocations.ts implements it). */
export interface RevocationCheck {
  isRevoked(jti: string): boolean;
}

/** A configuration the verifier (or issuer) refuses to run with. */
export type JwtConfigError =
  | { readonly code: 'secret_too_short'; readonly minBytes: number; readonly actualBytes: number }
  | { readonly code: 'invalid_option'; readonly key: string; readonly reason: string };

export interface JwtVerifierOptions {
  /** The shared HMAC secret; a string is taken as its UTF-8 bytes. At least 32 bytes. */
  readonly secret: Uint8Array | string;
  /** Wall-clock time source for exp, nbf, iat. */
  readonly clock: Clock;
  /** Required `iss`; default JWT_DEFAULT_ISSUER. */
  readonly issuer?: string;
  /** Lifetime cap in seconds; default JWT_DEFAULT_MAX_LIFETIME_SECONDS. */
  readonly maxLifetimeSeconds?: number;
  /** Leeway on exp and nbf in seconds; default JWT_DEFAULT_CLOCK_TOLERANCE_SECONDS. */
  readonly clockToleranceSeconds?: number;
  /** Revoked token ids; without it no token counts as revoked. */
  readonly revocations?: RevocationCheck;
}

export type CreateJwtVerifierResult =
  | { readonly ok: true; readonly verifier: JwtVerifier }
  | { readonly ok: false; readonly error: JwtConfigError };

// ---------------------------------------------------------------------------------------------
// Verifier

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const BASE64URL_NO_PADDING = /^[A-Za-z0-9_-]+$/;

const refusals = Object.fromEntries(
  (
    [
      'token_missing',
      'token_malformed',
      'bad_signature',
      'alg_not_allowed',
      'token_expired',
      'token_not_yet_valid',
      'wrong_issuer',
      'subject_mismatch',
      'token_revoked',
      'lifetime_too_long',
    ] as const
  ).map((code) => [code, Object.freeze({ ok: false as const, code })]),
) as { readonly [C in JwtRefusalCode]: { readonly ok: false; readonly code: C } };

export class JwtVerifier {
  private constructor(
    private readonly key: KeyObject,
    private readonly clock: Clock,
    private readonly issuer: string,
    private readonly maxLifetimeMs: number,
    private readonly toleranceMs: number,
    private readonly revocations: RevocationCheck | undefined,
  ) {}

  /** Builds a verifier, or says which option is unacceptable (a secret under 32 bytes first). */
  static create(options: JwtVerifierOptions): CreateJwtVerifierResult {
    const secret = secretBytes(options.secret);
    if (secret.length < JWT_MIN_SECRET_BYTES) {
      return { ok: false, error: { code: 'secret_too_short', minBytes: JWT_MIN_SECRET_BYTES, actualBytes: secret.length } };
    }
    const issuer = options.issuer ?? JWT_DEFAULT_ISSUER;
    if (issuer.length === 0) return invalidOption('issuer', 'must be a non-empty string');
    const maxLifetime = options.maxLifetimeSeconds ?? JWT_DEFAULT_MAX_LIFETIME_SECONDS;
    if (!(Number.isFinite(maxLifetime) && maxLifetime > 0)) return invalidOption('maxLifetimeSeconds', 'must be a positive number of seconds');
    const tolerance = options.clockToleranceSeconds ?? JWT_DEFAULT_CLOCK_TOLERANCE_SECONDS;
    if (!(Number.isFinite(tolerance) && tolerance >= 0)) return invalidOption('clockToleranceSeconds', 'must be zero or a positive number of seconds');
    const verifier = new JwtVerifier(createSecretKey(secret), options.clock, issuer, maxLifetime * 1000, tolerance * 1000, options.revocations);
    return { ok: true, verifier };
  }

  /**
   * Checks `token` (the part of the login data after the first ':', as text or raw bytes) for
   * the login `user` (the raw bytes before the ':').
   */
  verify(token: string | Uint8Array | undefined, user: Uint8Array): JwtVerifyResult {
    const text = typeof token === 'string' ? token : token === undefined ? '' : latin1(token);
    if (text.length === 0) return refusals.token_missing;
    if (text.length > JWT_MAX_TOKEN_BYTES) return refusals.token_malformed;

    const dot1 = text.indexOf('.');
    const dot2 = dot1 < 0 ? -1 : text.indexOf('.', dot1 + 1);
    if (dot1 < 0 || dot2 < 0 || text.indexOf('.', dot2 + 1) >= 0) return refusals.token_malformed;
    const headerPart = text.slice(0, dot1);
    const payloadPart = text.slice(dot1 + 1, dot2);
    const signaturePart = text.slice(dot2 + 1);
    if (!isBase64Url(headerPart) || !isBase64Url(payloadPart)) return refusals.token_malformed;

    const header = decodeJsonObject(headerPart);
    if (header === undefined || typeof header.alg !== 'string' || header.crit !== undefined) return refusals.token_malformed;
    if (header.alg !== JWT_ALGORITHM) return refusals.alg_not_allowed;

    if (!isBase64Url(signaturePart)) return refusals.token_malformed;
    const expected = createHmac('sha256', this.key).update(text.slice(0, dot2)).digest('base64url');
    // Lengths are public (an HS256 signature is always 43 characters); the contents are not.
    if (signaturePart.length !== expected.length) return refusals.bad_signature;
    if (!timingSafeEqual(Buffer.from(signaturePart, 'latin1'), Buffer.from(expected, 'latin1'))) return refusals.bad_signature;

    const claims = decodeJsonObject(payloadPart);
    if (claims === undefined) return refusals.token_malformed;
    const { exp, nbf, iat, iss, sub, jti } = claims;
    if (!isNumericDate(exp)) return refusals.token_malformed;
    if (nbf !== undefined && !isNumericDate(nbf)) return refusals.token_malformed;
    if (iat !== undefined && !isNumericDate(iat)) return refusals.token_malformed;
    if (iss !== undefined && typeof iss !== 'string') return refusals.token_malformed;
    if (sub !== undefined && typeof sub !== 'string') return refusals.token_malformed;
    if (jti !== undefined && typeof jti !== 'string') return refusals.token_malformed;

    const nowMs = this.clock.wallMs();
    const expMs = exp * 1000;
    if (nowMs >= expMs + this.toleranceMs) return refusals.token_expired;
    if (nbf !== undefined && nowMs + this.toleranceMs < nbf * 1000) return refusals.token_not_yet_valid;
    if (iss !== this.issuer) return refusals.wrong_issuer;
    if (sub === undefined || sub !== utf8OrUndefined(user)) return refusals.subject_mismatch;
    const startMs = iat === undefined ? nowMs : Math.min(iat * 1000, nowMs);
    if (expMs - startMs > this.maxLifetimeMs) return refusals.lifetime_too_long;
    if (jti !== undefined && this.revocations?.isRevoked(jti) === true) return refusals.token_revoked;

    return jti === undefined ? { ok: true, user, exp } : { ok: true, user, jti, exp };
  }
}

// ---------------------------------------------------------------------------------------------
// Issuing (CLI `iris token issue`, tests)

export interface TokenClaims {
  /** The user the token logs in; must be the UTF-8 text of the user's bytes. */
  readonly sub: string;
  /** Default JWT_DEFAULT_ISSUER. */
  readonly iss?: string;
  /** Lifetime from now, in seconds: positive and at most `maxLifetimeSeconds`. */
  readonly ttlSeconds: number;
  /** Token id, needed to revoke this token alone. */
  readonly jti?: string;
  /** Not-before, in seconds since the Unix epoch. */
  readonly nbf?: number;
}

export interface IssueTokenOptions {
  /** Refuse a ttl above this (default JWT_DEFAULT_MAX_LIFETIME_SECONDS): verifiers would refuse the token. */
  readonly maxLifetimeSeconds?: number;
}

export type IssueTokenResult =
  | { readonly ok: true; readonly token: string; readonly iat: number; readonly exp: number }
  | { readonly ok: false; readonly error: JwtConfigError };

/** Signs an HS256 login token with `iat` = now (whole seconds of `clock`) and `exp` = iat + ttl. */
export async function issueToken(
  secret: Uint8Array | string,
  claims: TokenClaims,
  clock: Clock,
  options: IssueTokenOptions = {},
): Promise<IssueTokenResult> {
  const key = secretBytes(secret);
  if (key.length < JWT_MIN_SECRET_BYTES) {
    return { ok: false, error: { code: 'secret_too_short', minBytes: JWT_MIN_SECRET_BYTES, actualBytes: key.length } };
  }
  const maxLifetime = options.maxLifetimeSeconds ?? JWT_DEFAULT_MAX_LIFETIME_SECONDS;
  if (!(Number.isSafeInteger(claims.ttlSeconds) && claims.ttlSeconds > 0 && claims.ttlSeconds <= maxLifetime)) {
    return invalidOption('ttlSeconds', `must be a whole number of seconds in 1..${maxLifetime}`);
  }
  if (claims.sub.length === 0) return invalidOption('sub', 'must be a non-empty user name');
  if (claims.nbf !== undefined && !isNumericDate(claims.nbf)) return invalidOption('nbf', 'must be seconds since the Unix epoch');
  const iat = Math.floor(clock.wallMs() / 1000);
  const exp = iat + claims.ttlSeconds;
  const payload: Record<string, string | number> = {};
  if (claims.nbf !== undefined) payload.nbf = claims.nbf;
  let jwt = new SignJWT(payload)
    .setProtectedHeader({ alg: JWT_ALGORITHM, typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuer(claims.iss ?? JWT_DEFAULT_ISSUER)
    .setIssuedAt(iat)
    .setExpirationTime(exp);
  if (claims.jti !== undefined) jwt = jwt.setJti(claims.jti);
  const token = await jwt.sign(key);
  return { ok: true, token, iat, exp };
}

// ---------------------------------------------------------------------------------------------
// Internal

function invalidOption(key: string, reason: string): { ok: false; error: JwtConfigError } {
  return { ok: false, error: { code: 'invalid_option', key, reason } };
}

function secretBytes(secret: Uint8Array | string): Uint8Array {
  return typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/** base64url as JWS requires it: alphabet only, no '=' padding, and a length a string can have. */
function isBase64Url(part: string): boolean {
  return part.length % 4 !== 1 && BASE64URL_NO_PADDING.test(part);
}

function decodeJsonObject(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(strictUtf8.decode(Buffer.from(part, 'base64url')));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function isNumericDate(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function utf8OrUndefined(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}
