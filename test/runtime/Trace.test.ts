/**
 * Trace ids: a message carries the trace id of the message its sender was handling, so a
 * trace set once follows the causal chain across hops, spawns and timers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newScheduler, spawnProbe } from '../support/kernel.js';
import type { Pid } from '../../runtime/Pid.js';
import type { Scheduler } from '../../runtime/Scheduler.js';

/** Reports `{msg, trace}` for every message to `report`, then forwards it to `next` if given. */
function spawnHop(s: Scheduler, report: Pid, next?: Pid): Pid {
  return s.spawn((ctx) => (msg) => {
    ctx.send(report, { msg, trace: ctx.traceId });
    if (next !== undefined) ctx.send(next, msg);
  });
}

test('a message sent while handling a message with trace T carries T, hop after hop', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const last = spawnHop(s, probe.pid);
  const middle = spawnHop(s, probe.pid, last);
  const origin = s.spawn((ctx) => () => {
    ctx.setTraceId(4242);
    ctx.send(middle, 'traced');
  });
  s.send(origin, 'start', null);
  const seen = [await probe.next(), await probe.next()];
  assert.deepEqual(seen, [
    { msg: 'traced', trace: 4242 },
    { msg: 'traced', trace: 4242 },
  ]);
});

test('each handled message sets its own trace: different inputs, different traces', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const hop = spawnHop(s, probe.pid);
  const relay = s.spawn((ctx) => (msg) => {
    const m = msg as { trace: number };
    ctx.setTraceId(m.trace);
    ctx.send(hop, m.trace);
  });
  s.send(relay, { trace: 1 }, null);
  s.send(relay, { trace: 2 }, null);
  assert.deepEqual([await probe.next(), await probe.next()], [
    { msg: 1, trace: 1 },
    { msg: 2, trace: 2 },
  ]);
});

test('a message from outside any process carries trace 0', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const hop = spawnHop(s, probe.pid);
  s.send(hop, 'untraced', null);
  assert.deepEqual(await probe.next(), { msg: 'untraced', trace: 0 });
});

test('a child spawned while handling trace T starts with trace T', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const parent = s.spawn((ctx) => () => {
    ctx.setTraceId(77);
    ctx.spawn((c) => {
      c.send(probe.pid, { childTrace: c.traceId });
    });
  });
  s.send(parent, 'go', null);
  assert.deepEqual(await probe.next(), { childTrace: 77 });
});

test('a timer set while handling trace T delivers its message with trace T', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const hop = spawnHop(s, probe.pid);
  const origin = s.spawn((ctx) => (msg) => {
    if (msg === 'arm') {
      ctx.setTraceId(9);
      ctx.sendAfter(20, 'timer fired', hop);
    }
  });
  s.send(origin, 'arm', null);
  // A later, untraced message to the timer's owner must not change the timer's trace.
  s.send(origin, 'something else', null);
  assert.deepEqual(await probe.next(), { msg: 'timer fired', trace: 9 });
});

test('a message received with selective receive sets the trace for what follows', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const hop = spawnHop(s, probe.pid);
  const sender = s.spawn((ctx) => () => {
    ctx.setTraceId(555);
    ctx.send(receiver, 'payload');
  });
  const receiver = s.spawn(async (ctx) => {
    await ctx.receive((m) => m === 'payload');
    ctx.send(hop, 'after receive');
  });
  s.send(sender, 'go', null);
  assert.deepEqual(await probe.next(), { msg: 'after receive', trace: 555 });
});
