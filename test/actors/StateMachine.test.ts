/**
 * StateMachine: event types, calls and replies, postponing, inserted events, state enter
 * calls, and the state / event / generic timeouts (on a manual clock, so every firing time
 * is exact and a cancelled timeout provably never fires).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as StateMachine from '../../actors/StateMachine.js';
import { isDownMessage, type DownMessage } from '../../runtime/ExitReason.js';
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
