/**
 * The login gate's client-certificate rules, read from the link: without them any link logs
 * in; `required` needs a verified certificate (an `unreported` one, WSS on uWS, is not
 * enough); user matching needs the user to equal, byte for byte, a name of the certificate;
 * a certificate for another user counts as a failed login, a missing one does not; every
 * certificate refusal is AUTH_FAILED to the client and logged with its reason; the token rules
 * still apply after them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from '../../runtime/Env.js';
import type { ClientLink, PeerCertificate } from '../../edge/ClientLink.js';
import { JwtVerifier } from '../../edge/auth/JwtVerifier.js';
import { Revocations } from '../../edge/auth/Revocations.js';
import { RateLimits } from '../../edge/limits/RateLimits.js';
import { loginGate, type ClientCertificatePolicy } from '../../edge/LoginGate.js';
import { manualClock } from '../support/manualClock.js';

const u = (s: string): Uint8Array => new TextEncoder().encode(s);
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

function gate(clientCertificate: ClientCertificatePolicy, failedLogins = 3) {
  const r = RateLimits.create(manualClock(), { failedLogins: { burst: failedLogins, refill: 1, intervalMs: 60_000 } });
  assert.ok(r.ok);
  const c = capture();
  return { check: loginGate({ verifier: null, limits: r.limits, clientCertificate, log: c.log }), lines: c.lines };
}

test('with no certificate rules every link logs in, with or without a certificate', () => {
  const { check, lines } = gate({ required: false, userMatch: false });
  for (const peer of [null, UNREPORTED, ALICE]) assert.deepEqual(check(u('bob'), null, linkWith(peer)), { ok: true });
  assert.deepEqual(lines, []);
});

test('required: only a verified certificate logs in; none or an unreported one is refused, logged, and not counted as a failure', () => {
  const { check, lines } = gate({ required: true, userMatch: false }, 1);
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
  const { check, lines } = gate({ required: false, userMatch: true }, 2);
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
