/**
 * Supervisor rules, one test per rule: strategies, restart types, intensity and its
 * escalation, shutdown kinds and order, start failures, the dynamic API and backoff.
 * Every wait is on an event (a call answered after the EXIT, a DOWN), with a deadline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as Supervisor from '../../actors/Supervisor.js';
import type { ChildInfo, SupervisorSpec } from '../../actors/Supervisor.js';
import type { Env } from '../../runtime/Env.js';
import type { DownMessage } from '../../runtime/ExitReason.js';
import type { Pid } from '../../runtime/Pid.js';
import type { Scheduler } from '../../runtime/Scheduler.js';
import { newScheduler, testEnv, until } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';
import { manualClockEnv, testChild, type ChildCommand } from '../support/supervision.js';

async function withScheduler(fn: (s: Scheduler) => Promise<void>, env?: Env): Promise<void> {
  const s = newScheduler(env);
  try {
    await fn(s);
  } finally {
    s.shutdown();
  }
}

async function startSup(s: Scheduler, spec: SupervisorSpec): Promise<Pid> {
  const r = await Supervisor.start(s, spec);
  assert.ok(r.ok, `supervisor did not start: ${JSON.stringify(r)}`);
  return r.pid;
}

async function children(s: Scheduler, sup: Pid): Promise<ChildInfo[]> {
  const r = await Supervisor.whichChildren(s, sup);
  assert.ok(r.ok, `whichChildren failed: ${JSON.stringify(r)}`);
  return r.children;
}

async function pidOf(s: Scheduler, sup: Pid, id: string): Promise<Pid> {
  const c = (await children(s, sup)).find((x) => x.id === id);
  assert.ok(c !== undefined && typeof c.pid === 'object', `child ${id} is not running`);
  return c.pid as Pid;
}

/** Make a child exit (a crash by default) and wait until it is gone. */
async function exitChild(s: Scheduler, pid: Pid, cmd: ChildCommand = 'crash'): Promise<void> {
  s.send(pid, cmd, null);
  await until(() => !s.isAlive(pid), 2000, `child ${pid} to exit`);
}

/** A process that monitors `pid`; resolves with the DOWN. */
async function watch(s: Scheduler, pid: Pid): Promise<() => Promise<DownMessage>> {
  const actor = spawnActor(s);
  await actor.run((ctx) => ctx.monitor(pid));
  return () => actor.probe.next<DownMessage>((m) => (m as DownMessage).type === 'DOWN', 3000);
}

const noOverlap = (log: string[]) => assert.deepEqual(log.filter((e) => e.startsWith('overlap')), []);

// ---- starting -------------------------------------------------------------------------

test('children start in order and are listed in start order', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { children: [testChild('a', log), testChild('b', log), testChild('c', log, { type: 'supervisor' })] });
    assert.deepEqual(log, ['start:a', 'start:b', 'start:c']);
    const list = await children(s, sup);
    assert.deepEqual(list.map((c) => [c.id, typeof c.pid, c.type]), [
      ['a', 'object', 'worker'],
      ['b', 'object', 'worker'],
      ['c', 'object', 'supervisor'],
    ]);
    const count = await Supervisor.countChildren(s, sup);
    assert.deepEqual(count, { ok: true, count: { specs: 3, active: 3, supervisors: 1, workers: 2 } });
  });
});

test('a failing start stops the supervisor and the children already started, in reverse order', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const r = await Supervisor.start(s, {
      children: [
        testChild('a', log, { trap: 'cleanup' }),
        testChild('b', log, { trap: 'cleanup' }),
        testChild('c', log, { override: () => ({ ok: false, reason: 'no_database' }) }),
        testChild('d', log),
      ],
    });
    assert.deepEqual(r, { ok: false, reason: { shutdown: { failed_to_start_child: 'c', reason: 'no_database' } } });
    assert.deepEqual(log, ['start:a', 'start:b', 'refused:c', 'stop:b', 'stop:a']);
    await until(() => s.metrics().processes === 0, 2000, 'every process to be gone');
  });
});

