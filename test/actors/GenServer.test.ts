/**
 * GenServer: start and init outcomes, calls (reply, timeout, noproc, late replies), casts,
 * info, continue, deferred replies, terminate on every orderly path, idle timeout and
 * hibernation. Timing rules run on a manual clock so their outcomes are exact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as GenServer from '../../actors/GenServer.js';
import { isDownMessage, isExitMessage, type DownMessage } from '../../runtime/ExitReason.js';
import type { Pid } from '../../runtime/Pid.js';
import type { Scheduler } from '../../runtime/Scheduler.js';
import { DEFAULT_CALL_TIMEOUT_MS } from '../../runtime/defaults.js';
import { newScheduler, until } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';
import { manualTime } from '../support/manualTime.js';

async function started(r: Promise<GenServer.StartResult>): Promise<Pid> {
  const x = await r;
  if (!x.ok) assert.fail(`start failed: ${JSON.stringify(x.reason)}`);
  return x.pid;
}

/** A counter: call 'get' / 'inc', cast 'add'. */
const counter: GenServer.Behaviour<number, number, 'get' | 'inc', number, number> = {
  init: (n) => ({ state: n }),
  handleCall: (req, _from, n) => (req === 'get' ? { reply: n, state: n } : { reply: n + 1, state: n + 1 }),
  handleCast: (k, n) => ({ noreply: true, state: n + k }),
};

/** Never answers a call by itself; `release` answers every held call with `late`. */
interface Holder {
  held: GenServer.From[];
  notify: Pid | null;
}
const holder: GenServer.Behaviour<Holder, Pid | null, unknown, unknown, 'release'> = {
  init: (notify) => ({ state: { held: [], notify } }),
  handleCall: (_req, from, st) => ({ noreply: true, state: { ...st, held: [...st.held, from] } }),
  handleCast: (_msg, st, ctx) => {
    for (const f of st.held) GenServer.reply(ctx, f, 'late');
    // Sent after the replies by the same process: when it arrives, the replies have too.
    if (st.notify !== null) ctx.send(st.notify, 'after-release');
    return { noreply: true, state: { ...st, held: [] } };
  },
};

/** Monitor `pid` from a test actor; resolves once the monitor is in place. */
async function monitorFrom(s: Scheduler, pid: Pid): Promise<() => Promise<DownMessage>> {
  const watcher = spawnActor(s);
  await watcher.run((ctx) => ctx.monitor(pid));
  return () => watcher.probe.next<DownMessage>(isDownMessage);
}

// ---- start ------------------------------------------------------------------------------

test('start resolves only after init ran, also when init is async', async () => {
  const s = newScheduler();
  let initDone = false;
  const pid = await started(
    GenServer.start(
      s,
      {
        init: async (n: number) => {
          await new Promise((r) => setTimeout(r, 20));
          initDone = true;
          return { state: n };
        },
        handleCall: (_req: unknown, _from, n) => ({ reply: n, state: n }),
      },
      7,
    ),
  );
  assert.equal(initDone, true);
  assert.deepEqual(await GenServer.callFrom(s, pid, 'get'), { ok: true, value: 7 });
  assert.equal(s.info(pid)?.behaviour, 'GenServer');
});

test('init returning ignore gives reason ignore and leaves no process', async () => {
  const s = newScheduler();
  const before = s.processes().length;
  const r = await GenServer.start(s, { init: () => ({ ignore: true as const }) }, undefined);
  assert.deepEqual(r, { ok: false, reason: 'ignore' });
  assert.equal(s.processes().length, before);
});

test('init returning stop gives its reason and the child is gone', async () => {
  const s = newScheduler();
  const before = s.processes().length;
  const r = await GenServer.start(s, { init: () => ({ stop: { bad_config: 'port' } }) }, undefined);
  assert.deepEqual(r, { ok: false, reason: { bad_config: 'port' } });
  assert.equal(s.processes().length, before);
});

