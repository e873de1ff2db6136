/**
 * Registry: a name service mapping arbitrary string keys to pids, one pid per key. One
 * registry process serialises every write and owns the table; code on the registry's
 * scheduler reads the table directly, so a lookup never waits for a server call.
 *
 * Use it as `import * as Registry from './Registry.js'`.
 *
 * Starting. `start(where, name)` / `startLink(ctx, name)` start a registry process registered
 * under the local name `name` (the kernel name on this scheduler); every other function
 * addresses the registry by that name. Several registries may run side by side.
 *
 * Writes (server calls, from async code or from outside a process through the scheduler):
 *
 * - `register(where, registry, key, pid)` → `{ok: true}`;
 *   `{ok: false, error: 'already_registered', pid}` when the key is taken (also by the same
 *   pid: keys are unique, re-registering is a caller bug worth seeing);
 *   `{ok: false, error: 'noproc'}` when `pid` is on this scheduler and already dead.
 *   A pid may hold any number of keys.
 * - `unregister(where, registry, key)` → `{ok: true, removed}`; `removed` is false if the
 *   key was free.
 * - Either answers `{ok: false, error: 'call_failed', reason}` when the registry is not
 *   running (`noproc`), did not answer in time, or died during the call.
 *
 * Cleanup. The registry monitors each registered pid once (whatever its number of keys) and
 * removes all its keys when the pid exits; the monitor is dropped when its last key is
 * unregistered. A registry that exits takes its table with it; registered processes are
 * not affected (they are monitored, not linked).
 *
 * Reads (no server call; only on the registry's scheduler, elsewhere they see no registry):
 * `lookup`, `keysOf`, `count`. A write is visible to readers as soon as its call returns.
 * `lookup` never returns a pid on this scheduler that has exited, even before the registry
 * has handled its DOWN; a pid on another scheduler may have just exited (a send to it is
 * then dropped, like any send to a dead pid).
 *
 * Via names. `via(registry, key)` is a `ViaName` (OTP's `{via, Module, Name}`): a value that
 * resolves to a pid through a name service, so callers address a process by key:
 * `callVia(ctx, via('sessions', userId), request)` or `sendVia(ctx, name, msg)`. Another
 * name service (for example a cluster-wide registry) can implement the same interface.
 */
import { isDownMessage } from '../runtime/ExitReason.js';
import { refEquals, type Pid, type Ref } from '../runtime/Pid.js';
import type { ProcessContext } from '../runtime/ProcessContext.js';
import { DEFAULT_CALL_TIMEOUT_MS } from '../runtime/defaults.js';
import { call, callFrom, isContext, send, type CallFailure, type CallResult, type Sender } from './Call.js';
import * as GenServer from './GenServer.js';
import { knownDead } from './internal/liveness.js';

// ---- public types ----------------------------------------------------------------------

/** The registry could not be asked: not running (`noproc`), `timeout`, or its exit reason. */
export interface RegistryCallFailed {
  ok: false;
  error: 'call_failed';
  reason: CallFailure;
}

export type RegisterResult =
  | { ok: true }
  | { ok: false; error: 'already_registered'; pid: Pid }
  | { ok: false; error: 'noproc' }
  | RegistryCallFailed;

export type UnregisterResult = { ok: true; removed: boolean } | RegistryCallFailed;

/**
 * A name resolved by a name service (OTP's `{via, Module, Name}`). `whereis` reads the
 * service's table without a server call; `register`/`unregister` write through the service.
 */
export interface ViaName {
  whereis(where: Sender): Pid | undefined;
  register(where: Sender, pid: Pid): Promise<RegisterResult>;
  unregister(where: Sender): Promise<UnregisterResult>;
  /** For logs: `via Registry <registry> <key>`. */
  toString(): string;
}

// ---- public API: lifecycle -------------------------------------------------------------

/** Start an unlinked registry registered as `name`. From outside a process, pass the scheduler. */
export function start(where: Sender, name: string): Promise<GenServer.StartResult> {
  return GenServer.start(where, registryServer, undefined, { name, label: 'Registry' });
}

/** Start a registry registered as `name`, linked to the caller (a supervisor's child start). */
export function startLink(ctx: ProcessContext, name: string): Promise<GenServer.StartResult> {
  return GenServer.startLink(ctx, registryServer, undefined, { name, label: 'Registry' });
}

// ---- public API: writes ----------------------------------------------------------------

export async function register(where: Sender, registry: string, key: string, pid: Pid): Promise<RegisterResult> {
  const r = await request<RegisterResult>(where, registry, { op: 'register', key, pid });
  return r.ok ? r.value : callFailed(r.reason);
}

export async function unregister(where: Sender, registry: string, key: string): Promise<UnregisterResult> {
  const r = await request<UnregisterResult>(where, registry, { op: 'unregister', key });
  return r.ok ? r.value : callFailed(r.reason);
}

// ---- public API: reads (no server call) ------------------------------------------------