test('a start function that throws is a failed start', async () => {
  await withScheduler(async (s) => {
    const r = await Supervisor.start(s, {
      children: [
        {
          id: 'x',
          start() {
            throw new Error('cannot start x');
          },
        },
      ],
    });
    assert.equal(r.ok, false);
    const reason = (r as { reason: { shutdown: { failed_to_start_child: string; reason: { error: string } } } }).reason;
    assert.equal(reason.shutdown.failed_to_start_child, 'x');
    assert.equal(reason.shutdown.reason.error, 'cannot start x');
  });
});

test('an invalid spec is refused before any process starts', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const r = await Supervisor.start(s, { children: [testChild('a', log), testChild('a', log)] });
    assert.deepEqual(r, { ok: false, reason: { bad_start_spec: 'duplicate child id a' } });
    const r2 = await Supervisor.start(s, { flags: { strategy: 'simple_one_for_one' }, children: [] });
    assert.equal(r2.ok, false);
    assert.deepEqual(log, []);
    assert.equal(s.metrics().processes, 0);
  });
});

test('ignore keeps the spec without a process, and drops a temporary child', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, {
      children: [
        testChild('a', log, { override: () => ({ ignore: true }) }),
        testChild('t', log, { restart: 'temporary', override: () => ({ ignore: true }) }),
        testChild('g', log, { override: () => ({ ok: false, reason: 'ignore' }) }),
        testChild('b', log),
      ],
    });
    assert.deepEqual((await children(s, sup)).map((c) => [c.id, c.pid === undefined]), [
      ['a', true],
      ['g', true],
      ['b', false],
    ]);
  });
});

// ---- strategies -----------------------------------------------------------------------

test('one_for_one restarts only the crashed child', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { strategy: 'one_for_one' }, children: ['a', 'b', 'c'].map((id) => testChild(id, log)) });
    const before = await children(s, sup);
    await exitChild(s, before[1].pid as Pid);
    const after = await children(s, sup);
    assert.equal(after[0].pid, before[0].pid);
    assert.notEqual((after[1].pid as Pid).key, (before[1].pid as Pid).key);
    assert.equal(after[2].pid, before[2].pid);
    assert.deepEqual(log, ['start:a', 'start:b', 'start:c', 'start:b']);
  });
});

test('one_for_all restarts every child when one crashes', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { strategy: 'one_for_all' }, children: ['a', 'b', 'c'].map((id) => testChild(id, log, { trap: 'cleanup' })) });
    const before = await children(s, sup);
    log.length = 0;
    await exitChild(s, before[1].pid as Pid);
    const after = await children(s, sup);
    // The others stop in reverse start order, then all start again in start order.
    assert.deepEqual(log, ['stop:c', 'stop:a', 'start:a', 'start:b', 'start:c']);
    for (let i = 0; i < 3; i++) assert.notEqual((after[i].pid as Pid).key, (before[i].pid as Pid).key);
    assert.ok(!s.isAlive(before[0].pid as Pid) && !s.isAlive(before[2].pid as Pid));
  });
});

test('rest_for_one restarts the crashed child and the children started after it', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { strategy: 'rest_for_one' }, children: ['a', 'b', 'c', 'd'].map((id) => testChild(id, log, { trap: 'cleanup' })) });
    const before = await children(s, sup);
    log.length = 0;
    await exitChild(s, before[1].pid as Pid);
    const after = await children(s, sup);
    assert.deepEqual(log, ['stop:d', 'stop:c', 'start:b', 'start:c', 'start:d']);
    assert.equal(after[0].pid, before[0].pid);
    for (let i = 1; i < 4; i++) assert.notEqual((after[i].pid as Pid).key, (before[i].pid as Pid).key);
  });
});

