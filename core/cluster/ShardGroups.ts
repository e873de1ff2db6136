/**
 * Shard groups: which of a cluster's `shard_groups` groups a key belongs to, and how a group's
 * data and services are named on a node. `group = hash32(key) mod shard_groups`, where a user's
 * key is its id bytes, a chat group's its gid text, and a key-directory entry goes with its
 * user. Pure and deterministic: every node computes the same group for the same key. It must
 * never depend on which nodes are alive (that is Placement's job) and the count must never
 * change for the life of a cluster (the control stream records it at bootstrap).
 *
 * On a node, table `t` of group `g` is the storage table `g<g>.t`, and the group's services
 * are registered locally as `shard.<g>`, `groups.<g>` and `keys.<g>` on the owner node.
 */
import { hash32, hash32Latin1 } from '../HashRing.js';
import { CORE_SETTINGS } from '../CoreSettings.js';
import type { UserKey } from '../UserId.js';
import { STORAGE_MAX_TABLES } from '../../runtime/defaults.js';

/** Most shard groups a cluster may have (config key shard_groups). */
export const MAX_SHARD_GROUPS = CORE_SETTINGS.shard_groups.max;

const utf8 = new TextEncoder();

export class ShardGroups {
  /** Groups numbered 0..count-1. */
  readonly count: number;

  constructor(count: number) {
    if (!Number.isInteger(count) || count < 1 || count > MAX_SHARD_GROUPS) throw new Error(`shard_groups must be a whole number in 1..${MAX_SHARD_GROUPS}, got ${count}`);
    this.count = count;
  }

  /** The group of a user (a one-char-per-byte UserKey), without converting it to bytes. */
  ofUser(user: UserKey): number {
    return hash32Latin1(user) % this.count;
  }

  /** The group of a user given as raw id bytes (the same answer as `ofUser`). */
  ofUserBytes(user: Uint8Array): number {
    return hash32(user) % this.count;
  }

  /** The group of a chat group, by its gid text. */
  ofChatGroup(gid: string): number {
    return hash32(utf8.encode(gid)) % this.count;
  }

  /** The group holding a user's key-directory entry: the user's own group. */
  ofKeyEntry(user: UserKey): number {
    return this.ofUser(user);
  }

  /** Every group number, in order. */
  all(): number[] {
    return Array.from({ length: this.count }, (_, g) => g);
  }
}

/** The node-local storage table holding table `table` of group `group`. */
export function groupTableName(group: number, table: string): string {
  return `g${group}.${table}`;
}

/** Local names of a group's services on its owner node. */
export function routerShardName(group: number): string {
  return `shard.${group}`;
}
export function groupsServerName(group: number): string {
  return `groups.${group}`;
}
export function keyDirectoryName(group: number): string {
  return `keys.${group}`;
}

/**
 * Tables each group holds on a node (the services' tables plus the replica's `meta`), to size
 * the storage engine: a node may hold every group, so it needs `count * TABLES_PER_GROUP`
 * tables on top of its own (runtime/node/LmdbStorage.ts `maxTables`).
 */
export const TABLES_PER_GROUP = 12;

/** Tables a node's storage engine must allow for a cluster of `count` shard groups (`maxTables`). */
export function clusterStorageTables(count: number): number {
  return count * TABLES_PER_GROUP + STORAGE_MAX_TABLES;
}
