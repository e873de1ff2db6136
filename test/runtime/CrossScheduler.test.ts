/**
 * Processes on different scheduler threads of one node: messaging, ordering, links,
 * monitors, remote spawn, and recovery of a scheduler blocked by a runaway handler.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { RuntimeNode } from '../../runtime/node/RuntimeNode.js';
import { spawnProbe, type Probe } from '../support/kernel.js';
import { BODIES } from '../support/bodies.js';
import type { Pid } from '../../runtime/Pid.js';
import type { DownMessage, ExitMessage } from '../../runtime/ExitReason.js';
import { silentLogger } from '../../runtime/Env.js';
import * as Supervisor from '../../actors/Supervisor.js';

let node: RuntimeNode;
const warnings: Array<{ fields: object; msg: string }> = [];

before(async () => {
  const logger = { ...silentLogger, warn: (fields: object, msg: string) => warnings.push({ fields, msg }) };
  node = await RuntimeNode.start({ schedulers: 3, logLevel: 'silent', logger, hardLimitMs: 600, handlerBudgetMs: 100 });
});
after(async () => {
  await node.stop();
});

async function spawnOn(sched: number, fn: string, args: unknown[] = []): Promise<Pid> {
  const r = await node.spawnOn(sched, { module: BODIES, fn, args });
  assert.ok(r.ok, `spawn failed: ${JSON.stringify(r)}`);
  return r.pid;
}

test('a process on another scheduler receives and replies with its own scheduler id', async () => {
  const probe = spawnProbe(node.main);
  const pid = await spawnOn(1, 'echo');
  assert.equal(pid.sched, 1);
  node.send(pid, { replyTo: probe.pid, body: 'hi' });
  const r = await probe.next<{ echo: string; sched: number; from: Pid }>();
  assert.equal(r.echo, 'hi');
  assert.equal(r.sched, 1);
  assert.equal(r.from.key, pid.key);
});

test('messages between two worker schedulers keep per-pair FIFO order', async () => {
  const probe = spawnProbe(node.main);
  const sinkPid = await spawnOn(2, 'sink', [probe.pid]);
  await spawnOn(1, 'blaster', [sinkPid, 50_000, 777]);
  const r = await probe.next<{ count: number; inOrder: boolean }>(undefined, 10_000);
  assert.deepEqual(r, { count: 50_000, inOrder: true });
});

test('a monitor across schedulers delivers DOWN with the crash reason', async () => {
  const probe = spawnProbe(node.main);
  const pid = await spawnOn(2, 'crashable');
  const watcher = node.main.spawn((ctx) => {
    const ref = ctx.monitor(pid);
    ctx.send(probe.pid, { ref });
    return (m) => ctx.send(probe.pid, m);
  });
  assert.ok(watcher);
  await probe.next((m) => (m as { ref?: unknown }).ref !== undefined);
  node.send(pid, 'crash');
  const down = await probe.next<DownMessage>((m) => (m as DownMessage).type === 'DOWN');
  assert.equal(down.pid.key, pid.key);
  assert.equal((down.reason as { error: string }).error, 'told to crash');
});

test('monitoring a dead pid on another scheduler gives noproc', async () => {
  const probe = spawnProbe(node.main);
  const pid = await spawnOn(1, 'crashable');
  node.send(pid, 'stop');
  node.main.spawn((ctx) => {
    const ref0 = ctx.monitor(pid);
    return (m) => {
      const d = m as DownMessage;
      if (d.type === 'DOWN' && d.ref.key === ref0.key && d.reason === 'normal') {
        // first monitor saw the normal exit; a second one now must say noproc
        ctx.monitor(pid);
        return;
      }
      ctx.send(probe.pid, m);
    };
  });
  const down = await probe.next<DownMessage>((m) => (m as DownMessage).type === 'DOWN');
  assert.equal(down.reason, 'noproc');
});

test('a link across schedulers propagates a crash to a trapping process as EXIT', async () => {
  const probe = spawnProbe(node.main, { trapExit: true });
  const r = await node.spawnOn(1, { module: BODIES, fn: 'crashable' });
  assert.ok(r.ok);
  node.main.spawn((ctx) => {
    ctx.trapExit(true);
    ctx.link(r.pid);
    ctx.send(probe.pid, 'linked');
    return (m) => ctx.send(probe.pid, m);
  });
  await probe.next((m) => m === 'linked');
  node.send(r.pid, 'crash');
  const ex = await probe.next<ExitMessage>((m) => (m as ExitMessage).type === 'EXIT');
  assert.equal(ex.from.key, r.pid.key);
  assert.equal((ex.reason as { error: string }).error, 'told to crash');
});

test('spawnOn with link from a process links both ways atomically', async () => {
  const probe: Probe = spawnProbe(node.main);
  node.main.spawn(async (ctx) => {
    ctx.trapExit(true);
    const r = await ctx.spawnOn(2, { module: BODIES, fn: 'crashable' }, { link: true });
    if (!r.ok) throw new Error('spawn failed');
    ctx.send(r.pid, 'crash');
    const m = await ctx.receive((x) => (x as ExitMessage).type === 'EXIT', 5000);
    ctx.send(probe.pid, m);
  });
  const ex = await probe.next<ExitMessage>((m) => (m as ExitMessage).type === 'EXIT', 5000);
  assert.equal((ex.reason as { error: string }).error, 'told to crash');
});

test('a scheduler blocked by a runaway handler is restarted and its processes exit killed', async () => {
  const probe = spawnProbe(node.main);
  const incBefore = node.incarnationOf(2);
  const victim = await spawnOn(2, 'runaway');
  node.main.spawn((ctx) => {
    ctx.monitor(victim);
    return (m) => ctx.send(probe.pid, m);
  });
  node.send(victim, 'spin');
  const down = await probe.next<DownMessage>((m) => (m as DownMessage).type === 'DOWN', 10_000);
  assert.equal(down.reason, 'killed');
  assert.notEqual(node.incarnationOf(2), incBefore);
  // The restarted scheduler runs new processes.
  const fresh = await spawnOn(2, 'echo');
  node.send(fresh, { replyTo: probe.pid, body: 'after-restart' });
  const r = await probe.next<{ echo: string }>((m) => (m as { echo?: string }).echo === 'after-restart', 5000);
  assert.equal(r.echo, 'after-restart');
  // A message to the old pid is dropped, never delivered to a process on the new incarnation.
  assert.equal(fresh.inc === victim.inc, false);
});

test('node lists processes of every scheduler and reports metrics', async () => {
  await spawnOn(1, 'echo');
  const list = await node.processes();
  assert.ok(list.some((p) => String(p['pid']).includes('.1.')));
  const metrics = await node.metrics();
  assert.equal(metrics.length, 3);
  assert.ok(metrics.every((m) => m !== null && typeof m.messagesHandled === 'number'));
});

test('dirty work from a worker scheduler runs on the pool, not on a scheduler thread', async () => {
  const probe = spawnProbe(node.main);
  await spawnOn(1, 'dirtyCaller', [probe.pid, 100_000]);
  const r = await probe.next<{ sum: number; mainThread: boolean; sched: number }>(undefined, 10_000);
  assert.deepEqual(r, { sum: 5_000_050_000, mainThread: false, sched: 1 });
});

test('a GenServer call from a worker scheduler to the main scheduler gets its reply', async () => {
  const GenServer = await import('../../actors/GenServer.js');
  const started = await GenServer.start(node.main, {
    init: () => ({ state: 0 }),
    handleCall: (req: unknown, _from: unknown, n: number) => ({ reply: { got: req, n: n + 1 }, state: n + 1 }),
  }, undefined, { name: 'cross_counter' });
  assert.ok(started.ok);
  const probe = spawnProbe(node.main);
  await spawnOn(1, 'crossCaller', [started.pid, probe.pid]);
  const r = await probe.next<{ ok: boolean; value: { got: string; n: number } }>(undefined, 5000);
  assert.deepEqual(r, { ok: true, value: { got: 'from-sched-1', n: 1 } });
});

test('a handler running past its budget is reported with its scheduler and slot, without a restart', async () => {
  const probe = spawnProbe(node.main);
  const pid = await spawnOn(1, 'slowpoke');
  const incBefore = node.incarnationOf(1);
  node.send(pid, { busyMs: 300, replyTo: probe.pid });
  assert.equal(await probe.next((m) => m === 'done', 5000), 'done');
  const w = warnings.find((x) => x.msg === 'handler running over its time budget' && (x.fields as { sched: number }).sched === 1);
  assert.ok(w, `expected an over-budget warning, got ${JSON.stringify(warnings)}`);
  assert.equal((w.fields as { slot: number }).slot, pid.slot);
  assert.equal(node.incarnationOf(1), incBefore);
});

test('a supervisor restarts its child after the child\'s scheduler was restarted by the watchdog', async () => {
  const sup = await Supervisor.start(node.main, {
    flags: { strategy: 'one_for_one', intensity: 3, period: 10 },
    children: [{ id: 'spinner', start: (ctx) => ctx.spawnOn(2, { module: BODIES, fn: 'runaway' }, { link: true }) }],
  });
  assert.ok(sup.ok);
  const child = async () => {
    const w = await Supervisor.whichChildren(node.main, sup.pid);
    assert.ok(w.ok);
    return w.children[0]!.pid;
  };
  const first = await child();
  assert.ok(first !== undefined && first !== 'restarting');
  node.send(first, 'spin');
  const deadline = Date.now() + 10_000;
  let second = await child();
  while (second === undefined || second === 'restarting' || second.key === first.key) {
    if (Date.now() > deadline) throw new Error('child was not restarted');
    await new Promise((r) => setTimeout(r, 20));
    second = await child();
  }
  assert.equal(second.sched, 2);
  assert.notEqual(second.inc, first.inc);
  const probe = spawnProbe(node.main);
  node.send(second, { replyTo: probe.pid });
  assert.equal(await probe.next((m) => m === 'alive', 5000), 'alive');
});