test('one_for_all also starts again a child stopped with terminateChild, as OTP does', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { strategy: 'one_for_all' }, children: ['a', 'b'].map((id) => testChild(id, log)) });
    assert.deepEqual(await Supervisor.terminateChild(s, sup, 'a'), { ok: true });
    await exitChild(s, await pidOf(s, sup, 'b'));
    assert.deepEqual((await children(s, sup)).map((c) => typeof c.pid), ['object', 'object']);
  });
});

test('a replacement never starts while the old copy is still running', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, {
      flags: { strategy: 'one_for_all', intensity: 5 },
      children: [testChild('slow', log, { trap: 'cleanup', cleanupMs: 40 }), testChild('b', log)],
    });
    await exitChild(s, await pidOf(s, sup, 'b'));
    await exitChild(s, await pidOf(s, sup, 'b'));
    await children(s, sup);
    assert.deepEqual(log, ['start:slow', 'start:b', 'stop:slow', 'start:slow', 'start:b', 'stop:slow', 'start:slow', 'start:b']);
    noOverlap(log);
  });
});

// ---- restart types --------------------------------------------------------------------

test('permanent child is restarted even after a normal exit', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { children: [testChild('p', log, { restart: 'permanent' })] });
    await exitChild(s, await pidOf(s, sup, 'p'), 'normal');
    await pidOf(s, sup, 'p');
    assert.deepEqual(log, ['start:p', 'start:p']);
  });
});

test('transient child exiting normal is not restarted', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, {
      flags: { intensity: 0 },
      children: ['n', 's', 'x'].map((id) => testChild(id, log, { restart: 'transient' })),
    });
    await exitChild(s, await pidOf(s, sup, 'n'), 'normal');
    await exitChild(s, await pidOf(s, sup, 's'), { exit: 'shutdown' });
    await exitChild(s, await pidOf(s, sup, 'x'), { exit: { shutdown: 'done' } });
    // intensity 0: a restart would have shut the supervisor down.
    assert.deepEqual((await children(s, sup)).map((c) => [c.id, c.pid]), [
      ['n', undefined],
      ['s', undefined],
      ['x', undefined],
    ]);
    assert.deepEqual(log, ['start:n', 'start:s', 'start:x']);
  });
});

test('transient child crashing is restarted', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { children: [testChild('t', log, { restart: 'transient' })] });
    await exitChild(s, await pidOf(s, sup, 't'), 'crash');
    await pidOf(s, sup, 't');
    assert.deepEqual(log, ['start:t', 'start:t']);
  });
});

test('temporary child is never restarted and is removed from the child list', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, {
      children: [testChild('t1', log, { restart: 'temporary' }), testChild('t2', log, { restart: 'temporary' }), testChild('p', log)],
    });
    await exitChild(s, await pidOf(s, sup, 't1'), 'crash');
    await exitChild(s, await pidOf(s, sup, 't2'), 'normal');
    assert.deepEqual((await children(s, sup)).map((c) => c.id), ['p']);
    assert.deepEqual(log, ['start:t1', 'start:t2', 'start:p']);
  });
});

// ---- intensity ------------------------------------------------------------------------

test('restarts within the intensity keep the supervisor alive; one more shuts it down', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { intensity: 2, period: 60 }, children: [testChild('a', log, { trap: 'cleanup' }), testChild('b', log)] });
    const down = await watch(s, sup);
    await exitChild(s, await pidOf(s, sup, 'b'));
    await exitChild(s, await pidOf(s, sup, 'b'));
    const a = await pidOf(s, sup, 'a');
    const b = await pidOf(s, sup, 'b');
    await exitChild(s, b);
    assert.equal((await down()).reason, 'shutdown');
    assert.equal(s.isAlive(a), false);
    assert.deepEqual(log, ['start:a', 'start:b', 'start:b', 'start:b', 'stop:a']);
  });
});

