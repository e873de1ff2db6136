/**
 * GlobalRegistry: cluster-wide names, as Erlang's `global`: one name, one pid, on every node
 * that runs a global name server. Registration is coordinated among the connected nodes with
 * name locks; the table is replicated to every node, so lookups are local reads (no call);
 * names vanish with their process or their node; after a partition heals, two registrations of
 * one name are resolved the same way on every node and the loser is told. No consensus, no
 * JetStream: like `global`, it is exactly as consistent as the membership view.
 *
 * Use it as `import * as GlobalRegistry from './GlobalRegistry.js'`.
 *
 * Starting. `start(where)` / `startLink(ctx)` start the node's name server, registered locally
 * as GLOBAL_NAME_SERVER. Start one on every node, on the same scheduler id (normally 0): the
 * servers find each other there (discover/sync, as ProcessGroups does) whenever a node comes up.
 *
 * Writes (server calls):
 *
 * - `register(where, name, pid, {onConflict})` locks `name` on this node and on every peer
 *   server, checks it is free everywhere, then commits it to all and answers `{ok: true}`.
 *   `{ok: false, error: 'already_registered', pid}` when the name is held anywhere (also by
 *   the same pid); `noproc` when `pid` is on this scheduler and dead; `lock_timeout` when
 *   other registrations of the name kept its lock for GLOBAL_LOCK_DEADLINE_MS (two nodes
 *   racing for one name both back off for a random pause under GLOBAL_LOCK_BACKOFF_MS and
 *   retry, so one of them wins); `call_failed` when the server is not running or did not
 *   answer. A peer that goes down during a registration no longer counts.
 * - `unregister(where, name)` → `{ok: true, removed}`, on every node.
 *
 * Ownership and cleanup. The node whose server committed a registration owns it: it monitors
 * the pid and unregisters every name of the pid everywhere when it exits. Every node drops the
 * names owned by a node whose server goes away (node down, cut off, server exited) and the
 * names of pids on a down node. When a node comes (back) up, servers exchange the names they
 * own (`sync`), which replaces what each held for the other.
 *
 * Clashes. A sync can bring a name that is already held by another pid (each side of a
 * partition registered it). The registration with the earlier commit stamp (owner's wall
 * clock, ms) keeps the name; equal stamps go to the owner node whose name sorts first, then to
 * the pid whose key sorts first. Every node compares the same two entries, so all agree
 * without talking. The loser's owner tells the loser, as it chose at registration:
 * `onConflict: 'exit'` (default, like global's random_exit_name) sends it the exit signal
 * `{global_name_conflict: name}` (trappable); `'notify'` sends it a GlobalNameConflict message.
 *
 * Reads (no server call; on the server's scheduler): `whereis`, `registeredNames`.
 * `via(name)` is a ViaName (Registry.ts) for `callVia`/`sendVia`.
 */
import { isDownMessage, type DownMessage } from '../runtime/ExitReason.js';
import { isNodeUpMessage } from '../runtime/Membership.js';
import { pidEquals, refEquals, type Pid, type Ref } from '../runtime/Pid.js';
import type { ProcessContext } from '../runtime/ProcessContext.js';
import { GLOBAL_LOCK_BACKOFF_MS, GLOBAL_LOCK_DEADLINE_MS } from '../runtime/defaults.js';
import { call, callFrom, isContext, reply, type CallFailure, type CallResult, type From, type Sender } from './Call.js';
import * as GenServer from './GenServer.js';
import { knownDead } from './internal/liveness.js';
import type { RegisterResult, RegistryCallFailed, UnregisterResult, ViaName } from './Registry.js';

/** The local name of every node's global name server. */
export const GLOBAL_NAME_SERVER = 'global_name_server';

// ---- public types ----------------------------------------------------------------------

/** How the loser of a clash is told: an exit signal (default) or a message. */
export type ConflictAction = 'exit' | 'notify';

export interface RegisterOptions {
  onConflict?: ConflictAction;
}

/** Sent to a registered process that lost its name in a clash (with `onConflict: 'notify'`). */
export interface GlobalNameConflict {
  readonly type: 'GLOBAL_NAME_CONFLICT';
  readonly name: string;
  /** The process that keeps the name. */
  readonly winner: Pid;
}

