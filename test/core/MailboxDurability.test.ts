/**
 * Crash durability of the offline mailbox on real LMDB: a child process appends (or acks)
 * with many writes in flight and prints each operation only after its promise resolved; the
 * test SIGKILLs it at a random point mid-stream, reopens the directory and checks that every
 * acknowledged append is stored with its exact bytes, every acknowledged ack stays removed,
 * nothing phantom or corrupt appeared, appendMany blocks are all-or-nothing, and ids keep
 * their order and uniqueness across the restart.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { OfflineMailbox, type MailboxEntry } from '../../core/OfflineMailbox.js';
import { compareBytes } from '../../runtime/StorageKey.js';
import { openStorage, storageEnv, tempDir } from '../support/storage.js';
import { BLOCK, USERS, hex, isBatchBlock, metaOf, payloadOf, seqOf, userOf } from '../support/mailboxWorkload.js';

const CHILD = new URL('../support/mailboxChild.js', import.meta.url).pathname;
const RUN_DEADLINE_MS = 30_000;

interface KilledRun {
  lines: string[];
  signal: NodeJS.Signals | null;
}

/** Run the child and SIGKILL it (by pid) once `killWhen` holds for the lines seen so far. */
function runUntilKilled(args: string[], killWhen: (lines: readonly string[]) => boolean): Promise<KilledRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let partial = '';
    let stderr = '';
    let killed = false;
    const kill = () => {
      if (!killed) {
        killed = true;
        process.kill(child.pid!, 'SIGKILL');
      }
    };
    const deadline = setTimeout(() => {
      kill();
      reject(new Error(`child did not reach its kill point within ${RUN_DEADLINE_MS} ms (${lines.length} lines; stderr: ${stderr})`));
    }, RUN_DEADLINE_MS);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop()!;
      lines.push(...parts);
      if (!killed && killWhen(lines)) kill();
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (_code, signal) => {
      clearTimeout(deadline);
      // A line cut short by the kill was never complete, so it acknowledged nothing.
      if (!killed) reject(new Error(`child exited by itself (${signal ?? _code}): ${stderr}`));
      else resolve({ lines, signal });
    });
  });
}

function randomInt(lo: number, hi: number): number {
  return lo + Math.floor(Math.random() * (hi - lo + 1));
}

/** Acknowledged appends in the lines: id (hex) → sequence number. */
function acknowledgedAppends(lines: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of lines) {
    const [tag, seq, ids] = line.split(' ');
    if (tag === 'A') out.set(ids!, Number(seq));
    else if (tag === 'M') ids!.split(',').forEach((id, i) => out.set(id, Number(seq) + i));
  }
  return out;
}

interface Stored {
  user: Uint8Array;
  entry: MailboxEntry;
}

/** Everything in the mailbox, per user in list order, paging with afterId. */
function readAll(mailbox: OfflineMailbox): Stored[] {
  const out: Stored[] = [];
  for (const user of USERS) {
    let afterId: Uint8Array | undefined;
    for (;;) {
      const page = mailbox.list(user, afterId === undefined ? { limit: 700 } : { afterId, limit: 700 });
      assert.ok(page.ok, page.ok ? '' : page.message);
      for (const entry of page.entries) out.push({ user, entry });
      if (!page.more) break;
      afterId = page.entries[page.entries.length - 1]!.id;
    }
    assert.equal(mailbox.count(user), out.filter((s) => s.user === user).length, 'count matches what is listed');
  }
  return out;
}

/** Every stored entry is exactly the workload message its payload names; each at most once. */
function assertNoPhantoms(stored: readonly Stored[]): Map<string, number> {
  const bySeq = new Map<number, string>();
  const byId = new Map<string, number>();
  for (const { user, entry } of stored) {
    const seq = seqOf(entry.payload);
    assert.equal(hex(entry.payload), hex(payloadOf(seq)), `payload of seq ${seq}`);
    assert.equal(hex(user), hex(userOf(seq)), `user of seq ${seq}`);
    const meta = metaOf(seq);
    assert.equal(hex(entry.sender), hex(meta.sender));
    assert.equal(entry.sentAtMs, meta.sentAtMs);
    assert.equal(entry.kind, meta.kind);
    assert.equal(entry.id.length, 16);
    assert.ok(!bySeq.has(seq), `seq ${seq} stored twice`);
    bySeq.set(seq, hex(entry.id));
    assert.ok(!byId.has(hex(entry.id)), 'ids are unique');
    byId.set(hex(entry.id), seq);
  }
  return byId;
}

/** Within each user, list order (id order) is append order; appendMany blocks are whole. */
function assertOrderAndAtomicity(stored: readonly Stored[]): void {
  const seqs = new Set(stored.map((s) => seqOf(s.entry.payload)));
  for (const user of USERS) {
    const mine = stored.filter((s) => s.user === user);
    for (let i = 1; i < mine.length; i++) {
      assert.ok(compareBytes(mine[i - 1]!.entry.id, mine[i]!.entry.id) < 0, 'ids ascend in list order');
      assert.ok(seqOf(mine[i - 1]!.entry.payload) < seqOf(mine[i]!.entry.payload), 'list order is append order');
    }
  }
  for (const seq of seqs) {
    const block = Math.floor(seq / BLOCK);
    if (!isBatchBlock(block)) continue;
    for (let s = block * BLOCK; s < (block + 1) * BLOCK; s++) assert.ok(seqs.has(s), `appendMany block ${block} is partial: seq ${s} missing`);
  }
}