test('restarts older than the period no longer count', async () => {
  const clock = manualClockEnv();
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { intensity: 1, period: 5 }, children: [testChild('a', log)] });
    const down = await watch(s, sup);
    await exitChild(s, await pidOf(s, sup, 'a'));
    clock.advance(5_001);
    await exitChild(s, await pidOf(s, sup, 'a'));
    clock.advance(4_999);
    await exitChild(s, await pidOf(s, sup, 'a'));
    assert.equal((await down()).reason, 'shutdown');
    assert.deepEqual(log, ['start:a', 'start:a', 'start:a']);
  }, clock.env);
});

test('exceeding intensity shuts the supervisor down and escalates to its parent', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const inner: SupervisorSpec = { flags: { intensity: 1, period: 60 }, children: [testChild('w', log)] };
    const outer = await startSup(s, { flags: { intensity: 0 }, children: [Supervisor.supervisorChild('inner', inner), testChild('sibling', log, { trap: 'cleanup' })] });
    const outerDown = await watch(s, outer);
    const innerPid = await pidOf(s, outer, 'inner');
    const innerDown = await watch(s, innerPid);
    await exitChild(s, await pidOf(s, innerPid, 'w'));
    await exitChild(s, await pidOf(s, innerPid, 'w'));
    assert.equal((await innerDown()).reason, 'shutdown');
    assert.equal((await outerDown()).reason, 'shutdown');
    assert.deepEqual(log, ['start:w', 'start:sibling', 'start:w', 'stop:sibling']);
    await until(() => s.processes().every((p) => s.info(p)?.behaviour === 'test-actor' || s.info(p)?.behaviour === 'probe'), 2000, 'the tree to be gone');
  });
});

test('a child supervisor that gives up is restarted by its parent', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const inner: SupervisorSpec = { flags: { intensity: 0 }, children: [testChild('w', log)] };
    const outer = await startSup(s, { flags: { intensity: 3 }, children: [Supervisor.supervisorChild('inner', inner)] });
    const first = await pidOf(s, outer, 'inner');
    await exitChild(s, await pidOf(s, first, 'w'));
    await until(() => !s.isAlive(first), 2000, 'the inner supervisor to give up');
    const second = await pidOf(s, outer, 'inner');
    assert.notEqual(second.key, first.key);
    await pidOf(s, second, 'w');
    assert.deepEqual(log, ['start:w', 'start:w']);
  });
});

test('a restart whose start fails is retried, and each retry counts toward the intensity', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const flaky = (attempt: number) => (attempt === 1 || attempt === 2 ? { ok: false as const, reason: 'not_yet' } : undefined);
    const sup = await startSup(s, { flags: { intensity: 3, period: 60 }, children: [testChild('f', log, { override: flaky })] });
    await exitChild(s, await pidOf(s, sup, 'f'));
    await until(() => log.length === 4, 2000, 'the retries');
    await pidOf(s, sup, 'f');
    assert.deepEqual(log, ['start:f', 'refused:f', 'refused:f', 'start:f']);

    const log2: string[] = [];
    const sup2 = await startSup(s, { flags: { intensity: 1, period: 60 }, children: [testChild('f', log2, { override: (n) => (n > 0 ? { ok: false, reason: 'never' } : undefined) })] });
    const down = await watch(s, sup2);
    await exitChild(s, await pidOf(s, sup2, 'f'));
    assert.equal((await down()).reason, 'shutdown');
    assert.deepEqual(log2, ['start:f', 'refused:f']);
  });
});

// ---- shutdown -------------------------------------------------------------------------

test('children stop in reverse start order, each one after the previous has exited', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { children: ['a', 'b', 'c'].map((id) => testChild(id, log, { trap: 'cleanup', cleanupMs: 10 })) });
    const pids = (await children(s, sup)).map((c) => c.pid as Pid);
    log.length = 0;
    assert.deepEqual(await Supervisor.stop(s, sup, 'shutdown'), { ok: true });
    assert.deepEqual(log, ['stop:c', 'stop:b', 'stop:a']);
    assert.ok(pids.every((p) => !s.isAlive(p)));
  });
});