export function isGlobalNameConflict(m: unknown): m is GlobalNameConflict {
  return typeof m === 'object' && m !== null && (m as GlobalNameConflict).type === 'GLOBAL_NAME_CONFLICT';
}

/** The exit reason a clash loser gets with `onConflict: 'exit'`. */
export function conflictReason(name: string): { global_name_conflict: string } {
  return { global_name_conflict: name };
}

export type GlobalRegisterResult =
  | { ok: true }
  | { ok: false; error: 'already_registered'; pid: Pid }
  | { ok: false; error: 'noproc' }
  | { ok: false; error: 'lock_timeout' }
  | RegistryCallFailed;

// ---- public API ------------------------------------------------------------------------

export function start(where: Sender): Promise<GenServer.StartResult> {
  return GenServer.start(where, server, undefined, { name: GLOBAL_NAME_SERVER, label: 'GlobalRegistry' });
}

export function startLink(ctx: ProcessContext): Promise<GenServer.StartResult> {
  return GenServer.startLink(ctx, server, undefined, { name: GLOBAL_NAME_SERVER, label: 'GlobalRegistry' });
}

export async function register(where: Sender, name: string, pid: Pid, opts: RegisterOptions = {}): Promise<GlobalRegisterResult> {
  // The server may retry for the lock deadline; the call waits a little longer than that.
  const r = await request<GlobalRegisterResult>(where, { op: 'register', name, pid, onConflict: opts.onConflict ?? 'exit' }, GLOBAL_LOCK_DEADLINE_MS * 2);
  return r.ok ? r.value : callFailed(r.reason);
}

export async function unregister(where: Sender, name: string): Promise<UnregisterResult> {
  const r = await request<UnregisterResult>(where, { op: 'unregister', name });
  return r.ok ? r.value : callFailed(r.reason);
}

/** The pid registered as `name` anywhere in the cluster, read locally. */
export function whereis(where: Sender, name: string): Pid | undefined {
  const pid = tableOf(where)?.get(name)?.pid;
  if (pid === undefined || knownDead(where, pid)) return undefined;
  return pid;
}

/** Every registered name, sorted. */
export function registeredNames(where: Sender): string[] {
  const t = tableOf(where);
  return t === undefined ? [] : [...t.keys()].sort();
}

export function via(name: string, opts: RegisterOptions = {}): ViaName {
  return {
    whereis: (where) => whereis(where, name),
    register: async (where, pid): Promise<RegisterResult> => {
      const r = await register(where, name, pid, opts);
      return r.ok === false && r.error === 'lock_timeout' ? callFailed('timeout') : (r as RegisterResult);
    },
    unregister: (where) => unregister(where, name),
    toString: () => `via GlobalRegistry ${name}`,
  };
}

// ---- internal: state -----------------------------------------------------------------------

interface Entry {
  readonly name: string;
  readonly pid: Pid;
  /** Node whose server committed it (it monitors the pid). */
  readonly owner: string;
  /** Owner's wall clock at commit, ms. */
  readonly stamp: number;
  readonly onConflict: ConflictAction;
}

interface Lock {
  /** Key of the registration attempt's ref. */
  readonly id: string;
  readonly node: string;
}

interface Attempt {
  readonly from: From;
  readonly name: string;
  readonly pid: Pid;
  readonly onConflict: ConflictAction;
  readonly deadline: number;
  id: Ref | null;
  waiting: Set<string>;
  granted: Set<string>;
}

interface PeerServer {
  readonly pid: Pid;
  readonly ref: Ref;
}

interface Watch {
  readonly ref: Ref;
  readonly names: Set<string>;
}

type Table = Map<string, Entry>;

class GlobalState {
  readonly table: Table = new Map();
  /** Pids of entries owned here, by pid key. */
  readonly watches = new Map<string, Watch>();
  readonly locks = new Map<string, Lock>();
  /** Attempts in progress by ref key, and attempts waiting to retry by their timer message id. */
  readonly attempts = new Map<string, Attempt>();
  readonly retrying = new Map<number, Attempt>();
  readonly peers = new Map<string, PeerServer>();
  retrySeq = 0;
}

