/**
 * Applications: named units of a node, each a validated config and a root supervisor tree,
 * started in dependency order and stopped in reverse (OTP application/application_controller).
 * An application never starts with a config its own validator refused.
 *
 * ## An application (`Application<C>`)
 *
 * - `name`: unique among the applications started together.
 * - `dependsOn` (default none): names of applications that must be running first; each must
 *   be in the same `startApplications` list.
 * - `type` (default `temporary`, as in OTP): what its root supervisor dying on its own means.
 *   `permanent`: every other application is stopped (reverse start order) and the set
 *   terminates. `transient`: the same, unless the reason is exactly `normal` (as in OTP, a
 *   root supervisor that gave up exits `shutdown`, which is abnormal here). `temporary`:
 *   only reported. Stopping through `stop` or `stopApplication` is never such an exit.
 * - `config`: the raw configuration; `validate(raw)` turns it into the typed config `C`
 *   (`{ok: true, config}`) or lists what is wrong (`{ok: false, errors}`); a validator that
 *   throws counts as one error.
 * - `supervisor(config)`: the root supervisor spec (Supervisor.ts) built from the config.
 *
 * ## Starting and stopping
 *
 * `startApplications(apps, scheduler, {onExit?})` checks everything before starting
 * anything: duplicate names, missing dependencies, dependency cycles, every config. It then
 * starts the root supervisors one after another in dependency order (ties keep list order),
 * each under one application controller process (the supervisors' parent). If one fails to
 * start, the ones already started are stopped in reverse order and the result is
 * `{ok: false, error: 'start_failed', app, reason}`.
 *
 * `running.stop()` stops every application in reverse start order; each stop sends exit
 * `shutdown` to the root supervisor and waits until the whole tree is down before the next
 * one starts stopping. `running.stopApplication(name)` stops one. `running.terminated`
 * resolves once no application is left running under this controller: after `stop()`,
 * after a permanent (or abnormally exiting transient) application brought the others down,
 * or if the controller itself was killed (its supervisors then exit with it, through the link).
 *
 * A root supervisor that dies on its own is reported: `running.exits` lists it, `onExit` is
 * called with it, and `ctx.env.log` records it.
 *
 * Races: requests made while the controller is busy (starting or stopping a tree) wait in its
 * mailbox; a request after it terminated answers `not_running` at once. The shared view
 * (`whereis`, `runningApplications`) is written only by the controller and read directly.
 */
import { crashReason, describeReason, isDownMessage, isExitMessage, type ExitReason } from '../runtime/ExitReason.js';
import { pidEquals, refEquals, type Pid } from '../runtime/Pid.js';
import { TIMEOUT, type ProcessBody, type ProcessContext } from '../runtime/ProcessContext.js';
import type { Scheduler } from '../runtime/Scheduler.js';
import * as Supervisor from './Supervisor.js';
import type { SupervisorSpec } from './Supervisor.js';

// ---- public types -------------------------------------------------------------------------

export type ApplicationType = 'permanent' | 'transient' | 'temporary';

export type ConfigCheck<C> = { ok: true; config: C } | { ok: false; errors: string[] };

export interface Application<C = unknown> {
  readonly name: string;
  readonly dependsOn?: readonly string[];
  /** Default `temporary`. */
  readonly type?: ApplicationType;
  /** Raw configuration, checked by `validate` before anything starts. */
  readonly config: unknown;
  validate(raw: unknown): ConfigCheck<C>;
  /** The root supervisor, built from the validated config. */
  supervisor(config: C): SupervisorSpec;
}

/** A root supervisor that died on its own (not through `stop`). */
export interface ApplicationExit {
  app: string;
  type: ApplicationType;
  reason: ExitReason;
}

/** Why the controller has no application left running. */
export type Termination =
  | { cause: 'stopped' }
  | { cause: 'application_exited'; app: string; reason: ExitReason }
  | { cause: 'controller_down'; reason: ExitReason };

export type ApplicationsError =
  | { error: 'duplicate_application'; app: string }
  | { error: 'missing_dependency'; app: string; dependency: string }
  | { error: 'dependency_cycle'; apps: string[] }
  | { error: 'invalid_config'; app: string; errors: string[] }
  | { error: 'start_failed'; app: string; reason: ExitReason };

export type StartApplicationsResult = { ok: true; running: RunningApplications } | ({ ok: false } & ApplicationsError);

export type StopApplicationResult = { ok: true } | { ok: false; error: 'not_running' };

export interface StartApplicationsOptions {
  /** Called (in the controller process) for every application whose root supervisor died. */
  onExit?: (exit: ApplicationExit) => void;
}

