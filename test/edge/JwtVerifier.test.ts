/**
 * Login tokens against protocol-v1.md §4: every rule by name with its stable refusal code,
 * expiry and not-before at their exact millisecond boundaries on a manual clock, the secret
 * length check, and a cross-check of the verifier's verdicts with jose's on random tokens.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { SignJWT, generateKeyPair, jwtVerify } from 'jose';
import type { Clock } from '../../runtime/Env.js';
import {
  JWT_DEFAULT_MAX_LIFETIME_SECONDS,
  JWT_MAX_TOKEN_BYTES,
  JwtVerifier,
  issueToken,
  type JwtVerifierOptions,
  type JwtVerifyResult,
} from '../../edge/auth/JwtVerifier.js';
import { Revocations } from '../../edge/auth/Revocations.js';

const SECRET = 'an-hs256-secret-of-at-least-32-bytes!';
const OTHER_SECRET = 'a-different-secret-also-32-bytes-long!';
/** Wall-clock start of every test, in whole seconds. */
const T0 = 1_800_000_000;
const DAY = 24 * 60 * 60;
const enc = new TextEncoder();
const u = (s: string): Uint8Array => enc.encode(s);

interface ManualClock extends Clock {
  wall: number;
}

function manualClock(wall = T0 * 1000): ManualClock {
  return {
    wall,
    wallMs() {
      return this.wall;
    },
    monotonicMs() {
      return this.wall - T0 * 1000;
    },
  };
}

function verifier(clock: Clock, options: Partial<JwtVerifierOptions> = {}): JwtVerifier {
  const r = JwtVerifier.create({ secret: SECRET, clock, ...options });
  assert.ok(r.ok, 'verifier options are valid');
  return r.verifier;
}

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Builds a compact JWS by hand, so tests can produce what no well-behaved library would. */
function forge(header: unknown, claims: unknown, secret: string = SECRET): string {
  const signingInput = `${b64(header)}.${b64(claims)}`;
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const c: Record<string, unknown> = { sub: 'alice', iss: 'iris', iat: T0, exp: T0 + 3600, ...overrides };
  for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
  return c;
}

const HS256 = { alg: 'HS256', typ: 'JWT' };

function refusedWith(r: JwtVerifyResult): string {
  return r.ok ? 'ok' : r.code;
}

// ---------------------------------------------------------------------------------------------
// Accepting

test('a valid HS256 token issued with jose logs its subject in and reports jti and exp', async () => {
  const clock = manualClock();
  const issued = await issueToken(SECRET, { sub: 'alice', ttlSeconds: 3600, jti: 'tok-1' }, clock);
  assert.ok(issued.ok);
  assert.equal(issued.iat, T0);
  assert.equal(issued.exp, T0 + 3600);
  const r = verifier(clock).verify(issued.token, u('alice'));
  assert.deepEqual(r, { ok: true, user: u('alice'), jti: 'tok-1', exp: T0 + 3600 });
});

test('a token without jti is accepted and its result has no jti', () => {
  const r = verifier(manualClock()).verify(forge(HS256, claims()), u('alice'));
  assert.deepEqual(r, { ok: true, user: u('alice'), exp: T0 + 3600 });
});

test('the token may be given as the raw login bytes', () => {
  const r = verifier(manualClock()).verify(u(forge(HS256, claims())), u('alice'));
  assert.equal(r.ok, true);
});

test('tokens issued by issueToken verify with jose itself', async () => {
  const clock = manualClock();
  const issued = await issueToken(SECRET, { sub: 'zoë', iss: 'iris', ttlSeconds: 600, jti: 'j', nbf: T0 }, clock);
  assert.ok(issued.ok);
  const { payload, protectedHeader } = await jwtVerify(issued.token, u(SECRET), {
    algorithms: ['HS256'],
    issuer: 'iris',
    subject: 'zoë',
    currentDate: new Date(clock.wall),
  });
  assert.equal(protectedHeader.alg, 'HS256');
  assert.deepEqual(payload, { nbf: T0, sub: 'zoë', iss: 'iris', iat: T0, exp: T0 + 600, jti: 'j' });
});

// ---------------------------------------------------------------------------------------------
// Algorithm and signature

