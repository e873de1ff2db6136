/**
 * The per-user byte cap of the offline mailbox (OfflineMailbox option maxBytesPerUser, config
 * key inbox_max_bytes), on real LMDB files: what it counts is each stored value (payload,
 * sender and a 12-byte header); an append that would pass the cap is refused `inbox_full`
 * (nothing is written, nothing stored is dropped), also while earlier appends are still being
 * written and inside appendMany; an ACK gives its bytes back; a reopen recounts the bytes
 * from storage. Another user's inbox is not affected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OfflineMailbox, type MailboxMeta, type OfflineMailboxOptions } from '../../core/OfflineMailbox.js';
import type { LmdbStorage } from '../../runtime/node/LmdbStorage.js';
import { openStorage, storageEnv, tempDir } from '../support/storage.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
/** Sender `s` (1 byte): a payload of n bytes is stored as n + 13 bytes. */
const meta: MailboxMeta = { sender: text('s'), sentAtMs: 1_000 };
const stored = (payloadBytes: number): number => payloadBytes + 12 + 1;
const CAP = 1000;

async function withMailbox(fn: (m: OfflineMailbox, reopen: () => Promise<OfflineMailbox>) => Promise<void>, opts: OfflineMailboxOptions = { maxBytesPerUser: CAP }): Promise<void> {
  const dir = tempDir('iris-bytecap-');
  let storage: LmdbStorage = openStorage(dir.path);
  const open = (): OfflineMailbox => {
    const r = OfflineMailbox.open(storageEnv(storage), opts);
    assert.ok(r.ok, r.ok ? '' : r.message);
    return r.mailbox;
  };
  try {
    await fn(open(), async () => {
      await storage.close();
      storage = openStorage(dir.path);
      return open();
    });
  } finally {
    await storage.close();
    dir.remove();
  }
}

function idOf(r: { ok: boolean; id?: Uint8Array }): Uint8Array {
  assert.ok(r.ok, JSON.stringify(r));
  return r.id!;
}

test('an append that would take a user past maxBytesPerUser is refused inbox_full; one that lands exactly on it is taken', () =>
  withMailbox(async (m) => {
    const alice = text('alice');
    for (let i = 0; i < 3; i++) idOf(await m.append(alice, new Uint8Array(300), meta));
    // 3 × 313 = 939 stored: 61 bytes left.
    assert.equal(CAP - 3 * stored(300), 61);
    const over = await m.append(alice, new Uint8Array(61 - 13 + 1), meta);
    assert.equal(over.ok, false);
    assert.equal(!over.ok && over.reason, 'inbox_full');
    idOf(await m.append(alice, new Uint8Array(61 - 13), meta));
    const full = await m.append(alice, new Uint8Array(0), meta);
    assert.equal(!full.ok && full.reason, 'inbox_full');
    const l = m.list(alice, { limit: 100 });
    assert.ok(l.ok);
    assert.deepEqual(
      l.entries.map((e) => e.storedBytes),
      [stored(300), stored(300), stored(300), stored(48)],
    );
    // Another user has a cap of its own.
    idOf(await m.append(text('bob'), new Uint8Array(900), meta));
  }));

test('appends still being written count against the byte cap, and appendMany refuses only the item that does not fit', () =>
  withMailbox(async (m) => {
    const alice = text('alice');
    const a = m.startAppend(alice, new Uint8Array(400), meta);
    const b = m.startAppend(alice, new Uint8Array(400), meta);
    const c = m.startAppend(alice, new Uint8Array(400), meta);
    assert.deepEqual([a.ok, b.ok, c.ok], [true, true, false]);
    assert.equal(!c.ok && c.reason, 'inbox_full');
    if (a.ok && b.ok) assert.deepEqual([(await a.durable).ok, (await b.durable).ok], [true, true]);
    const many = await m.appendMany([
      { user: alice, payload: new Uint8Array(200), meta },
      { user: text('carol'), payload: new Uint8Array(200), meta },
      { user: alice, payload: new Uint8Array(100), meta },
    ]);
    assert.ok(many.ok);
    // alice holds 826: 200 + 13 does not fit, 100 + 13 = 113 does (939).
    assert.deepEqual(
      many.results.map((r) => (r.ok ? 'ok' : r.reason)),
      ['inbox_full', 'ok', 'ok'],
    );
  }));

test('an ACK gives the bytes of its message back', () =>
  withMailbox(async (m) => {
    const alice = text('alice');
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(idOf(await m.append(alice, new Uint8Array(300), meta)));
    const refused = await m.append(alice, new Uint8Array(300), meta);
    assert.equal(!refused.ok && refused.reason, 'inbox_full');
    assert.deepEqual(await m.ack(alice, ids[1]!), { ok: true, removed: true });
    idOf(await m.append(alice, new Uint8Array(300), meta));
    const again = await m.append(alice, new Uint8Array(300), meta);
    assert.equal(!again.ok && again.reason, 'inbox_full');
  }));

test('after a reopen the bytes already stored are recounted from storage: a full inbox stays full, its free room stays free', () =>
  withMailbox(async (m, reopen) => {
    const alice = text('alice');
    for (let i = 0; i < 3; i++) idOf(await m.append(alice, new Uint8Array(300), meta));
    const m2 = await reopen();
    assert.equal(m2.count(alice), 3);
    const over = await m2.append(alice, new Uint8Array(61 - 13 + 1), meta);
    assert.equal(!over.ok && over.reason, 'inbox_full');
    idOf(await m2.append(alice, new Uint8Array(61 - 13), meta));
  }));
