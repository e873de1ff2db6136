/**
 * Process introspection: info() reports status, queue length, messages handled, a memory
 * estimate that grows with what the process holds, the behaviour label, links, monitors and
 * trapExit; a dead pid has no info; the scheduler lists its live processes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newScheduler, until } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';

test('status goes starting → waiting, runnable with mail, running inside its handler', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  assert.equal(s.info(a.pid)?.status, 'starting');
  await until(() => s.info(a.pid)?.status === 'waiting');
  s.send(a.pid, 'x', null);
  assert.equal(s.info(a.pid)?.status, 'runnable');
  assert.equal(await a.run((ctx) => ctx.info()?.status), 'running');
});

test('status is busy during an async handler and waiting while blocked in receive', async () => {
  const s = newScheduler();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const a = spawnActor(s);
  const busy = a.run(async () => {
    await gate;
  });
  await until(() => s.info(a.pid)?.status === 'busy');
  release();
  await busy;
  const p = s.spawn(async (ctx) => {
    await ctx.receive((m) => m === 'never');
  });
  await until(() => s.info(p)?.status === 'waiting');
  assert.equal(s.info(p)?.status, 'waiting');
});

test('messageQueueLen counts queued user messages and system signals', async () => {
  const s = newScheduler();
  const a = spawnActor(s, { trapExit: true });
  const child = await a.run((ctx) => ctx.spawnLink(() => () => undefined));
  s.send(a.pid, 1, null);
  s.send(a.pid, 2, null);
  s.kill(child);
  assert.equal(s.info(a.pid)?.messageQueueLen, 3);
});

test('messagesHandled counts every message the process handled', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  for (let i = 0; i < 7; i++) s.send(a.pid, i, null);
  await until(() => a.probe.received.length === 7);
  assert.equal(s.info(a.pid)?.messagesHandled, 7);
  await a.run(() => undefined);
  assert.equal(s.info(a.pid)?.messagesHandled, 8);
});

test('the memory estimate is positive and grows with queued messages and links', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  await until(() => s.info(a.pid)?.status === 'waiting');
  const idle = s.info(a.pid)?.memoryEstimate as number;
  assert.ok(idle > 0);
  for (let i = 0; i < 100; i++) s.send(a.pid, i, null);
  const loaded = s.info(a.pid)?.memoryEstimate as number;
  assert.ok(loaded > idle, `${loaded} > ${idle}`);
  await until(() => a.probe.received.length === 100);
  const b = spawnActor(s);
  await b.run((ctx) => ctx.link(a.pid));
  const before = s.info(b.pid)?.memoryEstimate as number;
  await b.run((ctx) => ctx.monitor(a.pid));
  assert.ok((s.info(b.pid)?.memoryEstimate as number) > before);
});

test('info shows the behaviour label, name, links, monitors and trapExit', async () => {
  const s = newScheduler();
  const a = spawnActor(s, { label: 'GenServer', name: 'svc', trapExit: true });
  const b = spawnActor(s);
  await a.run((ctx) => {
    ctx.link(b.pid);
    ctx.monitor(b.pid);
  });
  await b.run((ctx) => ctx.monitor(a.pid));
  const info = s.info(a.pid);
  assert.ok(info !== undefined);
  assert.deepEqual(
    {
      pid: info.pid.key,
      behaviour: info.behaviour,
      name: info.name,
      links: info.links.map((p) => p.key),
      monitors: info.monitors,
      monitoredBy: info.monitoredBy,
      trapExit: info.trapExit,
    },
    { pid: a.pid.key, behaviour: 'GenServer', name: 'svc', links: [b.pid.key], monitors: 1, monitoredBy: 1, trapExit: true },
  );
  assert.equal(s.info(b.pid)?.behaviour, 'test-actor');
});

test('a process with no label has behaviour null', () => {
  const s = newScheduler();
  const pid = s.spawn(() => () => undefined);
  assert.equal(s.info(pid)?.behaviour, null);
});

test('a dead pid has no info and is not in the process list', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  const b = spawnActor(s);
  assert.deepEqual(
    s.processes().map((p) => p.key).sort(),
    [a.pid.key, a.probe.pid.key, b.pid.key, b.probe.pid.key].sort(),
  );
  s.kill(a.pid);
  assert.equal(s.info(a.pid), undefined);
  assert.equal(s.processes().some((p) => p.key === a.pid.key), false);
  assert.equal(s.metrics().processes, 3);
});

test('hibernate releases the empty queue storage and the process keeps working', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  for (let i = 0; i < 200; i++) s.send(a.pid, i, null);
  await until(() => a.probe.received.length === 200);
  const before = s.info(a.pid)?.memoryEstimate as number;
  await a.run((ctx) => ctx.hibernate());
  const after = s.info(a.pid)?.memoryEstimate as number;
  const fresh = spawnActor(s);
  await until(() => s.info(fresh.pid)?.status === 'waiting');
  assert.ok(after < before, `hibernate shrinks the estimate (${before} -> ${after})`);
  // What stays is a fresh process plus the record of its queue's high watermark (80 bytes).
  assert.equal(after, (s.info(fresh.pid)?.memoryEstimate as number) + 80);
  s.send(a.pid, 'still alive', null);
  assert.equal(await a.probe.next((m) => m === 'still alive'), 'still alive');
});