test('brutal_kill does not wait', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { children: [testChild('k', log, { trap: 'ignore', shutdown: 'brutal_kill' })] });
    const pid = await pidOf(s, sup, 'k');
    const down = await watch(s, pid);
    assert.deepEqual(await Supervisor.terminateChild(s, sup, 'k'), { ok: true });
    assert.equal((await down()).reason, 'killed');
    // It was never asked to shut down: no `shutdown` exit signal reached it first.
    assert.deepEqual(log, ['start:k']);
  });
});

test('shutdown timeout kills a child that traps exits and ignores shutdown', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { children: [testChild('stubborn', log, { trap: 'ignore', shutdown: 60 })] });
    const pid = await pidOf(s, sup, 'stubborn');
    const down = await watch(s, pid);
    const t0 = performance.now();
    assert.deepEqual(await Supervisor.terminateChild(s, sup, 'stubborn'), { ok: true });
    const elapsed = performance.now() - t0;
    assert.equal((await down()).reason, 'killed');
    assert.deepEqual(log, ['start:stubborn', 'ignored:stubborn']);
    assert.ok(elapsed >= 55, `killed after ${elapsed} ms, before the 60 ms shutdown time`);
  });
});

test('a child that traps exits gets its shutdown time to clean up and exits shutdown', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { children: [testChild('tidy', log, { trap: 'cleanup', cleanupMs: 30, shutdown: 2000 })] });
    const down = await watch(s, await pidOf(s, sup, 'tidy'));
    assert.deepEqual(await Supervisor.terminateChild(s, sup, 'tidy'), { ok: true });
    assert.equal((await down()).reason, 'shutdown');
    assert.deepEqual(log, ['start:tidy', 'stop:tidy']);
  });
});

test('infinity waits for the child however long its cleanup takes', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { children: [testChild('slow', log, { trap: 'cleanup', cleanupMs: 150, shutdown: 'infinity', type: 'supervisor' })] });
    const down = await watch(s, await pidOf(s, sup, 'slow'));
    assert.deepEqual(await Supervisor.terminateChild(s, sup, 'slow'), { ok: true });
    assert.deepEqual(log, ['start:slow', 'stop:slow']);
    assert.equal((await down()).reason, 'shutdown');
  });
});

test('the supervisor stops its children and exits with its parent\'s reason when the parent exits', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const parent = spawnActor(s, { trapExit: true });
    const r = await parent.run((ctx) => Supervisor.startLink(ctx, { children: ['a', 'b'].map((id) => testChild(id, log, { trap: 'cleanup' })) }));
    assert.ok(r.ok);
    const down = await watch(s, r.pid);
    await parent.run((ctx) => ctx.exit({ shutdown: 'parent_done' }));
    assert.deepEqual((await down()).reason, { shutdown: 'parent_done' });
    assert.deepEqual(log, ['start:a', 'start:b', 'stop:b', 'stop:a']);
  });
});

test('an EXIT from a process that is not a child is ignored', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { intensity: 0 }, children: [testChild('a', log)] });
    const stranger = spawnActor(s);
    await stranger.run((ctx) => ctx.link(sup));
    await stranger.run(() => {
      throw new Error('stranger crashes');
    }).catch(() => undefined);
    await until(() => !s.isAlive(stranger.pid), 2000, 'the stranger to die');
    assert.equal((await children(s, sup)).length, 1);
    assert.ok(s.isAlive(sup));
  });
});

// ---- simple_one_for_one ---------------------------------------------------------------

