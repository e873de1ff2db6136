/**
 * Groups: durable membership (admins and members), group message fan-out and sender-key
 * distribution. A GenServer that owns all group state and is its only writer, so membership
 * changes are serialised; every change is answered only after it is durable. Members' requests
 * arrive as casts (the answer goes to `replyTo` with the request's `tag`, so a connection can
 * answer its client in request order); administration (add, remove, promote, demote, roster)
 * arrives as calls, from the admin API and tools, answered after the write is durable.
 *
 * Rules: the creator is the first admin; at most MAX_GROUP_MEMBERS members and
 * MAX_GROUPS_PER_USER groups per user; the last admin cannot leave while others remain
 * (`last_admin`); only admins add, remove, promote and demote (`not_admin`); everything on a
 * group one is not in answers `not_member` (also for unknown groups: no existence leak). A
 * group message costs its sender one fan-out token per recipient (`fanoutAllowed`); without
 * enough the message is refused `rate_limited`, never dropped silently. A member whose inbox
 * is full is reported to the sender by its router shard (`inbox_full`) and counted.
 *
 * Memory: groups read from storage are cached, at most STATE_CACHE_ENTRIES, least recently
 * used first out; a miss (an unknown group) costs nothing. Storage is the truth.
 *
 * Tables: `groups` (gid) → record; `members` (user, gid) → role byte; `sender_keys`
 * (gid, user) → the sender's last distributed key data.
 */
import * as GenServer from '../actors/GenServer.js';
import { decodeValue, encodeValue } from '../runtime/Envelope.js';
import type { StorageEngine, StorageOp } from '../runtime/Env.js';
import type { Pid } from '../runtime/Pid.js';
import type { ProcessContext } from '../runtime/ProcessContext.js';
import type { CoreCounters } from './CoreCounters.js';
import { STATE_CACHE_ENTRIES } from './defaults.js';
import type { GroupMessage, SenderKey } from './Delivery.js';
import { LruCache } from './LruCache.js';
import { sendTo, type ServiceAddress } from './Router.js';
import type { RouterRoute } from './RouterShard.js';
import { userBytes, userKey, type UserKey } from './UserId.js';

export const MAX_GROUP_MEMBERS = 256;
export const MAX_GROUPS_PER_USER = 100;
/** Gids drawn for a new group before giving up (a cluster of 256 shard groups needs 256 on average). */
const MAX_GID_DRAWS = 100_000;
/** Registered name of the groups server. */
export const GROUPS_NAME = 'groups';

export type Role = 'admin' | 'member';

export type GroupError = 'not_member' | 'not_admin' | 'last_admin' | 'too_many_groups' | 'group_full' | 'already_member' | 'storage_failed' | 'rate_limited';

/** A member's request, sent as a cast; the answer (if any) goes to `replyTo` with `tag`. */
export type GroupsRequest =
  | { t: 'create'; user: UserKey; name: Uint8Array; replyTo: Pid; tag: number }
  | { t: 'leave'; user: UserKey; gid: string; replyTo: Pid; tag: number }
  | { t: 'roster'; user: UserKey; gid: string; replyTo: Pid; tag: number }
  /** Answered only with an error; deliveries are refused to `replyTo` by the shards when an inbox is full. */
  | { t: 'msg'; user: UserKey; gid: string; header: Uint8Array; ciphertext: Uint8Array; replyTo: Pid; tag: number }
  | { t: 'sender_key'; user: UserKey; gid: string; keydata: Uint8Array; replyTo: Pid; tag: number };

/** An administration request, sent as a call. `actor` must be an admin of the group (or null: the operator). */
export type GroupsAdminRequest =
  | { t: 'admin'; op: 'add' | 'remove' | 'promote' | 'demote'; actor: UserKey | null; gid: string; user: UserKey }
  | { t: 'admin_roster'; gid: string };

export type GroupsAdminReply = { ok: true; members?: Array<{ user: Uint8Array; role: Role }> } | { ok: false; code: GroupError };

