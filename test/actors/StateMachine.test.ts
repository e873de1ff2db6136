/**
 * StateMachine: event types, calls and replies, postponing, inserted events, state enter
 * calls, and the state / event / generic timeouts (on a manual clock, so every firing time
 * is exact and a cancelled timeout provably never fires); spawning with body(); and the
 * lazily allocated parts of an idle machine, which must keep every rule and stay small.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as StateMachine from '../../actors/StateMachine.js';
import { isDownMessage, isExitMessage, type DownMessage, type ExitMessage } from '../../runtime/ExitReason.js';
import type { Pid } from '../../runtime/Pid.js';
import type { Scheduler } from '../../runtime/Scheduler.js';
import { newScheduler, until } from '../support/kernel.js';
import { spawnActor } from '../support/actor.js';
import { manualTime } from '../support/manualTime.js';

type Behaviour<S, D = null> = StateMachine.Behaviour<S, D, void>;

async function started(r: Promise<StateMachine.StartResult>): Promise<Pid> {
  const x = await r;
  if (!x.ok) assert.fail(`start failed: ${JSON.stringify(x.reason)}`);
  return x.pid;
}

function typeName(t: StateMachine.EventType): string {
  if (typeof t === 'string') return t;
  if (StateMachine.isCall(t)) return 'call';
  return `generic:${t.generic_timeout}`;
}

/** Monitor `pid` from a test actor; resolves once the monitor is in place. */
async function monitorFrom(s: Scheduler, pid: Pid): Promise<() => Promise<DownMessage>> {
  const watcher = spawnActor(s);
  await watcher.run((ctx) => ctx.monitor(pid));
  return () => watcher.probe.next<DownMessage>(isDownMessage);
}

// ---- events, calls, enter calls ---------------------------------------------------------

test('casts, calls and plain messages arrive as cast, {call: from} and info events', async () => {
  const s = newScheduler();
  const log: string[] = [];
  const pid = await started(
    StateMachine.start(
      s,
      {
        init: () => ({ state: 'idle', data: null }),
        handleEvent: (type, event) => {
          log.push(`${typeName(type)} ${String(event)}`);
          if (StateMachine.isCall(type)) return { keepState: true, actions: [{ reply: type.call, value: `re ${String(event)}` }] };
          return { keepState: true };
        },
      } satisfies Behaviour<string>,
      undefined,
    ),
  );
  StateMachine.cast(s, pid, 'c1');
  s.send(pid, 'i1', null);
  assert.deepEqual(await StateMachine.callFrom(s, pid, 'q1'), { ok: true, value: 're q1' });
  assert.deepEqual(log, ['cast c1', 'info i1', 'call q1']);
  assert.equal(s.info(pid)?.behaviour, 'StateMachine');
});

test('a call can be answered later with reply()', async () => {
  const s = newScheduler();
  const pid = await started(
    StateMachine.start(
      s,
      {
        init: () => ({ state: 'waiting', data: null as StateMachine.From | null }),
        handleEvent: (type, event, _st, held, ctx) => {
          if (StateMachine.isCall(type)) return { keepState: true, data: type.call };
          if (type === 'cast' && held !== null) StateMachine.reply(ctx, held, event);
          return { keepState: true, data: null };
        },
      } satisfies Behaviour<string, StateMachine.From | null>,
      undefined,
    ),
  );
  const pending = StateMachine.callFrom(s, pid, 'q');
  await until(() => s.info(pid)?.messagesHandled === 1);
  StateMachine.cast(s, pid, 'later');
  assert.deepEqual(await pending, { ok: true, value: 'later' });
});

test('state enter calls run after init (previous state = initial state), on every state change and on repeatState, not on keepState', async () => {
  const s = newScheduler();
  const log: string[] = [];
  const pid = await started(
    StateMachine.start(
      s,
      {
        stateEnter: true,
        init: () => ({ state: 'a', data: null }),
        handleEvent: (type, event, state) => {
          log.push(`${typeName(type)} ${String(event)} in ${state}`);
          if (type === 'enter') return { keepState: true };
          if (event === 'keep') return { keepState: true };
          if (event === 'repeat') return { repeatState: true };
          if (event === 'same') return { nextState: state };
          return { nextState: String(event) };
        },
      } satisfies Behaviour<string>,
      undefined,
    ),
  );
  for (const e of ['b', 'keep', 'repeat', 'same', 'c']) StateMachine.cast(s, pid, e);
  await until(() => log.length === 9);
  assert.deepEqual(log, [
    'enter a in a',
    'cast b in a',
    'enter a in b',
    'cast keep in b',
    'cast repeat in b',
    'enter b in b',
    'cast same in b',
    'cast c in b',
    'enter b in c',
  ]);
});