export interface RunningApplications {
  /** The controller process: parent of every root supervisor. */
  readonly controller: Pid;
  /** Names in the order they were started. */
  readonly startOrder: readonly string[];
  /** Root supervisor exits, in the order they happened. */
  readonly exits: readonly ApplicationExit[];
  /** Resolves once nothing runs under this controller any more. */
  readonly terminated: Promise<Termination>;
  /** Names of the applications running now, in start order. */
  runningApplications(): string[];
  /** Root supervisor of a running application. */
  whereis(app: string): Pid | undefined;
  /** The validated config an application was started with. */
  configOf<C>(app: Application<C>): C | undefined;
  /** Stop every application in reverse start order, each tree fully down before the next. */
  stop(): Promise<Termination>;
  stopApplication(app: string): Promise<StopApplicationResult>;
}

// ---- public API ---------------------------------------------------------------------------

/** Build an application; the identity, there for type inference of `C`. */
export function defineApplication<C>(app: Application<C>): Application<C> {
  return app;
}

/** Check, order and start `apps` (see the module header). */
export async function startApplications(
  apps: readonly Application[],
  scheduler: Scheduler,
  opts: StartApplicationsOptions = {},
): Promise<StartApplicationsResult> {
  const planned = plan(apps);
  if ('error' in planned) return { ok: false, ...planned };
  const shared: Shared = { running: new Map(), configs: new Map(), exits: [], startOrder: [], done: false, pending: new Set() };
  let onTerminated!: (t: Termination) => void;
  const terminated = new Promise<Termination>((r) => (onTerminated = r));
  const startResult = await new Promise<{ ok: true } | ({ ok: false } & ApplicationsError)>((resolve) => {
    scheduler.spawn(controllerBody(planned, shared, opts, resolve, onTerminated), { trapExit: true, label: 'ApplicationController' });
  });
  if (!startResult.ok) return startResult;
  const controller = shared.controller as Pid;
  const ask = <T>(make: (done: (v: unknown) => void) => ControllerRequest, ifGone: T): Promise<T> => {
    if (shared.done) return Promise.resolve(ifGone);
    return new Promise<T>((resolve) => {
      const cancel = () => resolve(ifGone);
      shared.pending.add(cancel);
      const done = (v: unknown) => {
        shared.pending.delete(cancel);
        resolve(v as T);
      };
      scheduler.send(controller, make(done), null);
    });
  };
  const running: RunningApplications = {
    controller,
    startOrder: shared.startOrder,
    exits: shared.exits,
    terminated,
    runningApplications: () => [...shared.running.keys()],
    whereis: (app) => shared.running.get(app)?.pid,
    configOf: <C>(app: Application<C>) => (shared.running.has(app.name) ? (shared.configs.get(app.name) as C) : undefined),
    stop: async () => {
      await ask((done) => ({ type: STOP_ALL, done }), undefined);
      return terminated;
    },
    stopApplication: (app) => ask<StopApplicationResult>((done) => ({ type: STOP_ONE, app, done }), { ok: false, error: 'not_running' }),
  };
  return { ok: true, running };
}

// ---- internal: planning -----------------------------------------------------------------

interface Planned {
  name: string;
  type: ApplicationType;
  config: unknown;
  spec: SupervisorSpec;
}

/** Check names, dependencies and configs; the start order, or the first problem found. */
function plan(apps: readonly Application[]): Planned[] | ApplicationsError {
  const byName = new Map<string, Application>();
  for (const app of apps) {
    if (byName.has(app.name)) return { error: 'duplicate_application', app: app.name };
    byName.set(app.name, app);
  }
  for (const app of apps) {
    for (const dep of app.dependsOn ?? []) if (!byName.has(dep)) return { error: 'missing_dependency', app: app.name, dependency: dep };
  }
  const ordered: Application[] = [];
  const placed = new Set<string>();
  while (ordered.length < apps.length) {
    const next = apps.find((a) => !placed.has(a.name) && (a.dependsOn ?? []).every((d) => placed.has(d)));
    if (next === undefined) return { error: 'dependency_cycle', apps: apps.filter((a) => !placed.has(a.name)).map((a) => a.name) };
    ordered.push(next);
    placed.add(next.name);
  }
  const out: Planned[] = [];
  for (const app of ordered) {
    let checked: ConfigCheck<unknown>;
    try {
      checked = app.validate(app.config);
    } catch (err) {
      checked = { ok: false, errors: [describeReason(crashReason(err))] };
    }
    if (!checked.ok) return { error: 'invalid_config', app: app.name, errors: checked.errors };
    let spec: SupervisorSpec;
    try {
      spec = app.supervisor(checked.config);
    } catch (err) {
      return { error: 'invalid_config', app: app.name, errors: [`supervisor spec: ${describeReason(crashReason(err))}`] };
    }
    out.push({ name: app.name, type: app.type ?? 'temporary', config: checked.config, spec });
  }
  return out;
}

// ---- internal: the controller process ---------------------------------------------------

const STOP_ALL = 'application.stop_all';
const STOP_ONE = 'application.stop_one';

/** Requests carry their answer callback: the controller always runs on the caller's scheduler. */
type ControllerRequest = { type: typeof STOP_ALL; done: (v: unknown) => void } | { type: typeof STOP_ONE; app: string; done: (v: unknown) => void };

