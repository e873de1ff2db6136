/**
 * ProcessGroups: named groups of processes in a scope, with Erlang `pg` semantics. One scope
 * process serialises membership changes and owns the membership table; code on the scope's
 * scheduler reads memberships directly, without a server call.
 *
 * Use it as `import * as ProcessGroups from './ProcessGroups.js'`.
 *
 * Scopes. `start(where, scope)` / `startLink(ctx, scope)` start the scope process registered
 * under the local name `scope` (pg's default scope is `DEFAULT_SCOPE`). Scopes are
 * independent: the same group name in two scopes names two groups. Groups are strings and
 * exist while they have members.
 *
 * Membership (server calls, from async code or from outside a process through the scheduler):
 *
 * - `join(where, scope, group, pids)` adds each pid, in order, at the end of the group. A pid
 *   may join a group several times and then counts once per join (and must leave as often).
 *   Only pids of this node may join (`{ok: false, error: 'not_local', pid}`); a pid on this
 *   scheduler that already exited is refused with `noproc`. The join is all or nothing.
 * - `leave(where, scope, group, pids)` removes one join of each listed pid;
 *   `{ok: false, error: 'not_joined'}` when none of them was a member (nothing changes).
 * - A member that exits leaves every group it joined, as often as it joined (the scope
 *   process monitors each member once).
 * - Any call answers `{ok: false, error: 'call_failed', reason}` when the scope is not
 *   running (`noproc`), did not answer in time, or died during the call.
 *
 * Reads (no server call; only on the scope's scheduler, elsewhere they see an empty scope):
 * `getMembers` (every member, a pid once per join, in join order), `getLocalMembers` (the
 * members on this node), `whichGroups`, `whichLocalGroups`. The arrays returned are
 * snapshots: never mutated afterwards. A change is visible as soon as its call returns; a
 * member that just exited stays listed until the scope has handled its DOWN.
 *
 * Notifications. `monitorScope(ctx, scope)` returns `{ref, groups}` (a snapshot of every
 * group) and `monitor(ctx, scope, group)` returns `{ref, members}`; from then on the caller
 * receives a `GroupNotification` `{type: 'ProcessGroups', event: 'join' | 'leave', scope, ref,
 * group, pids}` for every change, in the order the changes were made, after the table
 * already shows it. `demonitor(ctx, scope, ref)` ends a subscription (false if unknown); a
 * subscriber that exits is unsubscribed.
 *
 * Across nodes (pg's protocol). A scope process talks to the scope processes of the same name
 * on the same scheduler id of every other node that is up (start scopes on the same scheduler
 * everywhere, normally 0). When it starts, and whenever a node comes up, it sends that node's
 * scope a `discover`; scopes that find each other monitor each other and exchange a `sync`
 * with their local memberships, then send every local join and leave to each other. So
 * `getMembers` holds every node's members (each node's in the order it reported them) and
 * `getLocalMembers` this node's; reads stay local. When a peer scope goes away (its node down
 * or cut off: the monitor fires `noconnection`; or the scope exits), its node's members leave
 * here, with leave notifications; when it is back, its sync brings them back. Notifications
 * cover remote changes too. A membership seen here may lag the owning node's by the transit
 * time of its messages; it never keeps a down node's members.
 */
import { isDownMessage, type DownMessage } from '../runtime/ExitReason.js';
import { isNodeUpMessage } from '../runtime/Membership.js';
import { pidEquals, refEquals, type Pid, type Ref } from '../runtime/Pid.js';
import type { ProcessContext } from '../runtime/ProcessContext.js';
import { call, callFrom, isContext, type CallFailure, type CallResult, type From, type Sender } from './Call.js';
import * as GenServer from './GenServer.js';
import { knownDead } from './internal/liveness.js';

/** pg's default scope name. */
export const DEFAULT_SCOPE = 'pg';

// ---- public types ----------------------------------------------------------------------

/** The scope could not be asked: not running (`noproc`), `timeout`, or its exit reason. */
export interface ScopeCallFailed {
  ok: false;
  error: 'call_failed';
  reason: CallFailure;
}

export type JoinResult =
  | { ok: true }
  | { ok: false; error: 'not_local'; pid: Pid }
  | { ok: false; error: 'noproc'; pid: Pid }
  | ScopeCallFailed;

export type LeaveResult = { ok: true } | { ok: false; error: 'not_joined' } | ScopeCallFailed;

export type MonitorScopeResult = { ok: true; ref: Ref; groups: ReadonlyMap<string, readonly Pid[]> } | ScopeCallFailed;

export type MonitorGroupResult = { ok: true; ref: Ref; members: readonly Pid[] } | ScopeCallFailed;

