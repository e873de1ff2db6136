/**
 * Groups: durable membership (admins and members), group message fan-out with the sender
 * stamped into the header, and sender-key distribution. One process owns all group state and
 * is its only writer, so membership changes are serialised; every change is answered only
 * after it is durable. Reads for fan-out come from its in-memory copy (loaded lazily).
 *
 * Rules: the creator is the first admin; at most MAX_GROUP_MEMBERS members and
 * MAX_GROUPS_PER_USER groups per user; the last admin cannot leave while others remain
 * (`last_admin`); only admins add, remove, promote and demote (`not_admin`); everything on a
 * group one is not in answers `not_member` (also for unknown groups: no existence leak).
 *
 * Tables: `groups` (gid) → record; `members` (user, gid) → role byte; `sender_keys`
 * (gid, user) → the sender's last distributed key data.
 */
import { decodeValue, encodeValue } from '../runtime/Envelope.js';
import type { StorageEngine, StorageOp } from '../runtime/Env.js';
import type { Pid } from '../runtime/Pid.js';
import type { ProcessBody, ProcessContext } from '../runtime/ProcessContext.js';
import { encodeGroupMsgFrame, encodeSenderKeyDistFrame, groupHeaderWithSender } from '../edge/protocol/V1Encoder.js';
import type { RouterRoute } from './RouterShard.js';
import { userBytes, userKey, type UserKey } from './UserId.js';

export const MAX_GROUP_MEMBERS = 256;
export const MAX_GROUPS_PER_USER = 100;

export type Role = 'admin' | 'member';

export type GroupError = 'not_member' | 'not_admin' | 'last_admin' | 'too_many_groups' | 'group_full' | 'already_member' | 'bad_header' | 'storage_failed';

export type GroupsRequest =
  | { t: 'create'; user: UserKey; name: Uint8Array; replyTo: Pid }
  | { t: 'leave'; user: UserKey; gid: string; replyTo: Pid }
  | { t: 'roster'; user: UserKey; gid: string; replyTo: Pid }
  | { t: 'msg'; user: UserKey; gid: string; header: Uint8Array; ciphertext: Uint8Array; replyTo: Pid }
  | { t: 'sender_key'; user: UserKey; gid: string; keydata: Uint8Array; replyTo: Pid }
  | { t: 'admin'; op: 'add' | 'remove' | 'promote' | 'demote'; actor: UserKey; gid: string; user: UserKey; replyTo: Pid };

export type GroupsReply =
  | { t: 'group_created'; gid: string }
  | { t: 'group_left'; gid: string }
  | { t: 'group_roster'; gid: string; members: Uint8Array[] }
  | { t: 'group_done'; gid: string }
  | { t: 'group_error'; gid: string | null; code: GroupError };

interface Group {
  name: Uint8Array;
  createdMs: number;
  members: Map<UserKey, Role>;
}

