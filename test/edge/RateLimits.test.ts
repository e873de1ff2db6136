/**
 * The edge's abuse limits on a manual clock: the generous message default lets an old client's
 * back-to-back burst through, each limiter answers with an exact retryAfterMs, the connection cap
 * and the failed-login limit (per account and source, never a lockout of the account) behave as documented, and memory stays bounded under floods of
 * distinct users and addresses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Clock } from '../../runtime/Env.js';
import { RateLimits, ipRateKey, type RateLimitsConfig } from '../../edge/limits/RateLimits.js';
import {
  CONNECTION_CAP_RETRY_AFTER_MS,
  CONNECTION_RATE_PER_IP_DEFAULT,
  FAILED_LOGINS_PER_SOURCE_DEFAULT,
  MESSAGE_RATE_DEFAULT,
} from '../../edge/limits/defaults.js';
import { TokenBucket } from '../../edge/limits/TokenBucket.js';
import { manualClock } from '../support/manualClock.js';

function limits(clock: Clock, overrides: Partial<RateLimitsConfig> = {}): RateLimits {
  const r = RateLimits.create(clock, overrides);
  assert.ok(r.ok, 'valid configuration');
  return r.limits;
}

const u = (s: string): Uint8Array => new TextEncoder().encode(s);

// ---------------------------------------------------------------------------------------------
// Messages

test('by default an old client sending 150 messages back to back gets every one through', () => {
  const rl = limits(manualClock());
  for (let i = 0; i < 150; i++) assert.deepEqual(rl.message(u('alice')), { ok: true }, `message ${i}`);
});

test('the default message burst is 1000, then one message per 5 ms (200/s) with an exact retryAfterMs', () => {
  assert.deepEqual(MESSAGE_RATE_DEFAULT, { burst: 1000, refill: 200, intervalMs: 1000 });
  const clock = manualClock(12_345);
  const rl = limits(clock);
  for (let i = 0; i < 1000; i++) assert.equal(rl.message(u('alice')).ok, true);
  assert.deepEqual(rl.message(u('alice')), { ok: false, retryAfterMs: 5 });
  clock.now += 4;
  assert.deepEqual(rl.message(u('alice')), { ok: false, retryAfterMs: 1 });
  clock.now += 1;
  assert.deepEqual(rl.message(u('alice')), { ok: true });
  assert.equal(rl.stats().refusedMessages, 2);
});

test('users are limited separately, by their exact bytes', () => {
  const rl = limits(manualClock(), { messages: { burst: 2, refill: 1, intervalMs: 1000 } });
  assert.equal(rl.message(u('alice')).ok, true);
  assert.equal(rl.message(u('alice')).ok, true);
  assert.equal(rl.message(u('alice')).ok, false);
  assert.equal(rl.message(u('bob')).ok, true);
  assert.equal(rl.message(new Uint8Array([0x61, 0x6c, 0x69, 0x63, 0x65, 0])).ok, true, 'alice + NUL is another user');
  // A view into a larger buffer is keyed by its own bytes only.
  const big = u('xxbobxx');
  assert.equal(rl.message(big.subarray(2, 5)).ok, true);
  assert.equal(rl.message(big.subarray(2, 5)).ok, false, 'the third message of bob');
});

test('a batch costs one token per item, and a batch above the burst costs the whole burst', () => {
  const clock = manualClock();
  const rl = limits(clock, { messages: { burst: 10, refill: 10, intervalMs: 1000 } });
  assert.equal(rl.message(u('alice'), 7).ok, true);
  assert.deepEqual(rl.message(u('alice'), 4), { ok: false, retryAfterMs: 100 });
  clock.now += 700;
  assert.equal(rl.message(u('alice'), 25).ok, true, 'a full bucket lets an oversized batch through');
  assert.deepEqual(rl.message(u('alice'), 25), { ok: false, retryAfterMs: 1000 });
});

// ---------------------------------------------------------------------------------------------
// Connections

test('connections per IP: the burst passes, then an exact retryAfterMs', () => {
  const clock = manualClock();
  const rl = limits(clock);
  const { burst, refill, intervalMs } = CONNECTION_RATE_PER_IP_DEFAULT;
  for (let i = 0; i < burst; i++) assert.equal(rl.connectionOpened('203.0.113.9').ok, true);
  assert.deepEqual(rl.connectionOpened('203.0.113.9'), { ok: false, retryAfterMs: intervalMs / refill });
  assert.equal(rl.connectionOpened('203.0.113.10').ok, true, 'another address has its own bucket');
  assert.equal(rl.connectionOpened('::ffff:203.0.113.9').ok, false, 'IPv4-mapped IPv6 is the same address');
  assert.equal(rl.stats().openConnections, burst + 1);
});

test('IPv6 addresses share a bucket per /64', () => {
  const rl = limits(manualClock(), { connectionsPerIp: { burst: 2, refill: 1, intervalMs: 1000 } });
  assert.equal(rl.connectionOpened('2001:db8:1:2::1').ok, true);
  assert.equal(rl.connectionOpened('2001:0db8:0001:0002:ffff:ffff:ffff:ffff').ok, true);
  assert.equal(rl.connectionOpened('2001:DB8:1:2:abcd::7%eth0').ok, false, 'same /64, any spelling');
  assert.equal(rl.connectionOpened('2001:db8:1:3::1').ok, true, 'the next /64');
});

test('ipRateKey normalises addresses', () => {
  assert.equal(ipRateKey('192.0.2.1'), '192.0.2.1');
  assert.equal(ipRateKey('::FFFF:192.0.2.1'), '192.0.2.1');
  assert.equal(ipRateKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(ipRateKey('2001:db8:0:0:1:2:3:4'), '2001:db8:0:0::/64');
  assert.equal(ipRateKey('::1'), '0:0:0:0::/64');
  assert.equal(ipRateKey('fe80::1%lo0'), 'fe80:0:0:0::/64');
  assert.equal(ipRateKey('64:ff9b::192.0.2.33'), '64:ff9b:0:0::/64');
  assert.equal(ipRateKey('1::2::3'), '1::2::3', 'unparseable text is used as given');
  assert.equal(ipRateKey('x'.repeat(2000)).length, 512);
});

test('loopback is exempt from the per-IP rate by default, but not from the connection cap', () => {
  const rl = limits(manualClock(), { connectionsPerIp: { burst: 1, refill: 1, intervalMs: 1000 }, maxConnections: 5 });
  for (let i = 0; i < 5; i++) assert.equal(rl.connectionOpened(i % 2 === 0 ? '127.0.0.1' : '::1').ok, true);
  assert.deepEqual(rl.connectionOpened('127.0.0.1'), { ok: false, retryAfterMs: CONNECTION_CAP_RETRY_AFTER_MS });
  const strict = limits(manualClock(), { connectionsPerIp: { burst: 1, refill: 1, intervalMs: 1000 }, connectionRateExemptIps: [] });
  assert.equal(strict.connectionOpened('127.0.0.1').ok, true);
  assert.equal(strict.connectionOpened('127.0.0.1').ok, false);
});

test('the connection cap refuses the connection over it until one closes', () => {
  const rl = limits(manualClock(), { maxConnections: 3 });
  for (const ip of ['198.51.100.1', '198.51.100.2', '198.51.100.3']) assert.equal(rl.connectionOpened(ip).ok, true);
  assert.deepEqual(rl.connectionOpened('198.51.100.4'), { ok: false, retryAfterMs: CONNECTION_CAP_RETRY_AFTER_MS });
  rl.connectionClosed();
  assert.equal(rl.connectionOpened('198.51.100.4').ok, true);
  assert.equal(rl.stats().openConnections, 3);
  assert.equal(rl.stats().refusedConnections, 1);
  for (let i = 0; i < 10; i++) rl.connectionClosed();
  assert.equal(rl.stats().openConnections, 0, 'never below zero');
});

test('a connection refused by the cap spends no per-IP token', () => {
  const rl = limits(manualClock(), { maxConnections: 1, connectionsPerIp: { burst: 1, refill: 1, intervalMs: 60_000 } });
  assert.equal(rl.connectionOpened('198.51.100.1').ok, true);
  assert.equal(rl.connectionOpened('198.51.100.2').ok, false);
  rl.connectionClosed();
  assert.equal(rl.connectionOpened('198.51.100.2').ok, true);
});

// ---------------------------------------------------------------------------------------------
// Failed logins

test('failed logins of one account from one address are refused after the allowance, and it lifts one try per refill', () => {
  const clock = manualClock();
  const rl = limits(clock);
  const { burst, intervalMs, refill } = FAILED_LOGINS_PER_SOURCE_DEFAULT;
  for (let i = 0; i < burst; i++) assert.deepEqual(rl.loginFailed(u('alice'), '203.0.113.7'), { ok: true }, `failure ${i + 1}`);
  assert.deepEqual(rl.loginFailed(u('alice'), '203.0.113.7'), { ok: false, retryAfterMs: intervalMs / refill });
  clock.now += intervalMs / refill - 1;
  assert.equal(rl.loginFailed(u('alice'), '203.0.113.7').ok, false);
  clock.now += 1;
  assert.equal(rl.loginFailed(u('alice'), '203.0.113.7').ok, true);
  assert.equal(rl.loginFailed(u('alice'), '203.0.113.7').ok, false);
  assert.equal(rl.stats().refusedLogins, 3);
});

test('failed logins are counted per (account, source): another address or another account keeps its own allowance', () => {
  const rl = limits(manualClock(), { failedLogins: { burst: 2, refill: 1, intervalMs: 60_000 } });
  assert.equal(rl.stats().trackedLoginSources, 0);
  for (let i = 0; i < 2; i++) assert.equal(rl.loginFailed(u('carol'), '198.51.100.1').ok, true);
  assert.equal(rl.loginFailed(u('carol'), '198.51.100.1').ok, false);
  assert.equal(rl.loginFailed(u('carol'), '198.51.100.2').ok, true, 'the same account from another address');
  assert.equal(rl.loginFailed(u('dave'), '198.51.100.1').ok, true, 'another account from the same address');
  // IPv6 sources share an allowance per /64, as the per-IP connection rate does.
  assert.equal(rl.loginFailed(u('carol'), '2001:db8:1:2::a').ok, true);
  assert.equal(rl.loginFailed(u('carol'), '2001:db8:1:2:ffff::b').ok, true);
  assert.equal(rl.loginFailed(u('carol'), '2001:db8:1:2::c').ok, false);
  assert.equal(rl.loginFailed(u('carol'), '2001:db8:1:3::a').ok, true, 'another /64');
  // A user's bytes cannot be confused with an address: NUL inside the user is its own account.
  assert.equal(rl.loginFailed(Uint8Array.of(0x63, 0, 0x31), '198.51.100.1').ok, true);
  assert.equal(rl.stats().trackedLoginSources, 6);
});

// ---------------------------------------------------------------------------------------------
// Configuration and memory

test('an unusable configuration is refused with the key and the fix', () => {
  const clock = manualClock();
  const err = (o: Partial<RateLimitsConfig>): string => {
    const r = RateLimits.create(clock, o);
    return r.ok ? 'ok' : `${r.error.key}: ${r.error.reason}`;
  };
  assert.equal(err({ messages: { burst: 0, refill: 1, intervalMs: 1000 } }), 'messages: burst must be a positive whole number (got 0)');
  assert.equal(err({ connectionsPerIp: { burst: 1, refill: 0.5, intervalMs: 1000 } }), 'connectionsPerIp: refill must be a positive whole number (got 0.5)');
  assert.match(err({ failedLogins: { burst: 1, refill: 1, intervalMs: -5 } }), /^failedLogins: intervalMs/);
  assert.match(err({ maxConnections: 0 }), /^maxConnections: /);
  assert.match(err({ maxTrackedKeys: 1.5 }), /^maxTrackedKeys: /);
  assert.equal(err({}), 'ok');
});

test('a flood of distinct addresses and users never holds more than maxTrackedKeys buckets per table', () => {
  const clock = manualClock();
  const rl = limits(clock, { maxTrackedKeys: 1000, connectionsPerIp: { burst: 5, refill: 1, intervalMs: 1000 } });
  for (let i = 0; i < 100_000; i++) {
    rl.connectionOpened(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    rl.connectionClosed();
    rl.message(u(`user-${i}`));
    rl.loginFailed(u(`account-${i}`), '192.0.2.1');
  }
  const s = rl.stats();
  assert.equal(s.trackedIps, 1000);
  assert.equal(s.trackedUsers, 1000);
  assert.equal(s.trackedLoginSources, 1000);
  assert.equal(s.evictedBeforeRefill, 3 * (100_000 - 1000));
  // The most recent keys are the ones kept: the last address still has its spent token.
  const last = `10.1.134.159`;
  for (let i = 0; i < 4; i++) assert.equal(rl.connectionOpened(last).ok, true);
  assert.equal(rl.connectionOpened(last).ok, false);
});

test('buckets that have refilled are dropped as traffic goes on, or all at once by sweep', () => {
  const clock = manualClock();
  const rl = limits(clock, { messages: { burst: 10, refill: 10, intervalMs: 1000 } });
  for (let i = 0; i < 500; i++) rl.message(u(`idle-${i}`), 5);
  assert.equal(rl.stats().trackedUsers, 500);
  clock.now += 100; // one of five tokens back: not yet refilled, nothing may go
  for (let i = 0; i < 50; i++) rl.message(u('active'));
  assert.equal(rl.stats().trackedUsers, 501);
  clock.now += 1_000; // every idle bucket has refilled
  for (let i = 0; i < 200; i++) {
    clock.now += 100;
    rl.message(u('active'));
  }
  // Each check drops up to two refilled buckets from the least recently used end.
  assert.equal(rl.stats().trackedUsers, 501 - 400);
  assert.equal(rl.sweep(), 100);
  assert.equal(rl.stats().trackedUsers, 1);
  assert.equal(rl.stats().evictedBeforeRefill, 0);
});

test('a single TokenBucket on a manual clock refills continuously', () => {
  const clock = manualClock();
  const b = new TokenBucket({ burst: 3, refill: 1, intervalMs: 300 }, clock);
  assert.equal(b.take(3).ok, true);
  assert.deepEqual(b.take(), { ok: false, retryAfterMs: 300 });
  clock.now += 150;
  assert.deepEqual(b.take(), { ok: false, retryAfterMs: 150 });
  assert.deepEqual(b.take(2), { ok: false, retryAfterMs: 450 });
  clock.now += 150;
  assert.equal(b.available(), 1);
  assert.throws(() => b.take(4), RangeError, 'asking for more than the burst is a bug');
  assert.throws(() => new TokenBucket({ burst: 1, refill: 0, intervalMs: 1 }, clock), RangeError);
});