test('a state enter call may not change the state', async () => {
  const s = newScheduler();
  const terminated: unknown[] = [];
  const pid = await started(
    StateMachine.start(
      s,
      {
        stateEnter: true,
        init: () => ({ state: 'a', data: null }),
        handleEvent: (type) => (type === 'enter' ? { nextState: 'b' } : { keepState: true }),
        terminate: (reason) => void terminated.push(reason),
      } satisfies Behaviour<string>,
      undefined,
    ),
  );
  await until(() => !s.isAlive(pid));
  assert.deepEqual(terminated, [{ bad_state_enter_return: 'a state enter call may not change the state' }]);
});

test('a state enter call may not postpone or insert events', async () => {
  const s = newScheduler();
  for (const action of [{ postpone: true as const }, { nextEvent: 'internal' as const, event: 'x' }]) {
    const terminated: unknown[] = [];
    const pid = await started(
      StateMachine.start(
        s,
        {
          stateEnter: true,
          init: () => ({ state: 'a', data: null }),
          handleEvent: (type) => (type === 'enter' ? { keepState: true, actions: [action] } : { keepState: true }),
          terminate: (reason) => void terminated.push(reason),
        } satisfies Behaviour<string>,
        undefined,
      ),
    );
    await until(() => !s.isAlive(pid));
    assert.equal(Object.keys(terminated[0] as object)[0], 'bad_state_enter_action');
  }
});

test('a next state equal in structure to the current one is not a state change', async () => {
  const s = newScheduler();
  const log: string[] = [];
  const pid = await started(
    StateMachine.start(
      s,
      {
        stateEnter: true,
        init: () => ({ state: ['connected', { node: 'n1' }] as [string, { node: string }], data: null }),
        handleEvent: (type, event, state) => {
          log.push(typeName(type));
          if (type === 'enter') return { keepState: true };
          if (event === 'postpone-me') return { keepState: true, actions: [{ postpone: true }] };
          return { nextState: [state[0], { ...state[1] }] };
        },
      } satisfies Behaviour<[string, { node: string }]>,
      undefined,
    ),
  );
  StateMachine.cast(s, pid, 'postpone-me');
  StateMachine.cast(s, pid, 'same');
  await until(() => log.length === 3);
  await StateMachine.callFrom(s, pid, 'sync', 100);
  assert.deepEqual(log, ['enter', 'cast', 'cast', 'call'], 'no enter call and no retry of the postponed event');
});

// ---- postpone and inserted events ------------------------------------------------------

/** A door: events are postponed while locked; 'unlock' opens it. */
function door(log: string[], extra: (event: unknown) => StateMachine.Action[] = () => []): Behaviour<'locked' | 'open'> {
  return {
    init: () => ({ state: 'locked', data: null }),
    handleEvent: (type, event, state) => {
      if (event === 'unlock') return { nextState: 'open', actions: extra(event) };
      if (event === 'lock') return { nextState: 'locked' };
      if (event === 'keep') return { keepState: true };
      if (event === 'repeat') return { repeatState: true };
      if (state === 'locked') return { keepState: true, actions: [{ postpone: true }] };
      log.push(`${typeName(type)} ${String(event)}`);
      return { keepState: true };
    },
  };
}

test('postponed events are retried after the next state change, in their original order, before newer events', async () => {
  const s = newScheduler();
  const log: string[] = [];
  const pid = await started(StateMachine.start(s, door(log), undefined));
  StateMachine.cast(s, pid, 'a');
  s.send(pid, 'b', null);
  StateMachine.cast(s, pid, 'c');
  StateMachine.cast(s, pid, 'unlock');
  StateMachine.cast(s, pid, 'd');
  await until(() => log.length === 4);
  assert.deepEqual(log, ['cast a', 'info b', 'cast c', 'cast d']);
});

test('postponed events are not retried on keepState or repeatState', async () => {
  const s = newScheduler();
  const log: string[] = [];
  const pid = await started(StateMachine.start(s, door(log), undefined));
  for (const e of ['a', 'keep', 'repeat']) StateMachine.cast(s, pid, e);
  await StateMachine.callFrom(s, pid, 'sync', 100); // postponed too: it times out
  assert.deepEqual(log, []);
  StateMachine.cast(s, pid, 'unlock');
  await until(() => log.length === 2);
  assert.deepEqual(log, ['cast a', 'call sync']);
});

test('nextEvent actions are handled first, in the order given, before retried postponed events and queued messages', async () => {
  const s = newScheduler();
  const log: string[] = [];
  const pid = await started(
    StateMachine.start(
      s,
      door(log, () => [
        { nextEvent: 'internal', event: 'n1' },
        { nextEvent: 'cast', event: 'n2' },
      ]),
      undefined,
    ),
  );
  StateMachine.cast(s, pid, 'p');
  StateMachine.cast(s, pid, 'unlock');
  StateMachine.cast(s, pid, 'm');
  await until(() => log.length === 4);
  assert.deepEqual(log, ['internal n1', 'cast n2', 'cast p', 'cast m']);
});