const tables = new WeakMap<Pid, Table>();

type Request =
  | { op: 'register'; name: string; pid: Pid; onConflict: ConflictAction }
  | { op: 'unregister'; name: string };

type PeerMessage =
  | { readonly $global: 'discover'; readonly peer: Pid }
  | { readonly $global: 'sync'; readonly peer: Pid; readonly entries: readonly Entry[] }
  | { readonly $global: 'lock'; readonly peer: Pid; readonly id: Ref; readonly name: string }
  | { readonly $global: 'grant'; readonly peer: Pid; readonly id: Ref; readonly name: string }
  | { readonly $global: 'deny'; readonly peer: Pid; readonly id: Ref; readonly registered: Pid | null }
  | { readonly $global: 'unlock'; readonly peer: Pid; readonly id: Ref; readonly name: string }
  | { readonly $global: 'commit'; readonly peer: Pid; readonly id: Ref; readonly entry: Entry }
  | { readonly $global: 'unregister'; readonly peer: Pid; readonly name: string; readonly pid: Pid };

type SelfMessage = { readonly $global: 'retry'; readonly n: number } | { readonly $global: 'expire'; readonly id: string };

function isGlobalMessage(m: unknown): m is PeerMessage | SelfMessage {
  return typeof m === 'object' && m !== null && typeof (m as { $global?: unknown }).$global === 'string';
}

// ---- internal: the server ------------------------------------------------------------------

const server: GenServer.Behaviour<GlobalState, void, Request, unknown> = {
  init(_args, ctx) {
    const state = new GlobalState();
    tables.set(ctx.self, state.table);
    ctx.monitorNodes(true);
    for (const n of ctx.nodes()) discover(ctx, n.name);
    return { state };
  },

  handleCall(req, from, state, ctx) {
    if (req.op === 'unregister') return { reply: unregisterLocal(ctx, state, req.name), state };
    const held = state.table.get(req.name);
    if (held !== undefined) return { reply: { ok: false, error: 'already_registered', pid: held.pid } satisfies GlobalRegisterResult, state };
    if (knownDead(ctx, req.pid)) return { reply: { ok: false, error: 'noproc' } satisfies GlobalRegisterResult, state };
    const attempt: Attempt = {
      from,
      name: req.name,
      pid: req.pid,
      onConflict: req.onConflict,
      deadline: ctx.env.clock.monotonicMs() + GLOBAL_LOCK_DEADLINE_MS,
      id: null,
      waiting: new Set(),
      granted: new Set(),
    };
    tryLock(ctx, state, attempt);
    return { noreply: true, state };
  },

  handleInfo(msg, state, ctx) {
    if (isGlobalMessage(msg)) onMessage(ctx, state, msg);
    else if (isDownMessage(msg)) onDown(ctx, state, msg);
    else if (isNodeUpMessage(msg)) discover(ctx, msg.node);
    return { noreply: true, state };
  },
};