/** Sent to subscribers after each membership change. */
export interface GroupNotification {
  readonly type: 'ProcessGroups';
  readonly event: 'join' | 'leave';
  readonly scope: string;
  /** The subscription's ref (from monitorScope or monitor). */
  readonly ref: Ref;
  readonly group: string;
  /** The pids that joined or left, once per join. */
  readonly pids: readonly Pid[];
}

export function isGroupNotification(msg: unknown): msg is GroupNotification {
  return typeof msg === 'object' && msg !== null && (msg as GroupNotification).type === 'ProcessGroups';
}

// ---- public API: lifecycle -------------------------------------------------------------

/** Start an unlinked scope process registered as `scope`. From outside, pass the scheduler. */
export function start(where: Sender, scope: string = DEFAULT_SCOPE): Promise<GenServer.StartResult> {
  return GenServer.start(where, scopeServer, scope, { name: scope, label: 'ProcessGroups' });
}

/** Start a scope process registered as `scope`, linked to the caller (a supervisor's child start). */
export function startLink(ctx: ProcessContext, scope: string = DEFAULT_SCOPE): Promise<GenServer.StartResult> {
  return GenServer.startLink(ctx, scopeServer, scope, { name: scope, label: 'ProcessGroups' });
}

// ---- public API: membership ------------------------------------------------------------

export async function join(where: Sender, scope: string, group: string, pids: Pid | readonly Pid[]): Promise<JoinResult> {
  const r = await request<JoinResult>(where, scope, { op: 'join', group, pids: asList(pids) });
  return r.ok ? r.value : callFailed(r.reason);
}

export async function leave(where: Sender, scope: string, group: string, pids: Pid | readonly Pid[]): Promise<LeaveResult> {
  const r = await request<LeaveResult>(where, scope, { op: 'leave', group, pids: asList(pids) });
  return r.ok ? r.value : callFailed(r.reason);
}

// ---- public API: reads (no server call) ------------------------------------------------

const NONE: readonly Pid[] = Object.freeze([]);

/** Every member of `group`, once per join, in join order. */
export function getMembers(where: Sender, scope: string, group: string): readonly Pid[] {
  return tableOf(where, scope)?.members.get(group) ?? NONE;
}

/** The members of `group` that live on this node. */
export function getLocalMembers(where: Sender, scope: string, group: string): readonly Pid[] {
  return tableOf(where, scope)?.local.get(group) ?? NONE;
}

/** Every group with at least one member. */
export function whichGroups(where: Sender, scope: string): string[] {
  const t = tableOf(where, scope);
  return t === undefined ? [] : [...t.members.keys()];
}

/** Every group with at least one member on this node. */
export function whichLocalGroups(where: Sender, scope: string): string[] {
  const t = tableOf(where, scope);
  return t === undefined ? [] : [...t.local.keys()];
}

// ---- public API: notifications ---------------------------------------------------------

/** Subscribe to every join and leave in the scope; returns the groups as they are now. */
export async function monitorScope(ctx: ProcessContext, scope: string): Promise<MonitorScopeResult> {
  const r = await call<MonitorScopeResult>(ctx, scope, { op: 'monitor', group: null } satisfies Request);
  return r.ok ? r.value : callFailed(r.reason);
}

/** Subscribe to joins and leaves of one group; returns its members as they are now. */
export async function monitor(ctx: ProcessContext, scope: string, group: string): Promise<MonitorGroupResult> {
  const r = await call<MonitorGroupResult>(ctx, scope, { op: 'monitor', group } satisfies Request);
  return r.ok ? r.value : callFailed(r.reason);
}

/** End a subscription; false when `ref` is not an active subscription (or the scope is gone). */
export async function demonitor(ctx: ProcessContext, scope: string, ref: Ref): Promise<boolean> {
  const r = await call<boolean>(ctx, scope, { op: 'demonitor', ref } satisfies Request);
  return r.ok && r.value;
}

// ---- internal: the scope process -------------------------------------------------------

/** Between the scope processes of one scope on different nodes (pg's discover/sync/join/leave). */
type PeerMessage =
  | { readonly $pg: 'discover'; readonly peer: Pid }
  | { readonly $pg: 'sync'; readonly peer: Pid; readonly groups: ReadonlyArray<readonly [string, readonly Pid[]]> }
  | { readonly $pg: 'join' | 'leave'; readonly peer: Pid; readonly group: string; readonly pids: readonly Pid[] };

function isPeerMessage(m: unknown): m is PeerMessage {
  return typeof m === 'object' && m !== null && typeof (m as { $pg?: unknown }).$pg === 'string';
}