test('a call postponed across a state change is answered in the new state', async () => {
  const s = newScheduler();
  const pid = await started(
    StateMachine.start(
      s,
      {
        init: () => ({ state: 'starting', data: null }),
        handleEvent: (type, event, state) => {
          if (type === 'cast' && event === 'ready') return { nextState: 'ready' };
          if (StateMachine.isCall(type)) {
            if (state === 'starting') return { keepState: true, actions: [{ postpone: true }] };
            return { keepState: true, actions: [{ reply: type.call, value: `${String(event)} in ${state}` }] };
          }
          return { keepState: true };
        },
      } satisfies Behaviour<string>,
      undefined,
    ),
  );
  const pending = StateMachine.callFrom(s, pid, 'q');
  await until(() => s.info(pid)?.messagesHandled === 1);
  StateMachine.cast(s, pid, 'ready');
  assert.deepEqual(await pending, { ok: true, value: 'q in ready' });
});

// ---- timeouts ---------------------------------------------------------------------------

interface Timed {
  log: Array<[number, string, unknown, string]>;
}

/** Logs every event with the virtual time; casts are `[command, actions]` pairs. */
function timed(mt: { now(): number }, log: Timed['log'], initActions: StateMachine.Action[] = []): Behaviour<string> {
  return {
    init: () => ({ state: 's0', data: null, actions: initActions }),
    handleEvent: (type, event, state) => {
      log.push([mt.now(), typeName(type), event, state]);
      if (type === 'cast') {
        const [cmd, actions] = event as [string, StateMachine.Action[]];
        if (cmd === 'keep') return { keepState: true, actions };
        return { nextState: cmd, actions };
      }
      return { keepState: true };
    },
  };
}

test('a state timeout fires after exactly its time in the state that set it', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: Timed['log'] = [];
  await mt.drive(started(StateMachine.start(s, timed(mt, log, [{ stateTimeout: 100, event: 'tick' }]), undefined)));
  await mt.advance(1_000);
  assert.deepEqual(log, [[100, 'state_timeout', 'tick', 's0']]);
});

test('a state change cancels the state timeout; staying keeps it; setting it again restarts it', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: Timed['log'] = [];
  const pid = await mt.drive(started(StateMachine.start(s, timed(mt, log, [{ stateTimeout: 100, event: 'first' }]), undefined)));
  await mt.advance(50);
  StateMachine.cast(s, pid, ['s1', []]);
  await mt.advance(500);
  StateMachine.cast(s, pid, ['s2', [{ stateTimeout: 100, event: 'second' }]]);
  await mt.advance(50);
  StateMachine.cast(s, pid, ['keep', []]);
  await mt.advance(20);
  StateMachine.cast(s, pid, ['keep', [{ stateTimeout: 100, event: 'third' }]]);
  await mt.advance(1_000);
  assert.deepEqual(log, [
    [50, 'cast', ['s1', []], 's0'],
    [550, 'cast', ['s2', [{ stateTimeout: 100, event: 'second' }]], 's1'],
    [600, 'cast', ['keep', []], 's2'],
    [620, 'cast', ['keep', [{ stateTimeout: 100, event: 'third' }]], 's2'],
    [720, 'state_timeout', 'third', 's2'],
  ]);
});

test('a stale state timeout never fires, even when its message was already queued', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: string[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const pid = await mt.drive(
    started(
      StateMachine.start(
        s,
        {
          init: () => ({ state: 'a', data: null, actions: [{ stateTimeout: 100 }] }),
          handleEvent: async (type, _event, state) => {
            log.push(`${typeName(type)} in ${state}`);
            if (type === 'cast') {
              await gate;
              return { nextState: 'b' };
            }
            return { keepState: true };
          },
        } satisfies Behaviour<string>,
        undefined,
      ),
    ),
  );
  await mt.advance(50);
  StateMachine.cast(s, pid, 'slow');
  await mt.advance(100);
  assert.equal(s.info(pid)?.messageQueueLen, 1, 'the timeout fired and waits in the mailbox');
  release();
  await mt.advance(1_000);
  assert.deepEqual(log, ['cast in a']);
  assert.equal(s.info(pid)?.messageQueueLen, 0);
});

test('an event timeout fires when no event arrives in time, and any event cancels it', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: Timed['log'] = [];
  const pid = await mt.drive(started(StateMachine.start(s, timed(mt, log, [{ eventTimeout: 100, event: 'idle' }]), undefined)));
  await mt.advance(90);
  s.send(pid, 'poke', null);
  await mt.advance(500);
  StateMachine.cast(s, pid, ['keep', [{ eventTimeout: 100, event: 'idle2' }]]);
  await mt.advance(1_000);
  assert.deepEqual(log, [
    [90, 'info', 'poke', 's0'],
    [590, 'cast', ['keep', [{ eventTimeout: 100, event: 'idle2' }]], 's0'],
    [690, 'timeout', 'idle2', 's0'],
  ]);
});

