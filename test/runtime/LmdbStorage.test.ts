/**
 * The LMDB storage engine on real files: writes resolve durable and survive a reopen, ranges
 * and counts follow the key order, batches are atomic across tables, refusals are typed, a
 * damaged data file is refused untouched, tmpfs is detected, and (with strace) every
 * acknowledged write was fsync'd before its promise resolved.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { StorageKey } from '../../runtime/Env.js';
import { fileSystemOf, isTmpfs, openLmdbStorage } from '../../runtime/node/LmdbStorage.js';
import { compareBytes, encodeKey } from '../../runtime/StorageKey.js';
import { openStorage, tempDir } from '../support/storage.js';

const bytes = (...b: number[]) => new Uint8Array(b);

test('a put resolves ok, is readable, survives close and reopen; a remove likewise', async () => {
  const dir = tempDir();
  try {
    const s = openStorage(dir.path);
    const t = s.table('things');
    assert.deepEqual(await t.put(['a', 1], bytes(1, 2, 3)), { ok: true });
    assert.deepEqual(await t.put(['b', 2], bytes(4)), { ok: true });
    assert.deepEqual([...t.get(['a', 1])!], [1, 2, 3]);
    assert.deepEqual(await t.remove(['b', 2]), { ok: true });
    assert.deepEqual(await t.remove(['never', 'there']), { ok: true }, 'removing a missing key is fine');
    assert.equal(t.get(['b', 2]), undefined);
    await s.close();
    const again = openStorage(dir.path);
    assert.deepEqual([...again.table('things').get(['a', 1])!], [1, 2, 3]);
    assert.equal(again.table('things').get(['b', 2]), undefined);
    assert.equal(again.table('other').get(['a', 1]), undefined, 'tables are separate');
    await again.close();
  } finally {
    dir.remove();
  }
});

test('tableNames lists the tables written with a prefix, also after a reopen, and no others', async () => {
  const dir = tempDir();
  try {
    const s = openStorage(dir.path);
    assert.deepEqual(await s.batch([
      { type: 'put', table: 'g1.inbox', key: ['a'], value: bytes(1) },
      { type: 'put', table: 'g1.meta', key: ['applied'], value: bytes(2) },
      { type: 'put', table: 'g10.inbox', key: ['a'], value: bytes(3) },
      { type: 'put', table: 'own', key: ['a'], value: bytes(4) },
    ]), { ok: true });
    assert.deepEqual(s.tableNames('g1.').sort(), ['g1.inbox', 'g1.meta']);
    await s.close();
    const again = openStorage(dir.path);
    assert.deepEqual(again.tableNames('g1.').sort(), ['g1.inbox', 'g1.meta']);
    assert.deepEqual(again.tableNames('g10.'), ['g10.inbox']);
    assert.deepEqual(again.tableNames('nothing.'), []);
    await again.close();
  } finally {
    dir.remove();
  }
});

test('values read are independent copies', async () => {
  const dir = tempDir();
  try {
    const s = openStorage(dir.path);
    const t = s.table('t');
    await Promise.all([t.put([1], bytes(1)), t.put([2], bytes(2))]);
    const a = t.get([1])!;
    const b = t.get([2])!;
    const r = t.getRange({});
    a[0] = 9;
    assert.deepEqual([...t.get([1])!], [1]);
    assert.deepEqual([...b], [2]);
    assert.deepEqual(r.map((e) => e.value[0]), [1, 2]);
    await s.close();
  } finally {
    dir.remove();
  }
});

test('getRange and count follow the key order for every bound, limit and direction', async () => {
  const dir = tempDir();
  try {
    const s = openStorage(dir.path);
    const t = s.table('t');
    const users = [bytes(), bytes(0), bytes(0, 0), bytes(0, 1), bytes(1), bytes(0xff), bytes(0xc3, 0x28)];
    const keys: StorageKey[] = [];
    for (const u of users) for (const n of [-1, 0, 2.5, 7]) keys.push([u, n]);
    for (const str of ['', '\u0000', 'a', 'a\u0000']) keys.push([str]);
    keys.push([3]);
    await Promise.all(keys.map((k, i) => t.put(k, bytes(i))));
    const sorted = [...keys].sort((a, b) => compareBytes(enc(a), enc(b)));
    assert.deepEqual(t.getRange({}).map((e) => e.key), sorted);
    assert.equal(t.count(), keys.length);

    const cases: Array<Parameters<typeof t.getRange>[0]> = [
      { prefix: [bytes(0)] },
      { prefix: [bytes(0)], reverse: true },
      { prefix: [bytes(0)], start: [bytes(0), 0], startExclusive: true },
      { prefix: [bytes(0)], start: [bytes(0), 0], startExclusive: true, reverse: true, limit: 1 },
      { start: [bytes(0)], end: [bytes(1)] },
      { start: [bytes(0)], end: [bytes(1)], reverse: true },
      { start: [bytes(0), 2.5], end: [bytes(0, 1), 0], limit: 3 },
      { start: [bytes(0), 2.5], end: [bytes(0, 1), 0], limit: 3, reverse: true },
      { end: ['a'] },
      { end: ['a'], reverse: true, limit: 2 },
      { start: ['a'], startExclusive: true },
      { prefix: ['a'] },
      { prefix: [bytes(9)] },
      { start: [bytes(1)], end: [bytes(0)] },
      { limit: 0 },
    ];
    for (const r of cases) {
      const inRange = (k: StorageKey) => {
        const b = enc(k);
        if (r.prefix !== undefined && (k.length < r.prefix.length || compareBytes(enc(k.slice(0, r.prefix.length)), enc(r.prefix)) !== 0)) return false;
        if (r.start !== undefined) {
          const c = compareBytes(b, enc(r.start));
          if (c < 0 || (c === 0 && r.startExclusive === true)) return false;
        }
        return r.end === undefined || compareBytes(b, enc(r.end)) < 0;
      };
      let expected = sorted.filter(inRange);
      const total = expected.length;
      if (r.reverse === true) expected = expected.reverse();
      if (r.limit !== undefined) expected = expected.slice(0, r.limit);
      assert.deepEqual(t.getRange(r).map((e) => e.key), expected, JSON.stringify(r));
      assert.equal(t.count(r), total, `count ${JSON.stringify(r)}`);
    }
    await s.close();
  } finally {
    dir.remove();
  }
});

test('a batch applies puts and removes on several tables as one transaction', async () => {
  const dir = tempDir();
  try {
    const s = openStorage(dir.path);
    const a = s.table('a');
    const b = s.table('b');
    await a.put(['gone'], bytes(1));
    const r = await s.batch([
      { type: 'put', table: 'a', key: ['x'], value: bytes(1) },
      { type: 'put', table: 'b', key: ['y'], value: bytes(2) },
      { type: 'remove', table: 'a', key: ['gone'] },
    ]);
    assert.deepEqual(r, { ok: true });
    assert.deepEqual([...a.get(['x'])!], [1]);
    assert.deepEqual([...b.get(['y'])!], [2]);
    assert.equal(a.get(['gone']), undefined);
    await s.close();
  } finally {
    dir.remove();
  }
});

test('a batch with one invalid key writes nothing and says why', async () => {
  const dir = tempDir();
  try {
    const s = openStorage(dir.path);
    const r = await s.batch([
      { type: 'put', table: 'a', key: ['fine'], value: bytes(1) },
      { type: 'put', table: 'a', key: [Number.NaN], value: bytes(2) },
    ]);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, 'invalid_key');
    await s.flush();
    assert.equal(s.table('a').get(['fine']), undefined);
    const tooLong = await s.table('a').put([new Uint8Array(4000)], bytes(1));
    assert.equal(!tooLong.ok && tooLong.reason, 'invalid_key');
    assert.equal(!(await s.table('a').put([], bytes(1))).ok, true);
    await s.close();
  } finally {
    dir.remove();
  }
});

test('after close, writes resolve closed and reads throw', async () => {
  const dir = tempDir();
  try {
    const s = openStorage(dir.path);
    const t = s.table('t');
    const pending = t.put(['k'], bytes(1));
    await s.close();
    assert.deepEqual(await pending, { ok: true }, 'close flushes what was issued before it');
    const r = await t.put(['k2'], bytes(1));
    assert.equal(!r.ok && r.reason, 'closed');
    assert.equal(((await s.batch([{ type: 'remove', table: 't', key: ['k'] }])) as { reason?: string }).reason, 'closed');
    assert.throws(() => t.get(['k']), /closed/);
    const again = openStorage(dir.path);
    assert.deepEqual([...again.table('t').get(['k'])!], [1]);
    await again.close();
  } finally {
    dir.remove();
  }
});

test('many concurrent writes in one turn are group-committed and all durable', async () => {
  const dir = tempDir();
  try {
    const s = openStorage(dir.path);
    const t = s.table('t');
    const results = await Promise.all(Array.from({ length: 5000 }, (_, i) => t.put(['k', i], bytes(i & 0xff))));
    assert.ok(results.every((r) => r.ok));
    assert.equal(t.count({ prefix: ['k'] }), 5000);
    await s.close();
  } finally {
    dir.remove();
  }
});

test('a data file that is not LMDB is refused as corrupt and left byte for byte untouched', () => {
  const cases: Array<[string, (good: Buffer) => Buffer, string]> = [
    ['garbage', (g) => Buffer.alloc(g.length, 0x5a), 'corrupt'],
    ['zeroed meta page', (g) => Buffer.concat([Buffer.alloc(4096), g.subarray(4096)]), 'corrupt'],
    ['truncated', (g) => g.subarray(0, 100), 'corrupt'],
    ['truncated after the first meta page', (g) => g.subarray(0, 4096), 'corrupt'],
    ['other format version', (g) => {
      const b = Buffer.from(g);
      b.writeUInt32LE(1, 28);
      return b;
    }, 'version_mismatch'],
  ];
  const dir = tempDir();
  try {
    const good = (() => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', `
        import { openLmdbStorage } from ${JSON.stringify(new URL('../../runtime/node/LmdbStorage.js', import.meta.url).href)};
        const r = openLmdbStorage({ path: ${JSON.stringify(join(dir.path, 'good'))} });
        await r.engine.table('t').put(['k'], new Uint8Array([1]));
        await r.engine.close();`]);
      assert.equal(r.status, 0, String(r.stderr));
      return readFileSync(join(dir.path, 'good', 'data.mdb'));
    })();
    for (const [name, damage, reason] of cases) {
      const sub = join(dir.path, name.replace(/ /g, '-'));
      const damaged = damage(good);
      openLmdbStorage({ path: sub }); // create the directory only
      writeFileSync(join(sub, 'data.mdb'), damaged);
      // Opening in a child: if our checks missed, lmdb-js would crash the process.
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', `
        import { openLmdbStorage } from ${JSON.stringify(new URL('../../runtime/node/LmdbStorage.js', import.meta.url).href)};
        const r = openLmdbStorage({ path: ${JSON.stringify(sub)} });
        console.log(JSON.stringify(r.ok ? { ok: true } : r));`]);
      assert.equal(r.status, 0, `${name}: the opener must not crash (${String(r.stderr)})`);
      const out = JSON.parse(String(r.stdout)) as { ok: boolean; reason?: string; message?: string };
      assert.equal(out.ok, false, name);
      assert.equal(out.reason, reason, name);
      assert.match(out.message!, /data\.mdb/, name);
      assert.deepEqual(readFileSync(join(sub, 'data.mdb')), damaged, `${name}: file untouched`);
    }
  } finally {
    dir.remove();
  }
});

test('a path that is a file or cannot be created is refused as bad_directory', () => {
  const dir = tempDir();
  try {
    const file = join(dir.path, 'file');
    writeFileSync(file, 'x');
    const r = openLmdbStorage({ path: file });
    assert.equal(!r.ok && r.reason, 'bad_directory');
    const r2 = openLmdbStorage({ path: join(file, 'below') });
    assert.equal(!r2.ok && r2.reason, 'bad_directory');
  } finally {
    dir.remove();
  }
});

test('isTmpfs reads /proc/mounts; production checks refuse tmpfs without creating anything', () => {
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' '));
  const tmpfsMount = mounts.find((f) => f[2] === 'tmpfs' && f[1] === '/dev/shm') ?? mounts.find((f) => f[2] === 'tmpfs');
  const dir = tempDir();
  try {
    assert.equal(isTmpfs(dir.path), fileSystemOf(dir.path)!.type === 'tmpfs');
    assert.equal(fileSystemOf('/')!.mountPoint, '/');
    if (tmpfsMount !== undefined) {
      const inside = join(tmpfsMount[1]!, `iris-not-created-${process.pid}`, 'data');
      assert.equal(isTmpfs(inside), true, 'a path that does not exist yet is judged by its parent');
      const r = openLmdbStorage({ path: inside, productionChecks: true });
      assert.equal(!r.ok && r.reason, 'on_tmpfs');
      assert.match(!r.ok ? r.message : '', /tmpfs/);
      assert.equal(existsSync(inside), false);
    }
    if (!isTmpfs(dir.path)) {
      const r = openLmdbStorage({ path: join(dir.path, 'db'), productionChecks: true });
      assert.ok(r.ok);
      void r.engine.close();
    }
  } finally {
    dir.remove();
  }
});

/**
 * The fsync proof, read from the kernel's side: a child writes one put at a time and prints
 * each acknowledgement; strace records its syscalls. Every acknowledgement must come after an
 * fdatasync/fsync of data.mdb that started after the last ordinary write to it (meta pages
 * go through an O_DSYNC descriptor, synchronous by themselves). The same check run on
 * `noSync` LMDB must fail, which shows it can.
 */