type Request =
  | { op: 'join'; group: string; pids: readonly Pid[] }
  | { op: 'leave'; group: string; pids: readonly Pid[] }
  | { op: 'monitor'; group: string | null }
  | { op: 'demonitor'; ref: Ref };

/** Memberships readers see. Arrays are replaced, never mutated, so a read is a snapshot. */
class ScopeTable {
  readonly members = new Map<string, readonly Pid[]>();
  readonly local = new Map<string, readonly Pid[]>();
}

/** A monitored member: how many times it joined each group. */
interface Member {
  readonly pid: Pid;
  readonly ref: Ref;
  readonly joins: Map<string, number>;
}

/** A subscription: to the whole scope (group null) or to one group. */
interface Subscription {
  readonly ref: Ref;
  readonly pid: Pid;
  readonly group: string | null;
}

/** A monitored subscriber and its subscriptions. */
interface Subscriber {
  readonly ref: Ref;
  readonly subs: Set<string>;
}

/** The scope process of another node (monitored) and that node's members as it reported them. */
interface PeerScope {
  readonly pid: Pid;
  readonly ref: Ref;
  readonly groups: Map<string, Pid[]>;
}

class ScopeState {
  readonly table = new ScopeTable();
  readonly members = new Map<string, Member>();
  readonly subs = new Map<string, Subscription>();
  readonly subscribers = new Map<string, Subscriber>();
  /** Peer scopes by node name. */
  readonly peers = new Map<string, PeerScope>();

  constructor(readonly scope: string) {}
}

/** Tables by the scope process's own pid object (the one `whereis` returns). */
const tables = new WeakMap<Pid, ScopeTable>();

const scopeServer: GenServer.Behaviour<ScopeState, string, Request, unknown> = {
  init(scope, ctx) {
    const state = new ScopeState(scope);
    tables.set(ctx.self, state.table);
    ctx.monitorNodes(true);
    for (const n of ctx.nodes()) discover(ctx, state, n.name);
    return { state };
  },

  handleCall(req, from, state, ctx) {
    switch (req.op) {
      case 'join':
        return { reply: joinGroup(ctx, state, req.group, req.pids), state };
      case 'leave':
        return { reply: leaveGroup(ctx, state, req.group, req.pids), state };
      case 'monitor':
        return { reply: subscribe(ctx, state, from, req.group), state };
      case 'demonitor':
        return { reply: unsubscribe(ctx, state, req.ref), state };
    }
  },

  handleInfo(msg, state, ctx) {
    if (isDownMessage(msg)) onDown(ctx, state, msg);
    else if (isPeerMessage(msg)) onPeer(ctx, state, msg);
    else if (isNodeUpMessage(msg)) discover(ctx, state, msg.node);
    return { noreply: true, state };
  },
};

function joinGroup(ctx: ProcessContext, state: ScopeState, group: string, pids: readonly Pid[]): JoinResult {
  for (const pid of pids) {
    if (pid.node !== ctx.node) return { ok: false, error: 'not_local', pid };
    if (knownDead(ctx, pid)) return { ok: false, error: 'noproc', pid };
  }
  if (pids.length === 0) return { ok: true };
  for (const pid of pids) {
    let m = state.members.get(pid.key);
    if (m === undefined) {
      m = { pid, ref: ctx.monitor(pid), joins: new Map() };
      state.members.set(pid.key, m);
    }
    m.joins.set(group, (m.joins.get(group) ?? 0) + 1);
  }
  const t = state.table;
  t.members.set(group, [...(t.members.get(group) ?? NONE), ...pids]);
  t.local.set(group, [...(t.local.get(group) ?? NONE), ...pids]);
  notify(ctx, state, 'join', group, pids);
  broadcast(ctx, state, { $pg: 'join', peer: ctx.self, group, pids: [...pids] });
  return { ok: true };
}

function leaveGroup(ctx: ProcessContext, state: ScopeState, group: string, pids: readonly Pid[]): LeaveResult {
  const left: Pid[] = [];
  for (const pid of pids) {
    const m = state.members.get(pid.key);
    const n = m?.joins.get(group) ?? 0;
    if (m === undefined || n === 0) continue;
    if (n === 1) m.joins.delete(group);
    else m.joins.set(group, n - 1);
    left.push(m.pid);
    if (m.joins.size === 0) forget(ctx, state, m);
  }
  if (left.length === 0) return { ok: false, error: 'not_joined' };
  const t = state.table;
  setGroup(t.members, group, removeOnce(t.members.get(group) ?? NONE, left));
  setGroup(t.local, group, removeOnce(t.local.get(group) ?? NONE, left));
  notify(ctx, state, 'leave', group, left);
  broadcast(ctx, state, { $pg: 'leave', peer: ctx.self, group, pids: left });
  return { ok: true };
}

