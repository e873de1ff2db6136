/**
 * The authenticated admin HTTP API, as plain route handlers for the node's HTTP port
 * (edge/listeners/UwsServer.ts). Every request needs `Authorization: Bearer <admin token>`
 * (edge/admin/AdminAuth.ts); bodies are JSON objects; every answer is JSON, and every error
 * has a stable `code` and a human `message`:
 *
 *   POST /admin/tokens/revoke          {"jti": J, "exp"?: unix seconds}
 *        200 {"jti", "outcome": "revoked"|"already_revoked"|"already_expired",
 *             "revoked_until_ms": ms|null, "sessions_ended": n}
 *        answered once the revocation is durable; live sessions holding J are told to end.
 *   POST /admin/groups/<gid>/members   {"op": "add"|"remove"|"promote"|"demote", "user": U, "actor"?: A}
 *        200 {"gid", "op", "user", "actor": A|null}, answered once the change is durable. With
 *        `actor`, the change is made on that member's authority and only if A is an admin of
 *        the group (the rules of the protocol); without it, as the operator (no membership
 *        needed, the group must still keep an admin).
 *   GET  /admin/groups/<gid>           200 {"gid", "members": [{"user", "role": "admin"|"member"}, …]}
 *   POST /admin/drain                  202 the drain's status (edge/admin/DrainAdmin.ts) once started,
 *        200 if it was already under way; refused 409 would_lose_quorum (the nodes left would
 *        not keep a majority of expected_cluster_nodes, or not enough core nodes) or 409
 *        not_clustered (a single node has nowhere to hand its work to: stop it instead). The
 *        node hands off its shard groups, tells its clients node_draining, leaves and exits.
 *   GET  /admin/drain                  200 {"node", "state", "trigger", "elapsed_ms",
 *        "shard_groups_held", "connections", "error"}
 *
 * User ids are JSON strings (their UTF-8 bytes, 1..256); members whose bytes are not UTF-8
 * are shown as 0x-prefixed hex.
 *
 * Errors: 401 unauthorized (checked before anything else, so unknown paths do not leak),
 * 404 not_found, 405 method_not_allowed (with `allow`), 413 body_too_large (the listener),
 * 400 bad_json / invalid_request (with `field`) / invalid_jti, 507 revocations_full,
 * 409 would_lose_quorum / not_clustered (drain),
 * 503 storage_failed / groups_unavailable, 504 groups_timeout, and the groups server's own
 * codes: 403 not_admin, 404 not_member (the group, the actor or the user), 409 last_admin /
 * already_member / group_full / too_many_groups, 429 rate_limited, 503 storage_failed.
 */
import type { UserKey } from '../../core/UserId.js';
import { describeUser, userKey } from '../../core/UserId.js';
import type { Logger } from '../../runtime/Env.js';
import type { RevocationStore } from '../auth/RevocationStore.js';
import type { HttpReply, HttpRequest, HttpRoute } from '../listeners/UwsServer.js';
import { V1_MAX_GROUP_ID_BYTES, V1_MAX_USER_BYTES } from '../protocol/v1Limits.js';
import type { AdminAuth } from './AdminAuth.js';
import { ADMIN_PATH_PREFIX } from './AdminSettings.js';
import type { DrainAdmin, DrainRefusal } from './DrainAdmin.js';
import { GROUP_MEMBER_OPS, type GroupMemberOp, type GroupsAdmin, type GroupsAdminError } from './GroupsAdmin.js';

export interface AdminApiDeps {
  readonly auth: AdminAuth;
  readonly revocations: Pick<RevocationStore, 'revoke'>;
  readonly groups: GroupsAdmin;
  readonly drain: DrainAdmin;
  readonly log: Logger;
}

/** Every stable error code of the admin API. */
export type AdminErrorCode =
  | 'unauthorized'
  | 'not_found'
  | 'method_not_allowed'
  | 'bad_json'
  | 'invalid_request'
  | 'invalid_jti'
  | 'revocations_full'
  | 'storage_failed'
  | DrainRefusal
  | GroupsAdminError;