function onMessage(ctx: ProcessContext, state: GlobalState, msg: PeerMessage | SelfMessage): void {
  switch (msg.$global) {
    case 'retry': {
      const a = state.retrying.get(msg.n);
      if (a !== undefined) {
        state.retrying.delete(msg.n);
        tryLock(ctx, state, a);
      }
      return;
    }
    case 'expire': {
      const a = state.attempts.get(msg.id);
      if (a !== undefined) {
        abort(ctx, state, a);
        reply(ctx, a.from, { ok: false, error: 'lock_timeout' } satisfies GlobalRegisterResult);
      }
      return;
    }
    default:
      break;
  }
  if (msg.peer.node === ctx.node) return;
  switch (msg.$global) {
    case 'discover': {
      const added = peerFor(ctx, state, msg.peer);
      ctx.send(msg.peer, { $global: 'sync', peer: ctx.self, entries: owned(ctx, state) } satisfies PeerMessage);
      if (added) ctx.send(msg.peer, { $global: 'discover', peer: ctx.self } satisfies PeerMessage);
      return;
    }
    case 'sync':
      peerFor(ctx, state, msg.peer);
      applySync(ctx, state, msg.peer.node, msg.entries);
      return;
    case 'lock':
      onLock(ctx, state, msg.peer, msg.id, msg.name);
      return;
    case 'grant': {
      const a = state.attempts.get(msg.id.key);
      if (a === undefined) {
        // A grant for an attempt already given up: release it there.
        ctx.send(msg.peer, { $global: 'unlock', peer: ctx.self, id: msg.id, name: msg.name } satisfies PeerMessage);
        return;
      }
      a.waiting.delete(msg.peer.node);
      a.granted.add(msg.peer.node);
      if (a.waiting.size === 0) commit(ctx, state, a);
      return;
    }
    case 'deny': {
      const a = state.attempts.get(msg.id.key);
      if (a === undefined) return;
      abort(ctx, state, a);
      if (msg.registered !== null) reply(ctx, a.from, { ok: false, error: 'already_registered', pid: msg.registered } satisfies GlobalRegisterResult);
      else retryLater(ctx, state, a);
      return;
    }
    case 'unlock': {
      const l = state.locks.get(msg.name);
      if (l !== undefined && l.id === msg.id.key) state.locks.delete(msg.name);
      return;
    }
    case 'commit': {
      const l = state.locks.get(msg.entry.name);
      if (l !== undefined && l.id === msg.id.key) state.locks.delete(msg.entry.name);
      if (!knownPeer(state, msg.peer)) return;
      insert(ctx, state, { ...msg.entry, owner: msg.peer.node });
      return;
    }
    case 'unregister': {
      const e = state.table.get(msg.name);
      if (e !== undefined && pidEquals(e.pid, msg.pid)) remove(ctx, state, e);
      return;
    }
  }
}

// ---- registration ---------------------------------------------------------------------------

function tryLock(ctx: ProcessContext, state: GlobalState, a: Attempt): void {
  const held = state.table.get(a.name);
  if (held !== undefined) {
    reply(ctx, a.from, { ok: false, error: 'already_registered', pid: held.pid } satisfies GlobalRegisterResult);
    return;
  }
  if (state.locks.has(a.name)) {
    retryLater(ctx, state, a);
    return;
  }
  const id = ctx.makeRef();
  a.id = id;
  a.waiting = new Set(state.peers.keys());
  a.granted = new Set();
  state.locks.set(a.name, { id: id.key, node: ctx.node });
  state.attempts.set(id.key, a);
  if (a.waiting.size === 0) {
    commit(ctx, state, a);
    return;
  }
  for (const p of state.peers.values()) ctx.send(p.pid, { $global: 'lock', peer: ctx.self, id, name: a.name } satisfies PeerMessage);
  ctx.sendAfter(Math.max(0, a.deadline - ctx.env.clock.monotonicMs()), { $global: 'expire', id: id.key } satisfies SelfMessage);
}

function retryLater(ctx: ProcessContext, state: GlobalState, a: Attempt): void {
  const pause = 1 + Math.floor(ctx.env.random.float() * GLOBAL_LOCK_BACKOFF_MS);
  if (ctx.env.clock.monotonicMs() + pause > a.deadline) {
    reply(ctx, a.from, { ok: false, error: 'lock_timeout' } satisfies GlobalRegisterResult);
    return;
  }
  const n = ++state.retrySeq;
  state.retrying.set(n, a);
  ctx.sendAfter(pause, { $global: 'retry', n } satisfies SelfMessage);
}

/** Give up an attempt: drop its lock here and on every node that granted it. */
function abort(ctx: ProcessContext, state: GlobalState, a: Attempt): void {
  if (a.id === null) return;
  const id = a.id;
  state.attempts.delete(id.key);
  const l = state.locks.get(a.name);
  if (l !== undefined && l.id === id.key) state.locks.delete(a.name);
  for (const node of a.granted) {
    const p = state.peers.get(node);
    if (p !== undefined) ctx.send(p.pid, { $global: 'unlock', peer: ctx.self, id, name: a.name } satisfies PeerMessage);
  }
}