function subscribe(ctx: ProcessContext, state: ScopeState, from: From, group: string | null): MonitorScopeResult | MonitorGroupResult {
  const ref = ctx.makeRef();
  state.subs.set(ref.key, { ref, pid: from.pid, group });
  let s = state.subscribers.get(from.pid.key);
  if (s === undefined) {
    s = { ref: ctx.monitor(from.pid), subs: new Set() };
    state.subscribers.set(from.pid.key, s);
  }
  s.subs.add(ref.key);
  if (group === null) return { ok: true, ref, groups: new Map(state.table.members) };
  return { ok: true, ref, members: state.table.members.get(group) ?? NONE };
}

function unsubscribe(ctx: ProcessContext, state: ScopeState, ref: Ref): boolean {
  const sub = state.subs.get(ref.key);
  if (sub === undefined) return false;
  state.subs.delete(ref.key);
  const s = state.subscribers.get(sub.pid.key);
  if (s !== undefined) {
    s.subs.delete(ref.key);
    if (s.subs.size === 0) {
      state.subscribers.delete(sub.pid.key);
      ctx.demonitor(s.ref, { flush: true });
    }
  }
  return true;
}

/** A member exited: it leaves every group, as often as it joined. A subscriber exited: unsubscribe. */
function onDown(ctx: ProcessContext, state: ScopeState, down: DownMessage): void {
  const key = down.pid.key;
  const m = state.members.get(key);
  if (m !== undefined && refEquals(m.ref, down.ref)) {
    state.members.delete(key);
    const t = state.table;
    for (const [group, n] of m.joins) {
      setGroup(t.members, group, (t.members.get(group) ?? NONE).filter((p) => p.key !== key));
      setGroup(t.local, group, (t.local.get(group) ?? NONE).filter((p) => p.key !== key));
      const pids = new Array<Pid>(n).fill(m.pid);
      notify(ctx, state, 'leave', group, pids);
      broadcast(ctx, state, { $pg: 'leave', peer: ctx.self, group, pids });
    }
    return;
  }
  const peer = state.peers.get(down.pid.node);
  if (peer !== undefined && refEquals(peer.ref, down.ref)) {
    dropPeer(ctx, state, down.pid.node, peer);
    return;
  }
  const s = state.subscribers.get(key);
  if (s !== undefined && refEquals(s.ref, down.ref)) {
    state.subscribers.delete(key);
    for (const r of s.subs) state.subs.delete(r);
  }
}

/** Stop monitoring a pid that left its last group. */
function forget(ctx: ProcessContext, state: ScopeState, m: Member): void {
  state.members.delete(m.pid.key);
  ctx.demonitor(m.ref, { flush: true });
}

function notify(ctx: ProcessContext, state: ScopeState, event: 'join' | 'leave', group: string, pids: readonly Pid[]): void {
  for (const sub of state.subs.values()) {
    if (sub.group !== null && sub.group !== group) continue;
    const msg: GroupNotification = { type: 'ProcessGroups', event, scope: state.scope, ref: sub.ref, group, pids };
    ctx.send(sub.pid, msg);
  }
}

// ---- internal: other nodes ---------------------------------------------------------------

function discover(ctx: ProcessContext, state: ScopeState, node: string): void {
  ctx.sendNamed(state.scope, ctx.schedulerId, { $pg: 'discover', peer: ctx.self } satisfies PeerMessage, node);
}

function broadcast(ctx: ProcessContext, state: ScopeState, msg: PeerMessage): void {
  for (const p of state.peers.values()) ctx.send(p.pid, msg);
}

function localSync(ctx: ProcessContext, state: ScopeState): PeerMessage {
  return { $pg: 'sync', peer: ctx.self, groups: [...state.table.local] };
}

/** The peer scope record for `pid`, added (and monitored) when new; a restarted peer replaces the old. */
function peerFor(ctx: ProcessContext, state: ScopeState, pid: Pid): { peer: PeerScope; added: boolean } {
  const known = state.peers.get(pid.node);
  if (known !== undefined) {
    if (pidEquals(known.pid, pid)) return { peer: known, added: false };
    dropPeer(ctx, state, pid.node, known);
  }
  const peer: PeerScope = { pid, ref: ctx.monitor(pid), groups: new Map() };
  state.peers.set(pid.node, peer);
  return { peer, added: true };
}