test('an event timeout is not started while inserted events are queued', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: Timed['log'] = [];
  const pid = await mt.drive(started(StateMachine.start(s, timed(mt, log), undefined)));
  StateMachine.cast(s, pid, ['keep', [{ eventTimeout: 0, event: 'never' }, { nextEvent: 'internal', event: 'n' }]]);
  await mt.advance(1_000);
  assert.deepEqual(
    log.map((e) => e[1]),
    ['cast', 'internal'],
  );
});

test('a generic timeout survives state changes, restarts when set again by name, and Infinity cancels it', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: Timed['log'] = [];
  const pid = await mt.drive(
    started(
      StateMachine.start(
        s,
        timed(mt, log, [
          { genericTimeout: 'keepalive', ms: 100, event: 'k' },
          { genericTimeout: 'cancelled', ms: 100, event: 'c' },
        ]),
        undefined,
      ),
    ),
  );
  await mt.advance(40);
  StateMachine.cast(s, pid, ['s1', [{ genericTimeout: 'cancelled', ms: Infinity }]]);
  await mt.advance(1_000);
  StateMachine.cast(s, pid, ['s2', [{ genericTimeout: 'retry', ms: 100, event: 'r1' }]]);
  await mt.advance(50);
  StateMachine.cast(s, pid, ['s3', [{ genericTimeout: 'retry', ms: 100, event: 'r2' }]]);
  await mt.advance(1_000);
  assert.deepEqual(
    log.map(([t, type, event, state]) => [t, type, type === 'cast' ? (event as [string])[0] : event, state]),
    [
      [40, 'cast', 's1', 's0'],
      [100, 'generic:keepalive', 'k', 's1'],
      [1040, 'cast', 's2', 's1'],
      [1090, 'cast', 's3', 's2'],
      [1190, 'generic:retry', 'r2', 's3'],
    ],
  );
});

test('zero timeouts are handled at once, after queued events and before the next message', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: Timed['log'] = [];
  const pid = await mt.drive(started(StateMachine.start(s, timed(mt, log), undefined)));
  StateMachine.cast(s, pid, [
    's1',
    [
      { stateTimeout: 0, event: 'st' },
      { genericTimeout: 'g', ms: 0, event: 'gt' },
      { nextEvent: 'internal', event: 'first' },
    ],
  ]);
  s.send(pid, 'next-message', null);
  await mt.advance(0);
  assert.deepEqual(
    log.map((e) => `${e[0]} ${e[1]} ${String(e[2])}`).slice(1),
    ['0 internal first', '0 state_timeout st', '0 generic:g gt', '0 info next-message'],
  );
});

test('a zero state timeout is cancelled by a state change before it is handled', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: string[] = [];
  const pid = await mt.drive(
    started(
      StateMachine.start(
        s,
        {
          init: () => ({ state: 'a', data: null }),
          handleEvent: (type, event, state) => {
            log.push(`${typeName(type)} ${String(event)} in ${state}`);
            if (event === 'go') return { keepState: true, actions: [{ nextEvent: 'internal', event: 'move' }, { stateTimeout: 0, event: 'st' }] };
            if (event === 'move') return { nextState: 'b' };
            return { keepState: true };
          },
        } satisfies Behaviour<string>,
        undefined,
      ),
    ),
  );
  StateMachine.cast(s, pid, 'go');
  await mt.advance(100);
  assert.deepEqual(log, ['cast go in a', 'internal move in a']);
});

test('a hibernate action releases the mailbox storage once the events are handled', async () => {
  const s = newScheduler();
  const pid = await started(
    StateMachine.start(
      s,
      {
        init: () => ({ state: 'on', data: 0 }),
        handleEvent: (_type, event, _state, n) => ({ keepState: true, data: n + 1, actions: event === 'sleep' ? [{ hibernate: true }] : [] }),
      } satisfies Behaviour<string, number>,
      undefined,
    ),
  );
  for (let i = 0; i < 500; i++) StateMachine.cast(s, pid, 'work');
  await until(() => s.info(pid)?.messagesHandled === 500);
  const busy = s.info(pid)!.memoryEstimate;
  StateMachine.cast(s, pid, 'sleep');
  await until(() => s.info(pid)?.messagesHandled === 501);
  const idle = s.info(pid)!.memoryEstimate;
  assert.ok(busy - idle >= 500 * 8, `released the queue storage (${busy} → ${idle} bytes)`);
});

// ---- stop and terminate -----------------------------------------------------------------

test('a stop result sends its replies, then runs terminate, then exits with the reason', async () => {
  const s = newScheduler();
  const order: string[] = [];
  const pid = await started(
    StateMachine.start(
      s,
      {
        init: () => ({ state: 'on', data: 1 }),
        handleEvent: (type) => {
          if (!StateMachine.isCall(type)) return { keepState: true };
          order.push('stop');
          return { stop: 'shutdown', data: 2, replies: [{ reply: type.call, value: 'bye' }] };
        },
        terminate: (reason, state, data) => void order.push(`terminate ${String(reason)} ${state} ${data}`),
      } satisfies Behaviour<string, number>,
      undefined,
    ),
  );
  const down = await monitorFrom(s, pid);
  assert.deepEqual(await StateMachine.callFrom(s, pid, 'q'), { ok: true, value: 'bye' });
  assert.equal((await down()).reason, 'shutdown');
  assert.deepEqual(order, ['stop', 'terminate shutdown on 2']);
});