test('every acknowledged write was fsync\'d before its promise resolved (strace)', () => {
  if (spawnSync('strace', ['-V']).status !== 0) {
    assert.fail('strace is not installed: run scripts/setup.sh (npm test does), which installs it');
    return;
  }
  const child = new URL('../support/fsyncProbeChild.js', import.meta.url).pathname;
  const run = (mode: string) => {
    const dir = tempDir();
    try {
      const trace = join(dir.path, 'trace.txt');
      const r = spawnSync('strace', ['-f', '-y', '-o', trace, '-e', 'trace=openat,write,pwrite64,pwritev,pwritev2,writev,fdatasync,fsync,sync_file_range,msync', process.execPath, child, mode, join(dir.path, 'db'), '20'], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim().split('\n').length, 20);
      return checkAcksAfterSync(readFileSync(trace, 'utf8'));
    } finally {
      dir.remove();
    }
  };
  const ours = run('engine');
  assert.equal(ours.acks, 20);
  assert.deepEqual(ours.unsynced, [], 'acknowledged before fsync');
  const canary = run('nosync');
  assert.equal(canary.acks, 20);
  assert.ok(canary.unsynced.length > 0, 'the check catches acknowledgements without fsync');
});

interface Syscall {
  name: string;
  fd: string;
  dsync: boolean;
  start: number;
  end: number;
  isAck: boolean;
}