const GROUP_ERROR_STATUS: Readonly<Record<GroupsAdminError, number>> = {
  not_member: 404,
  not_admin: 403,
  last_admin: 409,
  already_member: 409,
  group_full: 409,
  too_many_groups: 409,
  rate_limited: 429,
  storage_failed: 503,
  groups_unavailable: 503,
  groups_timeout: 504,
};

type Handler = (req: HttpRequest, param: string | undefined) => Promise<HttpReply>;

interface Route {
  readonly pattern: RegExp;
  readonly methods: Readonly<Record<string, Handler>>;
}

/** The admin routes, keyed for UwsServer (one prefix route dispatching inside). */
export function adminRoutes(deps: AdminApiDeps): Record<string, HttpRoute> {
  const routes: readonly Route[] = [
    { pattern: /^\/admin\/tokens\/revoke$/, methods: { POST: (req) => revokeToken(deps, req) } },
    { pattern: /^\/admin\/groups\/([^/]+)\/members$/, methods: { POST: (req, gid) => changeMember(deps, req, gid!) } },
    { pattern: /^\/admin\/groups\/([^/]+)$/, methods: { GET: (_req, gid) => roster(deps, gid!) } },
    { pattern: /^\/admin\/drain$/, methods: { POST: () => startDrain(deps), GET: () => Promise.resolve(reply(200, deps.drain.status())) } },
  ];
  const handle = async (req: HttpRequest): Promise<HttpReply> => {
    if (!deps.auth.check(req.headers['authorization'])) {
      deps.log.warn({ path: req.path, method: req.method }, 'admin request without a valid admin token');
      return { ...error(401, 'unauthorized', 'send the admin token as "Authorization: Bearer <token>" (admin_token, or the admin.token file in the data directory)'), headers: { 'www-authenticate': 'Bearer realm="iris-admin"' } };
    }
    for (const route of routes) {
      const m = route.pattern.exec(req.path);
      if (m === null) continue;
      const handler = route.methods[req.method.toUpperCase()];
      if (handler === undefined) {
        const allow = Object.keys(route.methods).join(', ');
        return { ...error(405, 'method_not_allowed', `${req.path} accepts ${allow}`), headers: { allow } };
      }
      return handler(req, m[1]);
    }
    return error(404, 'not_found', `no admin route ${req.path}`);
  };
  return { [`${ADMIN_PATH_PREFIX}/*`]: handle };
}

// ---- routes --------------------------------------------------------------------------------

async function revokeToken(deps: AdminApiDeps, req: HttpRequest): Promise<HttpReply> {
  const body = jsonObject(req.body);
  if (!body.ok) return body.reply;
  const jti = body.value['jti'];
  if (typeof jti !== 'string') return invalid('jti', 'jti: required, the token id (string) to revoke');
  const exp = body.value['exp'];
  if (exp !== undefined && !(typeof exp === 'number' && Number.isSafeInteger(exp) && exp > 0)) {
    return invalid('exp', "exp: when given, the token's expiry in whole seconds since the Unix epoch");
  }
  const r = await deps.revocations.revoke(jti, exp);
  if (!r.ok) return error(r.code === 'invalid_jti' ? 400 : r.code === 'revocations_full' ? 507 : 503, r.code, r.message);
  deps.log.info({ admin: 'token_revoke', jti, outcome: r.outcome, sessions_ended: r.sessionsEnded }, 'token revoked');
  return reply(200, { jti, outcome: r.outcome, revoked_until_ms: r.revocation?.untilMs ?? null, sessions_ended: r.sessionsEnded });
}

async function changeMember(deps: AdminApiDeps, req: HttpRequest, rawGid: string): Promise<HttpReply> {
  const gid = groupId(rawGid);
  if (!gid.ok) return gid.reply;
  const body = jsonObject(req.body);
  if (!body.ok) return body.reply;
  const op = body.value['op'];
  if (typeof op !== 'string' || !(GROUP_MEMBER_OPS as readonly string[]).includes(op)) return invalid('op', `op: required, one of ${GROUP_MEMBER_OPS.join(', ')}`);
  const user = userField(body.value['user'], 'user', 'the member to change');
  if (!user.ok) return user.reply;
  let actor: UserKey | null = null;
  if (body.value['actor'] !== undefined && body.value['actor'] !== null) {
    const a = userField(body.value['actor'], 'actor', 'when given, an admin of the group on whose authority the change is made');
    if (!a.ok) return a.reply;
    actor = a.value;
  }
  const r = await deps.groups.change(op as GroupMemberOp, gid.value, user.value, actor);
  if (!r.ok) return groupError(r.code);
  const actorText = actor === null ? null : describeUser(actor);
  deps.log.info({ admin: 'group_member', op, gid: gid.value, user: describeUser(user.value), actor: actorText ?? 'operator' }, 'group membership changed');
  return reply(200, { gid: gid.value, op, user: describeUser(user.value), actor: actorText });
}

