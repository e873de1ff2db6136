/**
 * `iris token`, `iris group`, `iris node` and `iris cluster`, run as a user runs them against real node processes: tokens
 * signed from the same config layers as `iris start` log in; `token revoke` goes through the
 * node's admin API (its token read from the data directory) and the revocation holds across a
 * restart; group administration changes membership as a group admin and passes the service's
 * refusals through; a single node refuses a drain (not_clustered) and has no cluster status
 * (the cluster itself: test/cluster/ClusterOps.test.ts); every bad flag or config exits 2
 * naming it, an unreachable node exits 1, a refusal exits 3.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JwtVerifier } from '../../edge/auth/JwtVerifier.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';
import { encodeGroupCreatePacket } from '../../edge/protocol/V1Encoder.js';
import { startIrisChild, type IrisChild } from '../support/irisChild.js';
import { tempDir } from '../support/storage.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';

const CLI = new URL('../../bin/iris.js', import.meta.url).pathname;
const SECRET = 'cli-test-secret-of-at-least-32-bytes-long!';
const clock = { wallMs: () => Date.now(), monotonicMs: () => performance.now() };
const CLI_TIMEOUT_MS = 20_000;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `iris …` with only PATH and `env` in its environment (no IRIS_* of the test leaks in). */
function iris(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`iris ${args.join(' ')} did not finish within ${CLI_TIMEOUT_MS} ms:\n${stdout}\n${stderr}`));
    }, CLI_TIMEOUT_MS);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

function claims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function verify(token: string, user: string, issuer = 'iris'): ReturnType<JwtVerifier['verify']> {
  const v = JwtVerifier.create({ secret: SECRET, clock, issuer });
  assert.ok(v.ok);
  return v.verifier.verify(token, utf8(user));
}

async function loginKind(node: IrisChild, user: string, token?: string): Promise<ServerFrame['kind']> {
  const c = await V1TestClient.tcp(node.tcpPort);
  try {
    return (await c.login(user, token)).kind;
  } finally {
    c.close();
  }
}

test('iris token issue signs a token for --user with --ttl and a jti, from the config layers (environment, --set, --config file)', async () => {
  const r = await iris(['token', 'issue', '--user', 'alice', '--ttl', '15m', '--jti', 'alice-1', '--set', 'jwt_issuer=acme', '--json'], { IRIS_JWT_SECRET: SECRET });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { token: string; sub: string; jti: string; iat: number; exp: number };
  assert.deepEqual([out.sub, out.jti, out.exp - out.iat], ['alice', 'alice-1', 900]);
  assert.deepEqual(claims(out.token), { sub: 'alice', iss: 'acme', iat: out.iat, exp: out.exp, jti: 'alice-1' });
  assert.deepEqual(verify(out.token, 'alice', 'acme'), { ok: true, user: utf8('alice'), jti: 'alice-1', exp: out.exp });

  const dir = tempDir('iris-cli-');
  try {
    const file = join(dir.path, 'iris.json');
    writeFileSync(file, JSON.stringify({ jwt_secret: SECRET }));
    const bare = await iris(['token', 'issue', '--config', file, '--user', 'bob']);
    assert.equal(bare.status, 0, bare.stderr);
    const token = bare.stdout.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'the token alone on stdout');
    const c = claims(token);
    assert.match(String(c['jti']), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a random jti by default');
    assert.equal(Number(c['exp']) - Number(c['iat']), 3600, 'one hour by default');
    assert.match(bare.stderr, new RegExp(`token for bob, jti ${String(c['jti'])}, expires `));
    assert.equal(verify(token, 'bob').ok, true);
  } finally {
    dir.remove();
  }
});

