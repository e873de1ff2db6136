/**
 * The login decision on a manual clock: a valid token always gets in, even from a source that
 * has spent its failed-login allowance for that account; failures are answered `auth_failed`,
 * then `rate_limited` for that (account, source) only; a success carries the
 * token's jti and expiry for the connection; without auth any user is accepted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { issueToken, JwtVerifier } from '../../edge/auth/JwtVerifier.js';
import { RateLimits } from '../../edge/limits/RateLimits.js';
import { loginGate, type LoginGate } from '../../edge/LoginGate.js';
import { manualClock, type ManualClock } from '../support/manualClock.js';

const SECRET = 'login-gate-test-secret-of-32-bytes-or-more';
const u = (s: string): Uint8Array => new TextEncoder().encode(s);

function gate(clock: ManualClock, failures = 3): LoginGate {
  const v = JwtVerifier.create({ secret: SECRET, clock });
  assert.ok(v.ok);
  const l = RateLimits.create(clock, { failedLogins: { burst: failures, refill: 1, intervalMs: 60_000 } });
  assert.ok(l.ok);
  return loginGate({ verifier: v.verifier, limits: l.limits });
}

async function token(clock: ManualClock, sub: string, ttlSeconds: number, jti?: string): Promise<Uint8Array> {
  const r = await issueToken(SECRET, jti === undefined ? { sub, ttlSeconds } : { sub, ttlSeconds, jti }, clock);
  assert.ok(r.ok);
  return u(r.token);
}

test('a valid token logs in from a source whose failures for that account are spent, and from any other', async () => {
  const clock = manualClock();
  const check = gate(clock);
  for (let i = 0; i < 3; i++) assert.deepEqual(check(u('alice'), u('garbage'), { remoteAddress: '192.0.2.10' }), { ok: false, code: 'auth_failed' });
  assert.deepEqual(check(u('alice'), u('garbage'), { remoteAddress: '192.0.2.10' }), { ok: false, code: 'rate_limited' });
  assert.deepEqual(check(u('alice'), null, { remoteAddress: '192.0.2.10' }), { ok: false, code: 'rate_limited' });
  const good = await token(clock, 'alice', 600);
  const expiresAtMs = (Math.floor(clock.wallMs() / 1000) + 600) * 1000;
  assert.deepEqual(check(u('alice'), good, { remoteAddress: '192.0.2.10' }), { ok: true, expiresAtMs });
  assert.deepEqual(check(u('alice'), good, { remoteAddress: '198.51.100.20' }), { ok: true, expiresAtMs });
  assert.deepEqual(check(u('alice'), u('garbage'), { remoteAddress: '198.51.100.20' }), { ok: false, code: 'auth_failed' }, 'another source has its own allowance');
  assert.deepEqual(check(u('alice'), u('garbage'), { remoteAddress: '192.0.2.10' }), { ok: false, code: 'rate_limited' }, 'a valid login does not refill the failing source');
});

test('a successful login carries the token jti and its expiry in wall-clock milliseconds', async () => {
  const clock = manualClock(5_000);
  const check = gate(clock);
  const t = await token(clock, 'bob', 120, 'jti-bob-1');
  assert.deepEqual(check(u('bob'), t, { remoteAddress: '192.0.2.1' }), { ok: true, expiresAtMs: (Math.floor(clock.wallMs() / 1000) + 120) * 1000, jti: 'jti-bob-1' });
});

test('without auth every login is accepted and carries no token facts', () => {
  const clock = manualClock();
  const l = RateLimits.create(clock);
  assert.ok(l.ok);
  const check = loginGate({ verifier: null, limits: l.limits });
  assert.deepEqual(check(u('carol'), null, { remoteAddress: '192.0.2.1' }), { ok: true });
  assert.deepEqual(check(u('carol'), u('anything'), { remoteAddress: '192.0.2.1' }), { ok: true });
});
