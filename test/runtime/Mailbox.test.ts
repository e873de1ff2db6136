/**
 * The mailbox: per-sender FIFO, selective receive (skips non-matching messages and leaves
 * them in order), receive timeouts and polling, and the system lane that puts exit signals
 * and DOWNs ahead of any queue of user messages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newScheduler, spawnProbe, until } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';
import { TIMEOUT } from '../../runtime/ProcessContext.js';
import { isDownMessage, isExitMessage, type DownMessage, type ExitMessage } from '../../runtime/ExitReason.js';

test('messages from one sender arrive in the order sent, whatever other senders do', async () => {
  const s = newScheduler();
  const sink = spawnProbe(s);
  const senders = [spawnActor(s), spawnActor(s), spawnActor(s)];
  const perBurst = 25;
  const bursts = 4;
  const runs: Promise<void>[] = [];
  for (let b = 0; b < bursts; b++) {
    senders.forEach((sender, i) => {
      runs.push(
        sender.run((ctx) => {
          for (let k = 0; k < perBurst; k++) ctx.send(sink.pid, { from: i, n: b * perBurst + k });
        }),
      );
    });
  }
  await Promise.all(runs);
  await until(() => sink.received.length === senders.length * perBurst * bursts);
  const got = sink.received as Array<{ from: number; n: number }>;
  for (let i = 0; i < senders.length; i++) {
    const seq = got.filter((m) => m.from === i).map((m) => m.n);
    assert.deepEqual(seq, Array.from({ length: perBurst * bursts }, (_, n) => n), `sender ${i}`);
  }
});

test('selective receive skips non-matching messages and leaves them in arrival order', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const pid = s.spawn(async (ctx) => {
    const isB = (m: unknown) => typeof m === 'string' && m.startsWith('b');
    const picked = [await ctx.receive(isB), await ctx.receive(isB)];
    const rest = [await ctx.receive(), await ctx.receive(), await ctx.receive()];
    ctx.send(probe.pid, { picked, rest });
  });
  for (const m of ['a1', 'b1', 'a2', 'b2', 'a3']) s.send(pid, m, null);
  assert.deepEqual(await probe.next(), { picked: ['b1', 'b2'], rest: ['a1', 'a2', 'a3'] });
});

test('selective receive waits for a matching message that arrives later, keeping earlier ones', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const pid = s.spawn(async (ctx) => {
    const wanted = await ctx.receive((m) => m === 'wanted');
    const rest = [await ctx.receive(), await ctx.receive()];
    ctx.send(probe.pid, { wanted, rest });
  });
  s.send(pid, 'early', null);
  await until(() => s.info(pid)?.status === 'waiting');
  s.send(pid, 'wanted', null);
  s.send(pid, 'late', null);
  assert.deepEqual(await probe.next(), { wanted: 'wanted', rest: ['early', 'late'] });
});

test('receive resolves TIMEOUT when nothing matches within the timeout, and the mailbox is kept', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const pid = s.spawn(async (ctx) => {
    const r = await ctx.receive((m) => m === 'never', 20);
    const next = await ctx.receive(undefined, 0);
    ctx.send(probe.pid, { timedOut: r === TIMEOUT, next });
  });
  s.send(pid, 'other', null);
  assert.deepEqual(await probe.next(), { timedOut: true, next: 'other' });
});

test('receive with timeout 0 polls: TIMEOUT when nothing matches, the message when one does', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const pid = s.spawn(async (ctx) => {
    const empty = await ctx.receive(undefined, 0);
    const go = await ctx.receive((m) => m === 'go');
    const noMatch = await ctx.receive((m) => m === 'absent', 0);
    const hit = await ctx.receive((m) => m === 'present', 0);
    ctx.send(probe.pid, { empty: empty === TIMEOUT, go, noMatch: noMatch === TIMEOUT, hit });
  });
  await until(() => s.info(pid)?.status === 'waiting');
  s.send(pid, 'present', null);
  s.send(pid, 'go', null);
  assert.deepEqual(await probe.next(), { empty: true, go: 'go', noMatch: true, hit: 'present' });
});

test('a second concurrent receive in one process is refused', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  s.spawn(async (ctx) => {
    const first = ctx.receive((m) => m === 'never', 50);
    const second = await ctx.receive(undefined, 0).then(
      () => 'accepted',
      (e: Error) => e.message,
    );
    await first;
    ctx.send(probe.pid, second);
  });
  assert.equal(await probe.next(), 'receive() already pending in this process');
});

test('receive from a synchronous handler crashes the process with bad_receive', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const pid = s.spawn((ctx) => () => {
    void ctx.receive();
  });
  await watcher.run((ctx) => ctx.monitor(pid));
  s.send(pid, 'x', null);
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.equal((down.reason as { name: string }).name, 'bad_receive');
});

test('a receive awaited by a background job of a handler process gets its match while the handler keeps taking the other messages', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const seen: unknown[] = [];
  let jobGot: unknown = null;
  const pid = s.spawn((ctx) => (m) => {
    seen.push(m);
    // A job started by a handler, awaiting a reply after an await (as a start of a linked child does).
    if (m === 'start-job')
      void (async () => {
        await Promise.resolve();
        jobGot = await ctx.receive((x) => x === 'reply', 5_000);
      })();
  });
  await watcher.run((ctx) => ctx.monitor(pid));
  s.send(pid, 'start-job', null);
  await until(() => seen.length === 1);
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 5; i++) s.send(pid, i, null);
  await until(() => seen.length === 6);
  s.send(pid, 'reply', null);
  await until(() => jobGot !== null);
  assert.equal(jobGot, 'reply');
  assert.deepEqual(seen, ['start-job', 0, 1, 2, 3, 4]);
  assert.equal(s.isAlive(pid), true);
  assert.equal(watcher.probe.received.filter(isDownMessage).length, 0);
});

test('system lane: an EXIT is handled before a long queue of user messages', async () => {
  const s = newScheduler();
  const trapper = spawnActor(s, { trapExit: true });
  const child = await trapper.run((ctx) => ctx.spawnLink(() => () => undefined));
  const queued = 1000;
  for (let i = 0; i < queued; i++) s.send(trapper.pid, i, null);
  s.kill(child, 'boom');
  await until(() => trapper.probe.received.length === queued + 1);
  const [first, ...rest] = trapper.probe.received;
  assert.ok(isExitMessage(first));
  assert.deepEqual([(first as ExitMessage).from.key, (first as ExitMessage).reason], [child.key, 'boom']);
  assert.deepEqual(rest, Array.from({ length: queued }, (_, i) => i));
});

test('system lane: a DOWN is handled before a long queue of user messages', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const target = s.spawn(() => () => undefined);
  const ref = await watcher.run((ctx) => ctx.monitor(target));
  const queued = 1000;
  for (let i = 0; i < queued; i++) s.send(watcher.pid, i, null);
  s.kill(target, 'gone');
  await until(() => watcher.probe.received.length === queued + 1);
  const first = watcher.probe.received[0] as DownMessage;
  assert.deepEqual([first.type, first.ref.key, first.reason], ['DOWN', ref.key, 'gone']);
});

test('system lane: receive() with no predicate returns a queued DOWN before older user messages', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const target = s.spawn(() => () => undefined);
  const pid = s.spawn(async (ctx) => {
    ctx.monitor(target);
    await ctx.receive((m) => m === 'go');
    const first = await ctx.receive();
    const second = await ctx.receive();
    ctx.send(probe.pid, [isDownMessage(first) ? 'DOWN' : first, second]);
  });
  await until(() => s.info(pid)?.status === 'waiting');
  s.send(pid, 'user 1', null);
  s.kill(target);
  s.send(pid, 'go', null);
  assert.deepEqual(await probe.next(), ['DOWN', 'user 1']);
});