test('stop() runs terminate; a crash in handleEvent runs terminate with the crash reason', async () => {
  const s = newScheduler();
  const reasons: unknown[] = [];
  const b: Behaviour<string> = {
    init: () => ({ state: 'on', data: null }),
    handleEvent: () => {
      throw new Error('bad event');
    },
    terminate: (reason) => void reasons.push(reason),
  };
  const a = await started(StateMachine.start(s, b, undefined));
  assert.deepEqual(await StateMachine.stopFrom(s, a, { shutdown: 'drain' }), { ok: true });
  const c = await started(StateMachine.start(s, b, undefined));
  const down = await monitorFrom(s, c);
  StateMachine.cast(s, c, 'x');
  assert.equal(((await down()).reason as { error: string }).error, 'bad event');
  assert.deepEqual(reasons[0], { shutdown: 'drain' });
  assert.equal((reasons[1] as { error: string }).error, 'bad event');
});

test('a state machine trapping exits terminates with its parent\'s exit reason', async () => {
  const s = newScheduler();
  const reasons: unknown[] = [];
  const parent = spawnActor(s);
  const pid = await parent.run(async (ctx) => {
    const r = await StateMachine.startLink(
      ctx,
      {
        init: () => ({ state: 'on', data: null }),
        handleEvent: () => ({ keepState: true }),
        terminate: (reason) => void reasons.push(reason),
      } satisfies Behaviour<string>,
      undefined,
      { trapExit: true },
    );
    assert.ok(r.ok);
    return r.pid;
  });
  const down = await monitorFrom(s, pid);
  s.kill(parent.pid, 'parent_gone');
  assert.equal((await down()).reason, 'parent_gone');
  assert.deepEqual(reasons, ['parent_gone']);
});

test('init may ignore or stop, like a GenServer', async () => {
  const s = newScheduler();
  assert.deepEqual(await StateMachine.start(s, { init: () => ({ ignore: true }), handleEvent: () => ({ keepState: true }) }, undefined), {
    ok: false,
    reason: 'ignore',
  });
  assert.deepEqual(await StateMachine.start(s, { init: () => ({ stop: 'no' }), handleEvent: () => ({ keepState: true }) }, undefined), {
    ok: false,
    reason: 'no',
  });
});

test('a late reply to a call made from a state machine is dropped before handleEvent', async () => {
  const s = newScheduler();
  const log: string[] = [];
  let held: StateMachine.From | null = null;
  const silent = await started(
    StateMachine.start(
      s,
      {
        init: () => ({ state: 'on', data: null }),
        handleEvent: (type) => {
          if (StateMachine.isCall(type)) held = type.call;
          return { keepState: true };
        },
      } satisfies Behaviour<string>,
      undefined,
    ),
  );
  const caller = await started(
    StateMachine.start(
      s,
      {
        init: () => ({ state: 'on', data: null }),
        handleEvent: async (type, event, _state, _data, ctx) => {
          if (type === 'cast') {
            const r = await StateMachine.call(ctx, silent, 'q', 10);
            log.push(`result ${r.ok ? 'reply' : String(r.reason)}`);
          } else {
            log.push(`${typeName(type)} ${String(event)}`);
          }
          return { keepState: true };
        },
      } satisfies Behaviour<string>,
      undefined,
    ),
  );
  StateMachine.cast(s, caller, 'go');
  await until(() => log.length === 1);
  assert.ok(held !== null);
  StateMachine.reply(s, held, 'late');
  s.send(caller, 'marker', null);
  await until(() => log.length === 2);
  assert.deepEqual(log, ['result timeout', 'info marker']);
});

// ---- spawning without waiting: body() ----------------------------------------------------

test('body(): init runs as the spawned process\'s first step; messages sent at once are handled after init, its enter call and its actions, in order', async () => {
  for (const asyncInit of [false, true]) {
    const s = newScheduler();
    const log: string[] = [];
    const machine: StateMachine.Behaviour<string, null, string> = {
      stateEnter: true,
      init: (greeting) => {
        log.push(`init ${greeting}`);
        const r = { state: 'ready', data: null, actions: [{ nextEvent: 'internal' as const, event: 'from-init' }] };
        return asyncInit ? Promise.resolve().then(() => r) : r;
      },
      handleEvent: (type, event, state) => {
        log.push(`${typeName(type)} ${String(event)}`);
        if (StateMachine.isCall(type)) return { keepState: true, actions: [{ reply: type.call, value: `${String(event)} in ${state}` }] };
        return { keepState: true };
      },
    };
    const pid = s.spawn(StateMachine.body(machine, 'hello'), { label: StateMachine.LABEL });
    s.send(pid, 'm1', null);
    StateMachine.cast(s, pid, 'm2');
    assert.deepEqual(log, [], 'spawn returned before init ran');
    assert.deepEqual(await StateMachine.callFrom(s, pid, 'q'), { ok: true, value: 'q in ready' });
    assert.deepEqual(log, ['init hello', 'enter ready', 'internal from-init', 'info m1', 'cast m2', 'call q'], `async init: ${asyncInit}`);
    assert.equal(s.info(pid)?.behaviour, 'StateMachine');
  }
});

