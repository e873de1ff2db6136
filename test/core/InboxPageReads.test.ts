/**
 * Reading an inbox page costs the page, not the inbox: OfflineMailbox.list bounded by
 * `maxBytes` reads from storage only the values it returns plus the one that did not fit
 * (not `limit` values whatever their size), so a session paging through a large inbox of big
 * messages never holds much more than a page. Real LMDB, with a table wrapper that counts
 * the values each range read hands over.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OfflineMailbox, type MailboxMeta } from '../../core/OfflineMailbox.js';
import type { StorageEngine, StorageRange, StorageTable } from '../../runtime/Env.js';
import { openStorage, storageEnv, tempDir } from '../support/storage.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const meta: MailboxMeta = { sender: text('s'), sentAtMs: 1_000 };
const KiB = 1024;

/** `engine` with every table's getRange counted: values handed over per call. */
function counting(engine: StorageEngine): { engine: StorageEngine; reads: Array<{ values: number; bytes: number }> } {
  const reads: Array<{ values: number; bytes: number }> = [];
  const wrapped: StorageEngine = {
    table(name: string): StorageTable {
      const t = engine.table(name);
      return {
        name: t.name,
        get: (k) => t.get(k),
        put: (k, v) => t.put(k, v),
        remove: (k) => t.remove(k),
        count: (r) => t.count(r),
        measure: (r) => t.measure(r),
        getRange(r: StorageRange) {
          const out = t.getRange(r);
          reads.push({ values: out.length, bytes: out.reduce((n, e) => n + e.value.length, 0) });
          return out;
        },
      };
    },
    batch: (ops) => engine.batch(ops),
    flush: () => engine.flush(),
    tableNames: (prefix) => engine.tableNames(prefix),
    close: () => engine.close(),
  };
  return { engine: wrapped, reads };
}

test('paging 300 stored messages of 64 KiB with 1 MiB pages reads about one page of values per page, and every message once in order', async () => {
  const dir = tempDir('iris-pages-');
  const lmdb = openStorage(dir.path);
  try {
    const { engine, reads } = counting(lmdb);
    const r = OfflineMailbox.open(storageEnv(engine));
    assert.ok(r.ok);
    const m = r.mailbox;
    const alice = text('alice');
    const N = 300;
    const payload = (i: number) => new Uint8Array(64 * KiB).fill(i & 0xff);
    const many = await m.appendMany(Array.from({ length: N }, (_, i) => ({ user: alice, payload: payload(i), meta })));
    assert.ok(many.ok && many.results.every((x) => x.ok));
    const pageBytes = 1024 * KiB;
    const valueBytes = 64 * KiB + 13;
    reads.length = 0;
    const seen: number[] = [];
    let after: Uint8Array | undefined;
    for (let pages = 0; pages < N; pages++) {
      const l = m.list(alice, { limit: 256, maxBytes: pageBytes, ...(after !== undefined ? { afterId: after } : {}) });
      assert.ok(l.ok);
      assert.ok(l.entries.length >= 1);
      for (const e of l.entries) seen.push(e.payload[0]!);
      after = l.entries[l.entries.length - 1]!.id;
      if (!l.more) break;
    }
    assert.deepEqual(
      seen,
      Array.from({ length: N }, (_, i) => i & 0xff),
    );
    const perPage = Math.floor(pageBytes / valueBytes);
    const most = Math.max(...reads.map((x) => x.bytes));
    // A page's values and the one that did not fit, with room for reading ahead a little.
    assert.ok(most <= 2 * (perPage + 1) * valueBytes, `one list() read ${most} bytes of values from storage for a page of at most ${pageBytes}`);
    const total = reads.reduce((n, x) => n + x.bytes, 0);
    assert.ok(total <= 2 * N * valueBytes, `paging through ${N * valueBytes} stored bytes read ${total} bytes of values`);
  } finally {
    await lmdb.close();
    dir.remove();
  }
});
