/**
 * The services of one shard group on its owner node, over the group's ReplicatedStorage: the
 * group's offline mailboxes (messages and receipts), its router shard, its groups server and
 * its key directory, under one supervisor linked to the group's replica and registered locally
 * as `shard.<g>`, `groups.<g>`, `keys.<g>` (`group_sup.<g>` for the supervisor). They are the
 * single-node services unchanged: only their names, their storage and where a user's shard is
 * differ. The replica stops them at once (exit `not_owner`) when the group is lost; they never
 * outlive their replica.
 */
import * as Supervisor from '../../actors/Supervisor.js';
import type { StorageEngine } from '../../runtime/Env.js';
import type { Pid } from '../../runtime/Pid.js';
import type { ProcessContext } from '../../runtime/ProcessContext.js';
import type { CoreCounters } from '../CoreCounters.js';
import { CORE_DEFAULTS } from '../CoreSettings.js';
import { CORE_SUPERVISOR_INTENSITY, CORE_SUPERVISOR_PERIOD_S } from '../defaults.js';
import { startGroups } from '../Groups.js';
import type { Inbox } from '../Inbox.js';
import { startKeyDirectory } from '../KeyDirectory.js';
import { MailboxInbox, RECEIPTS_TABLE } from '../MailboxInbox.js';
import { OfflineMailbox } from '../OfflineMailbox.js';
import type { PresenceTable } from '../Presence.js';
import type { ServiceAddress } from '../Router.js';
import { routerShard } from '../RouterShard.js';
import type { UserKey } from '../UserId.js';
import { groupsServerName, keyDirectoryName, routerShardName, type ShardGroups } from './ShardGroups.js';

/** What every group's services share on a node. */
export interface GroupServicesDeps {
  groups: ShardGroups;
  /** The node's presence table (the feed publishes the shards' changes). */
  presence: PresenceTable;
  counters: CoreCounters;
  /** The router shard of `user`, wherever its group's owner is (the groups server fans out there). */
  shardFor(user: UserKey): ServiceAddress;
  /** Takes `n` group fan-out tokens of `user` (edge/limits/UserRates.ts); false when short. */
  fanoutAllowed(user: UserKey, n: number): boolean;
  /** Inbox caps (config keys inbox_cap, inbox_max_bytes, receipt_inbox_cap). */
  inboxCap?: number;
  inboxMaxBytes?: number;
  receiptInboxCap?: number;
  /** Groups servers answer members' messages with the recipients, for the requester to route (core/Groups.ts). */
  fanOutByRequester?: boolean;
  /** Wraps each group's inbox (the simulator records what becomes durable). */
  wrapInbox?: (inner: Inbox, group: number) => Inbox;
  /**
   * Whether the router shards serve inbox reads (default: always): not in safe mode, where this
   * node may have been replaced as the group's owner and its copy may still hold messages whose
   * removal the new owner made durable.
   */
  readable?: () => boolean;
}

export type StartGroupServicesResult = { ok: true; pid: Pid } | { ok: false; message: string };

/** The local name of group `g`'s services supervisor. */
export function groupSupervisorName(group: number): string {
  return `group_sup.${group}`;
}

/** Start group `group`'s services on `storage`, linked to `ctx` (the group's replica). */
export async function startGroupServices(ctx: ProcessContext, group: number, storage: StorageEngine, deps: GroupServicesDeps): Promise<StartGroupServicesResult> {
  const env = { ...ctx.env, storage };
  const messages = OfflineMailbox.open(env, { capacityPerUser: deps.inboxCap ?? CORE_DEFAULTS.inbox_cap, maxBytesPerUser: deps.inboxMaxBytes ?? CORE_DEFAULTS.inbox_max_bytes });
  if (!messages.ok) return { ok: false, message: `group ${group} offline mailbox: ${messages.message}` };
  const receipts = OfflineMailbox.open(env, { capacityPerUser: deps.receiptInboxCap ?? CORE_DEFAULTS.receipt_inbox_cap, table: RECEIPTS_TABLE });
  if (!receipts.ok) return { ok: false, message: `group ${group} receipt store: ${receipts.message}` };
  const plain = new MailboxInbox(messages.mailbox, receipts.mailbox, storage, ctx.env.clock, ctx.env.log);
  const inbox = deps.wrapInbox !== undefined ? deps.wrapInbox(plain, group) : plain;
  const shard = routerShardName(group);
  const sup = await Supervisor.startLink(
    ctx,
    {
      flags: { strategy: 'one_for_one', intensity: CORE_SUPERVISOR_INTENSITY, period: CORE_SUPERVISOR_PERIOD_S },
      children: [
        {
          id: shard,
          start: (c) => ({
            ok: true as const,
            pid: c.spawnLink(routerShard({ inbox, presence: deps.presence, storage, counters: deps.counters, owns: (u) => deps.groups.ofUser(u) === group, ...(deps.readable !== undefined ? { readable: deps.readable } : {}) }), { name: shard, label: 'RouterShard' }),
          }),
        },
        {
          id: groupsServerName(group),
          start: (c) =>
            startGroups(
              c,
              {
                storage,
                shardFor: deps.shardFor,
                fanoutAllowed: deps.fanoutAllowed,
                counters: deps.counters,
                acceptGid: (gid) => deps.groups.ofChatGroup(gid) === group,
                ...(deps.fanOutByRequester === true ? { fanOutByRequester: true } : {}),
              },
              groupsServerName(group),
            ),
        },
        { id: keyDirectoryName(group), start: (c) => startKeyDirectory(c, storage, keyDirectoryName(group)) },
      ],
    },
    { name: groupSupervisorName(group) },
  );
  return sup.ok ? { ok: true, pid: sup.pid } : { ok: false, message: `group ${group} services failed to start: ${JSON.stringify(sup.reason)}` };
}