function commit(ctx: ProcessContext, state: GlobalState, a: Attempt): void {
  const id = a.id as Ref;
  state.attempts.delete(id.key);
  state.locks.delete(a.name);
  const held = state.table.get(a.name);
  if (held !== undefined) {
    // A node that came up meanwhile brought the name with its sync.
    abort(ctx, state, a);
    reply(ctx, a.from, { ok: false, error: 'already_registered', pid: held.pid } satisfies GlobalRegisterResult);
    return;
  }
  const entry: Entry = { name: a.name, pid: a.pid, owner: ctx.node, stamp: ctx.env.clock.wallMs(), onConflict: a.onConflict };
  insert(ctx, state, entry);
  for (const p of state.peers.values()) ctx.send(p.pid, { $global: 'commit', peer: ctx.self, id, entry } satisfies PeerMessage);
  reply(ctx, a.from, { ok: true } satisfies GlobalRegisterResult);
}

function onLock(ctx: ProcessContext, state: GlobalState, peer: Pid, id: Ref, name: string): void {
  const deny = (registered: Pid | null): void => ctx.send(peer, { $global: 'deny', peer: ctx.self, id, registered } satisfies PeerMessage);
  const held = state.table.get(name);
  if (held !== undefined) return deny(held.pid);
  // A lock for a server we do not know could never be released by its node going down.
  if (!knownPeer(state, peer)) return deny(null);
  const l = state.locks.get(name);
  if (l !== undefined && l.id !== id.key) return deny(null);
  state.locks.set(name, { id: id.key, node: peer.node });
  ctx.send(peer, { $global: 'grant', peer: ctx.self, id, name } satisfies PeerMessage);
}

function unregisterLocal(ctx: ProcessContext, state: GlobalState, name: string): UnregisterResult {
  const e = state.table.get(name);
  if (e === undefined) return { ok: true, removed: false };
  remove(ctx, state, e);
  for (const p of state.peers.values()) ctx.send(p.pid, { $global: 'unregister', peer: ctx.self, name, pid: e.pid } satisfies PeerMessage);
  return { ok: true, removed: true };
}

// ---- the table --------------------------------------------------------------------------------

/** The entry that keeps a name when two pids claim it (the same answer on every node). */
function better(x: Entry, y: Entry): Entry {
  if (x.stamp !== y.stamp) return x.stamp < y.stamp ? x : y;
  if (x.owner !== y.owner) return x.owner < y.owner ? x : y;
  return x.pid.key <= y.pid.key ? x : y;
}

function insert(ctx: ProcessContext, state: GlobalState, e: Entry): void {
  const cur = state.table.get(e.name);
  if (cur === undefined) {
    put(ctx, state, e);
    return;
  }
  const win = better(cur, e);
  if (win === cur) {
    if (!pidEquals(cur.pid, e.pid) && e.owner === ctx.node) tellLoser(ctx, e, cur);
    return;
  }
  remove(ctx, state, cur);
  put(ctx, state, e);
  if (!pidEquals(cur.pid, e.pid) && cur.owner === ctx.node) tellLoser(ctx, cur, e);
}

function put(ctx: ProcessContext, state: GlobalState, e: Entry): void {
  state.table.set(e.name, e);
  if (e.owner !== ctx.node) return;
  let w = state.watches.get(e.pid.key);
  if (w === undefined) {
    w = { ref: ctx.monitor(e.pid), names: new Set() };
    state.watches.set(e.pid.key, w);
  }
  w.names.add(e.name);
}

function remove(ctx: ProcessContext, state: GlobalState, e: Entry): void {
  if (state.table.get(e.name) === e) state.table.delete(e.name);
  if (e.owner !== ctx.node) return;
  const w = state.watches.get(e.pid.key);
  if (w === undefined) return;
  w.names.delete(e.name);
  if (w.names.size === 0) {
    state.watches.delete(e.pid.key);
    ctx.demonitor(w.ref, { flush: true });
  }
}