test('simple_one_for_one starts children with extra args', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { strategy: 'simple_one_for_one' }, children: [testChild('session', log)] });
    assert.deepEqual(log, []);
    const r1 = await Supervisor.startChild(s, sup, ['alice', 1]);
    const r2 = await Supervisor.startChild(s, sup, ['bob', 2]);
    assert.ok(r1.ok && r2.ok);
    assert.deepEqual(log, ['start:session:alice,1', 'start:session:bob,2']);
    const list = await children(s, sup);
    assert.deepEqual(list.map((c) => [c.id, (c.pid as Pid).key]), [
      [undefined, (r1.pid as Pid).key],
      [undefined, (r2.pid as Pid).key],
    ]);
    assert.deepEqual(await Supervisor.countChildren(s, sup), { ok: true, count: { specs: 1, active: 2, supervisors: 0, workers: 2 } });
  });
});

test('simple_one_for_one restarts a crashed child with the same args', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { strategy: 'simple_one_for_one' }, children: [testChild('session', log)] });
    const r = await Supervisor.startChild(s, sup, ['alice']);
    assert.ok(r.ok && r.pid !== undefined);
    await exitChild(s, r.pid);
    const list = await children(s, sup);
    assert.equal(list.length, 1);
    assert.notEqual((list[0].pid as Pid).key, r.pid.key);
    assert.deepEqual(log, ['start:session:alice', 'start:session:alice']);
  });
});

test('simple_one_for_one terminateChild takes a pid and forgets the child', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { strategy: 'simple_one_for_one' }, children: [testChild('w', log, { trap: 'cleanup' })] });
    const r = await Supervisor.startChild(s, sup, ['x']);
    assert.ok(r.ok && r.pid !== undefined);
    assert.deepEqual(await Supervisor.terminateChild(s, sup, 'w'), { ok: false, error: 'simple_one_for_one' });
    assert.deepEqual(await Supervisor.terminateChild(s, sup, r.pid), { ok: true });
    assert.deepEqual(await Supervisor.terminateChild(s, sup, r.pid), { ok: false, error: 'not_found' });
    assert.deepEqual(await children(s, sup), []);
    assert.deepEqual(log, ['start:w:x', 'stop:w:x']);
    assert.deepEqual(await Supervisor.restartChild(s, sup, 'w'), { ok: false, error: 'simple_one_for_one' });
    assert.deepEqual(await Supervisor.deleteChild(s, sup, 'w'), { ok: false, error: 'simple_one_for_one' });
  });
});

test('simple_one_for_one stops all its children together when it stops', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { strategy: 'simple_one_for_one' }, children: [testChild('w', log, { trap: 'cleanup', cleanupMs: 150, shutdown: 1000 })] });
    for (const n of [1, 2, 3]) assert.ok((await Supervisor.startChild(s, sup, [n])).ok);
    const t0 = performance.now();
    assert.deepEqual(await Supervisor.stop(s, sup, 'shutdown'), { ok: true });
    const elapsed = performance.now() - t0;
    assert.deepEqual(log.filter((e) => e.startsWith('stop')).sort(), ['stop:w:1', 'stop:w:2', 'stop:w:3']);
    // Together, not one after another (which would take at least 450 ms).
    assert.ok(elapsed < 420, `stopping took ${elapsed} ms`);
  });
});

// ---- dynamic API ----------------------------------------------------------------------

test('startChild adds a child that is started last and stopped first', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { children: [testChild('a', log, { trap: 'cleanup' })] });
    const r = await Supervisor.startChild(s, sup, testChild('b', log, { trap: 'cleanup' }));
    assert.ok(r.ok && r.pid !== undefined);
    assert.deepEqual((await children(s, sup)).map((c) => c.id), ['a', 'b']);
    assert.deepEqual(await Supervisor.stop(s, sup), { ok: true });
    assert.deepEqual(log, ['start:a', 'start:b', 'stop:b', 'stop:a']);
  });
});

