/**
 * The admin API's settings and limits, written down once. The only configurable one is the
 * config key `admin_token` (core/Config.ts, default empty: the node then uses the token file
 * below); everything else here is a named constant that the node (bin/irisNode.ts), the API
 * (edge/admin/) and the CLI (bin/) share.
 */

/** Shortest accepted admin token, in bytes (the same bar as jwt_secret). */
export const ADMIN_TOKEN_MIN_BYTES = 32;
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