test('body(): an init that stops, throws, rejects or returns garbage exits with that reason, ignore exits normal, and terminate does not run', async () => {
  const s = newScheduler();
  const spawner = spawnActor(s, { trapExit: true });
  const terminated: unknown[] = [];
  const inits: Array<() => StateMachine.InitReturn<string, null> | Promise<StateMachine.InitReturn<string, null>>> = [
    () => ({ stop: 'no_config' }),
    () => ({ ignore: true }),
    () => {
      throw new Error('init blew up');
    },
    () => Promise.reject(new Error('init rejected')),
    () => 42 as unknown as StateMachine.InitReturn<string, null>,
  ];
  const reasons: unknown[] = [];
  for (const init of inits) {
    const pid = await spawner.run((ctx) =>
      ctx.spawnLink(StateMachine.body({ init, handleEvent: () => ({ keepState: true }), terminate: (r) => void terminated.push(r) }, undefined)),
    );
    const exit = await spawner.probe.next<ExitMessage>((m) => isExitMessage(m) && m.from.key === pid.key);
    reasons.push(exit.reason);
  }
  assert.equal(reasons[0], 'no_config');
  assert.equal(reasons[1], 'normal');
  assert.equal((reasons[2] as { error: string }).error, 'init blew up');
  assert.equal((reasons[3] as { error: string }).error, 'init rejected');
  assert.deepEqual(reasons[4], { bad_return_value: '42' });
  assert.deepEqual(terminated, []);
});

test('body() with spawnLink: an init that stops abnormally kills a spawner that does not trap exits; one that ignores does not', async () => {
  const s = newScheduler();
  const refuse = (init: () => StateMachine.InitReturn<string, null>): StateMachine.Behaviour<string, null> => ({ init, handleEvent: () => ({ keepState: true }) });

  const doomed = spawnActor(s);
  const doomedDown = await monitorFrom(s, doomed.pid);
  await doomed.run((ctx) => void ctx.spawnLink(StateMachine.body(refuse(() => ({ stop: 'bad_config' })), undefined)));
  assert.equal((await doomedDown()).reason, 'bad_config');

  const spared = spawnActor(s);
  const machine = await spared.run((ctx) => {
    const pid = ctx.spawnLink(StateMachine.body(refuse(() => ({ ignore: true })), undefined));
    ctx.monitor(pid);
    return pid;
  });
  await spared.probe.next<DownMessage>((m) => isDownMessage(m) && m.pid.key === machine.key);
  assert.ok(s.isAlive(spared.pid));
});

test('body() with a parent: a machine trapping exits terminates with its parent\'s exit reason; without one the EXIT is an info event', async () => {
  const s = newScheduler();
  const reasons: unknown[] = [];
  const infos: string[] = [];
  const machine: StateMachine.Behaviour<string, null> = {
    init: () => ({ state: 'on', data: null }),
    handleEvent: (type, event) => {
      if (type === 'info' && isExitMessage(event)) infos.push(String(event.reason));
      return { keepState: true };
    },
    terminate: (reason) => void reasons.push(reason),
  };

  const parent = spawnActor(s);
  const child = await parent.run((ctx) => ctx.spawnLink(StateMachine.body(machine, undefined, { parent: ctx.self }), { trapExit: true }));
  const childDown = await monitorFrom(s, child);
  s.kill(parent.pid, 'parent_gone');
  assert.equal((await childDown()).reason, 'parent_gone');
  assert.deepEqual(reasons, ['parent_gone']);

  const spawner = spawnActor(s);
  const orphan = await spawner.run((ctx) => ctx.spawnLink(StateMachine.body(machine, undefined), { trapExit: true }));
  s.kill(spawner.pid, 'spawner_gone');
  await until(() => infos.length === 1);
  assert.deepEqual(infos, ['spawner_gone']);
  assert.ok(s.isAlive(orphan));
  assert.deepEqual(reasons, ['parent_gone']);
});

// ---- idle machines: what is allocated on demand still keeps every rule ---------------------

