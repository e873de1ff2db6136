/**
 * Configuration rules: defaults, layering, validation messages that name the key and the
 * fix, dev-mode loopback and tokenless warning, and the production safety checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_CONFIG, layerFromEnv, resolveConfig } from '../../server/NodeConfig.js';

const SECRET = 'x'.repeat(40);

test('defaults give a dev node on loopback with auth off and a loud warning', () => {
  const r = resolveConfig([]);
  assert.ok(r.ok);
  assert.equal(r.config.mode, 'dev');
  assert.equal(r.config.host, '127.0.0.1');
  assert.equal(r.config.port, 8085);
  assert.equal(r.config.auth_enabled, false);
  assert.ok(r.warnings.some((w) => w.startsWith('AUTH DISABLED')));
});

test('later layers override earlier ones and strings are coerced by type', () => {
  const r = resolveConfig([
    ['file', { port: 9000, inbox_cap: 5 }],
    ['env', layerFromEnv({ IRIS_PORT: '9001', IRIS_ALLOW_TABLE_NUKE: 'false' })],
  ]);
  assert.ok(r.ok);
  assert.equal(r.config.port, 9001);
  assert.equal(r.config.inbox_cap, 5);
  assert.equal(r.config.allow_table_nuke, false);
});

test('a bad value names the key, its source and what is expected', () => {
  const r = resolveConfig([['flags', { port: 'eighty' }]]);
  assert.ok(!r.ok);
  assert.deepEqual(r.problems, [{ key: 'port', message: "port (from flags): must be a whole number, got 'eighty'" }]);
});

test('an unknown key is refused with the list of known keys', () => {
  const r = resolveConfig([['file', { prot: 1 }]]);
  assert.ok(!r.ok);
  assert.equal(r.problems[0]!.key, 'prot');
  assert.match(r.problems[0]!.message, /unknown key; known keys are mode, node_name/);
});

test('production mode turns auth on and refuses a short secret with how to make one', () => {
  const r = resolveConfig([['file', { mode: 'production', jwt_secret: 'short' }]]);
  assert.ok(!r.ok);
  const p = r.problems.find((x) => x.key === 'jwt_secret');
  assert.ok(p);
  assert.match(p.message, /at least 32 bytes .* openssl rand/);
});

test('production mode refuses auth_enabled=false', () => {
  const r = resolveConfig([['file', { mode: 'production', jwt_secret: SECRET, auth_enabled: false }]]);
  assert.ok(!r.ok);
  assert.ok(r.problems.some((p) => p.key === 'auth_enabled'));
});

test('production mode refuses storage on tmpfs', () => {
  const r = resolveConfig([['file', { mode: 'production', jwt_secret: SECRET }]], () => true);
  assert.ok(!r.ok);
  assert.ok(r.problems.some((p) => p.key === 'wal_directory' && /tmpfs/.test(p.message)));
});

test('production mode with a good secret starts with auth on and may bind any address', () => {
  const r = resolveConfig([['file', { mode: 'production', jwt_secret: SECRET, host: '0.0.0.0' }]], () => false);
  assert.ok(r.ok);
  assert.equal(r.config.auth_enabled, true);
  assert.equal(r.config.host, '0.0.0.0');
});

test('dev mode keeps listeners on loopback even when another host is asked for', () => {
  const r = resolveConfig([['flags', { host: '0.0.0.0' }]]);
  assert.ok(r.ok);
  assert.equal(r.config.host, '127.0.0.1');
  assert.ok(r.warnings.some((w) => w.includes('loopback')));
});

test('dev mode with a secret turns auth on by default', () => {
  const r = resolveConfig([['env', layerFromEnv({ IRIS_JWT_SECRET: SECRET })]]);
  assert.ok(r.ok);
  assert.equal(r.config.auth_enabled, true);
});

test('the defaults record is frozen', () => {
  assert.ok(Object.isFrozen(DEFAULT_CONFIG));
});
