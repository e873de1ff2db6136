/**
 * Model-based test of the supervisor: random child crashes, normal exits, kills, dynamic
 * API calls and clock moves, run against the real supervisor and a small pure model of OTP's
 * rules; after every step the children listed, the children started (and their order) and
 * whether the supervisor gave up must agree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as Supervisor from '../../actors/Supervisor.js';
import type { ChildSpec, RestartType, Strategy } from '../../actors/Supervisor.js';
import type { Pid } from '../../runtime/Pid.js';
import { newScheduler, until } from '../support/kernel.js';
import { manualClockEnv } from '../support/supervision.js';

// ---- the model ------------------------------------------------------------------------

interface ModelChild {
  /** Spec id, or `w:<arg>` for a simple_one_for_one child. */
  name: string;
  restart: RestartType;
  running: boolean;
}

interface Config {
  strategy: Strategy;
  intensity: number;
  periodS: number;
  /** One restart type per child (simple_one_for_one: the template's is the first). */
  restarts: RestartType[];
}

type Step =
  | { kind: 'exit'; target: number; how: 'crash' | 'normal' | 'kill' }
  | { kind: 'advance'; ms: number }
  | { kind: 'terminate' | 'restart' | 'delete'; target: number };

interface Observation {
  alive: boolean;
  children: Array<[string, boolean]>;
  started: string[];
  reply?: string;
}

class Model {
  alive = true;
  children: ModelChild[];
  private restarts: number[] = [];
  private now = 0;
  private started: string[] = [];
  readonly simple: boolean;

  constructor(private readonly cfg: Config) {
    this.simple = cfg.strategy === 'simple_one_for_one';
    this.children = this.simple
      ? cfg.restarts.map((_, i) => ({ name: `w:${i}`, restart: cfg.restarts[0], running: true }))
      : cfg.restarts.map((restart, i) => ({ name: `c${i}`, restart, running: true }));
  }

  initialStarts(): string[] {
    return this.children.map((c) => c.name);
  }

  apply(step: Step, target: ModelChild | string | undefined): Observation {
    this.started = [];
    let reply: string | undefined;
    if (!this.alive) return this.observe(undefined);
    switch (step.kind) {
      case 'advance':
        this.now += step.ms;
        break;
      case 'exit':
        if (target !== undefined && typeof target !== 'string') this.exited(target, step.how === 'normal');
        break;
      case 'terminate':
        reply = this.terminate(target);
        break;
      case 'restart':
        reply = this.restartChild(target);
        break;
      case 'delete':
        reply = this.deleteChild(target);
        break;
    }
    return this.observe(reply);
  }

  private observe(reply: string | undefined): Observation {
    const o: Observation = { alive: this.alive, children: this.alive ? this.children.map((c) => [c.name, c.running]) : [], started: this.started };
    if (reply !== undefined) o.reply = reply;
    return o;
  }

  private exited(c: ModelChild, normal: boolean): void {
    c.running = false;
    if (c.restart === 'permanent' || (c.restart === 'transient' && !normal)) this.restart(c);
    else if (this.simple || c.restart === 'temporary') this.remove(c);
  }

  private restart(c: ModelChild): void {
    this.restarts = this.restarts.filter((t) => this.now - t <= this.cfg.periodS * 1000);
    this.restarts.push(this.now);
    if (this.restarts.length > this.cfg.intensity) {
      this.alive = false;
      for (const x of this.children) x.running = false;
      return;
    }
    let group: ModelChild[];
    if (this.cfg.strategy === 'one_for_all') group = [...this.children];
    else if (this.cfg.strategy === 'rest_for_one') group = this.children.slice(this.children.indexOf(c));
    else group = [c];
    for (const x of [...group].reverse()) {
      x.running = false;
      if (x.restart === 'temporary') this.remove(x);
    }
    for (const x of group) {
      if (!this.children.includes(x)) continue;
      x.running = true;
      this.started.push(x.name);
    }
  }

  private terminate(target: ModelChild | string | undefined): string {
    if (this.simple && typeof target === 'string') return 'simple_one_for_one';
    const c = this.find(target);
    if (c === undefined) return 'not_found';
    c.running = false;
    if (this.simple || c.restart === 'temporary') this.remove(c);
    return 'ok';
  }

  private restartChild(target: ModelChild | string | undefined): string {
    if (this.simple) return 'simple_one_for_one';
    const c = this.find(target);
    if (c === undefined) return 'not_found';
    if (c.running) return 'running';
    c.running = true;
    this.started.push(c.name);
    return 'ok';
  }

  private deleteChild(target: ModelChild | string | undefined): string {
    if (this.simple) return 'simple_one_for_one';
    const c = this.find(target);
    if (c === undefined) return 'not_found';
    if (c.running) return 'running';
    this.remove(c);
    return 'ok';
  }

  private find(target: ModelChild | string | undefined): ModelChild | undefined {
    if (target === undefined) return undefined;
    if (typeof target === 'string') return this.children.find((c) => c.name === target);
    return this.children.includes(target) ? target : undefined;
  }

  private remove(c: ModelChild): void {
    const i = this.children.indexOf(c);
    if (i >= 0) this.children.splice(i, 1);
  }
}

// ---- the real system ------------------------------------------------------------------

const restartType = fc.constantFrom<RestartType>('permanent', 'transient', 'temporary');

const configArb: fc.Arbitrary<Config> = fc.record({
  strategy: fc.constantFrom<Strategy>('one_for_one', 'one_for_all', 'rest_for_one', 'simple_one_for_one'),
  intensity: fc.integer({ min: 0, max: 4 }),
  periodS: fc.integer({ min: 1, max: 10 }),
  restarts: fc.array(restartType, { minLength: 1, maxLength: 4 }),
});

