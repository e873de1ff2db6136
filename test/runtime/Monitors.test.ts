/**
 * Monitors: a DOWN carries the exit reason, monitoring a dead pid gives DOWN noproc at once,
 * demonitor prevents the DOWN, and demonitor with flush removes a DOWN already queued.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newScheduler, until } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';
import { isDownMessage, type DownMessage } from '../../runtime/ExitReason.js';

test('a monitor delivers DOWN with the ref, the pid and the exit reason', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const target = s.spawn(() => () => undefined);
  const ref = await watcher.run((ctx) => ctx.monitor(target));
  s.kill(target, { shutdown: 'maintenance' });
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.deepEqual(
    { type: down.type, ref: down.ref.key, pid: down.pid.key, reason: down.reason },
    { type: 'DOWN', ref: ref.key, pid: target.key, reason: { shutdown: 'maintenance' } },
  );
});

test('a monitor fires even for a normal exit, and a monitored process is not affected by the watcher', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const target = spawnActor(s);
  await watcher.run((ctx) => ctx.monitor(target.pid));
  s.kill(watcher.pid, 'watcher_died');
  assert.equal(s.isAlive(target.pid), true);
  const w2 = spawnActor(s);
  await w2.run((ctx) => ctx.monitor(target.pid));
  await target.run((ctx) => ctx.exit('normal'));
  const down = await w2.probe.next<DownMessage>(isDownMessage);
  assert.equal(down.reason, 'normal');
});

test('monitoring a dead pid delivers DOWN noproc at once', async () => {
  const s = newScheduler();
  const dead = s.spawn(() => undefined);
  await until(() => !s.isAlive(dead));
  const watcher = spawnActor(s);
  const [ref, queued] = await watcher.run((ctx) => {
    const r = ctx.monitor(dead);
    return [r, ctx.info()?.messageQueueLen] as const;
  });
  assert.equal(queued, 1, 'the DOWN is already queued when monitor returns');
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.deepEqual([down.ref.key, down.pid.key, down.reason], [ref.key, dead.key, 'noproc']);
});

test('monitoring an unregistered name delivers DOWN noproc naming it', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const ref = await watcher.run((ctx) => ctx.monitor('nobody'));
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.deepEqual([down.ref.key, down.pid as unknown, down.reason], [ref.key, 'nobody', 'noproc']);
});

test('several monitors on one process each deliver their own DOWN', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const target = s.spawn(() => () => undefined);
  const [r1, r2] = await watcher.run((ctx) => [ctx.monitor(target), ctx.monitor(target)]);
  s.kill(target, 'x');
  const d1 = await watcher.probe.next<DownMessage>(isDownMessage);
  const d2 = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.deepEqual([d1.ref.key, d2.ref.key].sort(), [r1.key, r2.key].sort());
});

test('demonitor before the exit prevents the DOWN and returns true', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const target = s.spawn(() => () => undefined);
  const wasActive = await watcher.run((ctx) => ctx.demonitor(ctx.monitor(target)));
  assert.equal(wasActive, true);
  assert.equal(s.info(target)?.monitoredBy, 0);
  s.kill(target, 'x');
  assert.deepEqual(await watcher.settled(), []);
});

test('demonitor with flush removes a DOWN already queued and returns false', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const target = s.spawn(() => () => undefined);
  const r = await watcher.run((ctx) => {
    const ref = ctx.monitor(target);
    ctx.sendExit(target, 'kill');
    const queued = ctx.info()?.messageQueueLen;
    const active = ctx.demonitor(ref, { flush: true });
    return { queued, active, after: ctx.info()?.messageQueueLen };
  });
  assert.deepEqual(r, { queued: 1, active: false, after: 0 });
  assert.deepEqual(await watcher.settled(), []);
});

test('demonitor without flush after the DOWN was queued returns false and the DOWN still arrives', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const target = s.spawn(() => () => undefined);
  const r = await watcher.run((ctx) => {
    const ref = ctx.monitor(target);
    ctx.sendExit(target, 'kill');
    return { ref, active: ctx.demonitor(ref) };
  });
  assert.equal(r.active, false);
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.equal(down.ref.key, r.ref.key);
});

test('demonitor with flush keeps DOWNs of other monitors', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  const t1 = s.spawn(() => () => undefined);
  const t2 = s.spawn(() => () => undefined);
  const keep = await watcher.run((ctx) => {
    const r1 = ctx.monitor(t1);
    const r2 = ctx.monitor(t2);
    ctx.sendExit(t1, 'kill');
    ctx.sendExit(t2, 'kill');
    ctx.demonitor(r1, { flush: true });
    return r2;
  });
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.equal(down.ref.key, keep.key);
  assert.equal((await watcher.settled()).length, 1);
});
