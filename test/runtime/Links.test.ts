/**
 * Links and exit signals (OTP semantics): `normal` does not kill a linked process, any other
 * reason does, trapExit turns signals into EXIT messages, `kill` cannot be trapped and is
 * seen as `killed` by links, unlink stops propagation, and linking to a dead pid is `noproc`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newScheduler, until } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';
import { isDownMessage, isExitMessage, type DownMessage, type ExitMessage } from '../../runtime/ExitReason.js';
import type { Pid } from '../../runtime/Pid.js';
import type { Scheduler } from '../../runtime/Scheduler.js';

/** A process that waits for messages and exits with the reason it is told. */
function spawnStoppable(s: Scheduler): Pid {
  return s.spawn((ctx) => (msg) => {
    const m = msg as { stop?: string };
    if (m.stop !== undefined) ctx.exit(m.stop);
  });
}

test('a linked process exiting normal does not kill a non-trapping process', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  const b = spawnStoppable(s);
  await a.run((ctx) => ctx.link(b));
  s.send(b, { stop: 'normal' }, null);
  await until(() => !s.isAlive(b));
  assert.equal(await a.run((ctx) => ctx.info()?.links.length), 0);
  assert.equal(s.isAlive(a.pid), true);
});

test('a linked process exiting abnormally kills a non-trapping process with the same reason', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const a = spawnActor(s);
  const b = spawnStoppable(s);
  await a.run((ctx) => ctx.link(b));
  await watcher.run((ctx) => ctx.monitor(a.pid));
  s.send(b, { stop: 'disk_on_fire' }, null);
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.deepEqual([down.pid.key, down.reason], [a.pid.key, 'disk_on_fire']);
});

test('trapExit turns a linked exit (normal or abnormal) into an EXIT message', async () => {
  const s = newScheduler();
  const a = spawnActor(s, { trapExit: true });
  const b1 = spawnStoppable(s);
  const b2 = spawnStoppable(s);
  await a.run((ctx) => {
    ctx.link(b1);
    ctx.link(b2);
  });
  s.send(b1, { stop: 'normal' }, null);
  const e1 = await a.probe.next<ExitMessage>(isExitMessage);
  s.send(b2, { stop: 'crashed' }, null);
  const e2 = await a.probe.next<ExitMessage>(isExitMessage);
  assert.deepEqual([e1.from.key, e1.reason], [b1.key, 'normal']);
  assert.deepEqual([e2.from.key, e2.reason], [b2.key, 'crashed']);
  assert.equal(s.isAlive(a.pid), true);
});

test('ctx.trapExit switches trapping on and returns the previous setting', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  const b = spawnStoppable(s);
  const before = await a.run((ctx) => {
    const was = ctx.trapExit(true);
    ctx.link(b);
    return was;
  });
  assert.equal(before, false);
  s.send(b, { stop: 'bye' }, null);
  const exit = await a.probe.next<ExitMessage>(isExitMessage);
  assert.equal(exit.reason, 'bye');
  assert.equal(await a.run((ctx) => ctx.trapExit(false)), true);
});

test('kill cannot be trapped: the target exits killed', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const trapper = spawnActor(s, { trapExit: true });
  await watcher.run((ctx) => ctx.monitor(trapper.pid));
  s.kill(trapper.pid, 'kill');
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.equal(down.reason, 'killed');
  assert.deepEqual(trapper.probe.received, []);
});

test('processes linked to a killed process see killed, not kill', async () => {
  const s = newScheduler();
  const a = spawnActor(s, { trapExit: true });
  const victim = s.spawn(() => () => undefined);
  await a.run((ctx) => ctx.link(victim));
  await a.run((ctx) => ctx.sendExit(victim, 'kill'));
  const exit = await a.probe.next<ExitMessage>(isExitMessage);
  assert.deepEqual([exit.from.key, exit.reason], [victim.key, 'killed']);
});

test('an exit signal sent with sendExit (not a link) kills a non-trapping process, except normal', async () => {
  const s = newScheduler();
  const sender = spawnActor(s);
  const target = s.spawn(() => () => undefined);
  await sender.run((ctx) => ctx.sendExit(target, 'normal'));
  assert.equal(s.isAlive(target), true);
  await sender.run((ctx) => ctx.sendExit(target, 'shutdown'));
  assert.equal(s.isAlive(target), false);
});

test('an exit signal to a trapping process arrives as EXIT from the sender', async () => {
  const s = newScheduler();
  const sender = spawnActor(s);
  const trapper = spawnActor(s, { trapExit: true });
  await sender.run((ctx) => ctx.sendExit(trapper.pid, 'please stop'));
  const exit = await trapper.probe.next<ExitMessage>(isExitMessage);
  assert.deepEqual([exit.from.key, exit.reason], [sender.pid.key, 'please stop']);
});

test('unlink stops propagation in both directions', async () => {
  const s = newScheduler();
  const a = spawnActor(s, { trapExit: true });
  const b = spawnActor(s);
  await a.run((ctx) => ctx.link(b.pid));
  assert.deepEqual(await b.run((ctx) => ctx.info()?.links.map((p) => p.key)), [a.pid.key]);
  await a.run((ctx) => ctx.unlink(b.pid));
  assert.deepEqual(await b.run((ctx) => ctx.info()?.links), []);
  const c = spawnActor(s);
  await c.run((ctx) => ctx.monitor(b.pid));
  s.kill(b.pid, 'boom');
  await c.probe.next(isDownMessage);
  assert.deepEqual(await a.settled(), []);
  assert.equal(s.isAlive(a.pid), true);
});

test('linking to a dead pid sends the caller an exit signal noproc (EXIT when trapping)', async () => {
  const s = newScheduler();
  const dead = s.spawn(() => undefined);
  await until(() => !s.isAlive(dead));
  const trapper = spawnActor(s, { trapExit: true });
  await trapper.run((ctx) => ctx.link(dead));
  const exit = await trapper.probe.next<ExitMessage>(isExitMessage);
  assert.deepEqual([exit.from.key, exit.reason], [dead.key, 'noproc']);
  assert.deepEqual(await trapper.run((ctx) => ctx.info()?.links), []);
});

test('linking to a dead pid kills a non-trapping caller with noproc', async () => {
  const s = newScheduler();
  const dead = s.spawn(() => undefined);
  await until(() => !s.isAlive(dead));
  const watcher = spawnActor(s);
  const linker = spawnActor(s);
  await watcher.run((ctx) => ctx.monitor(linker.pid));
  await linker.run((ctx) => ctx.link(dead));
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.equal(down.reason, 'noproc');
});

test('a link is symmetric: either side dying signals the other', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  const b = spawnActor(s, { trapExit: true });
  await a.run((ctx) => ctx.link(b.pid));
  await a.run((ctx) => ctx.exit('a_failed'));
  const exit = await b.probe.next<ExitMessage>(isExitMessage);
  assert.deepEqual([exit.from.key, exit.reason], [a.pid.key, 'a_failed']);
});

test('a link made by a process that already died does not tie the other process to it', async () => {
  const s = newScheduler();
  const other = spawnActor(s);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let linked = false;
  const ghost = s.spawn((ctx) => async () => {
    await gate;
    ctx.link(other.pid);
    linked = true;
  });
  s.send(ghost, 'go', null);
  await until(() => s.info(ghost)?.status === 'busy');
  s.kill(ghost);
  release();
  await until(() => linked);
  assert.deepEqual(await other.run((ctx) => ctx.info()?.links), []);
});
