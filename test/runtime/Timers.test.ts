/**
 * Timers: sendAfter delivers an ordinary message (or a system-lane one), cancelTimer returns
 * the milliseconds left and prevents delivery, and cancelling a fired or unknown timer is false.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newScheduler, spawnProbe, until } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';

test('sendAfter delivers the message to self after the delay', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  await a.run((ctx) => ctx.sendAfter(5, 'tick'));
  assert.equal(await a.probe.next(), 'tick');
});

test('sendAfter delivers to another process', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  const b = spawnActor(s);
  await a.run((ctx) => ctx.sendAfter(1, { for: 'b' }, b.pid));
  assert.deepEqual(await b.probe.next(), { for: 'b' });
});

test('timers with different delays deliver in deadline order', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  await a.run((ctx) => {
    ctx.sendAfter(30, 'third');
    ctx.sendAfter(0, 'first');
    ctx.sendAfter(15, 'second');
  });
  await until(() => a.probe.received.length === 3);
  assert.deepEqual(a.probe.received, ['first', 'second', 'third']);
});

test('cancelTimer returns the milliseconds left and the message is never delivered', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  const left = await a.run((ctx) => {
    const ref = ctx.sendAfter(10_000, 'cancelled');
    return ctx.cancelTimer(ref);
  });
  assert.equal(typeof left, 'number');
  assert.ok((left as number) > 9_000 && (left as number) <= 10_000, `left ${String(left)}`);
  const shortLeft = await a.run((ctx) => {
    const ref = ctx.sendAfter(10, 'cancelled too');
    ctx.sendAfter(40, 'marker');
    return ctx.cancelTimer(ref);
  });
  assert.ok(typeof shortLeft === 'number' && shortLeft >= 0 && shortLeft <= 10);
  assert.equal(await a.probe.next(), 'marker');
  assert.deepEqual(await a.settled(), ['marker']);
});

test('cancelTimer after the timer fired returns false', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  const ref = await a.run((ctx) => ctx.sendAfter(0, 'fired'));
  assert.equal(await a.probe.next(), 'fired');
  assert.equal(await a.run((ctx) => ctx.cancelTimer(ref)), false);
});

test('cancelTimer of an unknown ref or twice returns false', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  const r = await a.run((ctx) => {
    const ref = ctx.sendAfter(10_000, 'x');
    const first = ctx.cancelTimer(ref);
    return { first: typeof first, second: ctx.cancelTimer(ref), unknown: ctx.cancelTimer(ctx.makeRef()) };
  });
  assert.deepEqual(r, { first: 'number', second: false, unknown: false });
});

test('a system timer is delivered ahead of queued user messages', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const busy = a.run(async (ctx) => {
    for (let i = 0; i < 100; i++) ctx.send(ctx.self, i);
    ctx.sendAfter(0, 'timeout', undefined, { system: true });
    await gate;
  });
  await until(() => s.info(a.pid)?.messageQueueLen === 101, 2000, 'the system timer to fire into the queue');
  release();
  await busy;
  await until(() => a.probe.received.length === 101);
  assert.equal(a.probe.received[0], 'timeout');
  assert.deepEqual(a.probe.received.slice(1), Array.from({ length: 100 }, (_, i) => i));
});

test('a timer to a process that died is dropped, even when its slot was reused', async () => {
  const s = newScheduler();
  const a = spawnActor(s);
  const b = s.spawn(() => () => undefined);
  await a.run((ctx) => {
    ctx.sendAfter(0, 'for the dead', b);
    ctx.sendAfter(20, 'marker');
  });
  s.kill(b);
  const successor = spawnProbe(s);
  assert.equal(successor.pid.slot, b.slot);
  assert.equal(await a.probe.next(), 'marker');
  s.send(successor.pid, 'check', null);
  await successor.next((m) => m === 'check');
  assert.deepEqual(successor.received, ['check']);
});

/** Collect garbage until `ref` is cleared or `rounds` collections have run. */
async function collected(ref: WeakRef<object>, rounds = 10): Promise<boolean> {
  const gc = (globalThis as { gc?: () => void }).gc;
  assert.ok(gc !== undefined, 'tests run with --expose-gc');
  for (let i = 0; i < rounds && ref.deref() !== undefined; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  return ref.deref() === undefined;
}

test('a process that exits takes its pending timers with it, and they keep nothing of it alive', async () => {
  const s = newScheduler();
  let held: WeakRef<object> | null = null;
  const pid = s.spawn((ctx) => {
    // State only this process's handler closes over (what a connection's buffers are).
    const state = { buffers: [new Uint8Array(1024 * 1024)] };
    held = new WeakRef(state);
    ctx.sendAfter(30_000, 'much later');
    return (m) => {
      if (m === 'stop') ctx.exit('normal');
      void state;
    };
  });
  s.send(pid, 'stop', null);
  await until(() => s.local(pid) === undefined);
  assert.equal(s.metrics().timers, 0, 'the exited process has no timer left');
  assert.ok(await collected(held!), "the exited process's state is collectable at once, not after 30 s");
});

test('a timer a process set for another process does not keep the setter alive after it exits', async () => {
  const s = newScheduler();
  const other = spawnProbe(s);
  let held: WeakRef<object> | null = null;
  const pid = s.spawn((ctx) => {
    const state = { buffers: [new Uint8Array(1024 * 1024)] };
    held = new WeakRef(state);
    ctx.sendAfter(20, 'from the setter', other.pid);
    return (m) => {
      if (m === 'stop') ctx.exit('normal');
      void state;
    };
  });
  s.send(pid, 'stop', null);
  await until(() => s.local(pid) === undefined);
  assert.ok(await collected(held!), 'the setter is collectable while its timer is pending');
  assert.equal(await other.next(), 'from the setter', 'the timer still fires for its live target');
});
