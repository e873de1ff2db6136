/**
 * The registry of live token sessions on manual time: a revoked jti ends exactly the sessions
 * logged in with it; a session ends when its token expires (within one resolution step, never
 * before); unregistered sessions are never told anything; a token already revoked or expired
 * at registration ends at once; one timer serves every session and stops with the registry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LIVE_TOKEN_EXPIRY_RESOLUTION_MS, LiveTokens, TOKEN_EXPIRED, TOKEN_REVOKED, type TokenEnded } from '../../edge/auth/LiveTokens.js';
import { Revocations } from '../../edge/auth/Revocations.js';
import type { Pid } from '../../runtime/Pid.js';
import { newScheduler } from '../support/kernel.js';
import { manualTime, type ManualTime } from '../support/manualTime.js';

interface Fixture {
  time: ManualTime;
  live: LiveTokens;
  revocations: Revocations;
  /** Every end notice, as [pid label, code]. */
  ended: Array<[string, TokenEnded['code']]>;
  pid(label: string): Pid;
}

function fixture(): Fixture {
  const time = manualTime();
  const s = newScheduler(time.env);
  const labels = new Map<string, string>();
  const ended: Array<[string, TokenEnded['code']]> = [];
  const revocations = new Revocations({ clock: time.env.clock });
  const live = new LiveTokens({
    clock: time.env.clock,
    timers: time.env.timers,
    revocations,
    end: (pid, e) => ended.push([labels.get(pid.key) ?? '?', e.code]),
  });
  return {
    time,
    live,
    revocations,
    ended,
    pid(label) {
      const p = s.spawn(() => () => {});
      labels.set(p.key, label);
      return p;
    },
  };
}

const inMs = (f: Fixture, ms: number): number => f.time.env.clock.wallMs() + ms;

test('a revoked jti ends every live session logged in with it, with token_revoked, and no other', () => {
  const f = fixture();
  f.live.register(f.pid('a1'), { jti: 'j-a', expiresAtMs: inMs(f, 600_000) });
  f.live.register(f.pid('a2'), { jti: 'j-a', expiresAtMs: inMs(f, 600_000) });
  f.live.register(f.pid('b'), { jti: 'j-b', expiresAtMs: inMs(f, 600_000) });
  f.live.register(f.pid('none'), { expiresAtMs: inMs(f, 600_000) });
  assert.equal(f.live.size, 4);
  assert.equal(f.live.revoked('j-a'), 2);
  assert.deepEqual(f.ended, [
    ['a1', 'token_revoked'],
    ['a2', 'token_revoked'],
  ]);
  assert.equal(f.live.revoked('j-a'), 0, 'a second revocation finds nobody');
  assert.equal(f.live.revoked('j-unknown'), 0);
  assert.equal(f.live.size, 2);
});

test('a session ends when its token expires: not before exp, and within one resolution step after it', async () => {
  const f = fixture();
  f.live.register(f.pid('early'), { jti: 'j1', expiresAtMs: inMs(f, 10_000) });
  f.live.register(f.pid('late'), { expiresAtMs: inMs(f, 25_500) });
  await f.time.advance(9_999);
  assert.deepEqual(f.ended, []);
  await f.time.advance(1 + LIVE_TOKEN_EXPIRY_RESOLUTION_MS);
  assert.deepEqual(f.ended, [['early', 'token_expired']]);
  await f.time.advance(25_500 - 11_000 - 1);
  assert.deepEqual(f.ended, [['early', 'token_expired']]);
  await f.time.advance(1 + LIVE_TOKEN_EXPIRY_RESOLUTION_MS);
  assert.deepEqual(f.ended, [
    ['early', 'token_expired'],
    ['late', 'token_expired'],
  ]);
  assert.equal(f.live.size, 0);
  assert.equal(f.time.pendingTimers(), 0, 'no timer is left once no session is registered');
  assert.equal(f.live.revoked('j1'), 0, 'an expired session is no longer indexed by its jti');
});

test('an unregistered session is never ended, neither by revocation nor by expiry', async () => {
  const f = fixture();
  const h = f.live.register(f.pid('gone'), { jti: 'j1', expiresAtMs: inMs(f, 5_000) });
  f.live.unregister(h);
  f.live.unregister(h);
  assert.equal(f.live.size, 0);
  assert.equal(f.live.revoked('j1'), 0);
  await f.time.advance(10_000);
  assert.deepEqual(f.ended, []);
});

