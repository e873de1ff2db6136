/**
 * OfflineMailbox on real LMDB files: append/list/ack order, ids unique and ordered across a
 * reopen, the per-user cap and its `inbox_full` policy, idempotent acks, raw-byte user ids
 * (NUL, non-UTF-8, ids that are prefixes of others), appendMany per-item results and
 * all-or-nothing writes, and typed results for invalid input, storage failure and a corrupt
 * counter. Crash durability is in MailboxDurability.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StorageEngine, StorageOp, StorageWriteResult } from '../../runtime/Env.js';
import { OfflineMailbox, type MailboxMeta, type OfflineMailboxOptions } from '../../core/OfflineMailbox.js';
import { CORE_DEFAULTS } from '../../core/CoreSettings.js';
import { compareBytes } from '../../runtime/StorageKey.js';
import type { LmdbStorage } from '../../runtime/node/LmdbStorage.js';
import { openStorage, storageEnv, tempDir } from '../support/storage.js';

const b = (...x: number[]) => new Uint8Array(x);
const text = (s: string) => new TextEncoder().encode(s);
const hex = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.length).toString('hex');
const meta = (n: number): MailboxMeta => ({ sender: text(`s${n}`), sentAtMs: 1_000 + n, kind: n % 7 });

async function withMailbox(fn: (ctx: { mailbox: OfflineMailbox; storage: LmdbStorage; reopen(opts?: OfflineMailboxOptions): Promise<OfflineMailbox> }) => Promise<void>, opts: OfflineMailboxOptions = {}): Promise<void> {
  const dir = tempDir('iris-mailbox-');
  let storage = openStorage(dir.path);
  const open = (o: OfflineMailboxOptions) => {
    const r = OfflineMailbox.open(storageEnv(storage), o);
    assert.ok(r.ok, r.ok ? '' : r.message);
    return r.mailbox;
  };
  try {
    await fn({
      mailbox: open(opts),
      get storage() {
        return storage;
      },
      async reopen(o = opts) {
        await storage.close();
        storage = openStorage(dir.path);
        return open(o);
      },
    });
  } finally {
    await storage.close();
    dir.remove();
  }
}

function appended(r: { ok: boolean; id?: Uint8Array }): Uint8Array {
  assert.ok(r.ok, JSON.stringify(r));
  return r.id!;
}

test('messages list oldest first with their exact bytes and metadata; an ack removes one durably', () =>
  withMailbox(async ({ mailbox, reopen }) => {
    const user = text('alice');
    const ids: Uint8Array[] = [];
    for (let i = 0; i < 5; i++) ids.push(appended(await mailbox.append(user, text(`m${i}`), meta(i))));
    assert.equal(mailbox.count(user), 5);
    const l = mailbox.list(user, { limit: 10 });
    assert.ok(l.ok);
    assert.equal(l.more, false);
    assert.deepEqual(l.entries.map((e) => new TextDecoder().decode(e.payload)), ['m0', 'm1', 'm2', 'm3', 'm4']);
    assert.deepEqual(l.entries.map((e) => hex(e.id)), ids.map(hex));
    assert.deepEqual(l.entries.map((e) => [hex(e.sender), e.sentAtMs, e.kind]), [0, 1, 2, 3, 4].map((i) => [hex(meta(i).sender), 1_000 + i, i % 7]));

    assert.deepEqual(await mailbox.ack(user, ids[2]!), { ok: true, removed: true });
    assert.equal(mailbox.count(user), 4);
    const m2 = await reopen();
    const after = m2.list(user, { limit: 10 });
    assert.ok(after.ok);
    assert.deepEqual(after.entries.map((e) => hex(e.id)), [ids[0], ids[1], ids[3], ids[4]].map((x) => hex(x!)));
    assert.equal(m2.count(user), 4);
  }));

test('list pages with afterId and says whether more follow', () =>
  withMailbox(async ({ mailbox }) => {
    const user = b(1);
    const ids = (await Promise.all(Array.from({ length: 7 }, (_, i) => mailbox.append(user, b(i), meta(i))))).map(appended);
    const p1 = mailbox.list(user, { limit: 3 });
    assert.ok(p1.ok && p1.more);
    const p2 = mailbox.list(user, { afterId: p1.entries[2]!.id, limit: 3 });
    assert.ok(p2.ok && p2.more);
    const p3 = mailbox.list(user, { afterId: p2.entries[2]!.id, limit: 3 });
    assert.ok(p3.ok && !p3.more);
    assert.deepEqual([...p1.entries, ...p2.entries, ...p3.entries].map((e) => hex(e.id)), ids.map(hex));
    const empty = mailbox.list(user, { afterId: ids[6]!, limit: 3 });
    assert.ok(empty.ok);
    assert.deepEqual(empty.entries, []);
  }));

test('concurrent appends get unique ids in call order; a reopen continues above them', () =>
  withMailbox(async ({ mailbox, reopen }) => {
    const users = [b(1), b(2), b(3)];
    const first = (await Promise.all(Array.from({ length: 300 }, (_, i) => mailbox.append(users[i % 3]!, b(i & 0xff), meta(i))))).map(appended);
    for (let i = 1; i < first.length; i++) assert.ok(compareBytes(first[i - 1]!, first[i]!) < 0, 'ids ascend in call order');
    const m2 = await reopen();
    const second = (await Promise.all(Array.from({ length: 300 }, (_, i) => m2.append(users[i % 3]!, b(i & 0xff), meta(i))))).map(appended);
    const all = [...first, ...second];
    assert.equal(new Set(all.map(hex)).size, all.length, 'no id is reused after the reopen');
    for (let i = 1; i < all.length; i++) assert.ok(compareBytes(all[i - 1]!, all[i]!) < 0);
    for (const u of users) {
      const l = m2.list(u, { limit: 1000 });
      assert.ok(l.ok);
      assert.equal(l.entries.length, 200);
      for (let i = 1; i < l.entries.length; i++) assert.ok(compareBytes(l.entries[i - 1]!.id, l.entries[i]!.id) < 0);
    }
  }));

test('ids stay unique and ordered when appends cross many small counter reservations', () =>
  withMailbox(
    async ({ mailbox, reopen }) => {
      const user = b(9);
      const ids: Uint8Array[] = [];
      let m = mailbox;
      for (let round = 0; round < 4; round++) {
        ids.push(...(await Promise.all(Array.from({ length: 23 }, (_, i) => m.append(user, b(i), meta(i))))).map(appended));
        for (let i = 0; i < 5; i++) ids.push(appended(await m.append(user, b(i), meta(i))));
        const many = await m.appendMany(Array.from({ length: 9 }, (_, i) => ({ user, payload: b(i), meta: meta(i) })));
        assert.ok(many.ok);
        ids.push(...many.results.map(appended));
        m = await reopen();
      }
      for (let i = 1; i < ids.length; i++) assert.ok(compareBytes(ids[i - 1]!, ids[i]!) < 0, `id ${i} ascends`);
      const l = m.list(user, { limit: 1000 });
      assert.ok(l.ok);
      assert.deepEqual(l.entries.map((e) => hex(e.id)), ids.map(hex));
    },
    { idBlock: 4 },
  ));

test('startAppend assigns the id at once and settles durable after the write', () =>
  withMailbox(async ({ mailbox }) => {
    const s = mailbox.startAppend(b(5), text('live'), meta(0));
    assert.ok(s.ok);
    assert.equal(s.id.length, 16);
    assert.equal(mailbox.count(b(5)), 1, 'counted while in flight');
    assert.deepEqual(await s.durable, { ok: true });
    const l = mailbox.list(b(5), { limit: 5 });
    assert.ok(l.ok);
    assert.equal(hex(l.entries[0]!.id), hex(s.id));
  }));

test('a full inbox refuses the new message with inbox_full, keeps what it has, and reopens full', () =>
  withMailbox(
    async ({ mailbox, reopen }) => {
      assert.equal(CORE_DEFAULTS.inbox_cap, 10_000);
      const user = text('bob');
      // In flight counts: the fourth append in the same turn is already refused.
      const rs = await Promise.all([0, 1, 2, 3].map((i) => mailbox.append(user, b(i), meta(i))));
      assert.deepEqual(rs.map((r) => r.ok), [true, true, true, false]);
      assert.equal(!rs[3]!.ok && rs[3]!.reason, 'inbox_full');
      assert.equal(mailbox.count(user), 3);
      assert.ok((await mailbox.append(text('carol'), b(1), meta(1))).ok, 'other users are not affected');
      const l = mailbox.list(user, { limit: 10 });
      assert.ok(l.ok);
      assert.deepEqual(l.entries.map((e) => e.payload[0]), [0, 1, 2], 'nothing stored was dropped');

      const m2 = await reopen();
      assert.equal(m2.count(user), 3);
      const full = await m2.append(user, b(9), meta(9));
      assert.equal(!full.ok && full.reason, 'inbox_full');
      assert.ok((await m2.ack(user, l.entries[0]!.id)).ok);
      assert.ok((await m2.append(user, b(9), meta(9))).ok, 'an ack frees a place');
      assert.equal(m2.count(user), 3);
    },
    { capacityPerUser: 3 },
  ));

test('acks are idempotent: twice, concurrently, unknown, malformed or another user\'s id', () =>
  withMailbox(async ({ mailbox }) => {
    const user = b(7);
    const [id1, id2] = (await Promise.all([mailbox.append(user, b(1), meta(1)), mailbox.append(user, b(2), meta(2))])).map(appended);
    const [a, again] = await Promise.all([mailbox.ack(user, id1!), mailbox.ack(user, id1!)]);
    assert.deepEqual(a, { ok: true, removed: true });
    assert.deepEqual(again, { ok: true, removed: false });
    assert.deepEqual(await mailbox.ack(user, id1!), { ok: true, removed: false });
    assert.deepEqual(await mailbox.ack(user, new Uint8Array(16).fill(0xee)), { ok: true, removed: false });
    assert.deepEqual(await mailbox.ack(user, b(1, 2, 3)), { ok: true, removed: false });
    assert.deepEqual(await mailbox.ack(b(8), id2!), { ok: true, removed: false });
    assert.equal(mailbox.count(user), 1);
    const l = mailbox.list(user, { limit: 5 });
    assert.ok(l.ok);
    assert.deepEqual(l.entries.map((e) => hex(e.id)), [hex(id2!)]);
  }));

test('user ids are raw bytes: NUL, invalid UTF-8 and ids that prefix one another stay apart', () =>
  withMailbox(async ({ mailbox, reopen }) => {
    const users = [b(0), b(0, 0), b(0, 1), b(0x61), b(0x61, 0), b(0x61, 0, 0), b(0xff, 0xfe), b(0xc3, 0x28), b(0xc3)];
    for (const [i, u] of users.entries()) for (let k = 0; k <= i; k++) appended(await mailbox.append(u, b(i, k), meta(k)));
    const check = (m: OfflineMailbox) => {
      for (const [i, u] of users.entries()) {
        const l = m.list(u, { limit: 100 });
        assert.ok(l.ok);
        assert.deepEqual(l.entries.map((e) => [...e.payload]), Array.from({ length: i + 1 }, (_, k) => [i, k]), `user ${hex(u)}`);
        assert.equal(m.count(u), i + 1);
      }
    };
    check(mailbox);
    check(await reopen());
  }));

test('appendMany stores every accepted item in one write and refuses the rest item by item', () =>
  withMailbox(
    async ({ mailbox }) => {
      const full = b(1);
      await mailbox.append(full, b(0), meta(0));
      await mailbox.append(full, b(0), meta(0));
      const r = await mailbox.appendMany([
        { user: b(2), payload: b(1), meta: meta(1) },
        { user: full, payload: b(2), meta: meta(2) },
        { user: b(), payload: b(3), meta: meta(3) },
        { user: b(2), payload: b(4), meta: meta(4) },
        { user: b(3), payload: b(5), meta: meta(5) },
      ]);
      assert.ok(r.ok);
      assert.deepEqual(r.results.map((x) => (x.ok ? 'ok' : x.reason)), ['ok', 'inbox_full', 'invalid', 'ok', 'ok']);
      const ids = r.results.filter((x) => x.ok).map((x) => (x as { id: Uint8Array }).id);
      for (let i = 1; i < ids.length; i++) assert.ok(compareBytes(ids[i - 1]!, ids[i]!) < 0, 'ids in item order');
      const l2 = mailbox.list(b(2), { limit: 10 });
      assert.ok(l2.ok);
      assert.deepEqual(l2.entries.map((e) => e.payload[0]), [1, 4]);
      assert.equal(mailbox.count(full), 2);
      assert.deepEqual(await mailbox.appendMany([]), { ok: true, results: [] });
    },
    { capacityPerUser: 2 },
  ));

test('appendMany goes to storage as a single batch; when it fails nothing is stored or counted', async () => {
  const dir = tempDir('iris-mailbox-');
  const real = openStorage(dir.path);
  try {
    const batches: StorageOp[][] = [];
    let fail = false;
    const spy: StorageEngine = {
      table: (n) => real.table(n),
      batch(ops): Promise<StorageWriteResult> {
        batches.push([...ops]);
        return fail ? Promise.resolve({ ok: false, reason: 'disk_full', message: 'no space (test)' }) : real.batch(ops);
      },
      flush: () => real.flush(),
      tableNames: (prefix) => real.tableNames(prefix),
      close: () => real.close(),
    };
    const opened = OfflineMailbox.open(storageEnv(spy));
    assert.ok(opened.ok);
    const m = opened.mailbox;
    const items = [b(1), b(2), b(1)].map((user, i) => ({ user, payload: b(i), meta: meta(i) }));
    assert.ok((await m.appendMany(items)).ok);
    assert.equal(batches.length, 1);
    assert.equal(batches[0]!.filter((op) => op.table === 'inbox').length, 3, 'all three items in the one batch');
    fail = true;
    const r = await m.appendMany(items);
    assert.deepEqual(r, { ok: false, reason: 'storage_failed', message: 'no space (test)' });
    assert.equal(m.count(b(1)), 2);
    assert.equal(m.count(b(2)), 1);
    const l = m.list(b(1), { limit: 10 });
    assert.ok(l.ok);
    assert.equal(l.entries.length, 2);
  } finally {
    await real.close();
    dir.remove();
  }
});

test('a failed write reports storage_failed and gives the place back', () =>
  withMailbox(async ({ mailbox, storage }) => {
    const user = b(4);
    assert.equal(mailbox.count(user), 0);
    await storage.close();
    const r = await mailbox.append(user, b(1), meta(1));
    assert.equal(!r.ok && r.reason, 'storage_failed');
    assert.equal(mailbox.count(user), 0);
  }));

test('invalid users, senders and kinds are refused without writing', () =>
  withMailbox(async ({ mailbox }) => {
    const cases = [
      mailbox.append(b(), b(1), meta(1)),
      mailbox.append(new Uint8Array(513), b(1), meta(1)),
      mailbox.append(b(1), b(1), { sender: new Uint8Array(513), sentAtMs: 0 }),
      mailbox.append(b(1), b(1), { sender: b(1), sentAtMs: 0, kind: 256 }),
      mailbox.append(b(1), b(1), { sender: b(1), sentAtMs: Number.NaN }),
    ];
    for (const r of await Promise.all(cases)) assert.equal(!r.ok && r.reason, 'invalid');
    assert.equal(mailbox.count(b(1)), 0);
    assert.ok((await mailbox.append(new Uint8Array(512).fill(0), b(1), meta(1))).ok, 'the longest user id is fine');
  }));

test('a corrupt id counter refuses to open instead of restarting ids', () =>
  withMailbox(async ({ storage }) => {
    await storage.table('meta').put(['offline_mailbox', 'inbox', 'id_limit'], b(1, 2, 3));
    const r = OfflineMailbox.open(storageEnv(storage));
    assert.equal(!r.ok && r.reason, 'corrupt');
    const none = OfflineMailbox.open({ ...storageEnv(storage), storage: undefined });
    assert.equal(!none.ok && none.reason, 'no_storage');
  }));

test('an ack that arrives before its message is durable still removes it, also after a reopen', () =>
  withMailbox(async ({ mailbox, reopen }) => {
    const user = text('quick');
    const started = mailbox.startAppend(user, text('delivered live'), meta(1));
    assert.ok(started.ok);
    // The recipient acknowledges the live delivery before the append's write has settled.
    const acked = await mailbox.ack(user, started.id);
    assert.deepEqual(acked, { ok: true, removed: true });
    assert.equal(mailbox.count(user), 0);
    const again = await reopen();
    const l = again.list(user, { limit: 10 });
    assert.ok(l.ok);
    assert.equal(l.entries.length, 0);
  }));

test('acks find their message whether its id is still remembered or only in storage, and only for its own user', () =>
  withMailbox(
    async ({ mailbox }) => {
      const alice = text('alice');
      const bob = text('bob');
      const ids = (await Promise.all([1, 2, 3, 4, 5].map((n) => mailbox.append(alice, b(n), meta(n))))).map(appended);
      // With room for 2 remembered ids, the older ones are known only to storage by now.
      assert.deepEqual(await mailbox.ack(bob, ids[4]!), { ok: true, removed: false }, "bob cannot ack alice's remembered id");
      assert.deepEqual(await mailbox.ack(bob, ids[0]!), { ok: true, removed: false }, "bob cannot ack alice's stored id");
      for (const id of ids) assert.deepEqual(await mailbox.ack(alice, id), { ok: true, removed: true });
      for (const id of ids) assert.deepEqual(await mailbox.ack(alice, id), { ok: true, removed: false }, 'a repeated ack removes nothing');
      assert.equal(mailbox.count(alice), 0);
      const l = mailbox.list(alice, { limit: 10 });
      assert.ok(l.ok);
      assert.equal(l.entries.length, 0);
    },
    { knownIds: 2 },
  ));

test('acks issued while more appends are in flight than the mailbox remembers still remove every one', () =>
  withMailbox(
    async ({ mailbox, reopen }) => {
      const user = text('burst');
      const started = [1, 2, 3, 4, 5].map((n) => mailbox.startAppend(user, b(n), meta(n)));
      const ids = started.map((s) => {
        assert.ok(s.ok);
        return s.id;
      });
      // Same counter, another random half: not one of the stored messages.
      const forged = ids[1]!.slice();
      forged[15] = forged[15]! ^ 0xff;
      assert.deepEqual(await mailbox.ack(user, forged), { ok: true, removed: false });
      const acked = await Promise.all(ids.map((id) => mailbox.ack(user, id)));
      assert.deepEqual(acked, ids.map(() => ({ ok: true, removed: true })));
      assert.equal(mailbox.count(user), 0);
      const again = await reopen();
      const l = again.list(user, { limit: 10 });
      assert.ok(l.ok);
      assert.equal(l.entries.length, 0);
    },
    { knownIds: 2 },
  ));

test('the ring of remembered ids grows as appends pile up, keeping every one it held (in flight or settled)', () =>
  withMailbox(
    async ({ mailbox, reopen }) => {
      const users = [text('grow-a'), text('grow-b')];
      // Far more than the ring's first size: it doubles while the writes are in flight.
      const started = Array.from({ length: 300 }, (_, n) => mailbox.startAppend(users[n % 2]!, b(n & 0xff), meta(n)));
      const ids = started.map((s) => {
        assert.ok(s.ok);
        return s.id;
      });
      const early = await Promise.all(ids.slice(0, 150).map((id, n) => mailbox.ack(users[n % 2]!, id)));
      assert.deepEqual(early, early.map(() => ({ ok: true, removed: true })));
      await Promise.all(started.slice(150).map((s) => (s.ok ? s.durable : null)));
      const late = await Promise.all(ids.slice(150).map((id, n) => mailbox.ack(users[(n + 150) % 2]!, id)));
      assert.deepEqual(late, late.map(() => ({ ok: true, removed: true })));
      for (const u of users) assert.equal(mailbox.count(u), 0);
      const again = await reopen();
      for (const u of users) {
        const l = again.list(u, { limit: 10 });
        assert.ok(l.ok);
        assert.equal(l.entries.length, 0);
      }
    },
    { knownIds: 512 },
  ));
