/**
 * Local names on a scheduler: register/whereis/unregister, one name per process and one
 * process per name, names freed when their process exits, and sending to a name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newScheduler } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';

test('register makes a process findable with whereis; unregister removes the name', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  assert.equal(await a.run((ctx) => ctx.register('alpha')), true);
  assert.equal(s.whereis('alpha')?.key, a.pid.key);
  assert.equal(s.info(a.pid)?.name, 'alpha');
  assert.deepEqual(s.registered().includes('alpha'), true);
  assert.equal(await a.run((ctx) => ctx.unregister('alpha')), true);
  assert.equal(s.whereis('alpha'), undefined);
  assert.equal(s.info(a.pid)?.name, null);
  assert.equal(await a.run((ctx) => ctx.unregister('alpha')), false);
});

test('a name held by one process cannot be registered by another', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  const b = spawnActor(s);
  assert.equal(await a.run((ctx) => ctx.register('only-one')), true);
  assert.equal(await b.run((ctx) => ctx.register('only-one')), false);
  assert.equal(s.whereis('only-one')?.key, a.pid.key);
});

test('a process holds at most one name', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  assert.equal(await a.run((ctx) => ctx.register('first')), true);
  assert.equal(await a.run((ctx) => ctx.register('second')), false);
  assert.equal(s.whereis('second'), undefined);
});

test('a name is freed when its process exits and can be taken again', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  await a.run((ctx) => ctx.register('svc'));
  s.kill(a.pid);
  assert.equal(s.whereis('svc'), undefined);
  assert.equal(s.registered().includes('svc'), false);
  const b = spawnActor(s);
  assert.equal(await b.run((ctx) => ctx.register('svc')), true);
  assert.equal(s.whereis('svc')?.key, b.pid.key);
});

test('send to a name reaches the registered process; to an unknown name it is dropped', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  const sender = spawnActor(s);
  await a.run((ctx) => ctx.register('inbox'));
  await sender.run((ctx) => {
    ctx.send('nobody-here', 'lost');
    ctx.send('inbox', 'hello by name');
    ctx.sendNamed('inbox', ctx.schedulerId, 'hello by sendNamed');
  });
  assert.equal(await a.probe.next(), 'hello by name');
  assert.equal(await a.probe.next(), 'hello by sendNamed');
});

test('whereis from inside a process sees the same names as the scheduler', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  const b = spawnActor(s);
  await a.run((ctx) => ctx.register('seen'));
  assert.equal(await b.run((ctx) => ctx.whereis('seen')?.key), a.pid.key);
  assert.equal(await b.run((ctx) => ctx.whereis('unseen')), undefined);
});
