/**
 * Bounded mailboxes and their overflow policies (drop_newest, drop_oldest, reject, stop),
 * system signals that are never dropped, and the high-watermark shown in process info.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newScheduler, until } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';
import { isDownMessage, isExitMessage, type DownMessage, type MailboxFullMessage } from '../../runtime/ExitReason.js';
import type { OverflowPolicy } from '../../runtime/ProcessContext.js';
import type { Scheduler } from '../../runtime/Scheduler.js';
import type { Pid } from '../../runtime/Pid.js';

/** Wait until the process handled everything queued (a settle request would itself overflow). */
async function drained(s: Scheduler, pid: Pid): Promise<void> {
  await until(() => s.info(pid)?.messageQueueLen === 0 && s.info(pid)?.status === 'waiting', 2000, 'the mailbox to drain');
}

/** Send 1..n from outside to a fresh actor with the given limit before it runs; resolve with what it handled. */
async function deliverTo(s: Scheduler, capacity: number, overflow: OverflowPolicy, n: number): Promise<unknown[]> {
  const a = spawnActor(s, { mailbox: { capacity, overflow } });
  for (let i = 1; i <= n; i++) s.send(a.pid, i, null);
  await drained(s, a.pid);
  return a.settled();
}

test('drop_newest: a message arriving at a full mailbox is discarded', async () => {
  const s = newScheduler();
  assert.deepEqual(await deliverTo(s, 3, 'drop_newest', 5), [1, 2, 3]);
  assert.equal(s.metrics().overflowDropped, 2);
});

test('drop_oldest: a message arriving at a full mailbox evicts the oldest queued one', async () => {
  const s = newScheduler();
  assert.deepEqual(await deliverTo(s, 3, 'drop_oldest', 5), [3, 4, 5]);
  assert.equal(s.metrics().overflowDropped, 2);
});

test('reject: the sender gets MAILBOX_FULL with the refused message, the receiver keeps the rest', async () => {
  const s = newScheduler();
  const target = spawnActor(s, { mailbox: { capacity: 2, overflow: 'reject' } });
  const sender = spawnActor(s);
  await sender.run((ctx) => {
    for (let i = 1; i <= 3; i++) ctx.send(target.pid, i);
  });
  const full = await sender.probe.next<MailboxFullMessage>((m) => (m as MailboxFullMessage).type === 'MAILBOX_FULL');
  assert.deepEqual([full.to.key, full.message], [target.pid.key, 3]);
  await drained(s, target.pid);
  assert.deepEqual(await target.settled(), [1, 2]);
  assert.equal(s.metrics().overflowRejected, 1);
});

test('stop: a message arriving at a full mailbox stops the process with mailbox_overflow', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const target = spawnActor(s, { mailbox: { capacity: 2, overflow: 'stop' } });
  await watcher.run((ctx) => ctx.monitor(target.pid));
  for (let i = 1; i <= 3; i++) s.send(target.pid, i, null);
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.equal(down.reason, 'mailbox_overflow');
  assert.equal(s.isAlive(target.pid), false);
});

test('a bounded mailbox accepts again once the process drained it', async () => {
  const s = newScheduler();
  const a = spawnActor(s, { mailbox: { capacity: 2, overflow: 'drop_newest' } });
  s.send(a.pid, 1, null);
  s.send(a.pid, 2, null);
  await until(() => a.probe.received.length === 2);
  s.send(a.pid, 3, null);
  s.send(a.pid, 4, null);
  await drained(s, a.pid);
  assert.deepEqual(await a.settled(), [1, 2, 3, 4]);
});

test('system signals are never dropped by a full mailbox', async () => {
  const s = newScheduler();
  const a = spawnActor(s, { mailbox: { capacity: 1, overflow: 'drop_newest' }, trapExit: true });
  const child = await a.run((ctx) => ctx.spawnLink(() => () => undefined));
  s.send(a.pid, 'fills the mailbox', null);
  s.send(a.pid, 'dropped', null);
  s.kill(child, 'boom');
  await drained(s, a.pid);
  const got = await a.settled();
  assert.equal(got.length, 2);
  assert.ok(isExitMessage(got[0]));
  assert.equal(got[1], 'fills the mailbox');
});

test('a mailbox with capacity 0 holds nothing under every policy and stays usable', async () => {
  for (const overflow of ['drop_newest', 'drop_oldest'] as const) {
    const s = newScheduler();
    const a = spawnActor(s, { mailbox: { capacity: 0, overflow } });
    for (let i = 1; i <= 3; i++) s.send(a.pid, i, null);
    assert.equal(s.info(a.pid)?.messageQueueLen, 0, overflow);
    assert.equal(s.metrics().overflowDropped, 3, overflow);
  }
});

test('the queue high watermark in info() records the deepest the mailbox got', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  for (let i = 0; i < 500; i++) s.send(a.pid, i, null);
  assert.equal(s.info(a.pid)?.messageQueueLen, 500);
  assert.equal(s.info(a.pid)?.queueHighWatermark, 500);
  await until(() => a.probe.received.length === 500);
  const info = s.info(a.pid);
  assert.equal(info?.messageQueueLen, 0);
  assert.equal(info?.queueHighWatermark, 500);
  assert.equal(s.metrics().maxQueueLen, 500);
});

test('a small queue shows its current length as the watermark', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  for (let i = 0; i < 3; i++) s.send(a.pid, i, null);
  assert.equal(s.info(a.pid)?.queueHighWatermark, 3);
});
