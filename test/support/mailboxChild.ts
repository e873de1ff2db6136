/**
 * Child process for test/core/MailboxDurability.test.ts. It writes the shared workload into
 * an OfflineMailbox on real LMDB and prints a line for each operation only after its promise
 * resolved, so every printed id is one the parent may hold the mailbox to after a SIGKILL.
 *
 *   append <dir> [firstBlock]: endless appends (window of concurrent writes) from block
 *     `firstBlock` (default 0), printing `A <seq> <id>` per append and `M <seq> <id>,…` per
 *     appendMany block.
 *   ack <dir> <n>: append n messages (printed as above), print `READY`, then ack them in
 *     order, printing `I <id>` before issuing each ack and `K <id>` once it resolved.
 * Lines go out with writeSync, so a line is in the pipe before the next write is issued.
 */
import { writeSync } from 'node:fs';
import { OfflineMailbox } from '../../core/OfflineMailbox.js';
import { openStorage, storageEnv } from './storage.js';
import { BLOCK, USERS, hex, isBatchBlock, metaOf, payloadOf, userOf } from './mailboxWorkload.js';

const [mode, dir, nArg] = process.argv.slice(2) as [string, string, string | undefined];
const WINDOW = 256;

const storage = openStorage(dir);
const opened = OfflineMailbox.open(storageEnv(storage), { capacityPerUser: 1_000_000 });
if (!opened.ok) throw new Error(opened.message);
const mailbox = opened.mailbox;

function say(line: string): void {
  writeSync(1, line + '\n');
}

/** Append block `b` (five messages) and print what became durable. */
async function writeBlock(b: number): Promise<void> {
  const first = b * BLOCK;
  const seqs = Array.from({ length: BLOCK }, (_, i) => first + i);
  if (isBatchBlock(b)) {
    const r = await mailbox.appendMany(seqs.map((s) => ({ user: userOf(s), payload: payloadOf(s), meta: metaOf(s) })));
    if (!r.ok) throw new Error(r.message);
    const ids = r.results.map((x) => {
      if (!x.ok) throw new Error(x.message);
      return hex(x.id);
    });
    say(`M ${first} ${ids.join(',')}`);
    return;
  }
  await Promise.all(
    seqs.map(async (s) => {
      const r = await mailbox.append(userOf(s), payloadOf(s), metaOf(s));
      if (!r.ok) throw new Error(r.message);
      say(`A ${s} ${hex(r.id)}`);
    }),
  );
}

/** Keep up to WINDOW blocks in flight until `blocks` are written (forever when Infinity). */
async function run(blocks: number, firstBlock = 0): Promise<void> {
  let next = firstBlock;
  const lanes = Array.from({ length: WINDOW / BLOCK }, async () => {
    while (next < blocks) await writeBlock(next++);
  });
  await Promise.all(lanes);
}

if (mode === 'append') {
  await run(Infinity, Number(nArg ?? 0));
} else if (mode === 'ack') {
  const blocks = Math.ceil(Number(nArg) / BLOCK);
  await run(blocks);
  say('READY');
  const all = collect();
  let at = 0;
  const lanes = Array.from({ length: WINDOW }, async () => {
    while (at < all.length) {
      const { user, id } = all[at++]!;
      say(`I ${hex(id)}`);
      const r = await mailbox.ack(user, id);
      if (!r.ok) throw new Error(r.message);
      say(`K ${hex(id)}`);
    }
  });
  await Promise.all(lanes);
  say('DONE');
  // Stay alive until killed, so the parent decides the end.
  setInterval(() => undefined, 1000);
} else {
  throw new Error(`unknown mode ${mode}`);
}

function collect(): Array<{ user: Uint8Array; id: Uint8Array }> {
  const out: Array<{ user: Uint8Array; id: Uint8Array }> = [];
  for (const user of USERS) {
    let after: Uint8Array | undefined;
    for (;;) {
      const page = mailbox.list(user, after === undefined ? { limit: 1000 } : { afterId: after, limit: 1000 });
      if (!page.ok) throw new Error(page.message);
      for (const e of page.entries) out.push({ user, id: e.id });
      if (!page.more) break;
      after = page.entries[page.entries.length - 1]!.id;
    }
  }
  return out.sort((a, b) => Buffer.compare(Buffer.from(a.id), Buffer.from(b.id)));
}
