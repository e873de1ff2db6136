/**
 * Who may ask GET_STATUS, and how often (protocol-v1.md §2, §4): in production mode only a
 * logged-in client; before login the answer is ERROR not_logged_in and the connection stays
 * usable for its LOGIN. After login the queries are shaped (rate_limit_status_*): read more
 * slowly, every one answered, in order. In dev mode GET_STATUS works before login. Real nodes
 * (production mode with JWT logins), real sockets.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startTestNode, type TestNode } from '../support/irisNode.js';
import { V1TestClient, text, utf8 } from '../support/V1TestClient.js';
import { concat, roundTrip, type StatusFrame } from '../support/serviceKit.js';
import { encodeGetStatusPacket } from '../../edge/protocol/V1Encoder.js';
import { issueToken } from '../../edge/auth/JwtVerifier.js';

const SECRET = 'a-status-test-secret-of-at-least-32-bytes';
/** Production mode refuses storage on tmpfs: its data lives beside the build, not in the OS temp dir. */
const DATA_ROOT = new URL('../../', import.meta.url).pathname;
const dirs: string[] = [];
const nodes: TestNode[] = [];
const clients: V1TestClient[] = [];
after(async () => {
  for (const c of clients) c.close();
  for (const n of nodes) await n.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function production(overrides: Record<string, unknown> = {}): Promise<TestNode> {
  const dir = mkdtempSync(join(DATA_ROOT, 'status-test-'));
  dirs.push(dir);
  const n = await startTestNode({ mode: 'production', jwt_secret: SECRET, ...overrides }, dir);
  nodes.push(n);
  return n;
}

async function client(n: TestNode): Promise<V1TestClient> {
  const c = await V1TestClient.tcp(n.node.tcpPort);
  clients.push(c);
  return c;
}

async function token(user: string): Promise<string> {
  const r = await issueToken(SECRET, { sub: user, ttlSeconds: 600 }, { wallMs: () => Date.now(), monotonicMs: () => performance.now() });
  assert.ok(r.ok);
  return r.token;
}

test('in production mode GET_STATUS before login is answered ERROR not_logged_in; the same connection then logs in and gets STATUS', async () => {
  const n = await production();
  const c = await client(n);
  c.raw(encodeGetStatusPacket(utf8('sa-someone')));
  assert.deepEqual(await c.next(), { kind: 'error', reason: 'not_logged_in' });
  assert.equal((await c.login('sa-asker', await token('sa-asker'))).kind, 'login_ok');
  c.raw(encodeGetStatusPacket(utf8('sa-asker')));
  const s = await c.next<StatusFrame>();
  assert.deepEqual([s.kind, text(s.user), s.online], ['status', 'sa-asker', true]);
});

test('in production mode GET_STATUS after login is shaped, not refused: 25 queries against a budget of 5 then 20/s take over 0.8 s, all answered in order', async () => {
  const n = await production({ rate_limit_status_burst: 5, rate_limit_status_per_s: 20 });
  const c = await client(n);
  assert.equal((await c.login('sa-busy', await token('sa-busy'))).kind, 'login_ok');
  const started = Date.now();
  c.raw(concat(Array.from({ length: 25 }, (_, i) => encodeGetStatusPacket(utf8(`sa-q${i}`)))));
  const got: string[] = [];
  for (let i = 0; i < 25; i++) got.push(text((await c.next<StatusFrame>()).user));
  const elapsed = Date.now() - started;
  assert.deepEqual(
    got,
    Array.from({ length: 25 }, (_, i) => `sa-q${i}`),
  );
  assert.ok(elapsed >= 800, `25 queries were answered in ${elapsed} ms`);
});

test('in dev mode GET_STATUS is answered before login', async () => {
  const n = await startTestNode();
  nodes.push(n);
  const online = await client(n);
  assert.equal((await online.login('sa-dev-online')).kind, 'login_ok');
  const c = await client(n);
  const s = await roundTrip(c);
  assert.equal(s.kind, 'status');
  c.raw(encodeGetStatusPacket(utf8('sa-dev-online')));
  const f = await c.next<StatusFrame>();
  assert.deepEqual([f.kind, text(f.user), f.online], ['status', 'sa-dev-online', true]);
});