function isRequest(m: unknown): m is ControllerRequest {
  const t = typeof m === 'object' && m !== null ? (m as { type?: unknown }).type : undefined;
  return t === STOP_ALL || t === STOP_ONE;
}

interface RunningEntry {
  pid: Pid;
  type: ApplicationType;
}

/** Written only by the controller process; read by RunningApplications. */
interface Shared {
  controller?: Pid;
  /** Running applications in start order. */
  running: Map<string, RunningEntry>;
  configs: Map<string, unknown>;
  exits: ApplicationExit[];
  startOrder: string[];
  done: boolean;
  /** Answers owed to callers, settled with `not_running` if the controller goes away. */
  pending: Set<() => void>;
}

function controllerBody(
  planned: Planned[],
  shared: Shared,
  opts: StartApplicationsOptions,
  started: (r: { ok: true } | ({ ok: false } & ApplicationsError)) => void,
  terminated: (t: Termination) => void,
): ProcessBody {
  return async (ctx) => {
    shared.controller = ctx.self;
    let startAnswered = false;
    let starting = '';
    let termination: Termination = { cause: 'controller_down', reason: 'killed' };
    try {
      for (const app of planned) {
        starting = app.name;
        const r = await Supervisor.startLink(ctx, app.spec);
        if (!r.ok) {
          await stopAll(ctx, shared);
          startAnswered = true;
          started({ ok: false, error: 'start_failed', app: app.name, reason: r.reason });
          termination = { cause: 'application_exited', app: app.name, reason: r.reason };
          return;
        }
        shared.running.set(app.name, { pid: r.pid, type: app.type });
        shared.configs.set(app.name, app.config);
        shared.startOrder.push(app.name);
        ctx.env.log.info({ application: app.name, supervisor: r.pid.toString() }, 'application started');
      }
      startAnswered = true;
      started({ ok: true });
      for (;;) {
        const msg = await ctx.receive();
        if (isRequest(msg)) {
          if (msg.type === STOP_ALL) {
            await stopAll(ctx, shared);
            termination = { cause: 'stopped' };
            msg.done(undefined);
            return;
          }
          const entry = shared.running.get(msg.app);
          if (entry === undefined) msg.done({ ok: false, error: 'not_running' } satisfies StopApplicationResult);
          else {
            await stopOne(ctx, shared, msg.app, entry);
            msg.done({ ok: true } satisfies StopApplicationResult);
          }
          continue;
        }
        if (!isExitMessage(msg)) continue;
        const name = [...shared.running].find(([, e]) => pidEquals(e.pid, msg.from))?.[0];
        if (name === undefined) continue;
        const entry = shared.running.get(name) as RunningEntry;
        shared.running.delete(name);
        const exit: ApplicationExit = { app: name, type: entry.type, reason: msg.reason };
        shared.exits.push(exit);
        ctx.env.log.info({ application: name, type: entry.type, reason: describeReason(msg.reason) }, 'application exited');
        try {
          opts.onExit?.(exit);
        } catch (err) {
          ctx.env.log.error({ application: name, error: describeReason(crashReason(err)) }, 'onExit reporter failed');
        }
        if (entry.type === 'permanent' || (entry.type === 'transient' && msg.reason !== 'normal')) {
          await stopAll(ctx, shared);
          termination = { cause: 'application_exited', app: name, reason: msg.reason };
          return;
        }
      }
    } catch (err) {
      termination = { cause: 'controller_down', reason: crashReason(err) };
      throw err;
    } finally {
      shared.done = true;
      if (!startAnswered) started({ ok: false, error: 'start_failed', app: starting, reason: termination.cause === 'controller_down' ? termination.reason : 'noproc' });
      for (const cancel of [...shared.pending]) cancel();
      shared.pending.clear();
      terminated(termination);
    }
  };
}

/** Stop the running applications in reverse start order, each tree fully down first. */
async function stopAll(ctx: ProcessContext, shared: Shared): Promise<void> {
  for (const [name, entry] of [...shared.running].reverse()) await stopOne(ctx, shared, name, entry);
}

/** Exit `shutdown` from the parent: the root supervisor stops its tree, then exits. */
async function stopOne(ctx: ProcessContext, shared: Shared, name: string, entry: RunningEntry): Promise<void> {
  const mon = ctx.monitor(entry.pid);
  ctx.sendExit(entry.pid, 'shutdown');
  const down = await ctx.receive((m) => isDownMessage(m) && refEquals(m.ref, mon));
  // The link's EXIT is queued already (it is sent before the DOWN): take it so it is not
  // mistaken for the application exiting on its own.
  await ctx.receive((m) => isExitMessage(m) && pidEquals(m.from, entry.pid), 0);
  shared.running.delete(name);
  ctx.env.log.info({ application: name, reason: down === TIMEOUT ? 'timeout' : describeReason((down as { reason: ExitReason }).reason) }, 'application stopped');
}
