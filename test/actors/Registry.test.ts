/**
 * Registry: unique keys to pids, written through one registry process and read directly
 * from its table; registered processes are monitored and removed when they exit; via names
 * address a process by key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newScheduler, until } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';
import * as Registry from '../../actors/Registry.js';
import * as GenServer from '../../actors/GenServer.js';
import type { Pid } from '../../runtime/Pid.js';
import type { Scheduler } from '../../runtime/Scheduler.js';

async function startRegistry(s: Scheduler, name = 'reg'): Promise<Pid> {
  const r = await Registry.start(s, name);
  assert.ok(r.ok, `registry start failed: ${JSON.stringify(r)}`);
  return r.pid;
}

test('register maps a key to a pid, and lookup reads it synchronously, even in a plain handler', async () => {
  const s = newScheduler();
  await startRegistry(s);
  const a = spawnActor(s);
  assert.deepEqual(await Registry.register(s, 'reg', 'alice', a.pid), { ok: true });
  assert.equal(Registry.lookup(s, 'reg', 'alice')?.key, a.pid.key);
  // A synchronous handler cannot make a server call (receive would crash it): the read is local.
  const reader = spawnActor(s);
  assert.equal(await reader.run((ctx) => Registry.lookup(ctx, 'reg', 'alice')?.key), a.pid.key);
  assert.equal(Registry.lookup(s, 'reg', 'bob'), undefined);
  assert.equal(Registry.count(s, 'reg'), 1);
});

test('a taken key answers already_registered with the holder, whoever asks', async () => {
  const s = newScheduler();
  await startRegistry(s);
  const a = spawnActor(s);
  const b = spawnActor(s);
  await Registry.register(s, 'reg', 'k', a.pid);
  const again = await Registry.register(s, 'reg', 'k', b.pid);
  assert.equal(again.ok, false);
  assert.equal(!again.ok && again.error, 'already_registered');
  assert.equal(!again.ok && again.error === 'already_registered' && again.pid.key, a.pid.key);
  const same = await Registry.register(s, 'reg', 'k', a.pid);
  assert.equal(!same.ok && same.error, 'already_registered');
  assert.equal(Registry.lookup(s, 'reg', 'k')?.key, a.pid.key);
});

test('two processes racing for one key: exactly one wins, the other learns who', async () => {
  const s = newScheduler();
  await startRegistry(s);
  const a = spawnActor(s);
  const b = spawnActor(s);
  const [ra, rb] = await Promise.all([
    a.run((ctx) => Registry.register(ctx, 'reg', 'contested', ctx.self)),
    b.run((ctx) => Registry.register(ctx, 'reg', 'contested', ctx.self)),
  ]);
  const wins = [ra, rb].filter((r) => r.ok);
  assert.equal(wins.length, 1);
  const winner = ra.ok ? a.pid : b.pid;
  const loser = ra.ok ? rb : ra;
  assert.ok(!loser.ok && loser.error === 'already_registered');
  assert.equal(loser.pid.key, winner.key);
  assert.equal(Registry.lookup(s, 'reg', 'contested')?.key, winner.key);
});

test('one pid may hold several keys; keysOf lists them in registration order', async () => {
  const s = newScheduler();
  const reg = await startRegistry(s);
  const a = spawnActor(s);
  for (const k of ['x', 'y', 'z']) assert.deepEqual(await Registry.register(s, 'reg', k, a.pid), { ok: true });
  assert.deepEqual(Registry.keysOf(s, 'reg', a.pid), ['x', 'y', 'z']);
  assert.equal(s.info(reg)?.monitors, 1, 'one monitor per pid, not per key');
});

test('unregister frees the key; a free key reports removed false', async () => {
  const s = newScheduler();
  await startRegistry(s);
  const a = spawnActor(s);
  const b = spawnActor(s);
  await Registry.register(s, 'reg', 'k', a.pid);
  assert.deepEqual(await Registry.unregister(s, 'reg', 'k'), { ok: true, removed: true });
  assert.equal(Registry.lookup(s, 'reg', 'k'), undefined);
  assert.deepEqual(await Registry.unregister(s, 'reg', 'k'), { ok: true, removed: false });
  assert.deepEqual(await Registry.register(s, 'reg', 'k', b.pid), { ok: true });
});

test('unregistering the last key of a pid drops the monitor on it', async () => {
  const s = newScheduler();
  const reg = await startRegistry(s);
  const a = spawnActor(s);
  await Registry.register(s, 'reg', 'one', a.pid);
  await Registry.register(s, 'reg', 'two', a.pid);
  await Registry.unregister(s, 'reg', 'one');
  assert.equal(s.info(reg)?.monitors, 1);
  await Registry.unregister(s, 'reg', 'two');
  assert.equal(s.info(reg)?.monitors, 0);
  assert.equal(s.info(a.pid)?.monitoredBy, 0);
});

test('a registered process that exits loses all its keys', async () => {
  const s = newScheduler();
  const reg = await startRegistry(s);
  const a = spawnActor(s);
  const b = spawnActor(s);
  await Registry.register(s, 'reg', 'a1', a.pid);
  await Registry.register(s, 'reg', 'a2', a.pid);
  await Registry.register(s, 'reg', 'b1', b.pid);
  s.kill(a.pid, 'gone');
  await until(() => Registry.count(s, 'reg') === 1, 2000, 'the registry to handle the DOWN');
  assert.deepEqual(Registry.keysOf(s, 'reg', a.pid), []);
  assert.equal(Registry.lookup(s, 'reg', 'b1')?.key, b.pid.key);
  assert.equal(s.info(reg)?.monitors, 1);
  assert.deepEqual(await Registry.register(s, 'reg', 'a1', b.pid), { ok: true });
});

test('lookup never returns a local pid that already exited, even before the registry saw the DOWN', async () => {
  const s = newScheduler();
  await startRegistry(s);
  const a = spawnActor(s);
  await Registry.register(s, 'reg', 'k', a.pid);
  s.kill(a.pid);
  assert.equal(Registry.count(s, 'reg'), 1, 'the DOWN is not handled yet');
  assert.equal(Registry.lookup(s, 'reg', 'k'), undefined);
});

test('registering a local pid that already exited answers noproc', async () => {
  const s = newScheduler();
  await startRegistry(s);
  const dead = s.spawn(() => undefined);
  await until(() => !s.isAlive(dead));
  assert.deepEqual(await Registry.register(s, 'reg', 'k', dead), { ok: false, error: 'noproc' });
  assert.equal(Registry.count(s, 'reg'), 0);
});

test('with no registry running, writes answer call_failed noproc and reads see nothing', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  assert.deepEqual(await Registry.register(s, 'missing', 'k', a.pid), { ok: false, error: 'call_failed', reason: 'noproc' });
  assert.deepEqual(await Registry.unregister(s, 'missing', 'k'), { ok: false, error: 'call_failed', reason: 'noproc' });
  assert.equal(Registry.lookup(s, 'missing', 'k'), undefined);
  assert.equal(Registry.count(s, 'missing'), 0);
});

test('a registry that exits takes its table with it and leaves registered processes alone', async () => {
  const s = newScheduler();
  const reg = await startRegistry(s);
  const a = spawnActor(s);
  await Registry.register(s, 'reg', 'k', a.pid);
  s.kill(reg);
  assert.equal(Registry.lookup(s, 'reg', 'k'), undefined);
  assert.equal(s.isAlive(a.pid), true);
  await startRegistry(s);
  assert.equal(Registry.lookup(s, 'reg', 'k'), undefined, 'a new registry starts empty');
});

test('starting a second registry under a taken name fails', async () => {
  const s = newScheduler();
  const first = await startRegistry(s);
  const r = await Registry.start(s, 'reg');
  assert.equal(r.ok, false);
  assert.deepEqual(!r.ok && r.reason, { already_started: first });
});

test('registries are independent of each other and of the kernel names', async () => {
  const s = newScheduler();
  await startRegistry(s, 'r1');
  await startRegistry(s, 'r2');
  const a = spawnActor(s);
  const b = spawnActor(s);
  await Registry.register(s, 'r1', 'k', a.pid);
  assert.deepEqual(await Registry.register(s, 'r2', 'k', b.pid), { ok: true });
  assert.equal(Registry.lookup(s, 'r1', 'k')?.key, a.pid.key);
  assert.equal(Registry.lookup(s, 'r2', 'k')?.key, b.pid.key);
  assert.equal(s.whereis('k'), undefined);
});

test('reads happen on the registry scheduler only: another scheduler sees no registry', async () => {
  const s = newScheduler();
  const other = newScheduler();
  await startRegistry(s);
  const a = spawnActor(s);
  await Registry.register(s, 'reg', 'k', a.pid);
  assert.equal(Registry.lookup(other, 'reg', 'k'), undefined);
});

test('a process registers itself from async code and is found by key', async () => {
  const s = newScheduler();
  await startRegistry(s);
  const a = spawnActor(s);
  assert.deepEqual(await a.run((ctx) => Registry.register(ctx, 'reg', 'me', ctx.self)), { ok: true });
  assert.equal(Registry.lookup(s, 'reg', 'me')?.key, a.pid.key);
});

const echoServer: GenServer.Behaviour<null, void, string, string> = {
  init: () => ({ state: null }),
  handleCall: (req) => ({ reply: `echo ${req}`, state: null }),
};

test('via names: callVia and sendVia reach the process registered under the key', async () => {
  const s = newScheduler();
  await startRegistry(s);
  const started = await GenServer.start(s, echoServer, undefined);
  assert.ok(started.ok);
  const name = Registry.via('reg', 'echo');
  assert.deepEqual(await name.register(s, started.pid), { ok: true });
  assert.equal(name.whereis(s)?.key, started.pid.key);
  assert.equal(String(name), 'via Registry reg echo');
  assert.deepEqual(await Registry.callVia(s, name, 'hi'), { ok: true, value: 'echo hi' });
  const caller = spawnActor(s);
  assert.deepEqual(await caller.run((ctx) => Registry.callVia(ctx, name, 'from a process')), { ok: true, value: 'echo from a process' });

  const a = spawnActor(s);
  const inbox = Registry.via('reg', 'inbox');
  await inbox.register(s, a.pid);
  assert.equal(Registry.sendVia(s, inbox, 'by key'), true);
  assert.equal(await a.probe.next(), 'by key');
  assert.deepEqual(await inbox.unregister(s), { ok: true, removed: true });
});

test('via names that resolve to nothing: sendVia returns false and callVia answers noproc', async () => {
  const s = newScheduler();
  await startRegistry(s);
  const name = Registry.via('reg', 'nobody');
  assert.equal(name.whereis(s), undefined);
  assert.equal(Registry.sendVia(s, name, 'lost'), false);
  assert.deepEqual(await Registry.callVia(s, name, 'anyone?'), { ok: false, reason: 'noproc' });
});

test('the registry shows as a Registry behaviour in process info', async () => {
  const s = newScheduler();
  const reg = await startRegistry(s);
  assert.equal(s.info(reg)?.behaviour, 'Registry');
  assert.equal(s.info(reg)?.name, 'reg');
});
