/**
 * Pid identity and addressing: a send to a dead pid is dropped silently, and a stale pid
 * (kept after its process died) never reaches a process that later reuses the same slot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newScheduler, spawnProbe } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';
import { Pid, pidEquals } from '../../runtime/Pid.js';

test('a stale pid never reaches a process that reused its slot', async () => {
  const s = newScheduler();
  const old = s.spawn(() => () => undefined);
  s.kill(old);
  assert.equal(s.isAlive(old), false);
  const probe = spawnProbe(s);
  assert.equal(probe.pid.slot, old.slot, 'the new process reuses the freed slot');
  assert.notEqual(probe.pid.gen, old.gen);
  // The same pid as a fresh object, as if it had come back from another thread or node.
  const decodedOld = new Pid(old.node, old.sched, old.inc, old.slot, old.gen);
  s.send(old, 'stale', null);
  s.send(decodedOld, 'stale copy', null);
  assert.equal(s.isAlive(decodedOld), false);
  s.send(probe.pid, 'fresh', null);
  assert.equal(await probe.next(), 'fresh');
  assert.deepEqual(probe.received, ['fresh']);
});

test('a pid from an earlier incarnation of this scheduler is never delivered to', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const earlier = new Pid(probe.pid.node, probe.pid.sched, probe.pid.inc + 1000, probe.pid.slot, probe.pid.gen);
  s.send(earlier, 'other incarnation', null);
  s.send(probe.pid, 'mine', null);
  assert.equal(await probe.next(), 'mine');
  assert.deepEqual(probe.received, ['mine']);
});

test('send to a dead pid is dropped silently and the sender carries on', async () => {
  const s = newScheduler();
  const dead = s.spawn(() => undefined);
  s.kill(dead);
  const sender = spawnActor(s);
  const r = await sender.run((ctx) => {
    ctx.send(dead, 'into the void');
    ctx.send('no-such-name', 'into the void');
    return 'sent';
  });
  assert.equal(r, 'sent');
  assert.equal(s.isAlive(sender.pid), true);
  assert.doesNotThrow(() => s.send(dead, 'from outside', null));
});

test('pidEquals and key compare pids by value, not by object', () => {
  const a = new Pid('n', 1, 7, 3, 2);
  const b = new Pid('n', 1, 7, 3, 2);
  const otherGen = new Pid('n', 1, 7, 3, 3);
  const otherInc = new Pid('n', 1, 8, 3, 2);
  assert.equal(pidEquals(a, b), true);
  assert.equal(a.key, b.key);
  assert.equal(pidEquals(a, otherGen), false);
  assert.equal(pidEquals(a, otherInc), false);
  assert.notEqual(a.key, otherGen.key);
  assert.notEqual(a.key, otherInc.key);
  assert.equal(pidEquals(a, null), false);
});
