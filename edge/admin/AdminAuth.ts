/**
 * Authentication of the admin API: every request carries `Authorization: Bearer <token>`,
 * compared with the node's admin token in constant time (both sides are hashed first, so
 * neither the contents nor the length of the token leak through timing). The token itself
 * comes from the config key `admin_token` or from the token file the node writes in its data
 * directory (server/AdminTokenFile.ts); this module only checks it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ADMIN_TOKEN_MIN_BYTES } from './AdminSettings.js';

export type CreateAdminAuthResult = { readonly ok: true; readonly auth: AdminAuth } | { readonly ok: false; readonly message: string };

const BEARER = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

export class AdminAuth {
  private constructor(private readonly digest: Buffer) {}

  /** Refuses a token under ADMIN_TOKEN_MIN_BYTES bytes. */
  static create(token: string): CreateAdminAuthResult {
    const bytes = Buffer.byteLength(token, 'utf8');
    if (bytes < ADMIN_TOKEN_MIN_BYTES) {
      return { ok: false, message: `admin_token: needs at least ${ADMIN_TOKEN_MIN_BYTES} bytes (got ${bytes}); generate one with: openssl rand -base64 48, or leave it unset to use the generated token file` };
    }
    return { ok: true, auth: new AdminAuth(sha256(token)) };
  }

  /** True when `authorization` (the header's value) is `Bearer <the admin token>`. */
  check(authorization: string | undefined): boolean {
    const m = authorization === undefined ? null : BEARER.exec(authorization);
    // Hash something either way, so a missing header costs the same as a wrong one.
    const given = sha256(m === null ? '' : m[1]!);
    return timingSafeEqual(given, this.digest) && m !== null;
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
