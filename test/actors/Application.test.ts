/**
 * Applications: dependency order on start, reverse order on stop (each tree down before the
 * next), config validation before anything starts, and what a root supervisor dying on its
 * own does for permanent, transient and temporary applications.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineApplication, startApplications, type Application, type ApplicationExit, type ApplicationType } from '../../actors/Application.js';
import * as Supervisor from '../../actors/Supervisor.js';
import type { SupervisorFlags } from '../../actors/Supervisor.js';
import type { Pid } from '../../runtime/Pid.js';
import type { Scheduler } from '../../runtime/Scheduler.js';
import { newScheduler, until } from '../support/kernel.js';
import { testChild } from '../support/supervision.js';

async function withScheduler(fn: (s: Scheduler) => Promise<void>): Promise<void> {
  const s = newScheduler();
  try {
    await fn(s);
  } finally {
    s.shutdown();
  }
}

/** An application whose root supervisor runs children `<name>1..<name>n`, logging to `log`. */
function app(
  name: string,
  log: string[],
  opts: { dependsOn?: string[]; type?: ApplicationType; children?: number; flags?: SupervisorFlags; failing?: boolean } = {},
): Application<{ name: string }> {
  const n = opts.children ?? 2;
  return defineApplication({
    name,
    ...(opts.dependsOn !== undefined ? { dependsOn: opts.dependsOn } : {}),
    ...(opts.type !== undefined ? { type: opts.type } : {}),
    config: { name },
    validate: (raw) => ({ ok: true, config: raw as { name: string } }),
    supervisor: (config) => ({
      flags: opts.flags ?? {},
      children: Array.from({ length: n }, (_, i) =>
        testChild(`${config.name}${i + 1}`, log, {
          trap: 'cleanup',
          cleanupMs: 5,
          ...(opts.failing === true && i === n - 1 ? { override: () => ({ ok: false as const, reason: 'broken' }) } : {}),
        }),
      ),
    }),
  });
}

const starts = (log: string[]) => log.filter((e) => e.startsWith('start:')).map((e) => e.slice(6));
const stops = (log: string[]) => log.filter((e) => e.startsWith('stop:')).map((e) => e.slice(5));

test('applications start in dependency order, ties in list order', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const r = await startApplications(
      [app('c', log, { dependsOn: ['b'], children: 1 }), app('d', log, { children: 1 }), app('b', log, { dependsOn: ['a'], children: 1 }), app('a', log, { children: 1 })],
      s,
    );
    assert.ok(r.ok);
    assert.deepEqual(r.running.startOrder, ['d', 'a', 'b', 'c']);
    assert.deepEqual(starts(log), ['d1', 'a1', 'b1', 'c1']);
    assert.deepEqual(r.running.runningApplications(), ['d', 'a', 'b', 'c']);
    await r.running.stop();
  });
});

test('stop stops applications in reverse start order, each tree down before the next', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const r = await startApplications([app('web', log, { dependsOn: ['db'] }), app('db', log)], s);
    assert.ok(r.ok);
    const roots = r.running.startOrder.map((n) => r.running.whereis(n) as Pid);
    assert.deepEqual(await r.running.stop(), { cause: 'stopped' });
    assert.deepEqual(stops(log), ['web2', 'web1', 'db2', 'db1']);
    assert.ok(roots.every((p) => !s.isAlive(p)));
    assert.deepEqual(r.running.runningApplications(), []);
    assert.deepEqual(r.running.exits, []);
    await until(() => s.metrics().processes === 0, 2000, 'every process to be gone');
    // Asking again is harmless.
    assert.deepEqual(await r.running.stop(), { cause: 'stopped' });
    assert.deepEqual(await r.running.stopApplication('db'), { ok: false, error: 'not_running' });
  });
});

test('an application never starts with a config its validator refuses', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const strict = defineApplication<{ port: number }>({
      name: 'edge',
      config: { port: 'eighty' },
      validate: (raw) => {
        const port = (raw as { port?: unknown }).port;
        return typeof port === 'number' ? { ok: true, config: { port } } : { ok: false, errors: ['port must be a number'] };
      },
      supervisor: () => ({ children: [testChild('listener', log)] }),
    });
    const r = await startApplications([app('db', log), strict], s);
    assert.deepEqual(r, { ok: false, error: 'invalid_config', app: 'edge', errors: ['port must be a number'] });
    assert.deepEqual(log, []);
    assert.equal(s.metrics().processes, 0);
  });
});

test('the root supervisor is built from the validated, typed config', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    interface PoolConfig {
      workers: number;
      prefix: string;
    }
    const pool = defineApplication<PoolConfig>({
      name: 'pool',
      config: { workers: 3 },
      validate: (raw) => {
        const r = raw as Partial<PoolConfig>;
        if (r.workers !== undefined && (!Number.isInteger(r.workers) || r.workers < 1)) return { ok: false, errors: ['workers must be >= 1'] };
        return { ok: true, config: { workers: r.workers ?? 1, prefix: r.prefix ?? 'w' } };
      },
      supervisor: (config) => ({ children: Array.from({ length: config.workers }, (_, i) => testChild(`${config.prefix}${i}`, log)) }),
    });
    const r = await startApplications([pool], s);
    assert.ok(r.ok);
    assert.deepEqual(starts(log), ['w0', 'w1', 'w2']);
    assert.deepEqual(r.running.configOf(pool), { workers: 3, prefix: 'w' });
    await r.running.stop();
    assert.equal(r.running.configOf(pool), undefined);
  });
});

