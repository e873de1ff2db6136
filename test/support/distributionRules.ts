/**
 * The distribution's behavioural rules, written once and run against both transports
 * (test/runtime/DistributionRules.test.ts on real NATS, test/sim/DistributionRules.test.ts on
 * SimNats), so the production transport and the simulator's stay twins: remote send and FIFO,
 * trace ids, links and monitors with OTP semantics, noconnection on a cut, a crash, a lost
 * link, new incarnations, remote spawn, GenServer calls, process groups and global names.
 *
 * Nodes share the test's thread here, so a pid object made on one node must be copied
 * (`across`) before another node uses it: a live pid carries a same-thread shortcut to its
 * process, which would skip the transport.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as GenServer from '../../actors/GenServer.js';
import * as GlobalRegistry from '../../actors/GlobalRegistry.js';
import * as ProcessGroups from '../../actors/ProcessGroups.js';
import { isDownMessage, isExitMessage, type DownMessage, type ExitMessage, type ExitReason } from '../../runtime/ExitReason.js';
import { isNodeDownMessage, isNodeUpMessage } from '../../runtime/Membership.js';
import { Pid } from '../../runtime/Pid.js';
import type { ProcessBody, ProcessContext } from '../../runtime/ProcessContext.js';
import type { Scheduler } from '../../runtime/Scheduler.js';
import { BODIES } from './bodies.js';
import type { ClusterHarness, HarnessNode } from './clusterHarness.js';

/** A copy of `pid` without its same-thread shortcut, as another node would decode it. */
export function across(pid: Pid): Pid {
  return new Pid(pid.node, pid.sched, pid.inc, pid.slot, pid.gen);
}

interface Seen {
  readonly msg: unknown;
  readonly trace: number;
}

interface Recorder {
  /** Usable from any node. */
  readonly pid: Pid;
  /** The live pid on its own node. */
  readonly live: Pid;
  readonly seen: Seen[];
  find<T>(match: (m: unknown) => boolean): T | undefined;
}

/** A process that records every message (and its trace id); `init` runs first in it (it may await). */
function recorder(node: HarnessNode, opts: { trapExit?: boolean; init?: (ctx: ProcessContext) => unknown } = {}): Recorder {
  const seen: Seen[] = [];
  const live = node.sched.spawn(async (ctx) => {
    await opts.init?.(ctx);
    return (msg) => {
      seen.push({ msg, trace: ctx.traceId });
    };
  }, { trapExit: opts.trapExit === true, label: 'recorder' });
  return {
    pid: across(live),
    live,
    seen,
    find: <T>(match: (m: unknown) => boolean) => seen.find((s) => match(s.msg))?.msg as T | undefined,
  };
}

/** Exits with `{exit}`'s reason, crashes on `crash`. */
const stoppable = (): ProcessBody => (ctx) => (m) => {
  if (m === 'crash') throw new Error('boom');
  if (typeof m === 'object' && m !== null && 'exit' in m) ctx.exit((m as { exit: ExitReason }).exit);
};

const downOf = (pid: Pid) => (m: unknown): boolean => isDownMessage(m) && m.pid.key === pid.key;
const exitOf = (pid: Pid) => (m: unknown): boolean => isExitMessage(m) && m.from.key === pid.key;

const echoServer: GenServer.Behaviour<null> = {
  init: () => ({ state: null }),
  handleCall(req, _from, state, ctx) {
    if (req === 'hang') return { noreply: true, state };
    return { reply: { echo: req, node: ctx.node }, state };
  },
};

function membersOn(s: Scheduler, group: string): string[] {
  return ProcessGroups.getMembers(s, 'pg', group).map((p) => p.key);
}