/** Any move, or whole seconds so restarts land exactly on the period's edge. */
const advanceMs = fc.oneof(fc.integer({ min: 0, max: 12_000 }), fc.integer({ min: 1, max: 10 }).map((k) => k * 1000));

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('exit' as const), target: fc.nat(7), how: fc.constantFrom('crash' as const, 'normal' as const, 'kill' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: advanceMs }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom('terminate' as const, 'restart' as const, 'delete' as const), target: fc.nat(7) }) },
);

interface Started {
  name: string;
  pid: Pid;
  /** Whether the previous copy of this child was still alive when this one started. */
  overlapped: boolean;
}

function modelChild(id: string, restart: RestartType, starts: Started[]): ChildSpec {
  return {
    id,
    restart,
    start(ctx, ...extra) {
      const name = extra.length > 0 ? `w:${String(extra[0])}` : id;
      const before = [...starts].reverse().find((x) => x.name === name);
      const pid = ctx.spawnLink((child) => (msg) => {
        if (msg === 'crash') throw new Error(`${name} crashed`);
        if (msg === 'normal') child.exit('normal');
      });
      starts.push({ name, pid, overlapped: before !== undefined && ctx.isAlive(before.pid) });
      return { ok: true, pid };
    },
  };
}

async function runCase(cfg: Config, steps: Step[]): Promise<void> {
  const clock = manualClockEnv();
  const s = newScheduler(clock.env);
  try {
    const starts: Started[] = [];
    const model = new Model(cfg);
    const simple = model.simple;
    const specs = simple ? [modelChild('w', cfg.restarts[0], starts)] : cfg.restarts.map((r, i) => modelChild(`c${i}`, r, starts));
    const started = await Supervisor.start(s, { flags: { strategy: cfg.strategy, intensity: cfg.intensity, period: cfg.periodS }, children: specs });
    assert.ok(started.ok);
    const sup = started.pid;
    if (simple) for (let i = 0; i < cfg.restarts.length; i++) assert.ok((await Supervisor.startChild(s, sup, [i])).ok);
    assert.deepEqual(starts.map((x) => x.name), model.initialStarts());
    const nameOf = (pid: Pid) => starts.find((x) => x.pid.key === pid.key)?.name ?? `unknown ${pid}`;

    const observe = async (from: number, reply?: string): Promise<Observation> => {
      const r = await Supervisor.whichChildren(s, sup);
      const o: Observation = {
        alive: r.ok,
        children: r.ok ? r.children.map((c) => [c.id ?? (typeof c.pid === 'object' ? nameOf(c.pid) : '?'), typeof c.pid === 'object']) : [],
        started: starts.slice(from).map((x) => x.name),
      };
      if (reply !== undefined) o.reply = reply;
      return o;
    };

    for (const [i, step] of steps.entries()) {
      const from = starts.length;
      // Pick the target the same way on both sides: an index into the running children
      // (exits, simple_one_for_one terminations) or into the original ids (dynamic API).
      const running = model.children.filter((c) => c.running);
      const realRunning = model.alive ? (await Supervisor.whichChildren(s, sup)) : undefined;
      let target: ModelChild | string | undefined;
      let pid: Pid | undefined;
      if (step.kind === 'exit' || (simple && step.kind === 'terminate')) {
        if (running.length > 0) {
          target = running[step.target % running.length];
          const found = realRunning?.ok ? realRunning.children.find((c) => typeof c.pid === 'object' && nameOf(c.pid) === (target as ModelChild).name) : undefined;
          assert.ok(found !== undefined, `step ${i}: ${(target as ModelChild).name} should be running`);
          pid = found.pid as Pid;
        }
      } else if (step.kind !== 'advance') {
        target = simple ? 'w' : `c${step.target % cfg.restarts.length}`;
      }

      let reply: string | undefined;
      if (model.alive) {
        if (step.kind === 'advance') clock.advance(step.ms);
        else if (step.kind === 'exit') {
          if (pid !== undefined) {
            if (step.how === 'kill') s.kill(pid);
            else s.send(pid, step.how, null);
            await until(() => !s.isAlive(pid), 2000, `step ${i}: child to exit`);
          }
        } else {
          const arg = pid ?? (target as string | undefined);
          if (arg !== undefined) {
            const r =
              step.kind === 'terminate' ? await Supervisor.terminateChild(s, sup, arg)
              : step.kind === 'restart' ? await Supervisor.restartChild(s, sup, arg as string)
              : await Supervisor.deleteChild(s, sup, arg as string);
            reply = r.ok ? 'ok' : r.error;
          }
        }
      }
      const expected = model.apply(step, target);
      if (reply === undefined) delete expected.reply;
      const actual = await observe(from, reply);
      assert.deepEqual(actual, expected, `step ${i} ${JSON.stringify(step)}`);
    }
    assert.deepEqual(starts.filter((x) => x.overlapped).map((x) => x.name), [], 'two copies of a child ran at once');
    if (model.alive) assert.deepEqual(await Supervisor.stop(s, sup, 'shutdown'), { ok: true });
    for (const x of starts) assert.equal(s.isAlive(x.pid), false, `${x.name} outlived its supervisor`);
  } finally {
    s.shutdown();
  }
}

test('the supervisor agrees with the reference model on restarts, order and giving up', async () => {
  await fc.assert(
    fc.asyncProperty(configArb, fc.array(stepArb, { minLength: 1, maxLength: 25 }), async (cfg, steps) => runCase(cfg, steps)),
    { numRuns: 300 },
  );
});