test('iris token and iris group with bad flags or config exit 2 and name the flag or key', async () => {
  const secret = { IRIS_JWT_SECRET: SECRET };
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['token'], {}, /iris token: missing subcommand: issue or revoke/],
    [['token', 'mint'], {}, /unknown subcommand 'mint'/],
    [['token', 'issue'], secret, /--user is required/],
    [['token', 'issue', '--usr', 'a'], secret, /Unknown option '--usr'/],
    [['token', 'issue', '--user', 'a', '--ttl', '0'], secret, /--ttl 0: a positive number of seconds/],
    [['token', 'issue', '--user', 'a', '--ttl', 'soon'], secret, /--ttl soon: a positive number/],
    [['token', 'issue', '--user', 'a', '--ttl', '2d'], secret, /--ttl 2d: longer than jwt_max_lifetime_s \(86400 s\)/],
    [['token', 'issue', '--user', 'a'], {}, /jwt_secret: not set/],
    [['token', 'issue', '--user', 'a'], { IRIS_JWT_SECRET: 'short' }, /jwt_secret: needs at least 32 bytes/],
    [['token', 'issue', '--user', 'a', '--set', 'jwt_isser=x'], secret, /jwt_isser \(from flags\): unknown key/],
    [['token', 'revoke'], {}, /--jti is required/],
    [['token', 'revoke', '--jti', 'j', '--exp', 'later'], {}, /--exp later: the token's expiry in whole seconds/],
    [['token', 'revoke', '--jti', 'j', '--admin-token', 'short'], {}, /admin_token: needs at least 32 bytes \(got 5\)/],
    [['token', 'revoke', '--jti', 'j', '--node', 'ftp://x'], { IRIS_ADMIN_TOKEN: 'x'.repeat(32) }, /--node ftp:\/\/x: must be an http:\/\/ or https:\/\/ URL/],
    [['token', 'revoke', '--jti', 'j', '--data', '/nonexistent-iris-dir'], {}, /no admin token: \/nonexistent-iris-dir\/admin\.token does not exist; pass --admin-token/],
    [['group'], {}, /iris group: missing subcommand: add, remove, promote, demote, roster/],
    [['group', 'kick', '--gid', 'g'], {}, /unknown subcommand 'kick'/],
    [['group', 'add', '--user', 'u', '--as', 'a'], {}, /--gid is required/],
    [['group', 'add', '--gid', 'g', '--user', 'u', '--as', ''], {}, /--as: an admin of the group \(or leave it out to act as the operator\)/],
    [['group', 'add', '--gid', 'g', '--as', 'a'], {}, /--user is required/],
    [['group', 'roster', '--gid', 'g', '--user', 'u'], {}, /Unknown option '--user'/],
    [['node'], {}, /iris node: missing subcommand: drain/],
    [['node', 'leave'], {}, /unknown subcommand 'leave': drain/],
    [['node', 'drain', '--wait', '--timeout', 'never'], {}, /--timeout never: a number of seconds > 0/],
    [['node', 'drain', '--url', 'ftp://x'], { IRIS_ADMIN_TOKEN: 'x'.repeat(32) }, /--url ftp:\/\/x: must be an http:\/\/ or https:\/\/ URL/],
    [['cluster'], {}, /iris cluster: missing subcommand: status/],
    [['cluster', 'status', '--url', 'not a url'], {}, /--url not a url: not a URL/],
  ];
  for (const [args, env, message] of cases) {
    const r = await iris(args, env);
    assert.equal(r.status, 2, `iris ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, `iris ${args.join(' ')}`);
  }
});

test('iris token revoke revokes through the running node: the token stops logging in, also after a restart, while other tokens work', async () => {
  const dir = tempDir('iris-cli-');
  const data = join(dir.path, 'data');
  const sets = [`jwt_secret=${SECRET}`];
  let node = await startIrisChild(data, sets);
  try {
    const issue = async (jti: string): Promise<string> => {
      const r = await iris(['token', 'issue', '--user', 'carol', '--jti', jti, '--set', `jwt_secret=${SECRET}`]);
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim();
    };
    const phone = await issue('carol-phone');
    const laptop = await issue('carol-laptop');
    assert.equal(await loginKind(node, 'carol', phone), 'login_ok');
    const revoked = await iris(['token', 'revoke', '--jti', 'carol-phone', '--data', data, '--http-port', String(node.httpPort), '--json']);
    assert.equal(revoked.status, 0, revoked.stderr);
    const answer = JSON.parse(revoked.stdout) as { jti: string; outcome: string; sessions_ended: number };
    assert.deepEqual([answer.jti, answer.outcome, answer.sessions_ended], ['carol-phone', 'revoked', 0]);
    assert.equal(await loginKind(node, 'carol', phone), 'auth_failed_text');
    assert.equal(await loginKind(node, 'carol', laptop), 'login_ok');
    // Again, with the token's own exp: already revoked for longer than that.
    const exp = String(claims(phone)['exp']);
    const human = await iris(['token', 'revoke', '--jti', 'carol-phone', '--exp', exp, '--data', data, '--node', `http://127.0.0.1:${node.httpPort}`]);
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /^revoked carol-phone until \d{4}-\d\d-\d\dT[\d:.]+Z \(it already was\); live sessions ended: 0\n$/);

    assert.equal(await node.stop(), 0);
    node = await startIrisChild(data, sets);
    assert.equal(await loginKind(node, 'carol', phone), 'auth_failed_text', 'still revoked after the restart');
    assert.equal(await loginKind(node, 'carol', laptop), 'login_ok');
  } finally {
    await node.kill();
    dir.remove();
  }
});

