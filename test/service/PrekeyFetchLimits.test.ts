/**
 * Nobody can drain another user's one-time prekeys: FETCH_PREKEYS of one target by one
 * requester is allowed rate_limit_prekey_fetches_per_target_per_min times a minute, and beyond
 * that is answered PREKEY_RESPONSE {status:"error", reason:"rate_limited"} without touching
 * the pool, while a different requester still gets a one-time prekey. A requester's fetches
 * overall are shaped (rate_limit_prekey_fetches_*): read more slowly, every one answered, in
 * order. Real node, real sockets, real LMDB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serviceFixture } from '../support/serviceFixture.js';
import { V1TestClient, utf8 } from '../support/V1TestClient.js';
import { concat } from '../support/serviceKit.js';
import { prekeyUploadPacket } from '../support/prekeyUpload.js';
import { encodeFetchPrekeysPacket } from '../../edge/protocol/V1Encoder.js';
import type { ServerFrame } from '../../edge/protocol/V1Packets.js';
import type { CborMap } from '../../edge/protocol/Cbor.js';
import { EDGE_DEFAULTS } from '../../edge/EdgeSettings.js';

type PrekeyResponse = Extract<ServerFrame, { kind: 'prekey_response' }>;
const { node, user } = serviceFixture();

async function responses(c: V1TestClient, count: number, timeoutMs = 10_000): Promise<CborMap[]> {
  const out: CborMap[] = [];
  for (let i = 0; i < count; i++) out.push((await c.next<PrekeyResponse>((f) => f.kind === 'prekey_response', timeoutMs)).map);
  return out;
}

test('101 fetches of one target by one requester take only the per-target allowance of one-time prekeys; the rest are answered rate_limited and a different requester still gets a key', async () => {
  const n = await node();
  const perTarget = EDGE_DEFAULTS.rate_limit_prekey_fetches_per_target_per_min;
  const owner = await user(n, 'pf-owner');
  owner.raw(prekeyUploadPacket(101));
  assert.equal((await responses(owner, 1))[0]!.get('status'), 'ok');

  const greedy = await user(n, 'pf-greedy');
  greedy.raw(concat(Array.from({ length: 101 }, () => encodeFetchPrekeysPacket(utf8('pf-owner')))));
  const got = await responses(greedy, 101);
  assert.deepEqual(
    got.slice(0, perTarget).map((m) => m.get('one_time_prekey_index')),
    Array.from({ length: perTarget }, (_, i) => i),
  );
  for (const m of got.slice(perTarget)) assert.deepEqual(Object.fromEntries(m), { status: 'error', reason: 'rate_limited' });
  assert.deepEqual(
    greedy.unconsumed().map((f) => f.kind),
    [],
    'nothing but the 101 answers',
  );

  const other = await user(n, 'pf-other');
  other.raw(encodeFetchPrekeysPacket(utf8('pf-owner')));
  const [bundle] = await responses(other, 1);
  assert.equal(bundle!.get('one_time_prekey_index'), perTarget);
  assert.equal(bundle!.get('prekeys_remaining'), 101 - perTarget - 1);
  assert.equal(bundle!.get('spk_fallback_mode'), false);
});

test('a requester fetching many different users is shaped, not refused: 35 fetches against a budget of 5 then 20/s take over a second and are all answered not_found, in order', async () => {
  const n = await node({ rate_limit_prekey_fetches_burst: 5, rate_limit_prekey_fetches_per_s: 20 });
  const c = await user(n, 'pf-many');
  const started = Date.now();
  c.raw(concat(Array.from({ length: 35 }, (_, i) => encodeFetchPrekeysPacket(utf8(`pf-nobody-${i}`)))));
  const got = await responses(c, 35);
  const elapsed = Date.now() - started;
  assert.deepEqual(
    got.map((m) => [m.get('status'), m.get('user')]),
    Array.from({ length: 35 }, (_, i) => ['not_found', `pf-nobody-${i}`]),
  );
  // 5 at once, then 30 more at 20/s.
  assert.ok(elapsed >= 1200, `35 fetches were answered in ${elapsed} ms`);
  assert.deepEqual(c.unconsumed(), []);
});
