/**
 * The admin HTTP API on a real node (real HTTP, real LMDB, real v1 clients): authentication by
 * bearer token (401 before anything else), stable JSON error codes for every refusal, the
 * generated 0600 token file, token revocation that is durable and refuses later logins (also
 * after a restart) and reaches the node's live sessions, and group membership changes made as
 * a group admin, answered once durable, with the groups service's codes passed through.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { issueToken } from '../../edge/auth/JwtVerifier.js';
import type { TokenEnded } from '../../edge/auth/LiveTokens.js';
import { ADMIN_TOKEN_FILE_NAME } from '../../edge/admin/AdminSettings.js';
import { encodeGroupCreatePacket, encodeGroupMsgPacket } from '../../edge/protocol/V1Encoder.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';
import { encodeCbor } from '../../edge/protocol/Cbor.js';
import { startTestNode, type TestNode } from '../support/irisNode.js';
import { spawnProbe } from '../support/kernel.js';
import { tempDir } from '../support/storage.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';

const SECRET = 'admin-api-test-secret-at-least-32-bytes!!';
const ADMIN_TOKEN = 'admin-api-test-admin-token-of-32-bytes-or-more';
const clock = { wallMs: () => Date.now(), monotonicMs: () => performance.now() };

interface Answer {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

async function admin(t: TestNode, method: string, path: string, opts: { token?: string | null; body?: string | object } = {}): Promise<Answer> {
  const token = opts.token === undefined ? ADMIN_TOKEN : opts.token;
  const headers: Record<string, string> = {};
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const r = await fetch(`http://127.0.0.1:${t.node.httpPort}${path}`, { method, headers, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(10_000) });
  return { status: r.status, headers: r.headers, json: (await r.json()) as Record<string, unknown> };
}

async function tokenFor(sub: string, jti?: string, ttlSeconds = 600): Promise<string> {
  const r = await issueToken(SECRET, jti === undefined ? { sub, ttlSeconds } : { sub, ttlSeconds, jti }, clock);
  assert.ok(r.ok);
  return r.token;
}

test('admin requests without the admin token are answered 401 unauthorized in JSON, on known and unknown admin paths alike', async () => {
  const t = await startTestNode({ admin_token: ADMIN_TOKEN });
  try {
    for (const [method, path] of [['POST', '/admin/tokens/revoke'], ['GET', '/admin/groups/x'], ['GET', '/admin/nothing-here']] as const) {
      for (const token of [null, 'wrong-token', `${ADMIN_TOKEN}x`, ADMIN_TOKEN.slice(0, -1)]) {
        const a = await admin(t, method, path, { token, body: method === 'POST' ? { jti: 'j' } : undefined });
        assert.equal(a.status, 401, `${method} ${path} with ${String(token)}`);
        assert.equal(a.json['code'], 'unauthorized');
        assert.equal(a.headers.get('www-authenticate'), 'Bearer realm="iris-admin"');
      }
    }
    const basic = await fetch(`http://127.0.0.1:${t.node.httpPort}/admin/tokens/revoke`, { method: 'POST', headers: { authorization: `Basic ${ADMIN_TOKEN}` }, body: '{}' });
    assert.equal(basic.status, 401);
    assert.equal(((await basic.json()) as { code: string }).code, 'unauthorized');
  } finally {
    await t.stop();
  }
});

test('every other refusal has a stable code: 404 not_found, 405 method_not_allowed with allow, 400 bad_json and invalid_request naming the field, 413 body_too_large', async () => {
  const t = await startTestNode({ admin_token: ADMIN_TOKEN });
  try {
    const notFound = await admin(t, 'GET', '/admin/nothing-here');
    assert.deepEqual([notFound.status, notFound.json['code']], [404, 'not_found']);
    const wrongMethod = await admin(t, 'GET', '/admin/tokens/revoke');
    assert.deepEqual([wrongMethod.status, wrongMethod.json['code'], wrongMethod.headers.get('allow')], [405, 'method_not_allowed', 'POST']);
    const wrongMethod2 = await admin(t, 'DELETE', '/admin/groups/g1');
    assert.deepEqual([wrongMethod2.status, wrongMethod2.json['code'], wrongMethod2.headers.get('allow')], [405, 'method_not_allowed', 'GET']);
    for (const body of ['', '{"jti":', '[1,2]', '"jti"', 'null']) {
      const bad = await admin(t, 'POST', '/admin/tokens/revoke', { body });
      assert.deepEqual([bad.status, bad.json['code']], [400, 'bad_json'], `body ${JSON.stringify(body)}`);
    }
    const noJti = await admin(t, 'POST', '/admin/tokens/revoke', { body: { exp: 5 } });
    assert.deepEqual([noJti.status, noJti.json['code'], noJti.json['field']], [400, 'invalid_request', 'jti']);
    const badExp = await admin(t, 'POST', '/admin/tokens/revoke', { body: { jti: 'j', exp: 'tomorrow' } });
    assert.deepEqual([badExp.status, badExp.json['code'], badExp.json['field']], [400, 'invalid_request', 'exp']);
    const longJti = await admin(t, 'POST', '/admin/tokens/revoke', { body: { jti: 'x'.repeat(257) } });
    assert.deepEqual([longJti.status, longJti.json['code']], [400, 'invalid_jti']);
    const badOp = await admin(t, 'POST', '/admin/groups/g1/members', { body: { op: 'crown', user: 'u', actor: 'a' } });
    assert.deepEqual([badOp.status, badOp.json['code'], badOp.json['field']], [400, 'invalid_request', 'op']);
    const badActor = await admin(t, 'POST', '/admin/groups/g1/members', { body: { op: 'add', user: 'u', actor: 7 } });
    assert.deepEqual([badActor.status, badActor.json['code'], badActor.json['field']], [400, 'invalid_request', 'actor']);
    const noUser = await admin(t, 'POST', '/admin/groups/g1/members', { body: { op: 'add', user: '' } });
    assert.deepEqual([noUser.status, noUser.json['code'], noUser.json['field']], [400, 'invalid_request', 'user']);
    const huge = await admin(t, 'POST', '/admin/tokens/revoke', { body: { jti: 'j', pad: 'x'.repeat(64 * 1024) } });
    assert.deepEqual([huge.status, huge.json['code']], [413, 'body_too_large']);
    for (const a of [notFound, wrongMethod, noJti, huge]) assert.equal(typeof a.json['message'], 'string');
  } finally {
    await t.stop();
  }
});

test('without admin_token the node creates a 0600 admin.token in its data directory, keeps it across restarts, and accepts only it', async () => {
  const dir = tempDir('iris-admin-');
  const data = join(dir.path, 'data');
  try {
    let t = await startTestNode({}, data);
    const file = join(data, ADMIN_TOKEN_FILE_NAME);
    assert.equal(t.node.adminTokenFile, file);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const token = readFileSync(file, 'utf8').trim();
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal((await admin(t, 'POST', '/admin/tokens/revoke', { token, body: { jti: 'file-token-works' } })).status, 200);
    assert.equal((await admin(t, 'POST', '/admin/tokens/revoke', { token: ADMIN_TOKEN, body: { jti: 'x' } })).status, 401);
    await t.stop({ keepData: true });
    t = await startTestNode({}, data);
    assert.equal(readFileSync(file, 'utf8').trim(), token, 'the same token after a restart');
    assert.equal((await admin(t, 'POST', '/admin/tokens/revoke', { token, body: { jti: 'again' } })).status, 200);
    await t.stop({ keepData: true });
  } finally {
    dir.remove();
  }
});

test('the node refuses to start with an admin token file others may read, or an admin_token under 32 bytes, and says how to fix it', async () => {
  const dir = tempDir('iris-admin-');
  const data = join(dir.path, 'data');
  try {
    const t = await startTestNode({}, data);
    await t.stop({ keepData: true });
    chmodSync(join(data, ADMIN_TOKEN_FILE_NAME), 0o644);
    await assert.rejects(startTestNode({}, data), /may be read by others \(mode 644\); run: chmod 600 .*admin\.token/);
    await assert.rejects(startTestNode({ admin_token: 'short' }, data), /admin_token: needs at least 32 bytes \(got 5\)/);
  } finally {
    dir.remove();
  }
});

test('a revoked token is refused at login once the revoke is answered, also after a restart; the answer says what was stored', async () => {
  const dir = tempDir('iris-admin-');
  const data = join(dir.path, 'data');
  const cfg = { admin_token: ADMIN_TOKEN, auth_enabled: true, jwt_secret: SECRET };
  const clients: V1TestClient[] = [];
  const login = async (t: TestNode, user: string, token: string): Promise<ServerFrame['kind']> => {
    const c = await V1TestClient.tcp(t.node.tcpPort);
    clients.push(c);
    return (await c.login(user, token)).kind;
  };
  try {
    let t = await startTestNode(cfg, data);
    const revoked = await tokenFor('alice', 'alice-phone-1');
    const other = await tokenFor('alice', 'alice-laptop-1');
    assert.equal(await login(t, 'alice', revoked), 'login_ok', 'before the revocation');
    const live = clients[clients.length - 1]!;
    const exp = Math.floor(Date.now() / 1000) + 600;
    const a = await admin(t, 'POST', '/admin/tokens/revoke', { body: { jti: 'alice-phone-1', exp } });
    assert.equal(a.status, 200);
    assert.deepEqual(a.json, { jti: 'alice-phone-1', outcome: 'revoked', revoked_until_ms: exp * 1000 + 60_000, sessions_ended: 1 });
    // The session holding the token ends at once, told why.
    assert.deepEqual(await live.next(), { kind: 'error', reason: 'token_revoked' });
    await live.closedByServer();
    const again = await admin(t, 'POST', '/admin/tokens/revoke', { body: { jti: 'alice-phone-1', exp } });
    assert.equal(again.json['outcome'], 'already_revoked');
    const dead = await admin(t, 'POST', '/admin/tokens/revoke', { body: { jti: 'long-gone', exp: Math.floor(Date.now() / 1000) - 3600 } });
    assert.deepEqual(dead.json, { jti: 'long-gone', outcome: 'already_expired', revoked_until_ms: null, sessions_ended: 0 });
    assert.equal(await login(t, 'alice', revoked), 'auth_failed_text');
    assert.equal(await login(t, 'alice', other), 'login_ok', 'another token of the same user still works');
    await t.stop({ keepData: true });
    t = await startTestNode(cfg, data);
    assert.equal(await login(t, 'alice', revoked), 'auth_failed_text', 'still revoked after a restart');
    assert.equal(await login(t, 'alice', other), 'login_ok');
    await t.stop({ keepData: true });
  } finally {
    for (const c of clients) c.close();
    dir.remove();
  }
});

test("a revocation through the admin API reaches the node's live sessions holding that jti as a token_ended message", async () => {
  const t = await startTestNode({ admin_token: ADMIN_TOKEN, auth_enabled: true, jwt_secret: SECRET });
  try {
    const s = t.node.runtime.main;
    const holder = spawnProbe(s);
    const bystander = spawnProbe(s);
    t.node.service.liveTokens.register(holder.pid, 'live-1');
    t.node.service.liveTokens.register(bystander.pid, 'live-2');
    const a = await admin(t, 'POST', '/admin/tokens/revoke', { body: { jti: 'live-1' } });
    assert.deepEqual([a.status, a.json['outcome'], a.json['sessions_ended']], [200, 'revoked', 1]);
    assert.deepEqual(await holder.next<TokenEnded>(), { t: 'token_ended', code: 'token_revoked' });
    await bystander.nothing(undefined, 50);
    assert.equal(t.node.service.liveTokens.size, 1);
  } finally {
    await t.stop();
  }
});

test('group members are added, promoted, demoted and removed through the admin API, as a group admin or as the operator, answered once durable, with the server codes passed through', async () => {
  const t = await startTestNode({ admin_token: ADMIN_TOKEN });
  const clients: V1TestClient[] = [];
  const user = async (name: string): Promise<V1TestClient> => {
    const c = await V1TestClient.tcp(t.node.tcpPort);
    clients.push(c);
    assert.equal((await c.login(name)).kind, 'login_ok');
    return c;
  };
  const members = (gid: string, body: object) => admin(t, 'POST', `/admin/groups/${gid}/members`, { body });
  const roster = (gid: string): Promise<Answer> => admin(t, 'GET', `/admin/groups/${gid}`);
  try {
    const owner = await user('gadm-owner');
    const bob = await user('gadm-bob');
    owner.raw(encodeGroupCreatePacket(utf8('ops')));
    const gid = text((await owner.next<Extract<ServerFrame, { kind: 'group_join' }>>((f) => f.kind === 'group_join')).gid);

    const added = await members(gid, { op: 'add', user: 'gadm-bob', actor: 'gadm-owner' });
    assert.deepEqual([added.status, added.json], [200, { gid, op: 'add', user: 'gadm-bob', actor: 'gadm-owner' }]);
    assert.deepEqual((await roster(gid)).json, {
      gid,
      members: [
        { user: 'gadm-owner', role: 'admin' },
        { user: 'gadm-bob', role: 'member' },
      ],
    });
    // Durable and live: bob now gets the group's messages.
    owner.raw(encodeGroupMsgPacket(utf8(gid), encodeCbor({ v: 1 }), utf8('hello group')));
    const delivered = await bob.next<Extract<ServerFrame, { kind: 'reliable_msg' }>>((f) => f.kind === 'reliable_msg');
    assert.ok(text(delivered.msg).includes('hello group'));

    const twice = await members(gid, { op: 'add', user: 'gadm-bob', actor: 'gadm-owner' });
    assert.deepEqual([twice.status, twice.json['code']], [409, 'already_member']);
    const notAdmin = await members(gid, { op: 'add', user: 'gadm-carol', actor: 'gadm-bob' });
    assert.deepEqual([notAdmin.status, notAdmin.json['code']], [403, 'not_admin']);
    const outsider = await members(gid, { op: 'add', user: 'gadm-carol', actor: 'gadm-stranger' });
    assert.deepEqual([outsider.status, outsider.json['code']], [404, 'not_member']);
    const lastAdmin = await members(gid, { op: 'demote', user: 'gadm-owner', actor: 'gadm-owner' });
    assert.deepEqual([lastAdmin.status, lastAdmin.json['code']], [409, 'last_admin']);
    const lastAdminByOperator = await members(gid, { op: 'demote', user: 'gadm-owner' });
    assert.deepEqual([lastAdminByOperator.status, lastAdminByOperator.json['code']], [409, 'last_admin'], 'the operator cannot leave a group without an admin either');

    assert.equal((await members(gid, { op: 'promote', user: 'gadm-bob', actor: 'gadm-owner' })).status, 200);
    assert.equal((await members(gid, { op: 'add', user: 'gadm-carol', actor: 'gadm-bob' })).status, 200, 'bob is an admin now');
    const byOperator = await members(gid, { op: 'demote', user: 'gadm-owner' });
    assert.deepEqual([byOperator.status, byOperator.json], [200, { gid, op: 'demote', user: 'gadm-owner', actor: null }]);
    const demoted = await members(gid, { op: 'remove', user: 'gadm-carol', actor: 'gadm-owner' });
    assert.deepEqual([demoted.status, demoted.json['code']], [403, 'not_admin']);
    assert.equal((await members(gid, { op: 'remove', user: 'gadm-carol', actor: 'gadm-bob' })).status, 200);
    assert.deepEqual((await roster(gid)).json, {
      gid,
      members: [
        { user: 'gadm-owner', role: 'member' },
        { user: 'gadm-bob', role: 'admin' },
      ],
    });
    const unknownGroup = await roster('00000000-0000-4000-8000-000000000000');
    assert.deepEqual([unknownGroup.status, unknownGroup.json['code']], [404, 'not_member']);
  } finally {
    for (const c of clients) c.close();
    await t.stop();
  }
});
