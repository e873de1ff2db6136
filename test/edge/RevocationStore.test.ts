/**
 * Durable revocations on real LMDB: a revocation holds at once, is answered only once it is on
 * disk, survives reopening the storage, is pruned once its token has expired, keeps one row
 * per jti; revocations from other nodes (apply, merge) are recorded the same way; and every
 * revocation reaches the live sessions holding the jti as a `token_ended` message to their
 * process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LiveTokens, type TokenEnded } from '../../edge/auth/LiveTokens.js';
import { REVOCATIONS_TABLE, RevocationStore, type RecordRevocationResult } from '../../edge/auth/RevocationStore.js';
import { REVOCATION_GRACE_MS, Revocations } from '../../edge/auth/Revocations.js';
import { silentLogger, type StorageEngine } from '../../runtime/Env.js';
import { newScheduler, spawnProbe, testEnv } from '../support/kernel.js';
import { manualClock, type ManualClock } from '../support/manualClock.js';
import { openStorage, tempDir } from '../support/storage.js';

async function open(storage: StorageEngine, clock: ManualClock, onRevoked?: (jti: string) => number) {
  const revocations = new Revocations({ clock });
  const opened = await RevocationStore.open({ storage, revocations, clock, log: silentLogger, ...(onRevoked !== undefined ? { onRevoked } : {}) });
  return { ...opened, revocations };
}

const rows = (storage: StorageEngine): Array<[number, string]> => storage.table(REVOCATIONS_TABLE).getRange({}).map((e) => [e.key[0] as number, e.key[1] as string]);

test('a revocation holds at once, is answered once durable, and is still in effect after the storage is reopened', async () => {
  const dir = tempDir();
  const clock = manualClock();
  try {
    let storage = openStorage(dir.path);
    const { store } = await open(storage, clock);
    const exp = Math.floor(clock.wallMs() / 1000) + 3600;
    const pending = store.revoke('jti-1', exp);
    assert.equal(store.isRevoked('jti-1'), true, 'in effect before the write settles');
    const untilMs = exp * 1000 + REVOCATION_GRACE_MS;
    assert.deepEqual(await pending, { ok: true, outcome: 'revoked', revocation: { jti: 'jti-1', untilMs }, sessionsEnded: 0 });
    assert.deepEqual(rows(storage), [[untilMs, 'jti-1']]);
    await storage.close();

    storage = openStorage(dir.path);
    const again = await open(storage, clock);
    assert.deepEqual(again.load, { loaded: 1, pruned: 0, refused: 0 });
    assert.equal(again.store.isRevoked('jti-1'), true);
    assert.equal(again.store.isRevoked('jti-2'), false);
    await storage.close();
  } finally {
    dir.remove();
  }
});

test('rows of expired revocations are removed at open and with later writes', async () => {
  const dir = tempDir();
  const clock = manualClock();
  try {
    let storage = openStorage(dir.path);
    const { store } = await open(storage, clock);
    const nowS = Math.floor(clock.wallMs() / 1000);
    for (const [jti, ttl] of [['short-1', 60], ['short-2', 120], ['long', 86_000]] as const) assert.equal((await store.revoke(jti, nowS + ttl)).ok, true);
    assert.equal(rows(storage).length, 3);
    clock.now += 60_000 + REVOCATION_GRACE_MS + 1; // short-1 is past its token's exp plus grace
    assert.deepEqual(await store.revoke('later', nowS + 3600), {
      ok: true,
      outcome: 'revoked',
      revocation: { jti: 'later', untilMs: (nowS + 3600) * 1000 + REVOCATION_GRACE_MS },
      sessionsEnded: 0,
    });
    assert.deepEqual(rows(storage).map((r) => r[1]), ['short-2', 'later', 'long']);
    await storage.close();

    clock.now += 3600_000 + REVOCATION_GRACE_MS; // short-2 and later expired too
    storage = openStorage(dir.path);
    const again = await open(storage, clock);
    assert.deepEqual(again.load, { loaded: 1, pruned: 2, refused: 0 });
    assert.deepEqual(rows(storage).map((r) => r[1]), ['long']);
    assert.equal(again.store.isRevoked('long'), true);
    await storage.close();
  } finally {
    dir.remove();
  }
});

test('revoking again keeps one row, with the later expiry; a shorter repeat changes nothing', async () => {
  const dir = tempDir();
  const clock = manualClock();
  try {
    const storage = openStorage(dir.path);
    const { store } = await open(storage, clock);
    const nowS = Math.floor(clock.wallMs() / 1000);
    await store.revoke('j', nowS + 600);
    const longer = await store.revoke('j', nowS + 1200);
    assert.equal(longer.ok && longer.outcome, 'revoked');
    const shorter = await store.revoke('j', nowS + 300);
    assert.deepEqual(shorter, { ok: true, outcome: 'already_revoked', revocation: { jti: 'j', untilMs: (nowS + 1200) * 1000 + REVOCATION_GRACE_MS }, sessionsEnded: 0 });
    assert.deepEqual(rows(storage), [[(nowS + 1200) * 1000 + REVOCATION_GRACE_MS, 'j']]);
    await storage.close();
  } finally {
    dir.remove();
  }
});

test('refusals are typed: an ill-formed jti, a full set; a token already expired stores nothing', async () => {
  const dir = tempDir();
  const clock = manualClock();
  try {
    const storage = openStorage(dir.path);
    const revocations = new Revocations({ clock, maxEntries: 1 });
    const { store } = await RevocationStore.open({ storage, revocations, clock, log: silentLogger });
    const nowS = Math.floor(clock.wallMs() / 1000);
    const code = (r: RecordRevocationResult): string => (r.ok ? r.outcome : r.code);
    assert.equal(code(await store.revoke('', nowS + 60)), 'invalid_jti');
    assert.equal(code(await store.revoke('bad\uD800', nowS + 60)), 'invalid_jti', 'a lone surrogate cannot be stored');
    assert.equal(code(await store.revoke('x'.repeat(257), nowS + 60)), 'invalid_jti');
    assert.deepEqual(await store.revoke('dead', nowS - 3600), { ok: true, outcome: 'already_expired', revocation: null, sessionsEnded: 0 });
    assert.equal((await store.revoke('one', nowS + 60)).ok, true);
    assert.equal(code(await store.revoke('two', nowS + 60)), 'revocations_full');
    assert.deepEqual(rows(storage).map((r) => r[1]), ['one']);
    await storage.close();
  } finally {
    dir.remove();
  }
});

test('revocations from another node (apply, merge) are recorded durably like local ones', async () => {
  const dir = tempDir();
  const clock = manualClock();
  try {
    const storage = openStorage(dir.path);
    const { store } = await open(storage, clock);
    const until = clock.wallMs() + 600_000;
    assert.deepEqual(await store.apply({ jti: 'remote-1', untilMs: until }), { ok: true, outcome: 'revoked', revocation: { jti: 'remote-1', untilMs: until }, sessionsEnded: 0 });
    const merged = await store.merge({ version: 1, entries: [{ jti: 'remote-1', untilMs: until }, { jti: 'remote-2', untilMs: until + 1 }, { jti: 'old', untilMs: clock.wallMs() - 1 }] });
    assert.deepEqual(merged, { applied: 2, refused: 0, storageFailed: 0 });
    assert.deepEqual(rows(storage), [
      [until, 'remote-1'],
      [until + 1, 'remote-2'],
    ]);
    assert.deepEqual(store.snapshot(), { version: 1, entries: [{ jti: 'remote-1', untilMs: until }, { jti: 'remote-2', untilMs: until + 1 }] });
    await storage.close();
  } finally {
    dir.remove();
  }
});

test('a revocation ends the live session holding the jti: its process receives token_ended with token_revoked', async () => {
  const dir = tempDir();
  const env = testEnv();
  const s = newScheduler(env);
  try {
    const storage = openStorage(dir.path);
    const revocations = new Revocations({ clock: env.clock });
    const live = new LiveTokens({ revocations, end: (pid, m) => s.send(pid, m, null) });
    const { store } = await RevocationStore.open({ storage, revocations, clock: env.clock, log: silentLogger, onRevoked: (jti) => live.revoked(jti) });
    const holder = spawnProbe(s);
    const bystander = spawnProbe(s);
    live.register(holder.pid, 'live-jti');
    live.register(bystander.pid, 'other-jti');
    const r = await store.revoke('live-jti');
    assert.equal(r.ok && r.sessionsEnded, 1);
    assert.deepEqual(await holder.next<TokenEnded>(), { t: 'token_ended', code: 'token_revoked' });
    await bystander.nothing(undefined, 50);
    assert.equal(live.size, 1);
    await storage.close();
  } finally {
    dir.remove();
  }
});
