/**
 * The admin API's door to the groups service (core/Groups.ts): membership changes (add,
 * remove, promote, demote) made as one of the group's admins, and the roster as seen by a
 * member. Each request runs in a temporary process that sends the service's request message,
 * waits for its reply (at most `timeoutMs`) and exits, so a late reply lands nowhere. The
 * service answers a change only once it is durable; its error codes come back unchanged.
 *
 * This is the one place that knows the groups service's message shapes from outside a
 * process: if the service becomes a GenServer, only `askGroups` changes.
 */
import { inTemporaryProcess } from '../../actors/Call.js';
import type { GroupError, GroupsReply, GroupsRequest } from '../../core/Groups.js';
import type { UserKey } from '../../core/UserId.js';
import { isDownMessage } from '../../runtime/ExitReason.js';
import { refEquals, type Pid } from '../../runtime/Pid.js';
import { TIMEOUT } from '../../runtime/ProcessContext.js';
import type { Scheduler } from '../../runtime/Scheduler.js';

export type GroupMemberOp = 'add' | 'remove' | 'promote' | 'demote';
export const GROUP_MEMBER_OPS: readonly GroupMemberOp[] = ['add', 'remove', 'promote', 'demote'];

/** The service's own codes, or: it is not running (`groups_unavailable`), or did not answer in time (`groups_timeout`). */
export type GroupsAdminError = GroupError | 'groups_unavailable' | 'groups_timeout';

export type GroupsAdminResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly code: GroupsAdminError };

export interface GroupsAdmin {
  /** `actor` (an admin of `gid`) adds, removes, promotes or demotes `user`; resolves once durable. */
  change(op: GroupMemberOp, gid: string, user: UserKey, actor: UserKey): Promise<GroupsAdminResult<void>>;
  /** The members of `gid` (user ids as bytes), as the member `asUser` sees them. */
  roster(gid: string, asUser: UserKey): Promise<GroupsAdminResult<Uint8Array[]>>;
}

/** A GroupsAdmin talking to the service registered as `name` on `s`. */
export function groupsAdmin(s: Scheduler, name: string, timeoutMs: number): GroupsAdmin {
  return {
    async change(op, gid, user, actor) {
      const r = await askGroups(s, name, (replyTo) => ({ t: 'admin', op, actor, gid, user, replyTo }), timeoutMs);
      if (!r.ok) return r;
      return r.value.t === 'group_done' ? { ok: true, value: undefined } : unexpected(r.value);
    },
    async roster(gid, asUser) {
      const r = await askGroups(s, name, (replyTo) => ({ t: 'roster', user: asUser, gid, replyTo }), timeoutMs);
      if (!r.ok) return r;
      return r.value.t === 'group_roster' ? { ok: true, value: r.value.members } : unexpected(r.value);
    },
  };
}

const GROUP_REPLIES: ReadonlySet<string> = new Set(['group_created', 'group_left', 'group_roster', 'group_done', 'group_error']);

function isGroupsReply(m: unknown): m is GroupsReply {
  return typeof m === 'object' && m !== null && GROUP_REPLIES.has((m as { t?: unknown }).t as string);
}

/** Sends one request to the groups service and waits for its reply; group_error becomes a failed result. */
function askGroups(s: Scheduler, name: string, request: (replyTo: Pid) => GroupsRequest, timeoutMs: number): Promise<GroupsAdminResult<GroupsReply>> {
  return inTemporaryProcess(
    s,
    async (ctx): Promise<GroupsAdminResult<GroupsReply>> => {
      const ref = ctx.monitor(name);
      ctx.send(name, request(ctx.self));
      const got = await ctx.receive((m) => isGroupsReply(m) || (isDownMessage(m) && refEquals(m.ref, ref)), timeoutMs);
      ctx.demonitor(ref, { flush: true });
      if (got === TIMEOUT) return { ok: false, code: 'groups_timeout' };
      if (!isGroupsReply(got)) return { ok: false, code: 'groups_unavailable' };
      return got.t === 'group_error' ? { ok: false, code: got.code } : { ok: true, value: got };
    },
    'GroupsAdmin',
  );
}

function unexpected(reply: GroupsReply): never {
  throw new Error(`groups service answered ${reply.t} to an admin request`);
}