test('a token signed with alg none is refused', () => {
  const v = verifier(manualClock());
  const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`;
  assert.equal(refusedWith(v.verify(unsigned, u('alice'))), 'alg_not_allowed');
  // Even carrying a valid HS256 MAC, the header decides: none is never accepted.
  assert.equal(refusedWith(v.verify(forge({ alg: 'none' }, claims()), u('alice'))), 'alg_not_allowed');
});

test('every alg other than exactly HS256 is refused, even with a MAC made from the same secret', async () => {
  const v = verifier(manualClock());
  for (const alg of ['HS384', 'HS512'] as const) {
    const token = await new SignJWT(claims()).setProtectedHeader({ alg }).sign(u(SECRET.padEnd(64, '!')));
    assert.equal(refusedWith(v.verify(token, u('alice'))), 'alg_not_allowed', alg);
  }
  const { privateKey } = await generateKeyPair('RS256');
  const rs = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
  assert.equal(refusedWith(v.verify(rs, u('alice'))), 'alg_not_allowed');
  for (const alg of ['hs256', 'HS256 ', 'ES256', '']) {
    assert.equal(refusedWith(v.verify(forge({ alg }, claims()), u('alice'))), 'alg_not_allowed', JSON.stringify(alg));
  }
  assert.equal(refusedWith(v.verify(forge({ typ: 'JWT' }, claims()), u('alice'))), 'token_malformed', 'alg missing');
  assert.equal(refusedWith(v.verify(forge({ alg: 256 }, claims()), u('alice'))), 'token_malformed', 'alg not a string');
});

test('a token signed with another secret or with a changed byte has a bad signature', () => {
  const v = verifier(manualClock());
  assert.equal(refusedWith(v.verify(forge(HS256, claims(), OTHER_SECRET), u('alice'))), 'bad_signature');
  const good = forge(HS256, claims());
  const [h, p, s] = good.split('.') as [string, string, string];
  const flipped = s.slice(0, 10) + (s[10] === 'A' ? 'B' : 'A') + s.slice(11);
  assert.equal(refusedWith(v.verify(`${h}.${p}.${flipped}`, u('alice'))), 'bad_signature');
  assert.equal(refusedWith(v.verify(`${h}.${p}.${s.slice(0, -3)}`, u('alice'))), 'bad_signature', 'truncated');
  // A payload changed after signing (alice → bob) fails the MAC.
  assert.equal(refusedWith(v.verify(`${h}.${b64(claims({ sub: 'bob' }))}.${s}`, u('bob'))), 'bad_signature');
});

test('a critical header extension is refused', () => {
  const v = verifier(manualClock());
  assert.equal(refusedWith(v.verify(forge({ alg: 'HS256', crit: ['b64'], b64: false }, claims()), u('alice'))), 'token_malformed');
});

// ---------------------------------------------------------------------------------------------
// Shape

test('no token, or an empty one, is token_missing', () => {
  const v = verifier(manualClock());
  assert.equal(refusedWith(v.verify(undefined, u('alice'))), 'token_missing');
  assert.equal(refusedWith(v.verify('', u('alice'))), 'token_missing');
  assert.equal(refusedWith(v.verify(new Uint8Array(0), u('alice'))), 'token_missing');
});

test('base64url without padding: padded, standard-base64 and non-ASCII segments are malformed', () => {
  const v = verifier(manualClock());
  const good = forge(HS256, claims());
  const [h, p, s] = good.split('.') as [string, string, string];
  const pad = (x: string): string => x + '='.repeat((4 - (x.length % 4)) % 4 || 4);
  assert.equal(refusedWith(v.verify(`${pad(h)}.${p}.${s}`, u('alice'))), 'token_malformed', 'padded header');
  assert.equal(refusedWith(v.verify(`${h}.${pad(p)}.${s}`, u('alice'))), 'token_malformed', 'padded payload');
  assert.equal(refusedWith(v.verify(`${h}.${p}.${s}=`, u('alice'))), 'token_malformed', 'padded signature');
  const std = Buffer.from(JSON.stringify({ sub: 'alice>>>?', iss: 'iris', exp: T0 + 60 })).toString('base64');
  assert.match(std, /[+/]/);
  assert.equal(refusedWith(v.verify(`${h}.${std}.${s}`, u('alice'))), 'token_malformed', 'standard base64 alphabet');
  assert.equal(refusedWith(v.verify(`${h}.${p}.${s.slice(0, -1)}é`, u('alice'))), 'token_malformed', 'non-ASCII');
  assert.equal(refusedWith(v.verify(new Uint8Array([...u(good), 0xff]), u('alice'))), 'token_malformed', 'non-ASCII byte');
});

test('anything but three dot-separated segments is malformed', () => {
  const v = verifier(manualClock());
  const good = forge(HS256, claims());
  const [h, p, s] = good.split('.') as [string, string, string];
  for (const t of [`${h}.${p}`, `${h}.${p}.${s}.${s}`, `${h}..${s}`, `.${p}.${s}`, 'abc', '...', `${h}.${p}.${s}.`]) {
    assert.equal(refusedWith(v.verify(t, u('alice'))), 'token_malformed', t);
  }
});

test('header and payload must be JSON objects, and exp is required and numeric', () => {
  const v = verifier(manualClock());
  const cases: Array<[string, string]> = [
    [forge('not json', claims()), 'header not JSON'],
    [forge([HS256], claims()), 'header an array'],
    [forge(HS256, 'not json'), 'payload not JSON'],
    [forge(HS256, [claims()]), 'payload an array'],
    [forge(HS256, null), 'payload null'],
    [forge(HS256, claims({ exp: undefined })), 'exp missing'],
    [forge(HS256, claims({ exp: String(T0 + 60) })), 'exp a string'],
    [forge(HS256, claims({ nbf: 'now' })), 'nbf a string'],
    [forge(HS256, claims({ iat: null })), 'iat null'],
    [forge(HS256, claims({ sub: 42 })), 'sub a number'],
    [forge(HS256, claims({ iss: ['iris'] })), 'iss an array'],
    [forge(HS256, claims({ jti: 7 })), 'jti a number'],
  ];
  for (const [token, what] of cases) assert.equal(refusedWith(v.verify(token, u('alice'))), 'token_malformed', what);
  // Invalid UTF-8 inside the payload JSON.
  const badUtf8 = Buffer.concat([Buffer.from('{"sub":"al'), Buffer.from([0xc3, 0x28]), Buffer.from(`","iss":"iris","exp":${T0 + 60}}`)]);
  const input = `${b64(HS256)}.${badUtf8.toString('base64url')}`;
  const token = `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
  assert.equal(refusedWith(v.verify(token, u('alice'))), 'token_malformed', 'payload not UTF-8');
});

test('a token longer than JWT_MAX_TOKEN_BYTES is refused before any decoding', () => {
  const v = verifier(manualClock());
  const big = forge(HS256, claims({ pad: 'x'.repeat(JWT_MAX_TOKEN_BYTES) }));
  assert.equal(refusedWith(v.verify(big, u('alice'))), 'token_malformed');
});

// ---------------------------------------------------------------------------------------------
// Time

test('exp at the exact boundary: valid one millisecond before, expired at exp', () => {
  const clock = manualClock();
  const v = verifier(clock);
  const token = forge(HS256, claims({ exp: T0 + 3600 }));
  clock.wall = (T0 + 3600) * 1000 - 1;
  assert.equal(refusedWith(v.verify(token, u('alice'))), 'ok');
  clock.wall = (T0 + 3600) * 1000;
  assert.equal(refusedWith(v.verify(token, u('alice'))), 'token_expired');
  clock.wall = (T0 + 7200) * 1000;
  assert.equal(refusedWith(v.verify(token, u('alice'))), 'token_expired');
});

test('nbf at the exact boundary: not yet valid one millisecond before, valid at nbf', () => {
  const clock = manualClock();
  const v = verifier(clock);
  const token = forge(HS256, claims({ nbf: T0 + 60 }));
  clock.wall = (T0 + 60) * 1000 - 1;
  assert.equal(refusedWith(v.verify(token, u('alice'))), 'token_not_yet_valid');
  clock.wall = (T0 + 60) * 1000;
  assert.equal(refusedWith(v.verify(token, u('alice'))), 'ok');
});

test('a configured clock tolerance widens exp and nbf by exactly that much', () => {
  const clock = manualClock();
  const v = verifier(clock, { clockToleranceSeconds: 5 });
  const token = forge(HS256, claims({ nbf: T0 + 60, exp: T0 + 120 }));
  clock.wall = (T0 + 55) * 1000 - 1;
  assert.equal(refusedWith(v.verify(token, u('alice'))), 'token_not_yet_valid');
  clock.wall = (T0 + 55) * 1000;
  assert.equal(refusedWith(v.verify(token, u('alice'))), 'ok');
  clock.wall = (T0 + 125) * 1000 - 1;
  assert.equal(refusedWith(v.verify(token, u('alice'))), 'ok');
  clock.wall = (T0 + 125) * 1000;
  assert.equal(refusedWith(v.verify(token, u('alice'))), 'token_expired');
});

test('a token over the 24 h lifetime cap is refused', () => {
  const clock = manualClock();
  const v = verifier(clock);
  assert.equal(JWT_DEFAULT_MAX_LIFETIME_SECONDS, DAY);
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ iat: T0, exp: T0 + DAY })), u('alice'))), 'ok', 'exactly 24 h');
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ iat: T0, exp: T0 + DAY + 1 })), u('alice'))), 'lifetime_too_long', '24 h + 1 s');
  // Without iat the remaining lifetime counts: exp - now.
  clock.wall = T0 * 1000 + 1;
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ iat: undefined, exp: T0 + DAY })), u('alice'))), 'ok');
  clock.wall = T0 * 1000 - 1;
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ iat: undefined, exp: T0 + DAY })), u('alice'))), 'lifetime_too_long');
  // An iat in the future cannot stretch the window beyond now + cap.
  clock.wall = T0 * 1000;
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ iat: T0 + DAY, exp: T0 + DAY + 3600 })), u('alice'))), 'lifetime_too_long');
  // A token issued long ago whose lifetime was within the cap stays fine until exp.
  clock.wall = (T0 + DAY - 1) * 1000;
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ iat: T0, exp: T0 + DAY })), u('alice'))), 'ok');
});

test('the lifetime cap is configurable', () => {
  const v = verifier(manualClock(), { maxLifetimeSeconds: 3600 });
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ exp: T0 + 3600 })), u('alice'))), 'ok');
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ exp: T0 + 3601 })), u('alice'))), 'lifetime_too_long');
});

// ---------------------------------------------------------------------------------------------
// Issuer and subject

test('iss must equal the configured issuer, default iris', () => {
  const v = verifier(manualClock());
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ iss: undefined })), u('alice'))), 'wrong_issuer');
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ iss: 'Iris' })), u('alice'))), 'wrong_issuer');
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ iss: '' })), u('alice'))), 'wrong_issuer');
  const custom = verifier(manualClock(), { issuer: 'iris-eu' });
  assert.equal(refusedWith(custom.verify(forge(HS256, claims({ iss: 'iris-eu' })), u('alice'))), 'ok');
  assert.equal(refusedWith(custom.verify(forge(HS256, claims({ iss: 'iris' })), u('alice'))), 'wrong_issuer');
});

test('sub must equal the login user', () => {
  const v = verifier(manualClock());
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ sub: 'alice' })), u('bob'))), 'subject_mismatch');
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ sub: undefined })), u('alice'))), 'subject_mismatch', 'no sub');
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ sub: 'alice ' })), u('alice'))), 'subject_mismatch', 'trailing space');
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ sub: 'Alice' })), u('alice'))), 'subject_mismatch', 'case');
  // Users are bytes: multi-byte UTF-8 and a NUL byte compare exactly.
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ sub: 'zoë' })), u('zoë'))), 'ok');
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ sub: 'a\u0000b' })), new Uint8Array([0x61, 0, 0x62]))), 'ok');
});

test('a user whose bytes are not valid UTF-8 never matches a sub', () => {
  const v = verifier(manualClock());
  // 0xC3 0x28 is invalid; a lenient decoder would turn it into U+FFFD "(".
  const user = new Uint8Array([0x61, 0xc3, 0x28]);
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ sub: 'a\ufffd(' })), user)), 'subject_mismatch');
  // A leading byte-order mark is part of the user, not decoration to strip.
  const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...u('alice')]);
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ sub: 'alice' })), bom)), 'subject_mismatch');
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ sub: '\ufeffalice' })), bom)), 'ok');
  // A lone surrogate in sub is not the UTF-8 of any byte string.
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ sub: '\ud800' })), new Uint8Array([0xef, 0xbf, 0xbd]))), 'subject_mismatch');
});

// ---------------------------------------------------------------------------------------------
// Revocation

test('a revoked jti is refused', () => {
  const clock = manualClock();
  const revocations = new Revocations({ clock });
  const v = verifier(clock, { revocations });
  const token = forge(HS256, claims({ jti: 'tok-7' }));
  assert.equal(refusedWith(v.verify(token, u('alice'))), 'ok');
  assert.equal(revocations.revoke('tok-7', T0 + 3600).ok, true);
  assert.equal(refusedWith(v.verify(token, u('alice'))), 'token_revoked');
  // Other tokens of the same user are unaffected.
  assert.equal(refusedWith(v.verify(forge(HS256, claims({ jti: 'tok-8' })), u('alice'))), 'ok');
  assert.equal(refusedWith(v.verify(forge(HS256, claims()), u('alice'))), 'ok');
});

test('rules are checked in the documented order', () => {
  const clock = manualClock();
  const revocations = new Revocations({ clock });
  revocations.revoke('r');
  const v = verifier(clock, { revocations });
  const worst = { sub: 'mallory', iss: 'x', iat: T0 - 10 * DAY, exp: T0 - 1, nbf: T0 + 5, jti: 'r' };
  const steps: Array<[Record<string, unknown>, string]> = [
    [worst, 'token_expired'],
    [{ ...worst, exp: T0 + 2 * DAY }, 'token_not_yet_valid'],
    [{ ...worst, exp: T0 + 2 * DAY, nbf: T0 }, 'wrong_issuer'],
    [{ ...worst, exp: T0 + 2 * DAY, nbf: T0, iss: 'iris' }, 'subject_mismatch'],
    [{ ...worst, exp: T0 + 2 * DAY, nbf: T0, iss: 'iris', sub: 'alice' }, 'lifetime_too_long'],
    [{ ...worst, exp: T0 + 60, nbf: T0, iss: 'iris', sub: 'alice', iat: T0 }, 'token_revoked'],
    [{ ...worst, exp: T0 + 60, nbf: T0, iss: 'iris', sub: 'alice', iat: T0, jti: 'fine' }, 'ok'],
  ];
  for (const [c, code] of steps) assert.equal(refusedWith(v.verify(forge(HS256, c), u('alice'))), code, JSON.stringify(c));
});

// ---------------------------------------------------------------------------------------------
// Configuration

test('a secret shorter than 32 bytes is refused with a typed error', async () => {
  const clock = manualClock();
  assert.deepEqual(JwtVerifier.create({ secret: 'x'.repeat(31), clock }), {
    ok: false,
    error: { code: 'secret_too_short', minBytes: 32, actualBytes: 31 },
  });
  assert.deepEqual(JwtVerifier.create({ secret: new Uint8Array(0), clock }), {
    ok: false,
    error: { code: 'secret_too_short', minBytes: 32, actualBytes: 0 },
  });
  assert.equal(JwtVerifier.create({ secret: 'x'.repeat(32), clock }).ok, true);
  assert.equal(JwtVerifier.create({ secret: new Uint8Array(32), clock }).ok, true);
  // A string secret counts its UTF-8 bytes: 16 × "é" is 32 bytes.
  assert.equal(JwtVerifier.create({ secret: 'é'.repeat(16), clock }).ok, true);
  assert.deepEqual(await issueToken('short', { sub: 'alice', ttlSeconds: 60 }, clock), {
    ok: false,
    error: { code: 'secret_too_short', minBytes: 32, actualBytes: 5 },
  });
});

test('unusable verifier and issuer options are named', async () => {
  const clock = manualClock();
  const bad = (o: Partial<JwtVerifierOptions>): string => {
    const r = JwtVerifier.create({ secret: SECRET, clock, ...o });
    return r.ok ? 'ok' : r.error.code === 'invalid_option' ? r.error.key : r.error.code;
  };
  assert.equal(bad({ issuer: '' }), 'issuer');
  assert.equal(bad({ maxLifetimeSeconds: 0 }), 'maxLifetimeSeconds');
  assert.equal(bad({ maxLifetimeSeconds: Number.NaN }), 'maxLifetimeSeconds');
  assert.equal(bad({ clockToleranceSeconds: -1 }), 'clockToleranceSeconds');
  const over = await issueToken(SECRET, { sub: 'alice', ttlSeconds: DAY + 1 }, clock);
  assert.ok(!over.ok && over.error.code === 'invalid_option' && over.error.key === 'ttlSeconds');
  const empty = await issueToken(SECRET, { sub: '', ttlSeconds: 60 }, clock);
  assert.ok(!empty.ok && empty.error.code === 'invalid_option' && empty.error.key === 'sub');
});

// ---------------------------------------------------------------------------------------------
// Cross-check with jose

test('on random tokens the verifier agrees with jose, plus the lifetime cap jose does not have', async () => {
  const secret = SECRET.padEnd(64, '#');
  // Weighted towards valid fields, so both verdicts are common.
  const mostly = <T>(good: T, ...bad: T[]): fc.Arbitrary<T> =>
    fc.oneof({ weight: 4, arbitrary: fc.constant(good) }, { weight: 1, arbitrary: fc.constantFrom(...bad) });
  const model = fc.record({
    alg: mostly('HS256', 'HS384', 'HS512'),
    rightSecret: mostly(true, false),
    sub: mostly<string | undefined>('alice', 'bob', 'zoë', undefined),
    iss: mostly<string | undefined>('iris', 'other', undefined),
    expOffset: fc.integer({ min: -5, max: DAY + 5 }),
    iatOffset: fc.option(fc.integer({ min: -DAY, max: 10 }), { nil: undefined }),
    nbfOffset: fc.option(fc.integer({ min: -5, max: 5 }), { nil: undefined }),
    jti: fc.option(fc.constantFrom('a', 'b'), { nil: undefined }),
    nowMsOffset: fc.integer({ min: 0, max: 999 }),
    user: mostly('alice', 'zoë'),
  });
  const verdicts = { accepted: 0, refused: 0 };
  await fc.assert(
    fc.asyncProperty(model, async (m) => {
      const clock = manualClock(T0 * 1000 + m.nowMsOffset);
      const revocations = new Revocations({ clock });
      revocations.revoke('b');
      const r = JwtVerifier.create({ secret, clock, revocations });
      assert.ok(r.ok);
      const payload: Record<string, string | number> = { exp: T0 + m.expOffset };
      if (m.sub !== undefined) payload.sub = m.sub;
      if (m.iss !== undefined) payload.iss = m.iss;
      if (m.iatOffset !== undefined) payload.iat = T0 + m.iatOffset;
      if (m.nbfOffset !== undefined) payload.nbf = T0 + m.nbfOffset;
      if (m.jti !== undefined) payload.jti = m.jti;
      const token = await new SignJWT(payload).setProtectedHeader({ alg: m.alg }).sign(u(m.rightSecret ? secret : OTHER_SECRET.padEnd(64, '#')));

      const ours = r.verifier.verify(token, u(m.user));
      let joseOk = true;
      try {
        await jwtVerify(token, u(secret), {
          algorithms: ['HS256'],
          issuer: 'iris',
          subject: m.user,
          requiredClaims: ['exp'],
          currentDate: new Date(clock.wall),
        });
      } catch {
        joseOk = false;
      }
      const iat = payload.iat as number | undefined;
      const startMs = iat === undefined ? clock.wall : Math.min(iat * 1000, clock.wall);
      const lifetimeOk = (T0 + m.expOffset) * 1000 - startMs <= DAY * 1000;
      const expected = joseOk && lifetimeOk && m.jti !== 'b';
      assert.equal(ours.ok, expected, `ours ${refusedWith(ours)}, jose ${joseOk}, lifetimeOk ${lifetimeOk}`);
      verdicts[ours.ok ? 'accepted' : 'refused']++;
    }),
    { numRuns: 300, seed: 20261121 },
  );
  assert.ok(verdicts.accepted >= 10 && verdicts.refused >= 10, JSON.stringify(verdicts));
});