test('timeouts armed after a long idle period fire exactly on time, and leave no kernel timer behind', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: Timed['log'] = [];
  const pid = await mt.drive(started(StateMachine.start(s, timed(mt, log), undefined)));
  await mt.advance(3_600_000);
  StateMachine.cast(s, pid, ['keep', [{ eventTimeout: 200, event: 'e' }]]);
  await mt.advance(1_000);
  StateMachine.cast(s, pid, ['s1', [{ stateTimeout: 100, event: 'st' }, { genericTimeout: 'g', ms: 300, event: 'gt' }]]);
  await mt.advance(3_600_000);
  StateMachine.cast(s, pid, ['keep', [{ stateTimeout: 0, event: 'zero' }]]);
  await mt.advance(10);
  assert.deepEqual(
    log.map(([t, type, event]) => [t - 3_600_000, type, type === 'cast' ? (event as [string])[0] : event]),
    [
      [0, 'cast', 'keep'],
      [200, 'timeout', 'e'],
      [1_000, 'cast', 's1'],
      [1_100, 'state_timeout', 'st'],
      [1_300, 'generic:g', 'gt'],
      [3_601_000, 'cast', 'keep'],
      [3_601_000, 'state_timeout', 'zero'],
    ],
  );
  assert.equal(mt.pendingTimers(), 0);
});

test('postponing and retrying work after many events handled on the fast path, cycle after cycle', async () => {
  const s = newScheduler();
  const retried: string[] = [];
  const pid = await started(
    StateMachine.start(
      s,
      {
        init: () => ({ state: 'open', data: 0 }),
        handleEvent: (type, event, state, n) => {
          if (StateMachine.isCall(type)) return { keepState: true, actions: [{ reply: type.call, value: n }] };
          if (event === 'lock') return { nextState: 'locked' };
          if (event === 'unlock') return { nextState: 'open' };
          if (state === 'locked') return { keepState: true, actions: [{ postpone: true }] };
          if (event === 'tick') return { keepState: true, data: n + 1 };
          retried.push(String(event));
          return { keepState: true };
        },
      } satisfies Behaviour<string, number>,
      undefined,
    ),
  );
  for (let cycle = 0; cycle < 3; cycle++) {
    for (let i = 0; i < 10_000; i++) s.send(pid, 'tick', null);
    StateMachine.cast(s, pid, 'lock');
    for (const e of ['a', 'b', 'tick']) StateMachine.cast(s, pid, `${e}${cycle}`);
    StateMachine.cast(s, pid, 'unlock');
    StateMachine.cast(s, pid, `after${cycle}`);
  }
  assert.deepEqual(await StateMachine.callFrom(s, pid, 'count'), { ok: true, value: 30_000 });
  assert.deepEqual(retried, ['a0', 'b0', 'tick0', 'after0', 'a1', 'b1', 'tick1', 'after1', 'a2', 'b2', 'tick2', 'after2']);
});

test('generic timeouts set, restarted and cancelled many times never fire stale and leave no kernel timer behind', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: Timed['log'] = [];
  const pid = await mt.drive(started(StateMachine.start(s, timed(mt, log), undefined)));
  for (let i = 0; i < 300; i++) {
    const name = `g${i % 3}`;
    StateMachine.cast(s, pid, ['keep', [{ genericTimeout: name, ms: 100, event: i }]]);
    await mt.advance(10);
    StateMachine.cast(s, pid, ['keep', [{ genericTimeout: name, ms: Infinity }]]);
    await mt.advance(10);
  }
  assert.equal(mt.pendingTimers(), 0, 'every cancelled timeout gave its kernel timer back');
  const t0 = mt.now();
  StateMachine.cast(s, pid, [
    'keep',
    [
      { genericTimeout: 'a', ms: 100, event: 'a1' },
      { genericTimeout: 'b', ms: 50, event: 'b' },
      { genericTimeout: 'c', ms: 70, event: 'c' },
      { genericTimeout: 'a', ms: 30, event: 'a2' },
      { genericTimeout: 'c', ms: Infinity },
    ],
  ]);
  await mt.advance(1_000);
  StateMachine.cast(s, pid, ['keep', [{ genericTimeout: 'a', ms: 0, event: 'a3' }]]);
  await mt.advance(10);
  const events = log.filter(([, type]) => type !== 'cast').map(([t, type, event]) => [t - t0, type, event]);
  assert.deepEqual(events, [
    [30, 'generic:a', 'a2'],
    [50, 'generic:b', 'b'],
    [1_000, 'generic:a', 'a3'],
  ]);
  assert.equal(mt.pendingTimers(), 0);
});

test('a stale state timeout queued behind another system message never fires, even once the machine has armed a new one', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: string[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const watched = spawnActor(s);
  const pid = await mt.drive(
    started(
      StateMachine.start(
        s,
        {
          init: (_args, ctx) => {
            ctx.monitor(watched.pid);
            return { state: 'a', data: null, actions: [{ stateTimeout: 100, event: 'first' }] };
          },
          handleEvent: async (type, event, state) => {
            log.push(`${mt.now()} ${typeName(type)} ${isDownMessage(event) ? 'DOWN' : String(event)} in ${state}`);
            if (type === 'cast') {
              await gate;
              return { nextState: 'b' };
            }
            if (type === 'info') return { keepState: true, actions: [{ stateTimeout: 500, event: 'second' }] };
            return { keepState: true };
          },
        } satisfies Behaviour<string>,
        undefined,
      ),
    ),
  );
  await mt.advance(50);
  StateMachine.cast(s, pid, 'slow');
  await mt.advance(10);
  s.kill(watched.pid, 'gone');
  await mt.advance(40);
  assert.equal(s.info(pid)?.messageQueueLen, 2, 'the DOWN, then the state timeout, wait behind the slow event');
  release();
  await mt.advance(1_000);
  assert.deepEqual(log, ['50 cast slow in a', '100 info DOWN in b', '600 state_timeout second in b']);
});