test('a crash in init gives the crash reason', async () => {
  const s = newScheduler();
  const r = await GenServer.start(
    s,
    {
      init: (): GenServer.InitReturn<number> => {
        throw new Error('no database');
      },
    },
    undefined,
  );
  assert.equal(r.ok, false);
  assert.equal(!r.ok && (r.reason as { error: string }).error, 'no database');
});

test('a bad init return value fails the start with bad_return_value', async () => {
  const s = newScheduler();
  const r = await GenServer.start(s, { init: () => 42 as unknown as GenServer.InitReturn<number> }, undefined);
  assert.deepEqual(r, { ok: false, reason: { bad_return_value: '42' } });
});

test('startLink from a parent that traps exits leaves no EXIT behind when init fails', async () => {
  const s = newScheduler();
  const parent = spawnActor(s, { trapExit: true });
  const [r, queued, links] = await parent.run(async (ctx) => {
    const res = await GenServer.startLink(ctx, { init: () => ({ stop: 'refused' }) }, undefined);
    return [res, ctx.info()?.messageQueueLen, ctx.info()?.links.length] as const;
  });
  assert.deepEqual(r, { ok: false, reason: 'refused' });
  assert.equal(queued, 0);
  assert.equal(links, 0);
});

test('startLink links atomically: the parent sees the link and a non-trapping server dies with it', async () => {
  const s = newScheduler();
  const parent = spawnActor(s);
  const [pid, linked] = await parent.run(async (ctx) => {
    const res = await GenServer.startLink(ctx, counter, 0);
    assert.ok(res.ok);
    return [res.pid, ctx.info()!.links.some((l) => l.key === res.pid.key)] as const;
  });
  assert.equal(linked, true);
  const down = await monitorFrom(s, pid);
  s.kill(parent.pid, 'parent_crashed');
  assert.equal((await down()).reason, 'parent_crashed');
});

test('starting under a name that is taken gives already_started with the holder', async () => {
  const s = newScheduler();
  const first = await started(GenServer.start(s, counter, 0, { name: 'counter' }));
  const r = await GenServer.start(s, counter, 0, { name: 'counter' });
  assert.equal(r.ok, false);
  assert.equal(!r.ok && (r.reason as { already_started: Pid }).already_started.key, first.key);
  assert.deepEqual(await GenServer.callFrom(s, 'counter', 'inc'), { ok: true, value: 1 });
});

test('a start whose init does not finish within timeoutMs kills the child and gives timeout', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const before = s.processes().length;
  const r = await mt.drive(GenServer.start(s, { init: () => new Promise<GenServer.InitReturn<number>>(() => {}) }, undefined, { timeoutMs: 50 }));
  assert.deepEqual(r, { ok: false, reason: 'timeout' });
  assert.equal(mt.now(), 50);
  assert.equal(s.processes().length, before);
});

// ---- calls ------------------------------------------------------------------------------

test('call returns the reply of handleCall and the state carries over', async () => {
  const s = newScheduler();
  const pid = await started(GenServer.start(s, counter, 10));
  assert.deepEqual(await GenServer.callFrom(s, pid, 'inc'), { ok: true, value: 11 });
  GenServer.cast(s, pid, 5);
  assert.deepEqual(await GenServer.callFrom(s, pid, 'get'), { ok: true, value: 16 });
});

test('call to a dead server returns noproc at once', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const pid = await mt.drive(started(GenServer.start(s, counter, 0)));
  await mt.drive(GenServer.stopFrom(s, pid));
  const t0 = mt.now();
  assert.deepEqual(await mt.drive(GenServer.callFrom(s, pid, 'get', 60_000)), { ok: false, reason: 'noproc' });
  assert.deepEqual(await mt.drive(GenServer.callFrom(s, 'nobody', 'get', 60_000)), { ok: false, reason: 'noproc' });
  assert.equal(mt.now(), t0, 'no time passed');
});

test('a call with no answer times out after exactly timeoutMs, by default DEFAULT_CALL_TIMEOUT_MS', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const pid = await mt.drive(started(GenServer.start(s, holder, null)));
  const t0 = mt.now();
  assert.deepEqual(await mt.drive(GenServer.callFrom(s, pid, 'q', 30)), { ok: false, reason: 'timeout' });
  assert.equal(mt.now() - t0, 30);
  const t1 = mt.now();
  assert.deepEqual(await mt.drive(GenServer.callFrom(s, pid, 'q')), { ok: false, reason: 'timeout' });
  assert.equal(mt.now() - t1, DEFAULT_CALL_TIMEOUT_MS);
});

