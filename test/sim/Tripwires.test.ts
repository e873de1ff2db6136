/**
 * Tripwires (sim/Tripwires.ts): while installed, a process running on a runtime Scheduler
 * bound to the simulated Env that reaches for real time, randomness or timers is stopped
 * (the call throws, the process crashes) and the violation names the call; the same calls
 * from the test harness pass through; `remove()` puts the real functions back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../runtime/Env.js';
import { describeReason } from '../../runtime/ExitReason.js';
import type { Pid } from '../../runtime/Pid.js';
import type { MessageHandler } from '../../runtime/ProcessContext.js';
import { Scheduler } from '../../runtime/Scheduler.js';
import type { SimOwner } from '../../sim/EventQueue.js';
import { simEnv } from '../../sim/SimEnv.js';
import { SimWorld } from '../../sim/SimWorld.js';
import { installTripwires, realDateNow, type Tripwires } from '../../sim/Tripwires.js';

interface SimProcessRig {
  world: SimWorld;
  sched: Scheduler;
  /** Crash reasons reported by the scheduler, described. */
  crashes: string[];
  spawn(handler: MessageHandler): Pid;
}

function simScheduler(): SimProcessRig {
  const world = new SimWorld({ seed: 3 });
  const owner: SimOwner = { name: 't', alive: true, pausedUntil: 0, backlog: [] };
  const env = simEnv(world, owner, { skewMs: 0, wallJumpMs: 0 }, world.random('t/env'), silentLogger);
  const sched = new Scheduler({ node: 't', id: 0, inc: 1, env });
  const crashes: string[] = [];
  sched.onCrash = (_pid, reason) => crashes.push(describeReason(reason));
  return { world, sched, crashes, spawn: (handler) => sched.spawn(() => handler) };
}

/** Run `fn` with tripwires installed, removing them whatever happens. */
async function withTripwires(fn: (tw: Tripwires) => Promise<void>): Promise<void> {
  const tw = installTripwires();
  try {
    await fn(tw);
  } finally {
    tw.remove();
  }
}

const forbidden: { call: string; key: string; run: () => unknown }[] = [
  { call: 'Date.now', key: 'now', run: () => Date.now() },
  { call: 'Math.random', key: 'random', run: () => Math.random() },
  { call: 'setTimeout', key: 'setTimeout', run: () => setTimeout(() => undefined, 1) },
  { call: 'setInterval', key: 'setInterval', run: () => setInterval(() => undefined, 1) },
  { call: 'setImmediate', key: 'setImmediate', run: () => setImmediate(() => undefined) },
  { call: 'performance.now', key: 'now', run: () => performance.now() },
  { call: 'crypto.getRandomValues', key: 'getRandomValues', run: () => crypto.getRandomValues(new Uint8Array(4)) },
];

for (const f of forbidden) {
  test(`a process handler that calls ${f.call} under the simulator is stopped: the call throws, the process crashes, the violation names it`, () =>
    withTripwires(async (tw) => {
      const { world, sched, crashes, spawn } = simScheduler();
      const thrown: string[] = [];
      let returned = false;
      const pid = spawn((msg) => {
        if (msg !== 'go') return;
        try {
          f.run();
          returned = true;
        } catch (err) {
          thrown.push((err as Error).message);
          throw err;
        }
      });
      await world.runUntil(10);
      assert.equal(sched.isAlive(pid), true, 'the process runs normally until it trips');
      sched.send(pid, 'go', null);
      await world.runUntil(20);
      assert.equal(returned, false, `${f.call} returned instead of throwing`);
      assert.equal(thrown.length, 1);
      assert.match(thrown[0]!, new RegExp(`^simulation tripwire: ${f.call.replace('.', '\\.')} called during simulation from .*[\\\\/]dist[\\\\/]runtime[\\\\/]Scheduler\\.js`));
      assert.equal(sched.isAlive(pid), false);
      assert.equal(crashes.length, 1);
      assert.match(crashes[0]!, /simulation tripwire/);
      assert.equal(tw.violations.length, 1);
      assert.equal(`simulation tripwire: ${tw.violations[0]!}`, thrown[0]);
    }));
}

test('a process body that reads the clock while starting is stopped too', () =>
  withTripwires(async (tw) => {
    const { world, sched, crashes } = simScheduler();
    const pid = sched.spawn(() => {
      const started = Date.now();
      return () => void started;
    });
    await world.runUntil(10);
    assert.equal(sched.isAlive(pid), false);
    assert.equal(crashes.length, 1);
    assert.equal(tw.violations.length, 1);
    assert.match(tw.violations[0]!, /^Date\.now called during simulation/);
  }));

test('the same calls made by the test harness itself pass through and are not violations', () =>
  withTripwires(async (tw) => {
    const { world, sched, spawn } = simScheduler();
    const seen: unknown[] = [];
    const pid = spawn((msg) => void seen.push(msg));
    await world.runUntil(5);
    const before = realDateNow();
    const now = Date.now();
    assert.ok(now >= before && now <= realDateNow());
    const r = Math.random();
    assert.ok(r >= 0 && r < 1);
    assert.ok(performance.now() > 0);
    assert.equal(crypto.getRandomValues(new Uint8Array(8)).length, 8);
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
    await new Promise<void>((resolve) => setImmediate(resolve));
    clearInterval(setInterval(() => undefined, 1_000));
    // Between simulation steps, with processes alive, the harness still may.
    sched.send(pid, 'between steps', null);
    await world.runUntil(10);
    assert.deepEqual(seen, ['between steps']);
    assert.deepEqual(tw.violations, []);
  }));

test('remove() restores the real functions: a process may read the clock again afterwards', async () => {
  const originals = { now: Date.now, random: Math.random, setTimeout: globalThis.setTimeout, setImmediate: globalThis.setImmediate, perf: performance.now };
  const tw = installTripwires();
  assert.notEqual(Date.now, originals.now, 'installed');
  tw.remove();
  assert.equal(Date.now, realDateNow);
  assert.equal(Date.now, originals.now);
  assert.equal(Math.random, originals.random);
  assert.equal(globalThis.setTimeout, originals.setTimeout);
  assert.equal(globalThis.setImmediate, originals.setImmediate);
  assert.equal(performance.now, originals.perf);

  const { world, sched, crashes, spawn } = simScheduler();
  const read: number[] = [];
  const pid = spawn(() => void read.push(Date.now()));
  const before = Date.now();
  sched.send(pid, 'go', null);
  await world.runUntil(10);
  assert.equal(crashes.length, 0);
  assert.equal(sched.isAlive(pid), true);
  assert.equal(read.length, 1);
  assert.ok(read[0]! >= before && read[0]! <= Date.now());
  assert.deepEqual(tw.violations, []);
});