test('duplicate names, missing dependencies and dependency cycles are refused before anything starts', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    assert.deepEqual(await startApplications([app('a', log), app('a', log)], s), { ok: false, error: 'duplicate_application', app: 'a' });
    assert.deepEqual(await startApplications([app('a', log, { dependsOn: ['zz'] })], s), { ok: false, error: 'missing_dependency', app: 'a', dependency: 'zz' });
    assert.deepEqual(
      await startApplications([app('ok', log), app('a', log, { dependsOn: ['b'] }), app('b', log, { dependsOn: ['a'] })], s),
      { ok: false, error: 'dependency_cycle', apps: ['a', 'b'] },
    );
    assert.deepEqual(log, []);
  });
});

test('a failing start stops the applications already started, in reverse order', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const r = await startApplications([app('a', log), app('b', log), app('c', log, { failing: true }), app('d', log)], s);
    assert.equal(r.ok, false);
    assert.deepEqual({ ...r, reason: undefined }, { ok: false, error: 'start_failed', app: 'c', reason: undefined });
    assert.deepEqual((r as { reason: unknown }).reason, { shutdown: { failed_to_start_child: 'c2', reason: 'broken' } });
    assert.deepEqual(stops(log), ['c1', 'b2', 'b1', 'a2', 'a1']);
    assert.ok(!starts(log).some((n) => n.startsWith('d')));
    await until(() => s.metrics().processes === 0, 2000, 'every process to be gone');
  });
});

/** Make an application's root supervisor give up: intensity 0, one child crash. */
async function crashRoot(s: Scheduler, root: Pid): Promise<void> {
  const which = await Supervisor.whichChildren(s, root);
  assert.ok(which.ok);
  const child = which.children[0].pid as Pid;
  s.send(child, 'crash', null);
  await until(() => !s.isAlive(root), 2000, 'the root supervisor to give up');
}

test('a permanent application whose root supervisor dies stops the others and is reported', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const reported: ApplicationExit[] = [];
    const r = await startApplications(
      [app('a', log), app('core', log, { type: 'permanent', dependsOn: ['a'], flags: { intensity: 0 } }), app('c', log)],
      s,
      { onExit: (e) => reported.push(e) },
    );
    assert.ok(r.ok);
    log.length = 0;
    await crashRoot(s, r.running.whereis('core') as Pid);
    assert.deepEqual(await r.running.terminated, { cause: 'application_exited', app: 'core', reason: 'shutdown' });
    assert.deepEqual(reported, [{ app: 'core', type: 'permanent', reason: 'shutdown' }]);
    assert.deepEqual(r.running.exits, reported);
    // core's own tree went down as it gave up; then the others, in reverse start order.
    assert.deepEqual(stops(log), ['core2', 'c2', 'c1', 'a2', 'a1']);
    await until(() => s.metrics().processes === 0, 2000, 'every process to be gone');
  });
});

test('a temporary application whose root supervisor dies is only reported', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const r = await startApplications([app('a', log), app('side', log, { flags: { intensity: 0 } })], s);
    assert.ok(r.ok);
    await crashRoot(s, r.running.whereis('side') as Pid);
    await until(() => r.running.exits.length === 1, 2000, 'the exit report');
    assert.deepEqual(r.running.exits, [{ app: 'side', type: 'temporary', reason: 'shutdown' }]);
    assert.deepEqual(r.running.runningApplications(), ['a']);
    assert.ok(s.isAlive(r.running.whereis('a') as Pid));
    await r.running.stop();
  });
});

test('a transient application stops the others unless its root supervisor exits normal', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const r = await startApplications([app('a', log), app('quiet', log, { type: 'transient' }), app('loud', log, { type: 'transient', flags: { intensity: 0 } })], s);
    assert.ok(r.ok);
    assert.deepEqual(await Supervisor.stop(s, r.running.whereis('quiet') as Pid, 'normal'), { ok: true });
    await until(() => r.running.exits.length === 1, 2000, 'the exit report');
    assert.deepEqual(r.running.runningApplications(), ['a', 'loud']);
    await crashRoot(s, r.running.whereis('loud') as Pid);
    assert.deepEqual(await r.running.terminated, { cause: 'application_exited', app: 'loud', reason: 'shutdown' });
    assert.deepEqual(r.running.exits.map((e) => [e.app, e.reason]), [
      ['quiet', 'normal'],
      ['loud', 'shutdown'],
    ]);
    assert.deepEqual(r.running.runningApplications(), []);
  });
});

test('stopApplication stops one application and leaves the others running', async () => {
  await withScheduler(async (s) => {
    const log: string[] = [];
    const r = await startApplications([app('a', log), app('b', log, { type: 'permanent' })], s);
    assert.ok(r.ok);
    const b = r.running.whereis('b') as Pid;
    assert.deepEqual(await r.running.stopApplication('b'), { ok: true });
    assert.equal(s.isAlive(b), false);
    assert.deepEqual(stops(log), ['b2', 'b1']);
    // A stop is not an exit, even for a permanent application.
    assert.deepEqual(r.running.exits, []);
    assert.deepEqual(r.running.runningApplications(), ['a']);
    assert.deepEqual(await r.running.stopApplication('b'), { ok: false, error: 'not_running' });
    assert.deepEqual(await r.running.stop(), { cause: 'stopped' });
  });
});
