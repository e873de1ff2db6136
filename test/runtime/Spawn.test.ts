/**
 * Spawning: spawn, spawnLink and spawnMonitor are atomic (a child that dies before its parent
 * runs again is still observed), named spawns register before the child runs, and a process
 * that is already dead cannot leave a linked child behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newScheduler, spawnProbe, until } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';
import { isDownMessage, isExitMessage, type CrashReason, type DownMessage, type ExitMessage } from '../../runtime/ExitReason.js';
import type { Pid } from '../../runtime/Pid.js';

test('spawn returns a live pid on the spawning scheduler and the body runs once', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  let runs = 0;
  const pid = s.spawn((ctx) => {
    runs++;
    ctx.send(probe.pid, { self: ctx.self, sched: ctx.schedulerId, node: ctx.node });
  });
  assert.equal(pid.node, 'test');
  assert.equal(pid.sched, 0);
  const hello = await probe.next<{ self: Pid; sched: number; node: string }>();
  assert.equal(hello.self.key, pid.key);
  assert.equal(hello.sched, 0);
  assert.equal(hello.node, 'test');
  assert.equal(runs, 1);
});

test('a body that returns nothing exits normal', async () => {
  const s = newScheduler();
  const parent = spawnActor(s);
  const [, ref] = await parent.run((ctx) => ctx.spawnMonitor(() => undefined));
  const down = await parent.probe.next<DownMessage>(isDownMessage);
  assert.equal(down.ref.key, ref.key);
  assert.equal(down.reason, 'normal');
});

test('spawnLink: a child that crashes at once still delivers EXIT to a trapping parent', async () => {
  const s = newScheduler();
  const parent = spawnActor(s, { trapExit: true });
  const child = await parent.run((ctx) =>
    ctx.spawnLink(() => {
      throw new Error('died at birth');
    }),
  );
  const exit = await parent.probe.next<ExitMessage>(isExitMessage);
  assert.equal(exit.from.key, child.key);
  assert.equal((exit.reason as CrashReason).error, 'died at birth');
  assert.equal(s.isAlive(child), false);
});

test('spawnLink: a child that crashes at once takes a non-trapping parent down with its reason', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const parent = spawnActor(s);
  await watcher.run((ctx) => ctx.monitor(parent.pid));
  await parent.run((ctx) =>
    ctx.spawnLink(() => {
      throw new Error('died at birth');
    }),
  ).catch(() => undefined);
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.equal(down.pid.key, parent.pid.key);
  assert.equal((down.reason as CrashReason).error, 'died at birth');
});

test('spawnMonitor: a child that exits at once still delivers DOWN with its reason', async () => {
  const s = newScheduler();
  const parent = spawnActor(s);
  const [child, ref] = await parent.run((ctx) =>
    ctx.spawnMonitor((c) => {
      c.exit('early');
      return () => undefined;
    }),
  );
  const down = await parent.probe.next<DownMessage>(isDownMessage);
  assert.deepEqual([down.ref.key, down.pid.key, down.reason], [ref.key, child.key, 'early']);
});

test('spawnMonitor: the child is monitored before it runs, so a crash in its body is a DOWN', async () => {
  const s = newScheduler();
  const parent = spawnActor(s);
  const [child, ref] = await parent.run((ctx) =>
    ctx.spawnMonitor(() => {
      throw new TypeError('bad body');
    }),
  );
  const down = await parent.probe.next<DownMessage>(isDownMessage);
  assert.equal(down.ref.key, ref.key);
  assert.equal(down.pid.key, child.key);
  assert.equal((down.reason as CrashReason).error, 'bad body');
  assert.equal((down.reason as CrashReason).name, 'TypeError');
});

test('spawn with a name registers the child before its body runs', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const pid = s.spawn((ctx) => {
    ctx.send(probe.pid, ctx.whereis('early-bird')?.key ?? 'unregistered');
    return () => undefined;
  }, { name: 'early-bird' });
  assert.equal(s.whereis('early-bird')?.key, pid.key);
  assert.equal(await probe.next(), pid.key);
});

test('spawnMonitor with a name already taken returns a real ref and delivers DOWN already_registered', async () => {
  const s = newScheduler();
  const holder = s.spawn(() => () => undefined, { name: 'taken' });
  const parent = spawnActor(s);
  const [child, ref] = await parent.run((ctx) => ctx.spawnMonitor(() => () => undefined, { name: 'taken' }));
  assert.ok(ref !== null && ref !== undefined, 'spawnMonitor must return a ref');
  assert.equal(s.isAlive(child), false);
  assert.equal(s.whereis('taken')?.key, holder.key);
  const down = await parent.probe.next<DownMessage>(isDownMessage);
  assert.equal(down.ref.key, ref.key);
  assert.equal(down.pid.key, child.key);
  assert.equal((down.reason as CrashReason).name, 'already_registered');
});

test('spawnLink with a name already taken does not run the child nor kill the parent', async () => {
  const s = newScheduler();
  s.spawn(() => () => undefined, { name: 'taken' });
  const parent = spawnActor(s);
  const child = await parent.run((ctx) => ctx.spawnLink(() => () => undefined, { name: 'taken' }));
  assert.equal(s.isAlive(child), false);
  assert.equal(await parent.run(() => 'still here'), 'still here');
});

test('spawnLink from a process that died during an async handler leaves no orphaned child', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let child: Pid | undefined;
  const parent = s.spawn((ctx) => async () => {
    await gate;
    child = ctx.spawnLink(() => () => undefined);
    ctx.send(probe.pid, 'sent by a dead process');
  });
  s.send(parent, 'go', null);
  await until(() => s.info(parent)?.status === 'busy', 2000, 'the parent to block in its handler');
  s.kill(parent);
  assert.equal(s.isAlive(parent), false);
  release();
  await until(() => child !== undefined, 2000, 'the dead parent to reach spawnLink');
  await until(() => !s.isAlive(child as Pid), 2000, 'the child linked to a dead parent to exit');
  s.send(probe.pid, 'marker', null);
  await probe.next((m) => m === 'marker');
  assert.deepEqual(probe.received, ['marker']);
});

test('spawn from outside any process starts a child with no links', async () => {
  const s = newScheduler();
  const pid = s.spawn(() => () => undefined);
  await until(() => s.info(pid)?.status === 'waiting');
  assert.deepEqual(s.info(pid)?.links, []);
});