export type GroupsReply =
  | { t: 'group_created'; tag: number; gid: string }
  | { t: 'group_left'; tag: number; gid: string }
  | { t: 'group_roster'; tag: number; gid: string; members: Uint8Array[] }
  /** A message or sender key taken (nothing to tell a v1 client; keeps the connection's reply order). */
  | { t: 'group_done'; tag: number; gid: string }
  /**
   * In a cluster (`fanOutByRequester`): a message or sender key taken; the requester routes
   * `rec` to each of `to` itself (with its own retries), so nothing is lost when a member's
   * shard moves while it is on its way.
   */
  | { t: 'group_fanout'; tag: number; gid: string; to: UserKey[]; rec: GroupMessage | SenderKey }
  | { t: 'group_error'; tag: number; gid: string | null; code: GroupError };

interface Group {
  name: Uint8Array;
  createdMs: number;
  members: Map<UserKey, Role>;
}

export interface GroupsDeps {
  storage: StorageEngine;
  /** The router shard of `user` (in a cluster, `shard.<g>` on the owner of the user's shard group). */
  shardFor(user: UserKey): ServiceAddress;
  /**
   * Whether a new group may take `gid` (in a cluster, only a gid of this server's shard group:
   * creation draws gids until one fits). Default: any.
   */
  acceptGid?(gid: string): boolean;
  /** Takes `n` fan-out tokens of `user`; false when there are not enough. */
  fanoutAllowed(user: UserKey, n: number): boolean;
  counters: CoreCounters;
  /**
   * Answer a member's message or sender key with the recipients (`group_fanout`) instead of
   * routing it from here (a cluster: the requesting connection routes, and retries, each copy).
   */
  fanOutByRequester?: boolean;
}

const GROUPS = 'groups';
const MEMBERS = 'members';
const SENDER_KEYS = 'sender_keys';

