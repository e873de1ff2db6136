/**
 * The registry of live token sessions: a revoked jti ends exactly the sessions logged in with
 * it, once; unregistered sessions are never told anything; a jti already revoked when the
 * session registers ends it at once; sessions that come and go leave nothing behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LiveTokens, TOKEN_REVOKED, type TokenEnded } from '../../edge/auth/LiveTokens.js';
import { Revocations } from '../../edge/auth/Revocations.js';
import type { Pid } from '../../runtime/Pid.js';
import { newScheduler } from '../support/kernel.js';
import { manualClock } from '../support/manualClock.js';

interface Fixture {
  live: LiveTokens;
  revocations: Revocations;
  /** Every end notice, as [pid label, code]. */
  ended: Array<[string, TokenEnded['code']]>;
  pid(label: string): Pid;
}

function fixture(): Fixture {
  const s = newScheduler();
  const labels = new Map<string, string>();
  const ended: Array<[string, TokenEnded['code']]> = [];
  const revocations = new Revocations({ clock: manualClock() });
  const live = new LiveTokens({ revocations, end: (pid, e) => ended.push([labels.get(pid.key) ?? '?', e.code]) });
  return {
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

test('a revoked jti ends every live session logged in with it, with token_revoked, once, and no other', () => {
  const f = fixture();
  f.live.register(f.pid('a1'), 'j-a');
  f.live.register(f.pid('a2'), 'j-a');
  f.live.register(f.pid('b'), 'j-b');
  assert.equal(f.live.size, 3);
  assert.equal(f.live.revoked('j-a'), 2);
  assert.deepEqual(f.ended, [
    ['a1', 'token_revoked'],
    ['a2', 'token_revoked'],
  ]);
  assert.equal(f.live.revoked('j-a'), 0, 'a second revocation finds nobody');
  assert.equal(f.live.revoked('j-unknown'), 0);
  assert.equal(f.live.size, 1);
  assert.deepEqual(TOKEN_REVOKED, { t: 'token_ended', code: 'token_revoked' });
});

test('an unregistered session is never ended, and unregistering twice changes nothing', () => {
  const f = fixture();
  const h = f.live.register(f.pid('gone'), 'j1');
  const other = f.live.register(f.pid('stays'), 'j1');
  f.live.unregister(h);
  f.live.unregister(h);
  assert.equal(f.live.size, 1);
  assert.equal(f.live.revoked('j1'), 1);
  assert.deepEqual(f.ended, [['stays', 'token_revoked']]);
  assert.equal(other.live, false);
  f.live.unregister(other);
  assert.equal(f.live.size, 0);
});

test('a jti already revoked when the session registers ends it at once', () => {
  const f = fixture();
  assert.equal(f.revocations.revoke('j-revoked').ok, true);
  const h = f.live.register(f.pid('late'), 'j-revoked');
  assert.equal(h.live, false);
  assert.deepEqual(f.ended, [['late', 'token_revoked']]);
  assert.equal(f.live.size, 0);
});

test('sessions that come and go leave nothing behind: 100,000 register/unregister pairs, then one revocation ends only the one left', () => {
  const f = fixture();
  const keep = f.live.register(f.pid('keeper'), 'c3');
  const p = f.pid('churn');
  for (let i = 0; i < 100_000; i++) f.live.unregister(f.live.register(p, `c${i % 10}`));
  assert.equal(f.live.size, 1);
  for (let i = 0; i < 10; i++) f.live.revoked(`c${i}`);
  assert.deepEqual(f.ended, [['keeper', 'token_revoked']]);
  assert.equal(keep.live, false);
  assert.equal(f.live.size, 0);
});