async function roster(deps: AdminApiDeps, rawGid: string): Promise<HttpReply> {
  const gid = groupId(rawGid);
  if (!gid.ok) return gid.reply;
  const r = await deps.groups.roster(gid.value);
  if (!r.ok) return groupError(r.code);
  return reply(200, { gid: gid.value, members: r.value.map((m) => ({ user: describeUser(userKey(m.user)), role: m.role })) });
}

async function startDrain(deps: AdminApiDeps): Promise<HttpReply> {
  const r = deps.drain.start();
  if (!r.ok) {
    deps.log.warn({ admin: 'drain', code: r.code, reason: r.message }, 'drain refused');
    return error(409, r.code, r.message);
  }
  if (r.started) deps.log.info({ admin: 'drain' }, 'drain started');
  return reply(r.started ? 202 : 200, r.status);
}

// ---- helpers -------------------------------------------------------------------------------

type Parsed<T> = { ok: true; value: T } | { ok: false; reply: HttpReply };

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function reply(status: number, body: object): HttpReply {
  return { status, body: JSON.stringify(body) };
}

function error(status: number, code: AdminErrorCode, message: string, extra: object = {}): HttpReply {
  return reply(status, { code, message, ...extra });
}

function invalid(field: string, message: string): HttpReply {
  return error(400, 'invalid_request', message, { field });
}

function groupError(code: GroupsAdminError): HttpReply {
  const messages: Readonly<Record<GroupsAdminError, string>> = {
    not_member: 'no such group, or the actor or the user the change names is not a member of it',
    not_admin: 'the actor is not an admin of this group',
    last_admin: 'the group would be left without an admin',
    already_member: 'the user is already a member',
    group_full: 'the group has reached its member limit',
    too_many_groups: 'the user is in the largest number of groups allowed',
    rate_limited: 'the groups server refused the request for now; retry later',
    storage_failed: 'the change could not be stored; nothing changed; retry',
    groups_unavailable: 'the groups server is not running; retry shortly',
    groups_timeout: 'the groups server did not answer in time; the change may still happen',
  };
  return error(GROUP_ERROR_STATUS[code], code, messages[code]);
}

function jsonObject(body: Uint8Array): Parsed<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(strictUtf8.decode(body));
  } catch {
    return { ok: false, reply: error(400, 'bad_json', 'the body must be a JSON object (UTF-8)') };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reply: error(400, 'bad_json', 'the body must be a JSON object') };
  return { ok: true, value: value as Record<string, unknown> };
}

function userField(v: unknown, field: string, what: string): Parsed<UserKey> {
  if (typeof v !== 'string') return { ok: false, reply: invalid(field, `${field}: required, ${what}`) };
  const bytes = utf8.encode(v);
  if (bytes.length === 0 || bytes.length > V1_MAX_USER_BYTES) return { ok: false, reply: invalid(field, `${field}: a user id of 1..${V1_MAX_USER_BYTES} bytes`) };
  return { ok: true, value: userKey(bytes) };
}

function groupId(raw: string): Parsed<string> {
  let gid: string;
  try {
    gid = decodeURIComponent(raw);
  } catch {
    return { ok: false, reply: invalid('gid', 'gid: not a valid percent-encoded path segment') };
  }
  const n = utf8.encode(gid).length;
  if (n === 0 || n > V1_MAX_GROUP_ID_BYTES) return { ok: false, reply: invalid('gid', `gid: a group id of 1..${V1_MAX_GROUP_ID_BYTES} bytes`) };
  return { ok: true, value: gid };
}
