/**
 * The core of a single node (no NATS, the `npm start` default): the offline mailboxes on the
 * node's storage, the per-node router (`router_pool_size` shards over a hash ring) and the
 * node-wide groups and key-directory servers under one supervisor. Every address is a local
 * name, sends are local and never lost, durability is `local`. It must stay the fast path: no
 * route keys, no confirmations, no retries.
 */
import * as Supervisor from '../actors/Supervisor.js';
import { newCoreCounters, type CoreCounters } from '../core/CoreCounters.js';
import { CORE_SUPERVISOR_INTENSITY, CORE_SUPERVISOR_PERIOD_S } from '../core/defaults.js';
import { GROUPS_NAME, startGroups } from '../core/Groups.js';
import type { Inbox } from '../core/Inbox.js';
import { KEYS_NAME, startKeyDirectory } from '../core/KeyDirectory.js';
import { MailboxInbox, RECEIPTS_TABLE } from '../core/MailboxInbox.js';
import { OfflineMailbox } from '../core/OfflineMailbox.js';
import { PresenceTable } from '../core/Presence.js';
import { startRouter } from '../core/Router.js';
import type { UserKey } from '../core/UserId.js';
import type { Env, StorageEngine } from '../runtime/Env.js';
import type { Scheduler } from '../runtime/Scheduler.js';
import type { IrisConfig } from './NodeConfig.js';
import type { ServiceCore } from './ServiceCore.js';

export { GROUPS_NAME, KEYS_NAME };

export interface SingleNodeCoreOptions {
  /** Takes `n` group fan-out tokens of `user` (edge/limits/UserRates.ts). */
  fanoutAllowed: (user: UserKey, n: number) => boolean;
  /** Wraps the inbox the router and sessions use (the simulator records what becomes durable). */
  wrapInbox?: (inner: Inbox) => Inbox;
}

export type StartCoreResult = { ok: true; core: ServiceCore } | { ok: false; message: string };

/** The single-writer state servers (groups, key directory) under one supervisor. */
async function startServers(
  s: Scheduler,
  storage: StorageEngine,
  shardFor: (u: UserKey) => string,
  fanoutAllowed: (u: UserKey, n: number) => boolean,
  counters: CoreCounters,
): Promise<{ ok: true } | { ok: false; message: string }> {
  const sup = await Supervisor.start(
    s,
    {
      flags: { strategy: 'one_for_one', intensity: CORE_SUPERVISOR_INTENSITY, period: CORE_SUPERVISOR_PERIOD_S },
      children: [
        { id: GROUPS_NAME, start: (ctx) => startGroups(ctx, { storage, shardFor, fanoutAllowed, counters }) },
        { id: KEYS_NAME, start: (ctx) => startKeyDirectory(ctx, storage) },
      ],
    },
    { name: 'services_sup' },
  );
  return sup.ok ? { ok: true } : { ok: false, message: `services failed to start: ${JSON.stringify(sup.reason)}` };
}

/** Start a single node's core on `s`; every failure names what to fix. */
export async function startSingleNodeCore(s: Scheduler, env: Env, storage: StorageEngine, config: IrisConfig, opts: SingleNodeCoreOptions): Promise<StartCoreResult> {
  const withStorage = { ...env, storage };
  const messages = OfflineMailbox.open(withStorage, { capacityPerUser: config.inbox_cap, maxBytesPerUser: config.inbox_max_bytes });
  if (!messages.ok) return { ok: false, message: `offline mailbox: ${messages.message}` };
  const receipts = OfflineMailbox.open(withStorage, { capacityPerUser: config.receipt_inbox_cap, table: RECEIPTS_TABLE });
  if (!receipts.ok) return { ok: false, message: `receipt store: ${receipts.message}` };
  const plain = new MailboxInbox(messages.mailbox, receipts.mailbox, storage, env.clock, env.log);
  const inbox = opts.wrapInbox !== undefined ? opts.wrapInbox(plain) : plain;
  const presence = new PresenceTable();
  const counters = newCoreCounters();
  const routed = await startRouter(s, config.router_pool_size, { inbox, presence, storage, counters });
  if (!routed.ok) return { ok: false, message: `router failed to start: ${JSON.stringify(routed.reason)}` };
  const router = routed.router;
  const servers = await startServers(s, storage, router.shardFor, opts.fanoutAllowed, counters);
  if (!servers.ok) return servers;
  return {
    ok: true,
    core: {
      presence,
      counters,
      router,
      routing: {
        shardFor: router.shardFor,
        groupsFor: () => GROUPS_NAME,
        groupsForNewGroup: () => GROUPS_NAME,
        keysFor: () => KEYS_NAME,
        inbox,
        cluster: null,
      },
      groupsServer: () => GROUPS_NAME,
      droppedReceipts: () => plain.droppedNotices,
      health: () => ({ cluster: null, roles: config.roles, quorum: true, safe_mode: false, node_count: 1, expected_nodes: 1, shard_groups_owned: null }),
      clusterStatus: () => Promise.resolve(null),
      clusterMetrics: () => null,
      stop: () => undefined,
    },
  };
}