test('iris token revoke exits 1 when the node cannot be reached and 3 when it refuses the admin token', async () => {
  const dir = tempDir('iris-cli-');
  const data = join(dir.path, 'data');
  const node = await startIrisChild(data);
  try {
    const port = String(node.httpPort);
    const wrong = await iris(['token', 'revoke', '--jti', 'j', '--http-port', port, '--admin-token', 'w'.repeat(43)]);
    assert.equal(wrong.status, 3, wrong.stderr);
    assert.match(wrong.stderr, /^iris: unauthorized: .* \(HTTP 401\)\n$/);
    await node.stop();
    const down = await iris(['token', 'revoke', '--jti', 'j', '--data', data, '--http-port', port]);
    assert.equal(down.status, 1, down.stderr);
    assert.match(down.stderr, new RegExp(`iris: cannot reach the node at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  } finally {
    await node.kill();
    dir.remove();
  }
});

test('iris group adds, promotes, demotes and removes members as a group admin or as the operator and lists the roster; refusals exit 3 with the server code', async () => {
  const dir = tempDir('iris-cli-');
  const data = join(dir.path, 'data');
  const node = await startIrisChild(data);
  const owner = await V1TestClient.tcp(node.tcpPort);
  try {
    assert.equal((await owner.login('cli-owner')).kind, 'login_ok');
    owner.raw(encodeGroupCreatePacket(utf8('ops')));
    const gid = text((await owner.next<Extract<ServerFrame, { kind: 'group_join' }>>((f) => f.kind === 'group_join')).gid);
    const group = (...args: string[]) => iris(['group', ...args, '--gid', gid, '--data', data, '--http-port', String(node.httpPort)]);

    const add = await group('add', '--user', 'cli-bob', '--as', 'cli-owner');
    assert.equal(add.status, 0, add.stderr);
    assert.equal(add.stdout, `added cli-bob in group ${gid} (as cli-owner)\n`);
    const roster = await group('roster');
    assert.equal(roster.status, 0, roster.stderr);
    assert.equal(roster.stdout, 'cli-owner\tadmin\ncli-bob\tmember\n');

    const notAdmin = await group('add', '--user', 'cli-carol', '--as', 'cli-bob');
    assert.equal(notAdmin.status, 3);
    assert.match(notAdmin.stderr, /^iris: not_admin: the actor is not an admin of this group \(HTTP 403\)\n$/);
    const again = await group('add', '--user', 'cli-bob', '--as', 'cli-owner');
    assert.equal(again.status, 3);
    assert.match(again.stderr, /^iris: already_member: /);
    const last = await group('demote', '--user', 'cli-owner');
    assert.equal(last.status, 3);
    assert.match(last.stderr, /^iris: last_admin: /);

    const promote = await group('promote', '--user', 'cli-bob');
    assert.equal(promote.status, 0, promote.stderr);
    assert.equal(promote.stdout, `promoted cli-bob in group ${gid} (as the operator)\n`);
    assert.equal((await group('add', '--user', 'cli-carol', '--as', 'cli-bob')).status, 0);
    const demote = await group('demote', '--user', 'cli-bob', '--as', 'cli-owner', '--json');
    assert.equal(demote.status, 0, demote.stderr);
    assert.deepEqual(JSON.parse(demote.stdout), { gid, op: 'demote', user: 'cli-bob', actor: 'cli-owner' });
    assert.equal((await group('remove', '--user', 'cli-carol')).status, 0);
    const final = await group('roster', '--json');
    assert.deepEqual(JSON.parse(final.stdout), {
      gid,
      members: [
        { user: 'cli-owner', role: 'admin' },
        { user: 'cli-bob', role: 'member' },
      ],
    });
    const unknown = await iris(['group', 'roster', '--gid', '00000000-0000-4000-8000-000000000000', '--data', data, '--http-port', String(node.httpPort)]);
    assert.equal(unknown.status, 3);
    assert.match(unknown.stderr, /^iris: not_member: /);
  } finally {
    owner.close();
    await node.kill();
    dir.remove();
  }
});

test('a single node refuses iris node drain (not_clustered, exit 3) and iris cluster status (exit 3), and keeps serving', async () => {
  const dir = tempDir('iris-cli-');
  const data = join(dir.path, 'data');
  const node = await startIrisChild(data);
  try {
    const url = `http://127.0.0.1:${node.httpPort}`;
    const drain = await iris(['node', 'drain', '--url', url, '--data', data, '--wait']);
    assert.equal(drain.status, 3, drain.stderr);
    assert.match(drain.stderr, /^iris: not_clustered: this node runs alone \(no nats_servers\).* \(HTTP 409\)\n$/);
    const status = await iris(['cluster', 'status', '--url', url]);
    assert.equal(status.status, 3, status.stderr);
    assert.match(status.stderr, /^iris: not_clustered: /);
    assert.equal(await loginKind(node, 'still-served'), 'login_ok');
  } finally {
    await node.kill();
    dir.remove();
  }
});

test('iris help lists the token, group, node and cluster commands', async () => {
  const r = await iris(['help']);
  assert.equal(r.status, 0);
  for (const line of [/^ {2}token issue /m, /^ {2}token revoke /m, /^ {2}group add\|remove\|promote\|demote /m, /^ {2}group roster /m, /^ {2}node drain /m, /^ {2}cluster status /m, /^ {2}cluster wait /m]) assert.match(r.stdout, line);
});