test('late reply after a call timeout is dropped: the calling GenServer never sees it', async () => {
  const s = newScheduler();
  const infos: unknown[] = [];
  const results: unknown[] = [];
  const caller = await started(
    GenServer.start(
      s,
      {
        init: () => ({ state: null }),
        handleCast: async (target: Pid, st, ctx) => {
          results.push(await GenServer.call(ctx, target, 'q', 20));
          return { noreply: true, state: st };
        },
        handleInfo: (msg, st) => {
          infos.push(msg);
          return { noreply: true, state: st };
        },
      },
      undefined,
    ),
  );
  const server = await started(GenServer.start(s, holder, caller));
  GenServer.cast(s, caller, server);
  await until(() => results.length === 1);
  assert.deepEqual(results, [{ ok: false, reason: 'timeout' }]);
  GenServer.cast(s, server, 'release');
  await until(() => infos.length > 0);
  assert.deepEqual(infos, ['after-release'], 'the late reply was dropped before handleInfo');
  assert.equal(s.info(caller)?.messageQueueLen, 0);
});

test('callFrom calls from a temporary process, gone once the call returns, so a late reply has nowhere to land', async () => {
  const s = newScheduler();
  let from: GenServer.From | undefined;
  const server = await started(
    GenServer.start(
      s,
      {
        init: () => ({ state: null }),
        handleCall: (_req: unknown, f, st) => {
          from = f;
          return { noreply: true, state: st };
        },
      },
      undefined,
    ),
  );
  assert.deepEqual(await GenServer.callFrom(s, server, 'q', 10), { ok: false, reason: 'timeout' });
  assert.ok(from !== undefined);
  assert.equal(s.isAlive(from.pid), false);
});

test('a server that dies during a call gives the caller its exit reason', async () => {
  const s = newScheduler();
  const crashing = await started(
    GenServer.start(
      s,
      {
        init: () => ({ state: 0 }),
        handleCall: (): GenServer.CallReturn<number, never> => {
          throw new Error('boom');
        },
      },
      undefined,
    ),
  );
  const r = await GenServer.callFrom(s, crashing, 'q');
  assert.equal(!r.ok && (r.reason as { error: string }).error, 'boom');

  const silent = await started(GenServer.start(s, holder, null));
  const pending = GenServer.callFrom(s, silent, 'q', 60_000);
  await until(() => s.info(silent)?.messagesHandled === 1);
  s.kill(silent, { shutdown: 'maintenance' });
  assert.deepEqual(await pending, { ok: false, reason: { shutdown: 'maintenance' } });
});

test('a server that replies and stops in one result answers the call, after terminate', async () => {
  const s = newScheduler();
  const log: string[] = [];
  const pid = await started(
    GenServer.start(
      s,
      {
        init: () => ({ state: 0 }),
        handleCall: (_req: unknown, _from, n) => ({ stop: 'normal', reply: 'bye', state: n + 1 }),
        terminate: (reason, n) => {
          log.push(`terminate ${String(reason)} ${n}`);
        },
      },
      undefined,
    ),
  );
  assert.deepEqual(await GenServer.callFrom(s, pid, 'q'), { ok: true, value: 'bye' });
  assert.deepEqual(log, ['terminate normal 1']);
  await until(() => !s.isAlive(pid));
});

test('calling yourself returns calling_self without sending', async () => {
  const s = newScheduler();
  const results: unknown[] = [];
  const pid = await started(
    GenServer.start(
      s,
      {
        init: () => ({ state: 0 }),
        handleCast: async (_m: unknown, n, ctx) => {
          results.push(await GenServer.call(ctx, ctx.self, 'x'), await GenServer.call(ctx, 'me', 'x'));
          return { noreply: true, state: n };
        },
      },
      undefined,
      { name: 'me' },
    ),
  );
  GenServer.cast(s, pid, 'go');
  await until(() => results.length === 2);
  assert.deepEqual(results, [
    { ok: false, reason: 'calling_self' },
    { ok: false, reason: 'calling_self' },
  ]);
});

