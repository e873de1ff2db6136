/**
 * How a process ends: ctx.exit stops it when the current handler returns, throwing
 * ProcessExit exits with its reason (not reported as a crash), and any other throw is a
 * crash whose reason carries the error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newScheduler, spawnProbe } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';
import { ProcessExit, isDownMessage, type CrashReason, type DownMessage, type ExitReason } from '../../runtime/ExitReason.js';
import type { ProcessBody } from '../../runtime/ProcessContext.js';
import type { Scheduler } from '../../runtime/Scheduler.js';

/** Spawn `body` monitored by a watcher; resolve with the reason it exits with. */
async function exitReasonOf(s: Scheduler, body: ProcessBody, kick = true): Promise<ExitReason> {
  const watcher = spawnActor(s);
  const [pid] = await watcher.run((ctx) => ctx.spawnMonitor(body));
  if (kick) s.send(pid, 'kick', null);
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  return down.reason;
}

test('ctx.exit in a handler stops the process with that reason once the handler returns', async () => {
  const s = newScheduler();
  const probe = spawnProbe(s);
  const watcher = spawnActor(s);
  const [pid] = await watcher.run((ctx) =>
    ctx.spawnMonitor((c) => (msg) => {
      if (msg === 'stop') {
        c.exit('done');
        c.send(probe.pid, 'after exit, same handler');
      } else c.send(probe.pid, msg);
    }),
  );
  s.send(pid, 'stop', null);
  s.send(pid, 'queued behind the exit', null);
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.equal(down.reason, 'done');
  s.send(probe.pid, 'marker', null);
  await probe.next((m) => m === 'marker');
  assert.deepEqual(probe.received, ['after exit, same handler', 'marker']);
});

test('ctx.exit in the body stops the process before it handles any message', async () => {
  const s = newScheduler();
  assert.equal(
    await exitReasonOf(s, (ctx) => {
      ctx.exit('refused');
      return () => {
        throw new Error('must not run');
      };
    }),
    'refused',
  );
});

test('ctx.exit in an async handler takes effect when the handler settles', async () => {
  const s = newScheduler();
  assert.equal(
    await exitReasonOf(s, (ctx) => async () => {
      await Promise.resolve();
      ctx.exit('async_done');
    }),
    'async_done',
  );
});

test('throwing ProcessExit from a handler exits with its reason and is not counted as a crash', async () => {
  const s = newScheduler();
  const reason = await exitReasonOf(s, () => () => {
    throw new ProcessExit('shutdown');
  });
  assert.equal(reason, 'shutdown');
  assert.equal(s.metrics().crashed, 0);
});

test('throwing ProcessExit from a process-style body exits with its reason', async () => {
  const s = newScheduler();
  const reason = await exitReasonOf(s, async (ctx) => {
    await ctx.receive();
    throw new ProcessExit({ shutdown: 'by request' });
  });
  assert.deepEqual(reason, { shutdown: 'by request' });
});

test('a thrown Error is a crash whose reason carries message, name and stack', async () => {
  const s = newScheduler();
  const crashes: unknown[] = [];
  s.onCrash = (pid, reason, label) => crashes.push({ pid: pid.key, reason, label });
  const reason = (await exitReasonOf(s, () => () => {
    throw new RangeError('index out of range');
  })) as CrashReason;
  assert.equal(reason.error, 'index out of range');
  assert.equal(reason.name, 'RangeError');
  assert.match(reason.stack ?? '', /RangeError: index out of range/);
  assert.equal(s.metrics().crashed, 1);
  assert.equal(crashes.length, 1);
});

test('a rejected async handler is a crash with the rejection as reason', async () => {
  const s = newScheduler();
  const reason = (await exitReasonOf(s, () => async () => {
    await Promise.resolve();
    throw new Error('async failure');
  })) as CrashReason;
  assert.equal(reason.error, 'async failure');
});

test('a thrown non-Error value is a crash with its string form', async () => {
  const s = newScheduler();
  const reason = await exitReasonOf(s, () => () => {
    throw 'plain string';
  });
  assert.deepEqual(reason, { error: 'plain string' });
});

test('sendExit(self, normal) stops the process itself with normal', async () => {
  const s = newScheduler();
  assert.equal(await exitReasonOf(s, (ctx) => () => ctx.sendExit(ctx.self, 'normal')), 'normal');
});

test('a process-style body that returns exits normal', async () => {
  const s = newScheduler();
  assert.equal(
    await exitReasonOf(s, async (ctx) => {
      await ctx.receive();
    }),
    'normal',
  );
});

test('a process blocked in receive that is killed unwinds and exits killed', async () => {
  const s = newScheduler();
  const watcher = spawnActor(s);
  let unwound: unknown;
  const [pid] = await watcher.run((ctx) =>
    ctx.spawnMonitor(async (c) => {
      try {
        await c.receive((m) => m === 'never');
      } catch (e) {
        unwound = e;
        throw e;
      }
    }),
  );
  s.kill(pid);
  const down = await watcher.probe.next<DownMessage>(isDownMessage);
  assert.equal(down.reason, 'killed');
  assert.ok(unwound instanceof ProcessExit);
  assert.equal((unwound as ProcessExit).reason, 'killed');
});
