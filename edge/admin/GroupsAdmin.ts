/**
 * The admin API's door to the groups server (core/Groups.ts): membership changes (add, remove,
 * promote, demote) made as one of the group's admins or, without an actor, as the operator,
 * and the roster with roles. Each request is a GenServer call from outside any process
 * (a temporary process, so a late reply lands nowhere) with a deadline, to the groups server
 * holding the group (in a cluster, `groups.<g>` on the owner of the gid's shard group). The
 * server answers a change only once it is durable; its error codes come back unchanged.
 *
 * This is the one place that knows the groups server's admin request shapes from the edge.
 */
import type { GroupError, GroupsAdminReply, GroupsAdminRequest, Role } from '../../core/Groups.js';
import { callService, type ServiceAddress } from '../../core/Router.js';
import type { UserKey } from '../../core/UserId.js';
import type { Scheduler } from '../../runtime/Scheduler.js';

export type GroupMemberOp = 'add' | 'remove' | 'promote' | 'demote';
export const GROUP_MEMBER_OPS: readonly GroupMemberOp[] = ['add', 'remove', 'promote', 'demote'];

/** The server's own codes, or: it is not running (`groups_unavailable`), or did not answer in time (`groups_timeout`). */
export type GroupsAdminError = GroupError | 'groups_unavailable' | 'groups_timeout';

export type GroupsAdminResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly code: GroupsAdminError };

export interface RosterEntry {
  readonly user: Uint8Array;
  readonly role: Role;
}

export interface GroupsAdmin {
  /** Adds, removes, promotes or demotes `user` in `gid`, as `actor` (an admin of the group) or, with null, as the operator; resolves once durable. */
  change(op: GroupMemberOp, gid: string, user: UserKey, actor: UserKey | null): Promise<GroupsAdminResult<void>>;
  /** The members of `gid` with their roles. */
  roster(gid: string): Promise<GroupsAdminResult<RosterEntry[]>>;
}

/** A GroupsAdmin calling, from `s`, the groups server `serverOf(gid)` names. */
export function groupsAdmin(s: Scheduler, serverOf: (gid: string) => ServiceAddress, timeoutMs: number): GroupsAdmin {
  const ask = async (request: GroupsAdminRequest): Promise<GroupsAdminResult<GroupsAdminReply & { ok: true }>> => {
    const r = await callService<GroupsAdminReply>(s, serverOf(request.gid), request, timeoutMs);
    if (!r.ok) return { ok: false, code: r.reason === 'timeout' ? 'groups_timeout' : 'groups_unavailable' };
    return r.value.ok ? { ok: true, value: r.value } : { ok: false, code: r.value.code };
  };
  return {
    async change(op, gid, user, actor) {
      const r = await ask({ t: 'admin', op, actor, gid, user });
      return r.ok ? { ok: true, value: undefined } : r;
    },
    async roster(gid) {
      const r = await ask({ t: 'admin_roster', gid });
      return r.ok ? { ok: true, value: r.value.members ?? [] } : r;
    },
  };
}