export interface GroupsDeps {
  storage: StorageEngine;
  shardFor(user: UserKey): Pid | string;
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

export function groupsService(deps: GroupsDeps): ProcessBody {
  return (ctx: ProcessContext) => {
    const groups = deps.storage.table(GROUPS);
    const members = deps.storage.table(MEMBERS);
    const cache = new Map<string, Group | null>();
    const counts = new Map<UserKey, number>();
    const enc = new TextEncoder();

    const load = (gid: string): Group | null => {
      const hit = cache.get(gid);
      if (hit !== undefined) return hit;
      const raw = groups.get([gid]);
      const g = raw === undefined ? null : decodeGroup(raw);
      cache.set(gid, g);
      return g;
    };
    const groupCount = (user: UserKey): number => {
      let n = counts.get(user);
      if (n === undefined) {
        n = members.count({ prefix: [userBytes(user)] });
        counts.set(user, n);
      }
      return n;
    };
    const reply = (to: Pid, r: GroupsReply) => ctx.send(to, r);
    const error = (to: Pid, gid: string | null, code: GroupError) => reply(to, { t: 'group_error', gid, code });
    /** Write `ops`, then answer `done` (or storage_failed): never before it is durable. */
    /**
     * Write `ops` and answer once durable. The change was applied to the caches first; if the
     * write fails, the caches are dropped so the next read comes from storage again (a failed
     * add must not later read as `already_member`).
     */
    const commit = (ops: StorageOp[], to: Pid, gid: string, done: GroupsReply) => {
      void deps.storage.batch(ops).then((w) => {
        if (w.ok) return reply(to, done);
        cache.delete(gid);
        counts.clear();
        error(to, gid, 'storage_failed');
      });
    };
    const member = (gid: string, user: UserKey): Group | null => {
      const g = load(gid);
      return g !== null && g.members.has(user) ? g : null;
    };
    const fanOut = (g: Group, from: UserKey, frame: Uint8Array) => {
      const fromBytes = userBytes(from);
      for (const u of g.members.keys()) {
        if (u === from) continue;
        ctx.send(deps.shardFor(u), { t: 'route', from: fromBytes, to: u, payload: frame, replyTo: null } satisfies RouterRoute);
      }
    };
    const putGroup = (gid: string, g: Group): StorageOp => ({ type: 'put', table: GROUPS, key: [gid], value: encodeGroup(g) });

    const handle = (m: GroupsRequest): void => {
      switch (m.t) {
        case 'create': {
          if (groupCount(m.user) >= MAX_GROUPS_PER_USER) return error(m.replyTo, null, 'too_many_groups');
          let gid = uuidFromBytes(ctx.env.random.bytes(16));
          while (load(gid) !== null) gid = uuidFromBytes(ctx.env.random.bytes(16));
          const g: Group = { name: m.name, createdMs: ctx.env.clock.wallMs(), members: new Map([[m.user, 'admin']]) };
          cache.set(gid, g);
          counts.set(m.user, groupCount(m.user) + 1);
          return commit(
            [putGroup(gid, g), { type: 'put', table: MEMBERS, key: [userBytes(m.user), gid], value: Uint8Array.of(1) }],
            m.replyTo,
            gid,
            { t: 'group_created', gid },
          );
        }
        case 'leave': {
          const g = member(m.gid, m.user);
          if (g === null) return error(m.replyTo, m.gid, 'not_member');
          if (g.members.get(m.user) === 'admin' && g.members.size > 1 && [...g.members.values()].filter((r) => r === 'admin').length === 1) {
            return error(m.replyTo, m.gid, 'last_admin');
          }
          g.members.delete(m.user);
          counts.set(m.user, groupCount(m.user) - 1);
          const ops: StorageOp[] = [{ type: 'remove', table: MEMBERS, key: [userBytes(m.user), m.gid] }];
          if (g.members.size === 0) {
            cache.set(m.gid, null);
            ops.push({ type: 'remove', table: GROUPS, key: [m.gid] });
          } else ops.push(putGroup(m.gid, g));
          ops.push({ type: 'remove', table: SENDER_KEYS, key: [m.gid, userBytes(m.user)] });
          return commit(ops, m.replyTo, m.gid, { t: 'group_left', gid: m.gid });
        }
        case 'roster': {
          const g = member(m.gid, m.user);
          if (g === null) return error(m.replyTo, m.gid, 'not_member');
          return reply(m.replyTo, { t: 'group_roster', gid: m.gid, members: [...g.members.keys()].map(userBytes) });
        }
        case 'msg': {
          const g = member(m.gid, m.user);
          if (g === null) return error(m.replyTo, m.gid, 'not_member');
          const header = groupHeaderWithSender(m.header, userBytes(m.user));
          if (!header.ok) return error(m.replyTo, m.gid, 'bad_header');
          return fanOut(g, m.user, encodeGroupMsgFrame(enc.encode(m.gid), header.bytes, m.ciphertext));
        }
        case 'sender_key': {
          const g = member(m.gid, m.user);
          if (g === null) return error(m.replyTo, m.gid, 'not_member');
          const frame = encodeSenderKeyDistFrame(enc.encode(m.gid), m.keydata);
          // Store, then forward once durable.
          void deps.storage.batch([{ type: 'put', table: SENDER_KEYS, key: [m.gid, userBytes(m.user)], value: m.keydata }]).then((w) => {
            if (!w.ok) return error(m.replyTo, m.gid, 'storage_failed');
            const now = load(m.gid);
            if (now !== null) fanOut(now, m.user, frame);
          });
          return;
        }
        case 'admin':
          return admin(m);
      }
    };

    const admin = (m: Extract<GroupsRequest, { t: 'admin' }>): void => {
      const g = member(m.gid, m.actor);
      if (g === null) return error(m.replyTo, m.gid, 'not_member');
      if (g.members.get(m.actor) !== 'admin') return error(m.replyTo, m.gid, 'not_admin');
      const has = g.members.has(m.user);
      const ops: StorageOp[] = [];
      switch (m.op) {
        case 'add':
          if (has) return error(m.replyTo, m.gid, 'already_member');
          if (g.members.size >= MAX_GROUP_MEMBERS) return error(m.replyTo, m.gid, 'group_full');
          if (groupCount(m.user) >= MAX_GROUPS_PER_USER) return error(m.replyTo, m.gid, 'too_many_groups');
          g.members.set(m.user, 'member');
          counts.set(m.user, groupCount(m.user) + 1);
          ops.push({ type: 'put', table: MEMBERS, key: [userBytes(m.user), m.gid], value: Uint8Array.of(0) });
          break;
        case 'remove':
          if (!has) return error(m.replyTo, m.gid, 'not_member');
          if (m.user === m.actor) return error(m.replyTo, m.gid, 'last_admin');
          g.members.delete(m.user);
          counts.set(m.user, groupCount(m.user) - 1);
          ops.push({ type: 'remove', table: MEMBERS, key: [userBytes(m.user), m.gid] });
          ops.push({ type: 'remove', table: SENDER_KEYS, key: [m.gid, userBytes(m.user)] });
          break;
        case 'promote':
          if (!has) return error(m.replyTo, m.gid, 'not_member');
          g.members.set(m.user, 'admin');
          break;
        case 'demote': {
          if (!has) return error(m.replyTo, m.gid, 'not_member');
          const admins = [...g.members.values()].filter((r) => r === 'admin').length;
          if (g.members.get(m.user) === 'admin' && admins === 1) return error(m.replyTo, m.gid, 'last_admin');
          g.members.set(m.user, 'member');
          break;
        }
      }
      ops.push(putGroup(m.gid, g));
      commit(ops, m.replyTo, m.gid, { t: 'group_done', gid: m.gid });
    };

    return (raw) => handle(raw as GroupsRequest);
  };
}