test('startChild refuses an id in use: already_started with its pid, already_present when stopped', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { children: [testChild('a', log)] });
    const a = await pidOf(s, sup, 'a');
    const dup = await Supervisor.startChild(s, sup, testChild('a', log));
    assert.ok(!dup.ok && dup.error === 'already_started' && dup.pid.key === a.key);
    await Supervisor.terminateChild(s, sup, 'a');
    assert.deepEqual(await Supervisor.startChild(s, sup, testChild('a', log)), { ok: false, error: 'already_present' });
    const failing = await Supervisor.startChild(s, sup, testChild('z', log, { override: () => ({ ok: false, reason: 'nope' }) }));
    assert.deepEqual(failing, { ok: false, error: 'start_failed', reason: 'nope' });
    assert.deepEqual((await children(s, sup)).map((c) => c.id), ['a']);
  });
});

test('terminateChild keeps the spec, and restartChild starts it again', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { children: [testChild('a', log), testChild('t', log, { restart: 'temporary' })] });
    const old = await pidOf(s, sup, 'a');
    assert.deepEqual(await Supervisor.terminateChild(s, sup, 'a'), { ok: true });
    assert.equal(s.isAlive(old), false);
    assert.deepEqual((await children(s, sup)).map((c) => [c.id, c.pid]).slice(0, 1), [['a', undefined]]);
    assert.deepEqual(await Supervisor.terminateChild(s, sup, 'nope'), { ok: false, error: 'not_found' });
    assert.deepEqual(await Supervisor.terminateChild(s, sup, old), { ok: false, error: 'not_found' });
    // A temporary child's spec goes with its process.
    assert.deepEqual(await Supervisor.terminateChild(s, sup, 't'), { ok: true });
    assert.deepEqual((await children(s, sup)).map((c) => c.id), ['a']);

    const r = await Supervisor.restartChild(s, sup, 'a');
    assert.ok(r.ok && r.pid !== undefined && r.pid.key !== old.key);
    assert.deepEqual(await Supervisor.restartChild(s, sup, 'a'), { ok: false, error: 'running' });
    assert.deepEqual(await Supervisor.restartChild(s, sup, 'nope'), { ok: false, error: 'not_found' });
    assert.deepEqual(log, ['start:a', 'start:t', 'start:a']);
  });
});

test('deleteChild removes a stopped child spec and refuses a running one', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { children: [testChild('a', log), testChild('b', log)] });
    assert.deepEqual(await Supervisor.deleteChild(s, sup, 'a'), { ok: false, error: 'running' });
    await Supervisor.terminateChild(s, sup, 'a');
    assert.deepEqual(await Supervisor.deleteChild(s, sup, 'a'), { ok: true });
    assert.deepEqual(await Supervisor.deleteChild(s, sup, 'a'), { ok: false, error: 'not_found' });
    assert.deepEqual((await children(s, sup)).map((c) => c.id), ['b']);
    assert.deepEqual(await Supervisor.countChildren(s, sup), { ok: true, count: { specs: 1, active: 1, supervisors: 0, workers: 1 } });
  });
});

test('the dynamic API works from inside another process and by registered name', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const caller = spawnActor(s);
    const started = await caller.run((ctx) => Supervisor.startLink(ctx, { children: [testChild('a', log)] }, { name: 'my_sup' }));
    assert.ok(started.ok);
    const which = await caller.run((ctx) => Supervisor.whichChildren(ctx, 'my_sup'));
    assert.ok(which.ok && which.children.length === 1);
    const added = await caller.run((ctx) => Supervisor.startChild(ctx, 'my_sup', testChild('b', log)));
    assert.ok(added.ok);
    assert.deepEqual(await caller.run((ctx) => Supervisor.countChildren(ctx, started.pid)), { ok: true, count: { specs: 2, active: 2, supervisors: 0, workers: 2 } });
    const again = await Supervisor.start(s, { children: [] }, { name: 'my_sup' });
    assert.equal(again.ok, false);
  });
});