function reopen(dir: string) {
  const storage = openStorage(dir);
  const opened = OfflineMailbox.open(storageEnv(storage), { capacityPerUser: 1_000_000 });
  assert.ok(opened.ok);
  return { storage, mailbox: opened.mailbox };
}

async function killedAppendRun(t: TestContext, dir: string, firstBlock: number): Promise<Map<string, number>> {
  const killAt = randomInt(30, 6000);
  t.diagnostic(`append run from block ${firstBlock}: SIGKILL after ${killAt} acknowledged lines`);
  const run = await runUntilKilled(['append', dir, String(firstBlock)], (lines) => lines.length >= killAt);
  assert.equal(run.signal, 'SIGKILL');
  const acked = acknowledgedAppends(run.lines);
  assert.ok(acked.size >= killAt, 'the child was killed mid-stream, after its acknowledgements');
  return acked;
}

test('every acknowledged append survives SIGKILL mid-stream, exactly, with no phantom or partial batch', async (t) => {
  for (let round = 0; round < 4; round++) {
    const dir = tempDir('iris-mailbox-kill-');
    try {
      const acked = await killedAppendRun(t, dir.path, 0);
      const { storage, mailbox } = reopen(dir.path);
      const stored = readAll(mailbox);
      const byId = assertNoPhantoms(stored);
      assertOrderAndAtomicity(stored);
      for (const [id, seq] of acked) assert.equal(byId.get(id), seq, `acknowledged id ${id} (seq ${seq}) is stored with its payload`);
      t.diagnostic(`round ${round}: ${acked.size} acknowledged, ${stored.length} stored`);

      // After the restart, new ids are fresh and sort after everything stored for that user.
      for (const user of USERS) {
        const r = await mailbox.append(user, payloadOf(10_000_000), metaOf(10_000_000));
        assert.ok(r.ok);
        assert.ok(!byId.has(hex(r.id)));
        for (const s of stored) assert.ok(compareBytes(s.entry.id, r.id) < 0, 'a new id sorts after every id stored before the crash');
      }
      await storage.close();
    } finally {
      dir.remove();
    }
  }
});

test('a directory killed twice keeps both runs\' acknowledged appends and orders the second after the first', async (t) => {
  const dir = tempDir('iris-mailbox-kill-');
  try {
    const first = await killedAppendRun(t, dir.path, 0);
    const second = await killedAppendRun(t, dir.path, 1_000_000);
    const { storage, mailbox } = reopen(dir.path);
    const stored = readAll(mailbox);
    const byId = assertNoPhantoms(stored);
    assertOrderAndAtomicity(stored);
    for (const [id, seq] of [...first, ...second]) assert.equal(byId.get(id), seq, `acknowledged id ${id} is stored`);
    await storage.close();
  } finally {
    dir.remove();
  }
});

test('acknowledged acks stay removed after SIGKILL; messages never acked stay stored', async (t) => {
  for (let round = 0; round < 2; round++) {
    const dir = tempDir('iris-mailbox-ack-kill-');
    try {
      const total = 3000;
      const killAt = randomInt(1, 2500);
      t.diagnostic(`ack run: SIGKILL after ${killAt} acknowledged acks`);
      let acks = 0;
      let scanned = 0;
      const run = await runUntilKilled(['ack', dir.path, String(total)], (lines) => {
        for (; scanned < lines.length; scanned++) if (lines[scanned]!.startsWith('K ')) acks++;
        return acks >= killAt;
      });
      assert.equal(run.signal, 'SIGKILL');
      assert.ok(!run.lines.includes('DONE'), 'killed while acks were in flight');
      const appended = acknowledgedAppends(run.lines);
      assert.equal(appended.size, total);
      const issued = new Set(run.lines.filter((l) => l.startsWith('I ')).map((l) => l.slice(2)));
      const removed = new Set(run.lines.filter((l) => l.startsWith('K ')).map((l) => l.slice(2)));
      assert.ok(removed.size >= killAt);

      const { storage, mailbox } = reopen(dir.path);
      const stored = readAll(mailbox);
      const byId = assertNoPhantoms(stored);
      for (const id of byId.keys()) assert.ok(appended.has(id), 'nothing stored that was not appended');
      for (const id of removed) assert.ok(!byId.has(id), `acknowledged ack of ${id} stayed removed`);
      for (const [id, seq] of appended) if (!issued.has(id)) assert.equal(byId.get(id), seq, `never-acked ${id} is still stored`);
      t.diagnostic(`round ${round}: ${removed.size} acks acknowledged, ${issued.size - removed.size} in flight, ${stored.length} left`);
      await storage.close();
    } finally {
      dir.remove();
    }
  }
});
