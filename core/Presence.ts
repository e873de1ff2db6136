/**
 * Presence and last-seen for the users of this node: written only by the router shards
 * (one writer per user), read directly by connections for GET_STATUS without a server call
 * (the pg pattern). Online means at least one live session; last-seen is the unix second of
 * the last disconnect. Later, cluster-wide presence feeds the same table from pub/sub.
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

export class PresenceTable {
  private readonly entries = new Map<UserKey, Entry>();

  status(user: UserKey): PresenceStatus {
    const e = this.entries.get(user);
    if (e === undefined) return { online: false, lastSeen: 0 };
    return { online: e.online, lastSeen: e.online ? 0 : e.lastSeen };
  }

  setOnline(user: UserKey): void {
    const e = this.entries.get(user);
    if (e === undefined) this.entries.set(user, { online: true, lastSeen: 0 });
    else e.online = true;
  }

  setOffline(user: UserKey, unixSeconds: number): void {
    const e = this.entries.get(user);
    if (e === undefined) this.entries.set(user, { online: false, lastSeen: unixSeconds });
    else {
      e.online = false;
      e.lastSeen = unixSeconds;
    }
  }

  onlineCount(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.online) n++;
    return n;
  }
}