test('idleHibernateMs hibernates an idle machine, and its events and timeouts work after it woke', async () => {
  const mt = manualTime();
  const s = newScheduler(mt.env);
  const log: Timed['log'] = [];
  const pid = await mt.drive(started(StateMachine.start(s, timed(mt, log), undefined, { idleHibernateMs: 1_000 })));
  const memory = () => s.info(pid)!.memoryEstimate;
  for (let i = 0; i < 500; i++) s.send(pid, i, null);
  await mt.settle();
  const busy = memory();
  for (let t = 0; t < 5; t++) {
    await mt.advance(500);
    s.send(pid, 'poke', null);
  }
  await mt.settle();
  assert.equal(memory(), busy, 'a message every 500 ms keeps it awake');
  await mt.advance(2_000);
  assert.ok(busy - memory() >= 500 * 8, `hibernated (${busy} → ${memory()} bytes)`);
  assert.equal(mt.pendingTimers(), 0, 'a hibernated machine holds no idle timer');
  const t0 = mt.now();
  StateMachine.cast(s, pid, ['s1', [{ stateTimeout: 300, event: 'st' }]]);
  await mt.advance(5_000);
  assert.deepEqual(
    log.slice(-2).map(([t, type]) => [t - t0, type]),
    [
      [0, 'cast'],
      [300, 'state_timeout'],
    ],
  );
  assert.equal(log.length, 507);
  assert.equal(mt.pendingTimers(), 0, 'hibernated again, nothing armed');
});

test('an idle machine costs a bounded number of heap bytes more than a plain process, also after its queue, postponed list and timeouts were used', async (t) => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) {
    t.skip('needs node --expose-gc (npm test passes it)');
    return;
  }
  const N = 5_000;
  // Generous: an idle machine costs ~100 bytes more than a plain process; it used to cost ~900.
  const BOUND = 300;
  const s = newScheduler();
  const settle = async (): Promise<void> => {
    while (s.metrics().runQueue > 0) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
  };
  // Grow the scheduler's process table first, so that no measurement pays for it.
  const warm = Array.from({ length: 3 * N }, () => s.spawn(() => () => {}));
  for (const pid of warm) s.kill(pid, 'kill');
  const idle: StateMachine.Behaviour<string, null> = {
    init: () => ({ state: 'idle', data: null }),
    handleEvent: (_type, event, state) => {
      // The exercise: postpone, retry on a state change, arm and cancel every kind of timeout,
      // insert an event, hibernate.
      if (state === 'idle' && event === 'postpone') return { keepState: true, actions: [{ postpone: true }, { stateTimeout: 60_000 }, { genericTimeout: 'g', ms: 60_000 }] };
      if (event === 'move') return { nextState: 'moved', actions: [{ eventTimeout: 60_000 }, { genericTimeout: 'g', ms: Infinity }, { stateTimeout: 0 }] };
      if (event === 'rest') return { keepState: true, actions: [{ nextEvent: 'internal', event: 'x' }, { hibernate: true }] };
      return { keepState: true };
    },
  };
  const perProcess = async (spawn: () => Pid, exercise?: (pid: Pid) => void): Promise<number> => {
    await settle();
    const before = process.memoryUsage().heapUsed;
    const pids = new Array<Pid>(N);
    for (let i = 0; i < N; i++) pids[i] = spawn();
    if (exercise !== undefined) for (const pid of pids) exercise(pid);
    await settle();
    // The pid array is the test's, not the processes': 8 bytes a slot.
    const bytes = (process.memoryUsage().heapUsed - before - N * 8) / N;
    assert.ok(pids.every((pid) => s.isAlive(pid)), 'every process is alive and idle');
    return bytes;
  };
  const plain = await perProcess(() => s.spawn(() => () => {}));
  const machine = await perProcess(() => s.spawn(StateMachine.body(idle, undefined)));
  const used = await perProcess(
    () => s.spawn(StateMachine.body(idle, undefined)),
    (pid) => {
      for (const e of ['postpone', 'move', 'rest']) s.send(pid, e, null);
    },
  );
  const extra = (x: number): string => `${Math.round(x - plain)} bytes over a plain process (${Math.round(x)} against ${Math.round(plain)})`;
  assert.ok(machine - plain <= BOUND, `idle machine: ${extra(machine)}`);
  assert.ok(used - plain <= BOUND, `idle machine after the exercise: ${extra(used)}`);
});