/** 36-char lowercase UUID (version 4 layout) from 16 random bytes. */
export function uuidFromBytes(b: Uint8Array): string {
  const x = Uint8Array.from(b);
  x[6] = (x[6]! & 0x0f) | 0x40;
  x[8] = (x[8]! & 0x3f) | 0x80;
  const h = [...x].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function encodeGroup(g: Group): Uint8Array {
  return encodeValue({ name: g.name, createdMs: g.createdMs, members: [...g.members].map(([u, r]) => [userBytes(u), r === 'admin' ? 1 : 0]) });
}

function decodeGroup(b: Uint8Array): Group {
  const v = decodeValue(b) as { name: Uint8Array; createdMs: number; members: Array<[Uint8Array, number]> };
  return { name: v.name, createdMs: v.createdMs, members: new Map(v.members.map(([u, r]) => [userKey(u), r === 1 ? 'admin' : 'member'])) };
}

/** Start the groups server (registered as `name`, default GROUPS_NAME) linked to `ctx` (its supervisor). */
export function startGroups(ctx: ProcessContext, deps: GroupsDeps, name: string = GROUPS_NAME): Promise<GenServer.StartResult> {
  return GenServer.startLink(ctx, groupsBehaviour, deps, { name, label: 'Groups' });
}

/** The server's state: the storage tables and bounded caches. Mutated in place (one writer). */
class GroupsState {
  readonly groups;
  readonly members;
  readonly cache = new LruCache<string, Group>(STATE_CACHE_ENTRIES);
  readonly counts = new LruCache<UserKey, number>(STATE_CACHE_ENTRIES);
  /** Adds being written, by `addKey`: later adds of the same member wait for the outcome. */
  readonly adding = new Map<string, Array<(ok: boolean) => void>>();
  /**
   * Groups and counts with writes in flight, with how many: storage may not show them yet, so
   * they are never read back from it (the bounded caches may drop them meanwhile).
   */
  private readonly writingGroups = new Map<string, { g: Group | null; n: number }>();
  private readonly writingCounts = new Map<UserKey, { c: number; n: number }>();
  constructor(readonly deps: GroupsDeps) {
    this.groups = deps.storage.table(GROUPS);
    this.members = deps.storage.table(MEMBERS);
  }

  load(gid: string): Group | null {
    const w = this.writingGroups.get(gid);
    if (w !== undefined) return w.g;
    const hit = this.cache.get(gid);
    if (hit !== undefined) return hit;
    const raw = this.groups.get([gid]);
    if (raw === undefined) return null; // a miss is not remembered: it must cost nothing
    const g = decodeGroup(raw);
    this.cache.set(gid, g);
    return g;
  }

  groupCount(user: UserKey): number {
    const w = this.writingCounts.get(user);
    if (w !== undefined) return w.c;
    let n = this.counts.get(user);
    if (n === undefined) {
      n = this.members.count({ prefix: [userBytes(user)] });
      if (n > 0) this.counts.set(user, n);
    }
    return n;
  }

  setCount(user: UserKey, n: number): void {
    this.counts.set(user, n);
    const w = this.writingCounts.get(user);
    if (w !== undefined) w.c = n;
  }

  /** A write about `gid` (and the counts of `users`) is issued; returns what to call when it settles. */
  writing(gid: string, g: Group | null, users: readonly UserKey[]): () => void {
    const wg = this.writingGroups.get(gid) ?? { g, n: 0 };
    wg.g = g;
    wg.n++;
    this.writingGroups.set(gid, wg);
    const counted = users.map((u) => {
      const wc = this.writingCounts.get(u) ?? { c: this.groupCount(u), n: 0 };
      wc.n++;
      this.writingCounts.set(u, wc);
      return [u, wc] as const;
    });
    return () => {
      if (--wg.n === 0) this.writingGroups.delete(gid);
      for (const [u, wc] of counted) if (--wc.n === 0) this.writingCounts.delete(u);
    };
  }

  member(gid: string, user: UserKey): Group | null {
    const g = this.load(gid);
    return g !== null && g.members.has(user) ? g : null;
  }

  /** After a failed write the caches may hold what the disk does not: drop them. */
  forget(gid: string): void {
    this.cache.delete(gid);
    this.writingGroups.delete(gid);
    this.counts.clear();
    this.writingCounts.clear();
  }


}

type Result = GenServer.NoReplyReturn<GroupsState>;

const groupsBehaviour: GenServer.Behaviour<GroupsState, GroupsDeps, GroupsAdminRequest, GroupsAdminReply, GroupsRequest> = {
  init: (deps) => ({ state: new GroupsState(deps) }),
  handleCast: (m, st, ctx) => {
    memberRequest(m, st, ctx);
    return { noreply: true, state: st };
  },
  handleCall: (m, from, st, ctx): Result => {
    const done = (r: GroupsAdminReply) => GenServer.reply(ctx, from, r);
    if (m.t === 'admin_roster') {
      const g = st.load(m.gid);
      done(g === null ? { ok: false, code: 'not_member' } : { ok: true, members: [...g.members].map(([u, role]) => ({ user: userBytes(u), role })) });
    } else adminRequest(m, st, ctx, done);
    return { noreply: true, state: st };
  },
};

const putGroup = (gid: string, g: Group): StorageOp => ({ type: 'put', table: GROUPS, key: [gid], value: encodeGroup(g) });

/**
 * Write `ops`, then answer: never before it is durable. The change was applied to the caches
 * first; if the write fails the caches are dropped so the next read comes from storage again
 * (a failed add must not later read as `already_member`).
 */
/** `g` is the group as the write leaves it (null: deleted); `users` those whose group counts change. */
function commit(st: GroupsState, ops: StorageOp[], gid: string, g: Group | null, users: readonly UserKey[], answer: (ok: boolean) => void): void {
  const settled = st.writing(gid, g, users);
  void st.deps.storage.batch(ops).then((w) => {
    settled();
    if (!w.ok) st.forget(gid);
    answer(w.ok);
  });
}

function fanOut(st: GroupsState, ctx: ProcessContext, g: Group, from: UserKey, rec: GroupMessage | SenderKey, replyTo: Pid): void {
  for (const u of g.members.keys()) {
    if (u === from) continue;
    sendTo(ctx, st.deps.shardFor(u), { t: 'route', to: u, rec, replyTo } satisfies RouterRoute);
  }
}

/** Every member but `from`. */
function recipients(g: Group, from: UserKey): UserKey[] {
  const out: UserKey[] = [];
  for (const u of g.members.keys()) if (u !== from) out.push(u);
  return out;
}

function memberRequest(m: GroupsRequest, st: GroupsState, ctx: ProcessContext): void {
  const reply = (r: GroupsReply) => ctx.send(m.replyTo, r);
  const error = (gid: string | null, code: GroupError) => reply({ t: 'group_error', tag: m.tag, gid, code });
  switch (m.t) {
    case 'create': {
      const n = st.groupCount(m.user);
      if (n >= MAX_GROUPS_PER_USER) return error(null, 'too_many_groups');
      const fits = (id: string): boolean => (st.deps.acceptGid === undefined || st.deps.acceptGid(id)) && st.load(id) === null;
      let gid = uuidFromBytes(ctx.env.random.bytes(16));
      for (let i = 0; i < MAX_GID_DRAWS && !fits(gid); i++) gid = uuidFromBytes(ctx.env.random.bytes(16));
      if (!fits(gid)) return error(null, 'storage_failed');
      const g: Group = { name: m.name, createdMs: ctx.env.clock.wallMs(), members: new Map([[m.user, 'admin']]) };
      st.cache.set(gid, g);
      st.setCount(m.user, n + 1);
      const ops: StorageOp[] = [putGroup(gid, g), { type: 'put', table: MEMBERS, key: [userBytes(m.user), gid], value: Uint8Array.of(1) }];
      return commit(st, ops, gid, g, [m.user], (ok) => (ok ? reply({ t: 'group_created', tag: m.tag, gid }) : error(gid, 'storage_failed')));
    }
    case 'leave': {
      const g = st.member(m.gid, m.user);
      if (g === null) return error(m.gid, 'not_member');
      if (g.members.get(m.user) === 'admin' && g.members.size > 1 && adminCount(g) === 1) return error(m.gid, 'last_admin');
      g.members.delete(m.user);
      st.setCount(m.user, st.groupCount(m.user) - 1);
      const ops: StorageOp[] = [{ type: 'remove', table: MEMBERS, key: [userBytes(m.user), m.gid] }];
      if (g.members.size === 0) {
        st.cache.delete(m.gid);
        ops.push({ type: 'remove', table: GROUPS, key: [m.gid] });
      } else ops.push(putGroup(m.gid, g));
      ops.push({ type: 'remove', table: SENDER_KEYS, key: [m.gid, userBytes(m.user)] });
      return commit(st, ops, m.gid, g.members.size === 0 ? null : g, [m.user], (ok) => (ok ? reply({ t: 'group_left', tag: m.tag, gid: m.gid }) : error(m.gid, 'storage_failed')));
    }
    case 'roster': {
      const g = st.member(m.gid, m.user);
      if (g === null) return error(m.gid, 'not_member');
      return reply({ t: 'group_roster', tag: m.tag, gid: m.gid, members: [...g.members.keys()].map(userBytes) });
    }
    case 'msg': {
      const g = st.member(m.gid, m.user);
      if (g === null) return error(m.gid, 'not_member');
      if (!st.deps.fanoutAllowed(m.user, g.members.size - 1)) {
        st.deps.counters.groupFanoutRefusals++;
        return error(m.gid, 'rate_limited');
      }
      const rec: GroupMessage = { k: 'group', from: userBytes(m.user), gid: m.gid, header: m.header, ciphertext: m.ciphertext };
      if (st.deps.fanOutByRequester === true) return reply({ t: 'group_fanout', tag: m.tag, gid: m.gid, to: recipients(g, m.user), rec });
      fanOut(st, ctx, g, m.user, rec, m.replyTo);
      return reply({ t: 'group_done', tag: m.tag, gid: m.gid });
    }
    case 'sender_key': {
      const g = st.member(m.gid, m.user);
      if (g === null) return error(m.gid, 'not_member');
      if (!st.deps.fanoutAllowed(m.user, g.members.size - 1)) {
        st.deps.counters.groupFanoutRefusals++;
        return error(m.gid, 'rate_limited');
      }
      const rec: SenderKey = { k: 'sender_key', from: userBytes(m.user), gid: m.gid, keydata: m.keydata };
      // Store, then forward once durable.
      const ops: StorageOp[] = [{ type: 'put', table: SENDER_KEYS, key: [m.gid, userBytes(m.user)], value: m.keydata }];
      return commit(st, ops, m.gid, g, [], (ok) => {
        if (!ok) return error(m.gid, 'storage_failed');
        const now = st.load(m.gid);
        if (st.deps.fanOutByRequester === true) return reply({ t: 'group_fanout', tag: m.tag, gid: m.gid, to: now === null ? [] : recipients(now, m.user), rec });
        if (now !== null) fanOut(st, ctx, now, m.user, rec, m.replyTo);
        reply({ t: 'group_done', tag: m.tag, gid: m.gid });
      });
    }
  }
}

function addKey(gid: string, user: UserKey): string {
  return `${gid}\u0000${user}`;
}

function adminCount(g: Group): number {
  let n = 0;
  for (const r of g.members.values()) if (r === 'admin') n++;
  return n;
}

function adminRequest(m: Extract<GroupsAdminRequest, { t: 'admin' }>, st: GroupsState, _ctx: ProcessContext, done: (r: GroupsAdminReply) => void): void {
  const fail = (code: GroupError) => done({ ok: false, code });
  const g = st.load(m.gid);
  if (g === null) return fail('not_member');
  if (m.actor !== null) {
    if (!g.members.has(m.actor)) return fail('not_member');
    if (g.members.get(m.actor) !== 'admin') return fail('not_admin');
  }
  const has = g.members.has(m.user);
  const ops: StorageOp[] = [];
  switch (m.op) {
    case 'add': {
      // A member whose add is still being written is not one yet: this add hears that write's outcome.
      const waiting = st.adding.get(addKey(m.gid, m.user));
      if (waiting !== undefined) {
        waiting.push((ok) => done(ok ? { ok: false, code: 'already_member' } : { ok: false, code: 'storage_failed' }));
        return;
      }
      if (has) return fail('already_member');
      if (g.members.size >= MAX_GROUP_MEMBERS) return fail('group_full');
      const n = st.groupCount(m.user);
      if (n >= MAX_GROUPS_PER_USER) return fail('too_many_groups');
      g.members.set(m.user, 'member');
      st.setCount(m.user, n + 1);
      ops.push({ type: 'put', table: MEMBERS, key: [userBytes(m.user), m.gid], value: Uint8Array.of(0) });
      break;
    }
    case 'remove':
      if (!has) return fail('not_member');
      if (m.user === m.actor || (g.members.get(m.user) === 'admin' && adminCount(g) === 1)) return fail('last_admin');
      g.members.delete(m.user);
      st.setCount(m.user, st.groupCount(m.user) - 1);
      ops.push({ type: 'remove', table: MEMBERS, key: [userBytes(m.user), m.gid] });
      ops.push({ type: 'remove', table: SENDER_KEYS, key: [m.gid, userBytes(m.user)] });
      break;
    case 'promote':
      if (!has) return fail('not_member');
      g.members.set(m.user, 'admin');
      break;
    case 'demote':
      if (!has) return fail('not_member');
      if (g.members.get(m.user) === 'admin' && adminCount(g) === 1) return fail('last_admin');
      g.members.set(m.user, 'member');
      break;
  }
  ops.push(putGroup(m.gid, g));
  const key = addKey(m.gid, m.user);
  if (m.op === 'add') st.adding.set(key, []);
  commit(st, ops, m.gid, g, m.op === 'add' || m.op === 'remove' ? [m.user] : [], (ok) => {
    if (m.op === 'add') {
      const waiters = st.adding.get(key) ?? [];
      st.adding.delete(key);
      for (const w of waiters) w(ok);
    }
    done(ok ? { ok: true } : { ok: false, code: 'storage_failed' });
  });
}