test('deferred reply: handleCall returns noreply and reply() answers later', async () => {
  const s = newScheduler();
  const pid = await started(GenServer.start(s, holder, null));
  const a = GenServer.callFrom(s, pid, 'a');
  const b = GenServer.callFrom(s, pid, 'b');
  await until(() => s.info(pid)?.messagesHandled === 2);
  GenServer.cast(s, pid, 'release');
  assert.deepEqual(await Promise.all([a, b]), [
    { ok: true, value: 'late' },
    { ok: true, value: 'late' },
  ]);
});

test('a callback can call another server while its own process waits', async () => {
  const s = newScheduler();
  const backend = await started(GenServer.start(s, counter, 41));
  const front = await started(
    GenServer.start(
      s,
      {
        init: () => ({ state: backend }),
        handleCall: async (_req: unknown, _from, b, ctx) => {
          const r = await GenServer.call<number>(ctx, b, 'inc');
          return { reply: r.ok ? r.value : -1, state: b };
        },
      },
      undefined,
    ),
  );
  assert.deepEqual(await GenServer.callFrom(s, front, 'q'), { ok: true, value: 42 });
});

// ---- cast, info, continue ---------------------------------------------------------------

test('cast reaches handleCast and every other message reaches handleInfo', async () => {
  const s = newScheduler();
  const seen: string[] = [];
  const pid = await started(
    GenServer.start(
      s,
      {
        init: () => ({ state: null }),
        handleCast: (m: string, st) => (seen.push(`cast ${m}`), { noreply: true, state: st }),
        handleInfo: (m, st) => (seen.push(`info ${String(m)}`), { noreply: true, state: st }),
      },
      undefined,
    ),
  );
  GenServer.cast(s, pid, 'a');
  s.send(pid, 'b', null);
  GenServer.cast(s, pid, 'c');
  await until(() => seen.length === 3);
  assert.deepEqual(seen, ['cast a', 'info b', 'cast c']);
});

test('handleContinue runs right after the result that asks for it, before the next message', async () => {
  const s = newScheduler();
  const pid = await started(
    GenServer.start(
      s,
      {
        init: () => ({ state: [] as string[], continue: 'from-init' }),
        handleCall: (_req: unknown, _from, log) => ({ reply: log, state: [...log, 'call'], continue: 'from-call' }),
        handleCast: (_m: unknown, log) => ({ noreply: true, state: [...log, 'cast'] }),
        handleContinue: (c, log) => ({ noreply: true, state: [...log, `continue ${String(c)}`] }),
      },
      undefined,
    ),
  );
  const caller = spawnActor(s);
  await caller.run(async (ctx) => {
    const first = GenServer.call(ctx, pid, 'q');
    GenServer.cast(ctx, pid, 'x');
    return first;
  });
  assert.deepEqual(await GenServer.callFrom(s, pid, 'q'), {
    ok: true,
    value: ['continue from-init', 'call', 'continue from-call', 'cast'],
  });
});

test('a callback returning a bad value stops the server with bad_return_value', async () => {
  const s = newScheduler();
  const pid = await started(GenServer.start(s, { init: () => ({ state: 0 }), handleCast: () => ({ nope: 1 }) as unknown as GenServer.HandlerReturn<number> }, undefined));
  const down = await monitorFrom(s, pid);
  GenServer.cast(s, pid, 'x');
  assert.deepEqual((await down()).reason, { bad_return_value: '{"nope":1}' });
});

// ---- terminate --------------------------------------------------------------------------

function recordingTerminate(log: unknown[]): GenServer.Behaviour<string, void, unknown, unknown, unknown> {
  return {
    init: (_a, ctx) => {
      ctx.trapExit(true);
      return { state: 'st' };
    },
    handleCast: () => {
      throw new Error('cast failed');
    },
    handleInfo: (m, st) => (log.push(['info', isExitMessage(m) ? m.reason : m]), { noreply: true, state: st }),
    terminate: (reason, st) => {
      log.push(['terminate', reason, st]);
    },
  };
}

