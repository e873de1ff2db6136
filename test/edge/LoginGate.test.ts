/**
 * The login gate's client-certificate rules: without them any link logs in; `required` needs
 * a verified certificate (an `unreported` one, WSS on uWS, is not enough); user matching needs
 * the user to equal, byte for byte, a name of the certificate; a certificate for another user
 * counts as a failed login, a missing one does not; the token rules still apply after them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PeerCertificate } from '../../edge/ClientLink.js';
import { JwtVerifier } from '../../edge/auth/JwtVerifier.js';
import { Revocations } from '../../edge/auth/Revocations.js';
import { RateLimits } from '../../edge/limits/RateLimits.js';
import { CERT_REQUIRED, CERT_USER_MISMATCH, loginGate, type ClientCertificatePolicy } from '../../edge/LoginGate.js';
import { manualClock } from '../support/manualClock.js';

const u = (s: string): Uint8Array => new TextEncoder().encode(s);
const ALICE: PeerCertificate = { status: 'verified', subject: 'CN=alice, O=Iris test', names: ['alice', 'alice@example.com'] };
const UNREPORTED: PeerCertificate = { status: 'unreported' };

function gate(clientCertificate: ClientCertificatePolicy, failedLogins = 3) {
  const r = RateLimits.create(manualClock(), { failedLogins: { burst: failedLogins, refill: 1, intervalMs: 60_000 } });
  assert.ok(r.ok);
  return loginGate({ verifier: null, limits: r.limits, clientCertificate });
}

test('with no certificate rules every link logs in, with or without a certificate', () => {
  const g = gate({ required: false, userMatch: false });
  for (const peer of [null, UNREPORTED, ALICE]) assert.deepEqual(g(u('bob'), null, '127.0.0.1', peer), { ok: true });
});

test('required: only a verified certificate logs in; none or an unreported one is refused without counting a failure', () => {
  const g = gate({ required: true, userMatch: false }, 1);
  assert.deepEqual(g(u('bob'), null, '127.0.0.1', ALICE), { ok: true });
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(g(u('carol'), null, '127.0.0.1', null), { ok: false, code: CERT_REQUIRED });
    assert.deepEqual(g(u('carol'), null, '127.0.0.1', UNREPORTED), { ok: false, code: CERT_REQUIRED });
  }
  // Not locked out by those refusals.
  assert.deepEqual(g(u('carol'), null, '127.0.0.1', ALICE), { ok: true });
});

test('user match: the user must equal one of the names exactly; another user counts as a failed login', () => {
  const g = gate({ required: false, userMatch: true }, 2);
  assert.deepEqual(g(u('alice'), null, '127.0.0.1', ALICE), { ok: true });
  assert.deepEqual(g(u('alice@example.com'), null, '127.0.0.1', ALICE), { ok: true });
  assert.deepEqual(g(u('Alice'), null, '127.0.0.1', ALICE), { ok: false, code: CERT_USER_MISMATCH });
  assert.deepEqual(g(u('alice\0'), null, '127.0.0.1', ALICE), { ok: false, code: CERT_USER_MISMATCH });
  assert.deepEqual(g(u('alice'), null, '127.0.0.1', UNREPORTED), { ok: false, code: CERT_REQUIRED });
  assert.deepEqual(g(u('alice'), null, '127.0.0.1', null), { ok: false, code: CERT_REQUIRED });
  // 'Alice' failed once; one more mismatch uses up the allowance of 2.
  assert.deepEqual(g(u('Alice'), null, '127.0.0.1', ALICE), { ok: false, code: CERT_USER_MISMATCH });
  assert.deepEqual(g(u('Alice'), null, '127.0.0.1', ALICE), { ok: false, code: 'rate_limited' });
});

test('the token rules still apply after the certificate rules', () => {
  const clock = manualClock(1_000_000);
  const r = RateLimits.create(clock, {});
  assert.ok(r.ok);
  const v = JwtVerifier.create({ secret: 's'.repeat(40), clock, issuer: 'iris', maxLifetimeSeconds: 3600, revocations: new Revocations({ clock }) });
  assert.ok(v.ok);
  const g = loginGate({ verifier: v.verifier, limits: r.limits, clientCertificate: { required: true, userMatch: true } });
  assert.deepEqual(g(u('alice'), null, '127.0.0.1', ALICE), { ok: false, code: 'token_missing' });
  assert.deepEqual(g(u('bob'), null, '127.0.0.1', ALICE), { ok: false, code: CERT_USER_MISMATCH });
});
