/**
 * `iris token issue` signs a login token (HS256 JWT) for a user with the configured
 * jwt_secret and jwt_issuer, read from the same layers as `iris start` (--config, IRIS_*,
 * --set), so it is accepted by nodes started with that configuration; it carries a `jti`
 * (random unless given) so it can be revoked alone. `iris token revoke` revokes a `jti`
 * through the running node's admin API, which answers once the revocation is durable.
 * Output for scripts: `issue` prints the token alone on stdout (its jti and expiry go to
 * stderr), `--json` prints one JSON object instead.
 */
import { randomUUID } from 'node:crypto';
import { issueToken } from '../edge/auth/JwtVerifier.js';
import { TOKEN_ISSUE_DEFAULT_TTL_S } from '../edge/admin/AdminSettings.js';
import { ADMIN_CLIENT_FLAG_OPTIONS, ADMIN_CLIENT_USAGE, adminRequest } from './adminClient.js';
import { CONFIG_FLAG_OPTIONS, parseFlags, reportConfigProblems, resolveCliConfig } from './configLayers.js';
import { EXIT_OK, EXIT_USAGE } from './exitCodes.js';

export const TOKEN_USAGE = `  token issue   print a login token (JWT) for a user, signed with the configured jwt_secret
          --user U           the user (the token's sub)
          --ttl T            lifetime: seconds, or with s/m/h/d (default ${TOKEN_ISSUE_DEFAULT_TTL_S / 60}m; at most jwt_max_lifetime_s)
          --jti J            token id (default: a random UUID)
          --json             print {"token","sub","jti","iat","exp"} instead of the bare token
          --config FILE, --set key=value, IRIS_*: as for start (jwt_secret, jwt_issuer, …)
  token revoke  revoke a token id on the running node (durable; its live sessions end)
          --jti J            the token id to revoke
          --exp S            the token's expiry, unix seconds (keeps the entry no longer than needed)
          --json             print the node's JSON answer
${ADMIN_CLIENT_USAGE}`;

const TTL = /^(\d+)([smhd]?)$/;
const TTL_UNIT_S: Readonly<Record<string, number>> = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 };
const wallClock = { wallMs: () => Date.now(), monotonicMs: () => performance.now() };

/** `iris token <sub> …`; returns the exit code. */
export async function tokenCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'issue':
      return issue(rest);
    case 'revoke':
      return revoke(rest);
    default:
      return usage(sub === undefined ? 'missing subcommand: issue or revoke' : `unknown subcommand '${sub}': issue or revoke`);
  }
}

async function issue(argv: readonly string[]): Promise<number> {
  const values = parseFlags(argv, { ...CONFIG_FLAG_OPTIONS, user: { type: 'string' }, ttl: { type: 'string' }, jti: { type: 'string' }, json: { type: 'boolean' } });
  if (typeof values === 'string') return usage(values);
  const user = values['user'];
  if (typeof user !== 'string' || user === '') return usage('--user is required: the user the token logs in');
  const cfg = resolveCliConfig(values, []);
  if (!cfg.ok) return reportConfigProblems(cfg.problems);
  const config = cfg.config;
  if (config.jwt_secret === '') return reportConfigProblems(['jwt_secret: not set, so there is nothing to sign with; give the nodes\' secret with --config, IRIS_JWT_SECRET or --set jwt_secret=…']);
  let ttl = Math.min(TOKEN_ISSUE_DEFAULT_TTL_S, config.jwt_max_lifetime_s);
  const ttlFlag = values['ttl'];
  if (typeof ttlFlag === 'string') {
    const m = TTL.exec(ttlFlag);
    const seconds = m === null ? NaN : Number(m[1]) * TTL_UNIT_S[m[2]!]!;
    if (!(Number.isSafeInteger(seconds) && seconds > 0)) return usage(`--ttl ${ttlFlag}: a positive number of seconds, or with s/m/h/d (e.g. 90, 15m, 24h)`);
    if (seconds > config.jwt_max_lifetime_s) return usage(`--ttl ${ttlFlag}: longer than jwt_max_lifetime_s (${config.jwt_max_lifetime_s} s); nodes would refuse the token`);
    ttl = seconds;
  }
  const jtiFlag = values['jti'];
  const jti = typeof jtiFlag === 'string' ? jtiFlag : randomUUID();
  if (jti === '') return usage('--jti: must not be empty');
  const r = await issueToken(config.jwt_secret, { sub: user, iss: config.jwt_issuer, ttlSeconds: ttl, jti }, wallClock, { maxLifetimeSeconds: config.jwt_max_lifetime_s });
  if (!r.ok) {
    const e = r.error;
    return reportConfigProblems([e.code === 'secret_too_short' ? `jwt_secret: needs at least ${e.minBytes} bytes (got ${e.actualBytes})` : `${e.key}: ${e.reason}`]);
  }
  if (values['json'] === true) console.log(JSON.stringify({ token: r.token, sub: user, jti, iat: r.iat, exp: r.exp }));
  else {
    console.log(r.token);
    console.error(`iris: token for ${user}, jti ${jti}, expires ${new Date(r.exp * 1000).toISOString()}`);
  }
  return EXIT_OK;
}

async function revoke(argv: readonly string[]): Promise<number> {
  const values = parseFlags(argv, { ...ADMIN_CLIENT_FLAG_OPTIONS, jti: { type: 'string' }, exp: { type: 'string' }, json: { type: 'boolean' } });
  if (typeof values === 'string') return usage(values);
  const jti = values['jti'];
  if (typeof jti !== 'string' || jti === '') return usage('--jti is required: the id of the token to revoke');
  let exp: number | undefined;
  if (typeof values['exp'] === 'string') {
    exp = Number(values['exp']);
    if (!(Number.isSafeInteger(exp) && exp > 0)) return usage(`--exp ${values['exp']}: the token's expiry in whole seconds since the Unix epoch`);
  }
  const answer = await adminRequest(values, 'POST', '/admin/tokens/revoke', exp === undefined ? { jti } : { jti, exp });
  if (!answer.ok) return answer.exit;
  const b = answer.body;
  if (values['json'] === true) console.log(JSON.stringify(b));
  else if (b['outcome'] === 'already_expired') console.log(`token ${jti} had already expired: nothing to revoke`);
  else console.log(`revoked ${jti} until ${new Date(Number(b['revoked_until_ms'])).toISOString()}${b['outcome'] === 'already_revoked' ? ' (it already was)' : ''}; live sessions ended: ${String(b['sessions_ended'])}`);
  return EXIT_OK;
}

function usage(message: string): number {
  console.error(`iris token: ${message}\n\nusage:\n${TOKEN_USAGE}`);
  return EXIT_USAGE;
}