test('stop runs terminate with the reason and resolves once the server exited with it', async () => {
  const s = newScheduler();
  const log: unknown[] = [];
  const pid = await started(GenServer.start(s, recordingTerminate(log), undefined));
  assert.deepEqual(await GenServer.stopFrom(s, pid, 'shutdown'), { ok: true });
  assert.deepEqual(log, [['terminate', 'shutdown', 'st']]);
  assert.equal(s.isAlive(pid), false);
  assert.deepEqual(await GenServer.stopFrom(s, pid), { ok: false, reason: 'noproc' });
});

test('a callback that throws runs terminate with the crash reason and the server exits with it', async () => {
  const s = newScheduler();
  const log: unknown[] = [];
  const pid = await started(GenServer.start(s, recordingTerminate(log), undefined));
  const down = await monitorFrom(s, pid);
  GenServer.cast(s, pid, 'x');
  const { reason } = await down();
  assert.equal((reason as { error: string }).error, 'cast failed');
  assert.equal(log.length, 1);
  assert.equal((log[0] as [string, { error: string }])[1].error, 'cast failed');
});

test('a server trapping exits terminates with its parent\'s exit reason; other EXITs go to handleInfo', async () => {
  const s = newScheduler();
  const log: unknown[] = [];
  const parent = spawnActor(s);
  const other = spawnActor(s);
  const pid = await parent.run(async (ctx) => {
    const r = await GenServer.startLink(ctx, recordingTerminate(log), undefined);
    assert.ok(r.ok);
    return r.pid;
  });
  await other.run((ctx) => ctx.link(pid));
  const down = await monitorFrom(s, pid);
  s.kill(other.pid, 'other_died');
  await until(() => log.length === 1);
  assert.deepEqual(log, [['info', 'other_died']]);
  s.kill(parent.pid, 'parent_died');
  assert.equal((await down()).reason, 'parent_died');
  assert.deepEqual(log[1], ['terminate', 'parent_died', 'st']);
});

test('a server that does not trap exits is killed by its parent without terminate', async () => {
  const s = newScheduler();
  let terminated = false;
  const parent = spawnActor(s);
  const pid = await parent.run(async (ctx) => {
    const r = await GenServer.startLink(ctx, { init: () => ({ state: 0 }), terminate: () => void (terminated = true) }, undefined);
    assert.ok(r.ok);
    return r.pid;
  });
  const down = await monitorFrom(s, pid);
  s.kill(parent.pid, 'gone');
  assert.equal((await down()).reason, 'gone');
  assert.equal(terminated, false);
});

test('a terminate that throws replaces the exit reason with its crash', async () => {
  const s = newScheduler();
  const pid = await started(
    GenServer.start(
      s,
      {
        init: () => ({ state: 0 }),
        terminate: () => {
          throw new Error('cleanup failed');
        },
      },
      undefined,
    ),
  );
  const r = await GenServer.stopFrom(s, pid, 'normal');
  assert.equal(!r.ok && (r.reason as { error: string }).error, 'cleanup failed');
});

// ---- idle timeout and hibernation -------------------------------------------------------

function idleServer(log: Array<[number, unknown]>, now: () => number): GenServer.Behaviour<null, void, unknown, unknown, unknown> {
  return {
    init: () => ({ state: null, timeout: 100 }),
    handleCast: (m, st) => (log.push([now(), m]), { noreply: true, state: st, timeout: 100 }),
    handleInfo: (m, st) => (log.push([now(), m]), { noreply: true, state: st }),
  };
}

test('an idle timeout delivers timeout to handleInfo when no message arrives in time', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: Array<[number, unknown]> = [];
  await mt.drive(started(GenServer.start(s, idleServer(log, mt.now), undefined)));
  await mt.advance(1_000);
  assert.deepEqual(log, [[100, 'timeout']]);
});