test('calls to a supervisor that is not alive fail with noproc', async () => {
  await withScheduler(async (s) => {
    const sup = await startSup(s, { children: [] });
    assert.deepEqual(await Supervisor.stop(s, sup), { ok: true });
    assert.deepEqual(await Supervisor.whichChildren(s, sup), { ok: false, error: 'call_failed', reason: 'noproc' });
    assert.deepEqual(await Supervisor.countChildren(s, 'nobody'), { ok: false, error: 'call_failed', reason: 'noproc' });
    assert.deepEqual(await Supervisor.stop(s, sup), { ok: false, reason: 'noproc' });
  });
});

// ---- backoff --------------------------------------------------------------------------

/** The test Env, recording every timer delay the supervisor asks for. */
function recordingEnv(random = 0): { env: Env; delays: number[] } {
  const base = testEnv();
  const delays: number[] = [];
  const env: Env = {
    ...base,
    random: { ...base.random, float: () => random },
    timers: {
      ...base.timers,
      setTimer(ms, fn) {
        delays.push(ms);
        return base.timers.setTimer(ms, fn);
      },
    },
  };
  return { env, delays };
}

test('backoff delays a restart, doubling up to maxMs within the period', async () => {
  const rec = recordingEnv();
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { intensity: 10, period: 60, backoff: { minMs: 20, maxMs: 50, jitter: 0 } }, children: [testChild('a', log)] });
    for (let i = 0; i < 4; i++) {
      const old = await pidOf(s, sup, 'a');
      await exitChild(s, old);
      const during = await children(s, sup);
      assert.equal(during[0].pid, 'restarting');
      await until(() => log.length === i + 2, 2000, 'the delayed restart');
    }
    await pidOf(s, sup, 'a');
    assert.deepEqual(rec.delays, [20, 40, 50, 50]);
  }, rec.env);
});

test('backoff jitter comes from env.random', async () => {
  const rec = recordingEnv(0.5);
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { intensity: 10, backoff: { minMs: 20, maxMs: 50, jitter: 0.2 } }, children: [testChild('a', log)] });
    await exitChild(s, await pidOf(s, sup, 'a'));
    await until(() => log.length === 2, 2000, 'the delayed restart');
    assert.deepEqual(rec.delays, [22]);
  }, rec.env);
});

test('backoff stops the siblings at once and starts them with the restarted child', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, {
      flags: { strategy: 'one_for_all', intensity: 10, backoff: { minMs: 30, maxMs: 30, jitter: 0 } },
      children: [testChild('a', log), testChild('b', log, { trap: 'cleanup' })],
    });
    await exitChild(s, await pidOf(s, sup, 'a'));
    assert.deepEqual((await children(s, sup)).map((c) => [c.id, c.pid]), [
      ['a', 'restarting'],
      ['b', undefined],
    ]);
    assert.deepEqual(log, ['start:a', 'start:b', 'stop:b']);
    await until(() => log.length === 5, 2000, 'the delayed restart');
    assert.deepEqual(log.slice(3), ['start:a', 'start:b']);
    noOverlap(log);
  });
});

test('terminateChild cancels a pending backoff restart', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const sup = await startSup(s, { flags: { intensity: 10, backoff: { minMs: 40, maxMs: 40, jitter: 0 } }, children: [testChild('a', log)] });
    await exitChild(s, await pidOf(s, sup, 'a'));
    assert.deepEqual(await Supervisor.restartChild(s, sup, 'a'), { ok: false, error: 'restarting' });
    assert.deepEqual(await Supervisor.deleteChild(s, sup, 'a'), { ok: false, error: 'restarting' });
    assert.deepEqual(await Supervisor.terminateChild(s, sup, 'a'), { ok: true });
    // A marker timer longer than the backoff: once it fires, the restart would have happened.
    const actor = spawnActor(s);
    await actor.run((ctx) => ctx.sendAfter(80, 'later'));
    await actor.probe.next((m) => m === 'later');
    assert.deepEqual((await children(s, sup)).map((c) => c.pid), [undefined]);
    assert.deepEqual(log, ['start:a']);
  });
});