/** The pid registered under `key`, or undefined (also when the registry is not running here). */
export function lookup(where: Sender, registry: string, key: string): Pid | undefined {
  const pid = tableOf(where, registry)?.byKey.get(key);
  if (pid === undefined || knownDead(where, pid)) return undefined;
  return pid;
}

/** Every key `pid` is registered under, in registration order. */
export function keysOf(where: Sender, registry: string, pid: Pid): string[] {
  const holder = tableOf(where, registry)?.byPid.get(pid.key);
  return holder === undefined ? [] : [...holder.keys];
}

/** Number of registered keys. */
export function count(where: Sender, registry: string): number {
  return tableOf(where, registry)?.byKey.size ?? 0;
}

// ---- public API: via names -------------------------------------------------------------

export function via(registry: string, key: string): ViaName {
  return {
    whereis: (where) => lookup(where, registry, key),
    register: (where, pid) => register(where, registry, key, pid),
    unregister: (where) => unregister(where, registry, key),
    toString: () => `via Registry ${registry} ${key}`,
  };
}

/** Send to the process a via name resolves to; false (message dropped) when it resolves to none. */
export function sendVia(where: Sender, name: ViaName, msg: unknown): boolean {
  const pid = name.whereis(where);
  if (pid === undefined) return false;
  send(where, pid, msg);
  return true;
}

/** GenServer call addressed by a via name; `noproc` when the name resolves to no process. */
export function callVia<R = unknown>(
  where: Sender,
  name: ViaName,
  req: unknown,
  timeoutMs: number = DEFAULT_CALL_TIMEOUT_MS,
): Promise<CallResult<R>> {
  const pid = name.whereis(where);
  if (pid === undefined) return Promise.resolve({ ok: false, reason: 'noproc' });
  return isContext(where) ? call<R>(where, pid, req, timeoutMs) : callFrom<R>(where, pid, req, timeoutMs);
}

// ---- internal: the registry process ----------------------------------------------------

type Request = { op: 'register'; key: string; pid: Pid } | { op: 'unregister'; key: string };

/** One monitored pid and the keys it holds. */
interface Holder {
  readonly pid: Pid;
  readonly ref: Ref;
  readonly keys: Set<string>;
}

/** The registry's state, and the table its scheduler reads. Only the registry writes it. */
class RegistryTable {
  readonly byKey = new Map<string, Pid>();
  readonly byPid = new Map<string, Holder>();
}

/**
 * Tables by the registry process's own pid object (the one `whereis` returns), so a table
 * is found only while its registry is registered and vanishes with it.
 */
const tables = new WeakMap<Pid, RegistryTable>();

const registryServer: GenServer.Behaviour<RegistryTable, void, Request, RegisterResult | UnregisterResult> = {
  init(_args, ctx) {
    const table = new RegistryTable();
    tables.set(ctx.self, table);
    return { state: table };
  },

  handleCall(req, _from, table, ctx) {
    if (req.op === 'register') return { reply: registerKey(ctx, table, req.key, req.pid), state: table };
    return { reply: unregisterKey(ctx, table, req.key), state: table };
  },

  handleInfo(msg, table) {
    if (isDownMessage(msg)) {
      const holder = table.byPid.get(msg.pid.key);
      if (holder !== undefined && refEquals(holder.ref, msg.ref)) {
        table.byPid.delete(msg.pid.key);
        for (const key of holder.keys) table.byKey.delete(key);
      }
    }
    return { noreply: true, state: table };
  },
};

function registerKey(ctx: ProcessContext, table: RegistryTable, key: string, pid: Pid): RegisterResult {
  const held = table.byKey.get(key);
  if (held !== undefined) return { ok: false, error: 'already_registered', pid: held };
  if (knownDead(ctx, pid)) return { ok: false, error: 'noproc' };
  let holder = table.byPid.get(pid.key);
  if (holder === undefined) {
    holder = { pid, ref: ctx.monitor(pid), keys: new Set() };
    table.byPid.set(pid.key, holder);
  }
  holder.keys.add(key);
  table.byKey.set(key, pid);
  return { ok: true };
}

function unregisterKey(ctx: ProcessContext, table: RegistryTable, key: string): UnregisterResult {
  const pid = table.byKey.get(key);
  if (pid === undefined) return { ok: true, removed: false };
  table.byKey.delete(key);
  const holder = table.byPid.get(pid.key);
  if (holder !== undefined) {
    holder.keys.delete(key);
    if (holder.keys.size === 0) {
      table.byPid.delete(pid.key);
      ctx.demonitor(holder.ref, { flush: true });
    }
  }
  return { ok: true, removed: true };
}

// ---- internal: helpers -----------------------------------------------------------------

function tableOf(where: Sender, registry: string): RegistryTable | undefined {
  const pid = where.whereis(registry);
  return pid === undefined ? undefined : tables.get(pid);
}

function request<R>(where: Sender, registry: string, req: Request): Promise<CallResult<R>> {
  return isContext(where) ? call<R>(where, registry, req) : callFrom<R>(where, registry, req);
}

function callFailed(reason: CallFailure): RegistryCallFailed {
  return { ok: false, error: 'call_failed', reason };
}