test('a message before the idle timeout cancels it; the new result arms a new one', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: Array<[number, unknown]> = [];
  const pid = await mt.drive(started(GenServer.start(s, idleServer(log, mt.now), undefined)));
  await mt.advance(60);
  GenServer.cast(s, pid, 'ping');
  await mt.advance(1_000);
  assert.deepEqual(log, [
    [60, 'ping'],
    [160, 'timeout'],
  ]);
});

test('an idle timeout of 0 fires as soon as the server is idle, after messages already queued', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: string[] = [];
  const pid = await mt.drive(
    started(
      GenServer.start(
        s,
        {
          init: () => ({ state: null }),
          handleCast: (m: string, st) => (log.push(m), { noreply: true, state: st, timeout: 0 }),
          handleInfo: (m, st) => (log.push(String(m)), { noreply: true, state: st }),
        },
        undefined,
      ),
    ),
  );
  GenServer.cast(s, pid, 'a');
  GenServer.cast(s, pid, 'b');
  await mt.advance(0);
  assert.deepEqual(log, ['a', 'b', 'timeout']);
});

test('hibernate: true releases the mailbox storage a burst left behind', async () => {
  const s = newScheduler();
  const pid = await started(
    GenServer.start(
      s,
      {
        init: () => ({ state: 0 }),
        handleCast: (m: string, n) => ({ noreply: true, state: n + 1, hibernate: m === 'sleep' }),
      },
      undefined,
    ),
  );
  for (let i = 0; i < 500; i++) GenServer.cast(s, pid, 'work');
  await until(() => s.info(pid)?.messagesHandled === 500);
  const busy = s.info(pid)!.memoryEstimate;
  GenServer.cast(s, pid, 'sleep');
  await until(() => s.info(pid)?.messagesHandled === 501);
  const idle = s.info(pid)!.memoryEstimate;
  assert.ok(busy - idle >= 500 * 8, `released the queue storage (${busy} → ${idle} bytes)`);
});

test('idleHibernateMs hibernates a server idle for that long, and not one kept busy', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const pid = await mt.drive(started(GenServer.start(s, counter, 0, { idleHibernateMs: 1_000 })));
  const memory = () => s.info(pid)!.memoryEstimate;
  for (let i = 0; i < 500; i++) GenServer.cast(s, pid, 1);
  await mt.settle();
  const busy = memory();
  for (let t = 0; t < 5; t++) {
    await mt.advance(500);
    GenServer.cast(s, pid, 1);
  }
  await mt.settle();
  assert.equal(memory(), busy, 'a message every 500 ms keeps it awake');
  await mt.advance(2_000);
  assert.ok(busy - memory() >= 500 * 8, `hibernated (${busy} → ${memory()} bytes)`);
  assert.deepEqual(await mt.drive(GenServer.callFrom(s, pid, 'get')), { ok: true, value: 505 });
});

// ---- typing -----------------------------------------------------------------------------

test('behaviours are typed values: a typed server works through the generic API', async () => {
  const s = newScheduler();
  interface Account {
    balance: number;
  }
  type Req = { deposit: number } | { withdraw: number };
  const account: GenServer.Behaviour<Account, number, Req, { ok: boolean; balance: number }> = {
    init: (balance) => ({ state: { balance } }),
    handleCall: (req, _from, st) => {
      if ('deposit' in req) return { reply: { ok: true, balance: st.balance + req.deposit }, state: { balance: st.balance + req.deposit } };
      if (req.withdraw > st.balance) return { reply: { ok: false, balance: st.balance }, state: st };
      return { reply: { ok: true, balance: st.balance - req.withdraw }, state: { balance: st.balance - req.withdraw } };
    },
  };
  const pid = await started(GenServer.start(s, account, 10));
  const call = (r: Req) => GenServer.callFrom<{ ok: boolean; balance: number }>(s, pid, r);
  assert.deepEqual(await call({ withdraw: 15 }), { ok: true, value: { ok: false, balance: 10 } });
  assert.deepEqual(await call({ deposit: 5 }), { ok: true, value: { ok: true, balance: 15 } });
});
