/**
 * Presence and last-seen for the users of this node: written only by the router shards
 * (one writer per user), read directly by connections for GET_STATUS without a server call
 * (the pg pattern). Online means at least one live session; last-seen is the unix second of
 * the last disconnect. In a cluster, every node's table is also fed the changes made on other
 * nodes (core/cluster/PresenceFeed.ts applies them with `apply`, which tells no watcher), and
 * the changes made here are watched so the feed can publish them.
 */
import type { UserKey } from './UserId.js';

interface Entry {
  online: boolean;
  lastSeen: number;
}

export interface PresenceStatus {
  online: boolean;
  /** Unix seconds of the last disconnect; 0 while online or if never seen. */
  lastSeen: number;
}

/** Told of every change a router shard of this node makes (not of `apply`). */
export type PresenceWatcher = (user: UserKey, online: boolean, lastSeen: number) => void;

export class PresenceTable {
  private readonly entries = new Map<UserKey, Entry>();
  private readonly watchers = new Set<PresenceWatcher>();

  status(user: UserKey): PresenceStatus {
    const e = this.entries.get(user);
    if (e === undefined) return { online: false, lastSeen: 0 };
    return { online: e.online, lastSeen: e.online ? 0 : e.lastSeen };
  }

  setOnline(user: UserKey): void {
    this.apply(user, true, 0);
    for (const w of this.watchers) w(user, true, 0);
  }

  setOffline(user: UserKey, unixSeconds: number): void {
    this.apply(user, false, unixSeconds);
    for (const w of this.watchers) w(user, false, unixSeconds);
  }

  /** Record a change made elsewhere (another node's shard); watchers are not told. */
  apply(user: UserKey, online: boolean, lastSeen: number): void {
    const e = this.entries.get(user);
    if (e === undefined) this.entries.set(user, { online, lastSeen: online ? 0 : lastSeen });
    else {
      e.online = online;
      if (!online) e.lastSeen = lastSeen;
    }
  }

  /** Hear every change made here; returns a function that stops it. */
  watch(w: PresenceWatcher): () => void {
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  /** Every user known here with their status (online users have lastSeen 0 unless seen before). */
  forEach(fn: (user: UserKey, online: boolean, lastSeen: number) => void): void {
    for (const [u, e] of this.entries) fn(u, e.online, e.lastSeen);
  }

  onlineCount(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.online) n++;
    return n;
  }
}