/** Register every distribution rule as a test of this file, on nodes of `make()`'s harness. */
export function distributionRules(make: () => Promise<ClusterHarness> | ClusterHarness): void {
  let h: ClusterHarness;
  let a: HarnessNode;
  let b: HarnessNode;
  let label = '';

  before(async () => {
    h = await make();
    label = h.transport;
    a = await h.startNode('a');
    b = await h.startNode('b');
  });
  after(async () => {
    await h?.close();
  });

  const N = 5_000;
  test(`remote send arrives in per-pair FIFO order over ${N} messages, with the sender's trace id`, async () => {
    const sink = recorder(b);
    a.sched.spawn((ctx) => {
      ctx.setTraceId(4242);
      for (let i = 0; i < N; i++) ctx.send(sink.pid, i);
    });
    await h.waitFor(`${N} messages at b (${label})`, () => sink.seen.length === N, 30_000);
    assert.deepEqual(sink.seen.map((s) => s.msg), Array.from({ length: N }, (_, i) => i));
    assert.deepEqual(new Set(sink.seen.map((s) => s.trace)), new Set([4242]));
  });

  test('a trace id crosses to the other node and back with the reply', async () => {
    const echo = across(b.sched.spawn((ctx) => (m) => ctx.send((m as { replyTo: Pid }).replyTo, { echoedTrace: ctx.traceId })));
    const back = recorder(a, {
      init: (ctx) => {
        ctx.setTraceId(77);
        ctx.send(echo, { replyTo: ctx.self });
      },
    });
    await h.waitFor('the echo', () => back.seen.length === 1);
    assert.deepEqual(back.seen, [{ msg: { echoedTrace: 77 }, trace: 77 }]);
  });

  test('a remote link: normal does not kill, a crash and an exit reason propagate, kill arrives as killed', async () => {
    // normal: the linked process on a survives, and sees the DOWN of its monitor after the link signal
    const p1 = across(b.sched.spawn(stoppable()));
    const n1 = recorder(a, {
      init: (ctx) => {
        ctx.link(p1);
        ctx.monitor(p1);
      },
    });
    // crash: the linked, non-trapping process on a dies with the crash reason
    const p2 = across(b.sched.spawn(stoppable()));
    const n2 = a.sched.spawn((ctx) => {
      ctx.link(p2);
      return () => {};
    });
    const watchN2 = recorder(a, { init: (ctx) => ctx.monitor(n2) });
    // kill: a trapping linked process sees `killed`
    const p3 = across(b.sched.spawn(stoppable()));
    const t3 = recorder(a, { trapExit: true, init: (ctx) => ctx.link(p3) });
    // an exit signal with a reason from a to b
    const p4 = across(b.sched.spawn(stoppable()));
    const w4 = recorder(a, { init: (ctx) => ctx.monitor(p4) });
    // let the link and monitor signals cross before the exits
    await h.waitFor('links established on b', () => b.sched.info(p2)?.links.length === 1 && b.sched.info(p3)?.links.length === 1 && b.sched.info(p1)?.links.length === 1);
    a.sched.send(p1, { exit: 'normal' }, null);
    a.sched.send(p2, 'crash', null);
    a.sched.sendExit(null, p3, 'kill');
    a.sched.sendExit(null, p4, 'custom_reason');
    const d1 = await h.waitFor('DOWN of p1', () => n1.find<DownMessage>(downOf(p1)));
    assert.equal(d1.reason, 'normal');
    assert.equal(a.sched.isAlive(n1.live), true, 'normal does not kill the linked process');
    const d2 = await h.waitFor('DOWN of the process linked to p2', () => watchN2.find<DownMessage>(downOf(n2)));
    assert.equal((d2.reason as { error: string }).error, 'boom');
    const e3 = await h.waitFor('EXIT from p3', () => t3.find<ExitMessage>(exitOf(p3)));
    assert.equal(e3.reason, 'killed');
    const d4 = await h.waitFor('DOWN of p4', () => w4.find<DownMessage>(downOf(p4)));
    assert.equal(d4.reason, 'custom_reason');
  });

  test('a remote monitor: DOWN with the reason; a dead remote pid gives noproc; demonitor stops it', async () => {
    const p = across(b.sched.spawn(stoppable()));
    const q = across(b.sched.spawn(stoppable()));
    const w = recorder(a, {
      init: (ctx) => {
        ctx.monitor(p);
        const r = ctx.monitor(q);
        ctx.demonitor(r);
        ctx.monitor(q);
      },
    });
    await h.waitFor('monitors on b', () => b.sched.info(q)?.monitoredBy === 1 && b.sched.info(p)?.monitoredBy === 1);
    a.sched.send(p, { exit: 'bye' }, null);
    a.sched.send(q, { exit: 'bye_q' }, null);
    const dp = await h.waitFor('DOWN p', () => w.find<DownMessage>(downOf(p)));
    assert.equal(dp.reason, 'bye');
    await h.waitFor('DOWN q', () => w.find(downOf(q)));
    assert.equal(w.seen.filter((s) => downOf(q)(s.msg)).length, 1, 'the demonitored monitor never fires');
    const late = recorder(a, { init: (ctx) => ctx.monitor(p) });
    const dl = await h.waitFor('DOWN of the dead pid', () => late.find<DownMessage>(downOf(p)));
    assert.equal(dl.reason, 'noproc');
  });

  test('link, monitor and spawn aimed at a node that is not up answer noconnection at once', async () => {
    const ghost = new Pid('ghost', 0, 1, 0, 0);
    const spawned: unknown[] = [];
    const w = recorder(a, {
      trapExit: true,
      init: (ctx) => {
        ctx.monitor(ghost);
        ctx.link(ghost);
        ctx.send(ghost, 'lost');
        void ctx.spawnOn(0, { module: BODIES, fn: 'echo' }, {}, 'ghost').then((r) => spawned.push(r));
      },
    });
    await h.waitFor('answers', () => w.seen.length === 2 && spawned.length === 1, 1_000);
    assert.equal(w.find<DownMessage>(downOf(ghost))?.reason, 'noconnection');
    assert.equal(w.find<ExitMessage>(exitOf(ghost))?.reason, 'noconnection');
    assert.deepEqual(spawned, [{ ok: false, reason: 'noconnection' }]);
  });

  test('remote spawn by module export sets up link and monitor atomically', async () => {
    const out: unknown[] = [];
    const parent = recorder(a, {
      trapExit: true,
      init: (ctx) => {
        void ctx.spawnOn(0, { module: BODIES, fn: 'crashable' }, { link: true, monitor: true }, 'b').then((r) => {
          out.push(r);
          if (r.ok) ctx.send(r.pid, 'crash');
        });
      },
    });
    await h.waitFor('the spawn result', () => out.length === 1);
    const r = out[0] as { ok: true; pid: Pid };
    assert.equal(r.ok, true);
    assert.equal(r.pid.node, 'b');
    const ex = await h.waitFor('EXIT', () => parent.find<ExitMessage>(exitOf(r.pid)));
    const dn = await h.waitFor('DOWN', () => parent.find<DownMessage>(downOf(r.pid)));
    assert.equal((ex.reason as { error: string }).error, 'told to crash');
    assert.equal((dn.reason as { error: string }).error, 'told to crash');
  });

  test('GenServer call across nodes: a reply, and timeout when the server does not answer', async () => {
    const started = await h.settle(GenServer.start(b.sched, echoServer, undefined));
    assert.ok(started.ok);
    const srv = across(started.pid);
    const results: unknown[] = [];
    a.sched.spawn(async (ctx) => {
      results.push(await GenServer.call(ctx, srv, 'hi', 5_000));
      results.push(await GenServer.call(ctx, srv, 'hang', 300));
    });
    await h.waitFor('both calls', () => results.length === 2);
    assert.deepEqual(results, [{ ok: true, value: { echo: 'hi', node: 'b' } }, { ok: false, reason: 'timeout' }]);
  });

  test('a node cut off is down on both sides in time, links/monitors/calls across the cut get noconnection, and it comes back as a new view', async () => {
    const c = await h.startNode('c');
    const onC = recorder(c, { trapExit: true });
    const onA = recorder(a, {
      trapExit: true,
      init: (ctx) => {
        ctx.link(onC.pid);
        ctx.monitor(onC.pid);
      },
    });
    const watchFromC = recorder(c, { init: (ctx) => ctx.monitor(onA.pid) });
    const started = await h.settle(GenServer.start(c.sched, echoServer, undefined));
    assert.ok(started.ok);
    const srv = across(started.pid);
    await h.waitFor('link and monitor in place on c', () => c.sched.info(onC.live)?.links.length === 1 && c.sched.info(onC.live)?.monitoredBy === 1);
    const calls: unknown[] = [];
    a.sched.spawn(async (ctx) => {
      calls.push(await GenServer.call(ctx, srv, 'hang', 60_000));
    });
    await h.waitFor('the call to reach c', () => c.sched.info(started.pid)?.monitoredBy === 1);
    const aFrom = a.events.length;
    const cFrom = c.events.length;
    let downAt = -1;
    const stop = a.dist.subscribe((e) => {
      if (e.type === 'down' && e.member.name === 'c' && downAt < 0) downAt = h.now();
    });
    const cutAt = h.now();
    await h.isolate(c);
    await h.waitFor('a sees c down', () => downAt >= 0, h.downAfterMs * 3);
    stop();
    assert.ok(downAt - cutAt <= h.downAfterMs + h.detectSlackMs, `down after ${Math.round(downAt - cutAt)} ms (limit ${h.downAfterMs} + ${h.detectSlackMs})`);
    assert.equal((await h.waitFor('EXIT on a', () => onA.find<ExitMessage>(exitOf(onC.pid)))).reason, 'noconnection');
    assert.equal((await h.waitFor('DOWN on a', () => onA.find<DownMessage>(downOf(onC.pid)))).reason, 'noconnection');
    await h.waitFor('the call fails', () => calls.length === 1);
    assert.deepEqual(calls, [{ ok: false, reason: 'noconnection' }]);
    assert.equal((await h.waitFor('EXIT on c', () => onC.find<ExitMessage>(exitOf(onA.pid)))).reason, 'noconnection');
    assert.equal((await h.waitFor('DOWN on c', () => watchFromC.find<DownMessage>(downOf(onA.pid)))).reason, 'noconnection');
    await h.heal(c);
    await h.waitFor('a and c up again', () => a.dist.peers().some((m) => m.name === 'c') && c.dist.peers().some((m) => m.name === 'a'), 15_000);
    // A new view: down first, up last (a loaded machine may add a flap in between, never a stale up).
    const onAView = a.events.slice(aFrom).filter((e) => e.member.name === 'c').map((e) => e.type);
    const onCView = c.events.slice(cFrom).filter((e) => e.member.name === 'a').map((e) => e.type);
    assert.deepEqual([onAView[0], onAView.at(-1)], ['down', 'up']);
    assert.deepEqual([onCView[0], onCView.at(-1)], ['down', 'up']);
    assert.deepEqual(a.sched.info(onA.live)?.links, [], 'no link survives the cut on a');
    assert.deepEqual(c.sched.info(onC.live)?.links, [], 'no link survives the cut on c');
    a.sched.send(onC.pid, 'after-heal', null);
    await h.waitFor('a message after the heal', () => onC.find((m) => m === 'after-heal'));
  });

  test('a crashed node is down by silence in time: monitors fire noconnection, and a new monitor of its pids answers at once', async () => {
    const d = await h.startNode('d');
    const victim = recorder(d);
    const w = recorder(a, { init: (ctx) => ctx.monitor(victim.pid) });
    await h.waitFor('the monitor in place on d', () => d.sched.info(victim.live)?.monitoredBy === 1);
    const crashAt = h.now();
    const from = a.events.length;
    await h.crash(d);
    const dn = await h.waitFor('DOWN', () => w.find<DownMessage>(downOf(victim.pid)), h.downAfterMs * 3);
    const took = h.now() - crashAt;
    assert.equal(dn.reason, 'noconnection');
    assert.ok(took <= h.downAfterMs + h.detectSlackMs, `down after ${Math.round(took)} ms`);
    const first = a.events.slice(from).find((e) => e.member.name === 'd');
    assert.equal(first?.type === 'down' ? first.cause : first?.type, 'silence');
    const again = recorder(a, { init: (ctx) => ctx.monitor(victim.pid) });
    const d2 = await h.waitFor('DOWN at once', () => again.find<DownMessage>(downOf(victim.pid)), 200);
    assert.equal(d2.reason, 'noconnection');
  });

  test('a restarted node is a new incarnation: messages to pids of its old life are dropped and monitors of them answer noproc', async () => {
    const e1 = await h.startNode('e');
    const old = recorder(e1);
    await h.crash(e1);
    const e2 = await h.startNode('e');
    assert.ok(e2.dist.self.incarnation > e1.dist.self.incarnation);
    await h.waitFor('a to know the new incarnation', () => a.dist.peers().find((m) => m.name === 'e')?.incarnation === e2.dist.self.incarnation);
    const fresh = recorder(e2);
    assert.equal(fresh.pid.slot, old.pid.slot, 'the new process reuses the old slot');
    assert.equal(fresh.pid.gen, old.pid.gen, 'and generation: only the incarnation tells them apart');
    const w = recorder(a, {
      init: (ctx) => {
        ctx.send(old.pid, 'for-the-old-life');
        ctx.monitor(old.pid);
        ctx.send(fresh.pid, 'for-the-new-life');
      },
    });
    await h.waitFor('the new process to get its message', () => fresh.seen.length > 0);
    assert.deepEqual(fresh.seen.map((s) => s.msg), ['for-the-new-life']);
    assert.equal((await h.waitFor('DOWN of the old pid', () => w.find<DownMessage>(downOf(old.pid)))).reason, 'noproc');
    assert.equal(old.seen.length, 0);
  });

  test('a node that loses its NATS link fires noconnection at once, peers see it down and back up, and its processes survive', async () => {
    const f = await h.startNode('f');
    const onF = recorder(f, { trapExit: true });
    const onA = recorder(a, {
      trapExit: true,
      init: (ctx) => {
        ctx.link(onF.pid);
        ctx.monitor(onF.pid);
      },
    });
    const fWatch = recorder(f, { init: (ctx) => ctx.monitor(onA.pid) });
    const nodeMsgs = recorder(f, { init: (ctx) => ctx.monitorNodes(true) });
    await h.waitFor('link and monitor in place on f', () => f.sched.info(onF.live)?.links.length === 1 && f.sched.info(onF.live)?.monitoredBy === 1);
    await h.dropLink(f, 300);
    assert.equal((await h.waitFor('DOWN on f', () => fWatch.find<DownMessage>(downOf(onA.pid)))).reason, 'noconnection');
    assert.equal((await h.waitFor('EXIT on f', () => onF.find<ExitMessage>(exitOf(onA.pid)))).reason, 'noconnection');
    assert.equal((await h.waitFor('EXIT on a', () => onA.find<ExitMessage>(exitOf(onF.pid)), h.downAfterMs * 3)).reason, 'noconnection');
    assert.equal((await h.waitFor('DOWN on a', () => onA.find<DownMessage>(downOf(onF.pid)))).reason, 'noconnection');
    await h.waitFor('f and a up again', () => a.dist.peers().some((m) => m.name === 'f') && f.dist.peers().some((m) => m.name === 'a'), 15_000);
    const fDown = f.events.find((e) => e.type === 'down' && e.member.name === 'a');
    assert.equal(fDown?.type === 'down' ? fDown.cause : undefined, 'link_lost');
    assert.ok(nodeMsgs.find((m) => isNodeDownMessage(m) && m.node === 'a' && m.cause === 'link_lost'), 'NODE_DOWN reached a monitoring process');
    await h.waitFor('NODE_UP after the reconnect', () => nodeMsgs.seen.filter((s) => isNodeUpMessage(s.msg) && s.msg.node === 'a').length >= 1);
    a.sched.send(onF.pid, 'still-here', null);
    await h.waitFor('the process on f is alive and reachable', () => onF.find((m) => m === 'still-here'));
  });

  test('process groups: a join on one node is read on the other without a call; leave and exit remove it; notifications follow', async () => {
    for (const n of [a, b]) assert.ok((await h.settle(ProcessGroups.start(n.sched, 'pg'))).ok);
    const subscribed: unknown[] = [];
    const sub = recorder(b, {
      init: async (ctx) => {
        subscribed.push(await ProcessGroups.monitor(ctx, 'pg', 'g'));
      },
    });
    await h.waitFor('subscription', () => subscribed.length === 1);
    const m1 = a.sched.spawn(() => () => {});
    const remote = across(m1);
    // The scopes may still be finding each other: the join reaches b with a's sync if not directly.
    assert.deepEqual(await h.settle(ProcessGroups.join(a.sched, 'pg', 'g', m1)), { ok: true });
    await h.waitFor('the member on b', () => membersOn(b.sched, 'g').length === 1);
    assert.deepEqual(membersOn(b.sched, 'g'), [remote.key]);
    assert.deepEqual(ProcessGroups.getLocalMembers(b.sched, 'pg', 'g'), []);
    const joined = await h.waitFor('join notification', () => sub.find<ProcessGroups.GroupNotification>((m) => ProcessGroups.isGroupNotification(m) && m.event === 'join'));
    assert.deepEqual(joined.pids.map((p) => p.key), [remote.key]);
    assert.deepEqual(await h.settle(ProcessGroups.leave(a.sched, 'pg', 'g', m1)), { ok: true });
    await h.waitFor('the leave on b', () => membersOn(b.sched, 'g').length === 0);
    await h.waitFor('leave notification', () => sub.find((m) => ProcessGroups.isGroupNotification(m) && m.event === 'leave'));
    assert.deepEqual(await h.settle(ProcessGroups.join(a.sched, 'pg', 'g', m1)), { ok: true });
    await h.waitFor('joined again on b', () => membersOn(b.sched, 'g').length === 1);
    a.sched.kill(m1);
    await h.waitFor('the exited member gone from b', () => membersOn(b.sched, 'g').length === 0);
  });

  test('process groups: members on a node that goes down leave, and come back when it is up again', async () => {
    const g = await h.startNode('g');
    assert.ok((await h.settle(ProcessGroups.start(g.sched, 'pg'))).ok);
    if (a.sched.whereis('pg') === undefined) assert.ok((await h.settle(ProcessGroups.start(a.sched, 'pg'))).ok);
    const m = g.sched.spawn(() => () => {});
    assert.deepEqual(await h.settle(ProcessGroups.join(g.sched, 'pg', 'g2', m)), { ok: true });
    await h.waitFor('the member on a', () => membersOn(a.sched, 'g2').length === 1);
    await h.isolate(g);
    await h.waitFor('the member gone from a', () => membersOn(a.sched, 'g2').length === 0, h.downAfterMs * 3);
    await h.heal(g);
    await h.waitFor('the member back on a', () => membersOn(a.sched, 'g2').length === 1, 15_000);
    assert.deepEqual(membersOn(a.sched, 'g2'), [across(m).key]);
  });

  test('global names: registered on one node, read on every node; one name one pid; gone with its process', async () => {
    for (const n of [a, b]) if (n.sched.whereis(GlobalRegistry.GLOBAL_NAME_SERVER) === undefined) assert.ok((await h.settle(GlobalRegistry.start(n.sched))).ok);
    const p = a.sched.spawn(() => () => {});
    const q = b.sched.spawn(() => () => {});
    let r = await h.settle(GlobalRegistry.register(a.sched, 'svc', p));
    assert.deepEqual(r, { ok: true });
    // The servers may still be finding each other: then b learns the name from a's sync.
    await h.waitFor('the name on b', () => GlobalRegistry.whereis(b.sched, 'svc'));
    assert.equal(GlobalRegistry.whereis(b.sched, 'svc')?.key, across(p).key);
    r = await h.settle(GlobalRegistry.register(b.sched, 'svc', q));
    assert.equal(r.ok, false);
    assert.equal((r as { error: string }).error, 'already_registered');
    assert.equal((r as { pid: Pid }).pid.key, across(p).key);
    a.sched.kill(p);
    await h.waitFor('the name gone on b', () => GlobalRegistry.whereis(b.sched, 'svc') === undefined);
    assert.deepEqual(await h.settle(GlobalRegistry.register(b.sched, 'svc', q)), { ok: true });
    await h.waitFor('the new owner seen on a', () => GlobalRegistry.whereis(a.sched, 'svc')?.key === across(q).key);
    assert.deepEqual(await h.settle(GlobalRegistry.unregister(a.sched, 'svc')), { ok: true, removed: true });
    await h.waitFor('unregistered everywhere', () => GlobalRegistry.whereis(b.sched, 'svc') === undefined);
  });

  test('global names: two nodes racing for one name, exactly one wins and both agree', async () => {
    const p = a.sched.spawn(() => () => {});
    const q = b.sched.spawn(() => () => {});
    const [ra, rb] = await h.settle(Promise.all([GlobalRegistry.register(a.sched, 'race', p), GlobalRegistry.register(b.sched, 'race', q)]));
    const wins = [ra, rb].filter((r) => r.ok).length;
    assert.equal(wins, 1, `results ${JSON.stringify([ra, rb])}`);
    const winner = ra.ok ? across(p).key : across(q).key;
    await h.waitFor('both tables agree', () => GlobalRegistry.whereis(a.sched, 'race')?.key === winner && GlobalRegistry.whereis(b.sched, 'race')?.key === winner);
  });

  test('global names: a clash after a healed partition is resolved the same way everywhere, and the loser is told', async () => {
    const hn = await h.startNode('h');
    assert.ok((await h.settle(GlobalRegistry.start(hn.sched))).ok);
    const owned = hn.sched.spawn(() => () => {});
    assert.deepEqual(await h.settle(GlobalRegistry.register(hn.sched, 'h-owned', owned)), { ok: true });
    await h.waitFor('h-owned seen on a', () => GlobalRegistry.whereis(a.sched, 'h-owned') !== undefined);
    await h.isolate(hn);
    await h.waitFor('both sides see the other down', () => !a.dist.peers().some((m) => m.name === 'h') && hn.dist.peers().length === 0, h.downAfterMs * 3);
    await h.waitFor('h-owned gone from a while h is down', () => GlobalRegistry.whereis(a.sched, 'h-owned') === undefined);
    // dup: a registers first (wins); h's loser asked to be notified.
    const pa = recorder(a, { trapExit: true });
    const ph = recorder(hn, { trapExit: true });
    assert.deepEqual(await h.settle(GlobalRegistry.register(a.sched, 'dup', pa.live)), { ok: true });
    await h.idle(20);
    assert.deepEqual(await h.settle(GlobalRegistry.register(hn.sched, 'dup', ph.live, { onConflict: 'notify' })), { ok: true });
    // dup2: h registers first (wins); a's loser gets the default exit signal.
    const ph2 = recorder(hn, { trapExit: true });
    const pa2 = recorder(a, { trapExit: true });
    assert.deepEqual(await h.settle(GlobalRegistry.register(hn.sched, 'dup2', ph2.live)), { ok: true });
    await h.idle(20);
    assert.deepEqual(await h.settle(GlobalRegistry.register(a.sched, 'dup2', pa2.live)), { ok: true });
    await h.heal(hn);
    await h.waitFor(
      'every node to agree on the winners',
      () =>
        GlobalRegistry.whereis(a.sched, 'dup')?.key === pa.pid.key &&
        GlobalRegistry.whereis(hn.sched, 'dup')?.key === pa.pid.key &&
        GlobalRegistry.whereis(a.sched, 'dup2')?.key === ph2.pid.key &&
        GlobalRegistry.whereis(hn.sched, 'dup2')?.key === ph2.pid.key &&
        GlobalRegistry.whereis(b.sched, 'dup')?.key === pa.pid.key &&
        GlobalRegistry.whereis(b.sched, 'dup2')?.key === ph2.pid.key,
      15_000,
    );
    const told = await h.waitFor('the dup loser notified', () => ph.find<GlobalRegistry.GlobalNameConflict>(GlobalRegistry.isGlobalNameConflict));
    assert.equal(told.name, 'dup');
    assert.equal(told.winner.key, pa.pid.key);
    const ex = await h.waitFor('the dup2 loser sent an exit signal', () => pa2.find<ExitMessage>((m) => isExitMessage(m)));
    assert.deepEqual(ex.reason, GlobalRegistry.conflictReason('dup2'));
    assert.equal(pa.seen.length + ph2.seen.length, 0, 'winners are not told anything');
    assert.equal(GlobalRegistry.whereis(a.sched, 'h-owned')?.key, across(owned).key, "h's names are back on a");
  });
}
