/**
 * The WebSocket Origin allow-list: the list syntax (exact origins, any port, `*`), exact
 * matching with case and default ports normalised, the opaque `null` origin refused, and a
 * missing header (a non-browser client) allowed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OriginPolicy } from '../../edge/listeners/OriginPolicy.js';
import { DEV_WS_ALLOWED_ORIGINS } from '../../edge/listeners/ListenerSettings.js';

/** A policy from comma-separated text, as the environment or a flag gives the list. */
function policy(list: string | readonly string[]): OriginPolicy {
  const r = OriginPolicy.parse(typeof list === 'string' ? list.split(',') : list);
  assert.ok(r.ok, r.ok ? '' : `${r.entry}: ${r.reason}`);
  return r.policy;
}

const allowed = (p: OriginPolicy, origin: string): boolean => p.check(origin).ok;

test('a request without an Origin header is allowed by every list, the empty one included', () => {
  assert.deepEqual(policy('').check(''), { ok: true });
  assert.deepEqual(policy('https://a.example').check(''), { ok: true });
});

test('an exact entry matches only its scheme, host and port; default ports may be written or left out', () => {
  const p = policy('https://chat.example.com, http://tools.example.com:8080');
  assert.equal(allowed(p, 'https://chat.example.com'), true);
  assert.equal(allowed(p, 'https://chat.example.com:443'), true);
  assert.equal(allowed(p, 'HTTPS://Chat.Example.COM'), true);
  assert.equal(allowed(p, 'http://tools.example.com:8080'), true);
  assert.equal(allowed(p, 'http://chat.example.com'), false);
  assert.equal(allowed(p, 'https://chat.example.com:8443'), false);
  assert.equal(allowed(p, 'https://evil.chat.example.com'), false);
  assert.equal(allowed(p, 'https://chat.example.com.evil.example'), false);
  assert.equal(allowed(p, 'http://tools.example.com'), false);
  assert.deepEqual(p.check('https://evil.example'), { ok: false, origin: 'https://evil.example' });
});

test('host:* matches any port of that scheme and host, and no other host', () => {
  const p = policy('http://localhost:*');
  assert.equal(allowed(p, 'http://localhost'), true);
  assert.equal(allowed(p, 'http://localhost:5173'), true);
  assert.equal(allowed(p, 'https://localhost:5173'), false);
  assert.equal(allowed(p, 'http://localhost.evil.example:5173'), false);
  assert.equal(allowed(p, 'http://127.0.0.1:5173'), false);
});

test('the dev default allows loopback pages over http and https and nothing else', () => {
  const p = policy(DEV_WS_ALLOWED_ORIGINS);
  for (const o of ['http://localhost:3000', 'http://127.0.0.1:8086', 'http://[::1]:9000', 'https://localhost', 'https://[::1]']) assert.equal(allowed(p, o), true, o);
  for (const o of ['http://10.0.0.1:3000', 'https://example.com', 'http://[::2]:9000', 'null']) assert.equal(allowed(p, o), false, o);
});

test('the opaque origin null, malformed headers and pattern-like headers are refused; * allows every page', () => {
  const p = policy('http://localhost:*');
  for (const o of ['null', 'file://', 'http://localhost:*', 'http://localhost/', 'localhost', 'http://user@localhost']) assert.equal(allowed(p, o), false, o);
  const any = policy('*');
  assert.equal(any.allowsEveryOrigin, true);
  assert.equal(allowed(any, 'https://anything.example:1234'), true);
  assert.equal(allowed(any, 'null'), false);
});

test('a bad entry is reported with what an entry looks like', () => {
  for (const bad of ['chat.example.com', 'https://chat.example.com/', 'https://chat.example.com/app', 'https://*.example.com', 'https://x.example:70000']) {
    const r = OriginPolicy.parse(['http://localhost:*', bad]);
    assert.equal(r.ok, false, bad);
    if (!r.ok) {
      assert.equal(r.entry, bad);
      assert.match(r.reason, /^not an origin/);
    }
  }
});

test('the description lists the entries for the startup log, or says none', () => {
  assert.equal(policy('https://a.example,  http://localhost:*').description, 'https://a.example, http://localhost:*');
  assert.equal(policy(['https://a.example', ' http://localhost:* ']).description, 'https://a.example, http://localhost:*');
  assert.equal(policy(' ').description, '(none)');
  assert.equal(policy('').allowsBrowsers, false);
});