test('a token already revoked or expired when the session registers ends it at once', () => {
  const f = fixture();
  assert.equal(f.revocations.revoke('j-revoked').ok, true);
  const a = f.live.register(f.pid('revoked'), { jti: 'j-revoked', expiresAtMs: inMs(f, 60_000) });
  const b = f.live.register(f.pid('expired'), { jti: 'j-fine', expiresAtMs: inMs(f, 0) });
  assert.deepEqual(f.ended, [
    ['revoked', 'token_revoked'],
    ['expired', 'token_expired'],
  ]);
  assert.equal(a.live, false);
  assert.equal(b.live, false);
  assert.equal(f.live.size, 0);
  assert.equal(f.time.pendingTimers(), 0);
});

test('one timer serves every session, and it moves earlier only for an earlier deadline', async () => {
  const f = fixture();
  for (let i = 0; i < 1000; i++) f.live.register(f.pid(`s${i}`), { jti: `j${i}`, expiresAtMs: inMs(f, 60_000 + i * 10) });
  assert.equal(f.time.pendingTimers(), 1);
  f.live.register(f.pid('soon'), { expiresAtMs: inMs(f, 2_000) });
  assert.equal(f.time.pendingTimers(), 1);
  await f.time.advance(2_000 + LIVE_TOKEN_EXPIRY_RESOLUTION_MS);
  assert.deepEqual(f.ended, [['soon', 'token_expired']]);
  assert.equal(f.time.pendingTimers(), 1, 're-armed for the next deadline');
  await f.time.advance(60_000 + 999 * 10);
  assert.equal(f.ended.length, 1001);
  assert.equal(f.live.size, 0);
  assert.equal(f.time.pendingTimers(), 0);
});

test('sessions that come and go leave nothing behind: 100,000 register/unregister pairs end no one and keep one timer', async () => {
  const f = fixture();
  const keep = f.live.register(f.pid('keeper'), { jti: 'keep', expiresAtMs: inMs(f, 3_600_000) });
  const p = f.pid('churn');
  for (let i = 0; i < 100_000; i++) f.live.unregister(f.live.register(p, { jti: `c${i % 10}`, expiresAtMs: inMs(f, 1_000 + i) }));
  assert.equal(f.live.size, 1);
  assert.equal(f.time.pendingTimers(), 1);
  await f.time.advance(200_000);
  assert.deepEqual(f.ended, []);
  assert.equal(f.live.revoked('keep'), 1);
  assert.equal(keep.live, false);
  assert.deepEqual(f.ended, [['keeper', 'token_revoked']]);
});

test('close stops the timer and forgets every session without ending any', async () => {
  const f = fixture();
  f.live.register(f.pid('x'), { jti: 'jx', expiresAtMs: inMs(f, 1_000) });
  f.live.close();
  assert.equal(f.time.pendingTimers(), 0);
  assert.equal(f.live.size, 0);
  await f.time.advance(5_000);
  assert.equal(f.live.revoked('jx'), 0);
  assert.equal(f.live.register(f.pid('y'), { expiresAtMs: inMs(f, 1_000) }).live, false);
  assert.deepEqual(f.ended, []);
  assert.equal(TOKEN_REVOKED.code, 'token_revoked');
  assert.equal(TOKEN_EXPIRED.code, 'token_expired');
});

test('sessions expiring milliseconds apart share timer firings: 1000 expiries 1 ms apart take at most two firings', async () => {
  const f = fixture();
  let firings = 0;
  const timers = f.time.env.timers;
  const counting = new LiveTokens({
    clock: f.time.env.clock,
    timers: { ...timers, setTimer: (ms, fn) => timers.setTimer(ms, () => (firings++, fn())) },
    end: (_pid, e) => f.ended.push(['any', e.code]),
  });
  const p = f.pid('many');
  for (let i = 0; i < 1000; i++) counting.register(p, { expiresAtMs: inMs(f, 10_000 + i) });
  await f.time.advance(10_000 + 999 + LIVE_TOKEN_EXPIRY_RESOLUTION_MS);
  assert.equal(f.ended.length, 1000);
  assert.ok(firings <= 2, `${firings} firings`);
});
