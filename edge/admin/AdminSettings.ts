/**
 * The admin API's settings and limits, written down once. The one configuration key,
 * `admin_token`, is declared here (ADMIN_SETTINGS, merged into the node configuration by
 * server/NodeConfig.ts); everything else is a named constant that the node
 * (server/IrisNode.ts, server/AdminTokenFile.ts), the API (edge/admin/) and the CLI (bin/) share.
 */
import type { SettingsSchema } from '../../runtime/Settings.js';

/** Shortest accepted admin token, in bytes (the same bar as jwt_secret). */
export const ADMIN_TOKEN_MIN_BYTES = 32;

export const ADMIN_SETTINGS = {
  admin_token: {
    kind: 'string',
    default: '',
    doc: 'Bearer token of the admin HTTP API, at least 32 bytes. Empty: the node generates one into <wal_directory>/admin.token (mode 0600), where the CLI finds it.',
  },
} as const satisfies SettingsSchema;

/** Why `admin_token` is unusable (naming the key and the fix), or undefined; empty means "use the token file". */
export function adminTokenProblem(token: string): string | undefined {
  const bytes = Buffer.byteLength(token, 'utf8');
  if (token === '' || bytes >= ADMIN_TOKEN_MIN_BYTES) return undefined;
  return `admin_token: needs at least ${ADMIN_TOKEN_MIN_BYTES} bytes (got ${bytes}); generate one with: openssl rand -base64 48, or leave it unset to use the generated ${ADMIN_TOKEN_FILE_NAME} file`;
}
/** Random bytes in a generated admin token (written base64url: 43 characters). */
export const ADMIN_TOKEN_GENERATED_BYTES = 32;
/** The generated token's file, in the node's data directory (wal_directory). */
export const ADMIN_TOKEN_FILE_NAME = 'admin.token';
/** Owner read/write only; a token file anyone else can read is refused, as Erlang refuses a cookie. */
export const ADMIN_TOKEN_FILE_MODE = 0o600;

/** Every admin route lives under this path. */
export const ADMIN_PATH_PREFIX = '/admin';
/** Largest admin request body. */
export const ADMIN_MAX_REQUEST_BODY_BYTES = 16 * 1024;
/** How long a route waits for a service of the node (the groups service) to answer. */
export const ADMIN_SERVICE_TIMEOUT_MS = 5_000;

/** How long the CLI waits for the node's answer. */
export const ADMIN_CLIENT_TIMEOUT_MS = 10_000;
/** Lifetime of a token from `iris token issue` without --ttl (seconds). */
export const TOKEN_ISSUE_DEFAULT_TTL_S = 3_600;