function onPeer(ctx: ProcessContext, state: ScopeState, msg: PeerMessage): void {
  if (msg.peer.node === ctx.node) return;
  switch (msg.$pg) {
    case 'discover': {
      const { added } = peerFor(ctx, state, msg.peer);
      ctx.send(msg.peer, localSync(ctx, state));
      if (added) ctx.send(msg.peer, { $pg: 'discover', peer: ctx.self } satisfies PeerMessage);
      return;
    }
    case 'sync': {
      const { peer } = peerFor(ctx, state, msg.peer);
      const incoming = new Map<string, readonly Pid[]>(msg.groups);
      for (const group of new Set([...peer.groups.keys(), ...incoming.keys()])) {
        const had = peer.groups.get(group) ?? [];
        const has = incoming.get(group) ?? NONE;
        const gone = minus(had, has);
        const came = minus(has, had);
        if (has.length === 0) peer.groups.delete(group);
        else peer.groups.set(group, [...has]);
        if (gone.length > 0) remoteLeave(ctx, state, group, gone);
        if (came.length > 0) remoteJoin(ctx, state, group, came);
      }
      return;
    }
    case 'join':
    case 'leave': {
      const peer = state.peers.get(msg.peer.node);
      // Only from the peer scope we know: anything else was sent before it went away here.
      if (peer === undefined || !pidEquals(peer.pid, msg.peer)) return;
      const list = peer.groups.get(msg.group) ?? [];
      if (msg.$pg === 'join') {
        peer.groups.set(msg.group, [...list, ...msg.pids]);
        remoteJoin(ctx, state, msg.group, msg.pids);
      } else {
        const left = msg.pids.filter((p) => list.some((q) => q.key === p.key));
        const rest = removeOnce(list, left);
        if (rest.length === 0) peer.groups.delete(msg.group);
        else peer.groups.set(msg.group, rest);
        if (left.length > 0) remoteLeave(ctx, state, msg.group, left);
      }
      return;
    }
  }
}

/** A peer scope is gone (its node down, or it exited): its node's members leave. */
function dropPeer(ctx: ProcessContext, state: ScopeState, node: string, peer: PeerScope): void {
  state.peers.delete(node);
  ctx.demonitor(peer.ref, { flush: true });
  for (const [group, pids] of peer.groups) remoteLeave(ctx, state, group, pids);
}

function remoteJoin(ctx: ProcessContext, state: ScopeState, group: string, pids: readonly Pid[]): void {
  const t = state.table;
  t.members.set(group, [...(t.members.get(group) ?? NONE), ...pids]);
  notify(ctx, state, 'join', group, pids);
}

function remoteLeave(ctx: ProcessContext, state: ScopeState, group: string, pids: readonly Pid[]): void {
  const t = state.table;
  setGroup(t.members, group, removeOnce(t.members.get(group) ?? NONE, pids));
  notify(ctx, state, 'leave', group, pids);
}

/** `list` without one occurrence of each pid of `gone` that it holds (a multiset difference). */
function minus(list: readonly Pid[], gone: readonly Pid[]): Pid[] {
  const counts = new Map<string, number>();
  for (const g of gone) counts.set(g.key, (counts.get(g.key) ?? 0) + 1);
  const out: Pid[] = [];
  for (const p of list) {
    const n = counts.get(p.key) ?? 0;
    if (n > 0) counts.set(p.key, n - 1);
    else out.push(p);
  }
  return out;
}

// ---- internal: helpers -----------------------------------------------------------------

function tableOf(where: Sender, scope: string): ScopeTable | undefined {
  const pid = where.whereis(scope);
  return pid === undefined ? undefined : tables.get(pid);
}

function request<R>(where: Sender, scope: string, req: Request): Promise<CallResult<R>> {
  return isContext(where) ? call<R>(where, scope, req) : callFrom<R>(where, scope, req);
}

function callFailed(reason: CallFailure): ScopeCallFailed {
  return { ok: false, error: 'call_failed', reason };
}

function asList(pids: Pid | readonly Pid[]): readonly Pid[] {
  return Array.isArray(pids) ? (pids as readonly Pid[]) : [pids as Pid];
}

/** `list` without one occurrence of each pid in `gone` (pg's `--`). */
function removeOnce(list: readonly Pid[], gone: readonly Pid[]): Pid[] {
  const out = [...list];
  for (const g of gone) {
    const i = out.findIndex((p) => p.key === g.key);
    if (i >= 0) out.splice(i, 1);
  }
  return out;
}

function setGroup(map: Map<string, readonly Pid[]>, group: string, pids: readonly Pid[]): void {
  if (pids.length === 0) map.delete(group);
  else map.set(group, pids);
}
