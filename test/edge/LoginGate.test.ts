/**
 * The login decision on a manual clock: a valid token always gets in, even from a source that
 * has spent its failed-login allowance for that account; failures are answered `auth_failed`,
 * then `rate_limited` for that (account, source) only; a success carries the
 * token's jti and expiry for the connection; without auth any user is accepted.
 *
 * The client-certificate rules, read from the link: without them any link logs in;
 * `required` needs a verified certificate (an `unreported` one, WSS on uWS, is not enough);
 * user matching needs the user to equal, byte for byte, a name of the certificate; a
 * certificate for another user counts as a failed login, a missing one does not; every
 * certificate refusal is AUTH_FAILED to the client and logged with its reason; the token rules
 * still apply after them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { issueToken, JwtVerifier } from '../../edge/auth/JwtVerifier.js';
import { RateLimits } from '../../edge/limits/RateLimits.js';
import { loginGate, type ClientCertificatePolicy, type LoginGate } from '../../edge/LoginGate.js';
import type { Logger } from '../../runtime/Env.js';
import type { ClientLink, PeerCertificate } from '../../edge/ClientLink.js';
import { Revocations } from '../../edge/auth/Revocations.js';
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

const ALICE: PeerCertificate = { status: 'verified', subject: 'CN=alice, O=Iris test', names: ['alice', 'alice@example.com'] };
const UNREPORTED: PeerCertificate = { status: 'unreported' };
const REFUSED = { ok: false, code: 'auth_failed' } as const;

/** A link that only carries what the gate reads. */
function linkWith(peerCertificate: PeerCertificate | null): ClientLink {
  const none = () => {
    throw new Error('the login gate must not use the link for I/O');
  };
  return { transport: 'tls', remoteAddress: '192.0.2.7', peerCertificate, write: none, bufferedBytes: none, pause: none, resume: none, end: none, destroy: none };
}

/** Info lines the gate logs: [message, reason]. */
function capture(): { log: Logger; lines: Array<[string, unknown]> } {
  const lines: Array<[string, unknown]> = [];
  const ignore = () => {};
  return { lines, log: { debug: ignore, warn: ignore, error: ignore, info: (f, msg) => lines.push([msg, (f as { reason?: unknown }).reason]) } };
}

function certGate(clientCertificate: ClientCertificatePolicy, failedLogins = 3) {
  const r = RateLimits.create(manualClock(), { failedLogins: { burst: failedLogins, refill: 1, intervalMs: 60_000 } });
  assert.ok(r.ok);
  const c = capture();
  return { check: loginGate({ verifier: null, limits: r.limits, clientCertificate, log: c.log }), lines: c.lines };
}

test('with no certificate rules every link logs in, with or without a certificate', () => {
  const { check, lines } = certGate({ required: false, userMatch: false });
  for (const peer of [null, UNREPORTED, ALICE]) assert.deepEqual(check(u('bob'), null, linkWith(peer)), { ok: true });
  assert.deepEqual(lines, []);
});

test('required: only a verified certificate logs in; none or an unreported one is refused, logged, and not counted as a failure', () => {
  const { check, lines } = certGate({ required: true, userMatch: false }, 1);
  assert.deepEqual(check(u('bob'), null, linkWith(ALICE)), { ok: true });
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(check(u('carol'), null, linkWith(null)), REFUSED);
    assert.deepEqual(check(u('carol'), null, linkWith(UNREPORTED)), REFUSED);
  }
  // Not locked out by those refusals.
  assert.deepEqual(check(u('carol'), null, linkWith(ALICE)), { ok: true });
  assert.equal(lines.length, 6);
  assert.deepEqual(lines[0], ['login refused: it needs a verified client certificate', 'client_certificate_required']);
});

test('user match: the user must equal one of the names exactly; another user counts as a failed login', () => {
  const { check, lines } = certGate({ required: false, userMatch: true }, 2);
  assert.deepEqual(check(u('alice'), null, linkWith(ALICE)), { ok: true });
  assert.deepEqual(check(u('alice@example.com'), null, linkWith(ALICE)), { ok: true });
  assert.deepEqual(check(u('Alice'), null, linkWith(ALICE)), REFUSED);
  assert.deepEqual(check(u('alice\0'), null, linkWith(ALICE)), REFUSED);
  assert.deepEqual(check(u('alice'), null, linkWith(UNREPORTED)), REFUSED);
  assert.deepEqual(check(u('alice'), null, linkWith(null)), REFUSED);
  assert.deepEqual(lines.map(([, reason]) => reason), ['client_certificate_user_mismatch', 'client_certificate_user_mismatch', 'client_certificate_required', 'client_certificate_required']);
  // 'Alice' failed once; one more mismatch uses up the allowance of 2.
  assert.deepEqual(check(u('Alice'), null, linkWith(ALICE)), REFUSED);
  assert.deepEqual(check(u('Alice'), null, linkWith(ALICE)), { ok: false, code: 'rate_limited' });
});

test('the token rules still apply after the certificate rules', () => {
  const clock = manualClock(1_000_000);
  const r = RateLimits.create(clock, {});
  assert.ok(r.ok);
  const v = JwtVerifier.create({ secret: 's'.repeat(40), clock, issuer: 'iris', maxLifetimeSeconds: 3600, revocations: new Revocations({ clock }) });
  assert.ok(v.ok);
  const c = capture();
  const check = loginGate({ verifier: v.verifier, limits: r.limits, clientCertificate: { required: true, userMatch: true }, log: c.log });
  assert.deepEqual(check(u('alice'), null, linkWith(ALICE)), REFUSED);
  assert.deepEqual(c.lines, []);
  assert.deepEqual(check(u('bob'), null, linkWith(ALICE)), REFUSED);
  assert.deepEqual(c.lines, [['login refused: the user is not a name in its client certificate', 'client_certificate_user_mismatch']]);
});