function tellLoser(ctx: ProcessContext, loser: Entry, winner: Entry): void {
  if (loser.onConflict === 'notify') {
    ctx.send(loser.pid, { type: 'GLOBAL_NAME_CONFLICT', name: loser.name, winner: winner.pid } satisfies GlobalNameConflict);
  } else {
    ctx.sendExit(loser.pid, conflictReason(loser.name));
  }
}

function owned(ctx: ProcessContext, state: GlobalState): Entry[] {
  return [...state.table.values()].filter((e) => e.owner === ctx.node);
}

/** `node`'s server told us the names it owns: they replace what we held as its. */
function applySync(ctx: ProcessContext, state: GlobalState, node: string, entries: readonly Entry[]): void {
  const incoming = new Map(entries.map((e) => [e.name, { ...e, owner: node }] as const));
  for (const e of [...state.table.values()]) {
    if (e.owner !== node) continue;
    const now = incoming.get(e.name);
    if (now === undefined || !pidEquals(now.pid, e.pid)) remove(ctx, state, e);
  }
  for (const e of incoming.values()) insert(ctx, state, e);
}

// ---- other nodes ------------------------------------------------------------------------------

function discover(ctx: ProcessContext, node: string): void {
  ctx.sendNamed(GLOBAL_NAME_SERVER, ctx.schedulerId, { $global: 'discover', peer: ctx.self } satisfies PeerMessage, node);
}

function knownPeer(state: GlobalState, pid: Pid): boolean {
  const p = state.peers.get(pid.node);
  return p !== undefined && pidEquals(p.pid, pid);
}

/** Record (and monitor) a peer server; true when it is new. A restarted peer replaces the old. */
function peerFor(ctx: ProcessContext, state: GlobalState, pid: Pid): boolean {
  const known = state.peers.get(pid.node);
  if (known !== undefined) {
    if (pidEquals(known.pid, pid)) return false;
    dropPeer(ctx, state, pid.node, known);
  }
  state.peers.set(pid.node, { pid, ref: ctx.monitor(pid) });
  return true;
}

/** A peer server is gone: its names, its node's pids' names and its locks go; nobody waits for it. */
function dropPeer(ctx: ProcessContext, state: GlobalState, node: string, peer: PeerServer): void {
  state.peers.delete(node);
  ctx.demonitor(peer.ref, { flush: true });
  for (const e of [...state.table.values()]) if (e.owner === node || e.pid.node === node) remove(ctx, state, e);
  for (const [name, l] of [...state.locks]) if (l.node === node) state.locks.delete(name);
  for (const a of [...state.attempts.values()]) {
    if (!a.waiting.delete(node)) continue;
    a.granted.delete(node);
    if (a.waiting.size === 0) commit(ctx, state, a);
  }
}

function onDown(ctx: ProcessContext, state: GlobalState, down: DownMessage): void {
  const peer = state.peers.get(down.pid.node);
  if (peer !== undefined && refEquals(peer.ref, down.ref)) {
    dropPeer(ctx, state, down.pid.node, peer);
    return;
  }
  const w = state.watches.get(down.pid.key);
  if (w === undefined || !refEquals(w.ref, down.ref)) return;
  state.watches.delete(down.pid.key);
  for (const name of w.names) {
    const e = state.table.get(name);
    if (e === undefined || !pidEquals(e.pid, down.pid)) continue;
    state.table.delete(name);
    for (const p of state.peers.values()) ctx.send(p.pid, { $global: 'unregister', peer: ctx.self, name, pid: e.pid } satisfies PeerMessage);
  }
}

// ---- helpers ----------------------------------------------------------------------------------

function tableOf(where: Sender): Table | undefined {
  const pid = where.whereis(GLOBAL_NAME_SERVER);
  return pid === undefined ? undefined : tables.get(pid);
}

function request<R>(where: Sender, req: Request, timeoutMs?: number): Promise<CallResult<R>> {
  return isContext(where) ? call<R>(where, GLOBAL_NAME_SERVER, req, timeoutMs) : callFrom<R>(where, GLOBAL_NAME_SERVER, req, timeoutMs);
}

function callFailed(reason: CallFailure): RegistryCallFailed {
  return { ok: false, error: 'call_failed', reason };
}