function checkAcksAfterSync(trace: string): { acks: number; unsynced: number[] } {
  const lines = trace.split('\n');
  const dsyncFds = new Set<string>();
  const open = new Map<string, Syscall>();
  const calls: Syscall[] = [];
  lines.forEach((line, i) => {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (m === null) return;
    const [, pid, rest] = m as unknown as [string, string, string];
    const resumed = /^<\.\.\. (\w+) resumed>/.exec(rest);
    if (resumed !== null) {
      const c = open.get(pid);
      if (c !== undefined) {
        c.end = i;
        open.delete(pid);
      }
      return;
    }
    const call = /^(\w+)\((\d+<[^>]*>)?(.*)$/.exec(rest);
    if (call === null) return;
    const [, name, fd = '', tail] = call as unknown as [string, string, string | undefined, string];
    if (name === 'openat') {
      const res = /= (\d+<[^>]*data\.mdb>)/.exec(tail);
      if (res !== null && /O_DSYNC/.test(tail)) dsyncFds.add(res[1]!);
      return;
    }
    const c: Syscall = { name, fd, dsync: dsyncFds.has(fd), start: i, end: i, isAck: name === 'write' && /"ACK \d+\\n"/.test(tail) };
    if (/<unfinished \.\.\.>/.test(tail)) open.set(pid, c);
    calls.push(c);
  });
  const acks = calls.filter((c) => c.isAck);
  const unsynced: number[] = [];
  acks.forEach((ack, n) => {
    const before = calls.filter((c) => c.end < ack.start && /data\.mdb/.test(c.fd));
    const lastPlainWrite = before.filter((c) => /write/.test(c.name) && !c.dsync).reduce((m, c) => Math.max(m, c.end), -1);
    const synced = before.some((c) => /^(fdatasync|fsync|msync|sync_file_range)$/.test(c.name) && c.start > lastPlainWrite);
    if (!synced) unsynced.push(n);
  });
  return { acks: acks.length, unsynced };
}

function enc(k: StorageKey): Uint8Array {
  const e = encodeKey(k);
  if (!e.ok) throw new Error(e.message);
  return e.bytes;
}
