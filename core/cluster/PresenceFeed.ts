/**
 * Presence everywhere (requirement M6): every node keeps a local PresenceTable holding every
 * user's online state and last-seen, so GET_STATUS is answered locally on any node. The router
 * shards of a group's owner change it; this feed publishes those changes on core NATS
 * (`iris.<c>.presence`, the changes of one turn in one message) and applies every other node's
 * changes to the local table. Core NATS is at most once, so a node also asks a group's owner
 * for a snapshot of the group's users (`iris.<c>.presence.snapshot.<g>`, paged by request/
 * reply) when it starts, when its NATS link comes back and when the group's owner changes; the
 * owner answers from its table (a request names the owner asked, so a node that still believes
 * it owns the group does not answer; one that fails is asked again; a user whose live change
 * arrived while the snapshot was on its way keeps that change). Soft state: a lost change is
 * repaired by the next snapshot, never by anything durable. It never blocks a shard and never throws at a publisher.
 *
 * Lost changes are noticed: each node numbers the batches it publishes (with the wall time its
 * feed started, so a restarted node's numbers are new), and one that published nothing for
 * PRESENCE_BEAT_MS publishes an empty numbered batch. A node that sees a number skipped, or a
 * new start, asks for a snapshot of every group its table says that node owns. Without it a
 * change lost in a cut between NATS servers (no link of either node went down, no owner
 * changed) stayed lost for good: a user online on every node but one.
 *
 *
 * Only a group's owner speaks for its users: a change (or a snapshot page) about a user is
 * applied only when it comes from the node this node's ownership table names as the owner of
 * the user's group, and never about a group this node owns itself. A deposed owner's changes
 * (its sessions' monitors firing when it lost the cluster, published when its link came back)
 * would otherwise overwrite what the new owner's shard knows, on every node and on the owner
 * itself; a change that arrives before this node's table names its sender as the owner is
 * repaired by the snapshot asked for when the table changes.
 */
import { decodeValue, encodeValue } from '../../runtime/Envelope.js';
import type { ClusterTransport, Env, TimerHandle } from '../../runtime/Env.js';
import { PRESENCE_BEAT_MS, PRESENCE_SNAPSHOT_CHUNK, PRESENCE_SNAPSHOT_RETRY_MS, PRESENCE_SNAPSHOT_TIMEOUT_MS } from '../defaults.js';
import type { PresenceTable } from '../Presence.js';
import { userBytes, userKey, type UserKey } from '../UserId.js';
import type { ClusterNames } from './ClusterNames.js';
import type { OwnershipTable } from './OwnershipTable.js';
import type { ShardGroups } from './ShardGroups.js';

export interface PresenceFeedOptions {
  env: Env;
  transport: ClusterTransport;
  names: ClusterNames;
  /** This node's name (its own publications are skipped on arrival). */
  node: string;
  table: PresenceTable;
  groups: ShardGroups;
  ownership: OwnershipTable;
}

/** [user bytes, online, lastSeen] */
type WireChange = [Uint8Array, boolean, number];

export interface PresenceFeedStats {
  published: number;
  applied: number;
  /** Changes dropped because their sender is not the owner of the user's group (as this node's table says). */
  notFromOwner: number;
  /** Batches from another node found missing (a number skipped) or a node's feed restarted: its groups were asked again. */
  gaps: number;
  snapshots: number;
  snapshotFailures: number;
}

export class PresenceFeed {
  readonly stats: PresenceFeedStats = { published: 0, applied: 0, notFromOwner: 0, gaps: 0, snapshots: 0, snapshotFailures: 0 };
  private pending: WireChange[] = [];
  private flushScheduled = false;
  /** This feed's start (wall ms) and the number of its last published batch. */
  private start0 = 0;
  private sent = 0;
  private publishedSinceBeat = false;
  private beatTimer: TimerHandle | null = null;
  /** What each other node's feed last published: its start and batch number. */
  private readonly heard = new Map<string, { start: number; n: number }>();
  private readonly stops: Array<() => void> = [];
  private running = false;
  /**
   * Groups with a snapshot request under way (one at a time per group), with the users of the
   * group a live change was applied for since the request was sent: the snapshot leaves them be
   * (its answer may be applied after a newer change that crossed it).
   */
  private readonly asking = new Map<number, Set<UserKey>>();

  constructor(private readonly o: PresenceFeedOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.start0 = this.o.env.clock.wallMs();
    this.sent = 0;
    this.scheduleBeat();
    const t = this.o.transport;
    const changes = t.subscribe(this.o.names.presence, (d) => this.onChanges(d));
    const snapshots = t.subscribe(this.o.names.presenceSnapshotAll, (d, subject, reply) => this.onSnapshotRequest(subject, d, reply));
    this.stops.push(() => changes.unsubscribe(), () => snapshots.unsubscribe());
    this.stops.push(this.o.table.watch((u, online, lastSeen) => this.changed(u, online, lastSeen)));
    this.stops.push(
      t.onLinkState((s) => {
        if (s === 'up') this.askAll();
      }),
    );
    this.stops.push(
      this.o.ownership.subscribe((c) => {
        if (c.t === 'group' && c.record.owner !== c.previous?.owner) this.ask(c.group);
      }),
    );
    this.askAll();
  }

  stop(): void {
    this.running = false;
    if (this.beatTimer !== null) this.o.env.timers.clearTimer(this.beatTimer);
    this.beatTimer = null;
    for (const s of this.stops.splice(0)) s();
  }

  /** Every PRESENCE_BEAT_MS: an empty numbered batch, if nothing was published meanwhile. */
  private scheduleBeat(): void {
    this.beatTimer = this.o.env.timers.setTimer(PRESENCE_BEAT_MS, () => {
      this.beatTimer = null;
      if (!this.running) return;
      if (!this.publishedSinceBeat) this.publish([]);
      this.publishedSinceBeat = false;
      this.scheduleBeat();
    });
  }

  private publish(changes: WireChange[]): void {
    this.o.transport.publish(this.o.names.presence, encodeValue([this.o.node, changes, ++this.sent, this.start0]));
    this.publishedSinceBeat = true;
    this.stats.published++;
  }

  /** Ask every group's owner (other than this node) for a snapshot. */
  askAll(): void {
    for (let g = 0; g < this.o.groups.count; g++) this.ask(g);
  }

  /**
   * Ask group `g`'s owner for the state of its users, page by page, and apply it; a request that
   * fails (the owner unreachable, or not yet serving) is asked again PRESENCE_SNAPSHOT_RETRY_MS
   * later, of the owner the table names then.
   */
  ask(g: number): void {
    const owner = this.o.ownership.ownerOf(g);
    if (!this.running || owner === undefined || owner === this.o.node || this.asking.has(g)) return;
    this.asking.set(g, new Set());
    void this.fetch(g, owner).then((done) => {
      this.asking.delete(g);
      if (!done && this.running) this.o.env.timers.setTimer(PRESENCE_SNAPSHOT_RETRY_MS, () => this.ask(g));
    });
  }

  /** Fetch group `g`'s snapshot from `owner`; false when it could not be had whole. */
  private async fetch(g: number, owner: string): Promise<boolean> {
    let from = 0;
    for (let page = 0; page < 1_000_000; page++) {
      // The request names the owner asked: a node that still believes it owns the group does not answer for it.
      const r = await this.o.transport.request(this.o.names.presenceSnapshot(g), encodeValue([from, owner]), PRESENCE_SNAPSHOT_TIMEOUT_MS);
      if (!this.running) return true;
      if (!r.ok) {
        this.stats.snapshotFailures++;
        return false;
      }
      let v: unknown;
      try {
        v = decodeValue(r.data);
      } catch {
        v = null;
      }
      if (!Array.isArray(v) || !Array.isArray(v[0]) || v[2] !== owner) {
        this.stats.snapshotFailures++;
        return false;
      }
      this.applyAll(owner, v[0] as WireChange[], this.asking.get(g));
      if (typeof v[1] !== 'number') {
        this.stats.snapshots++;
        return true;
      }
      from = v[1];
    }
    return true;
  }

  private changed(user: UserKey, online: boolean, lastSeen: number): void {
    if (!this.running) return;
    this.pending.push([userBytes(user), online, lastSeen]);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.o.env.timers.defer(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const all = this.pending;
    this.pending = [];
    for (let i = 0; i < all.length; i += PRESENCE_SNAPSHOT_CHUNK) this.publish(all.slice(i, i + PRESENCE_SNAPSHOT_CHUNK));
  };

  private onChanges(data: Uint8Array): void {
    let v: unknown;
    try {
      v = decodeValue(data);
    } catch {
      return;
    }
    if (!Array.isArray(v) || typeof v[0] !== 'string' || v[0] === this.o.node || !Array.isArray(v[1])) return;
    this.applyAll(v[0], v[1] as WireChange[]);
    if (typeof v[2] === 'number' && typeof v[3] === 'number') this.count(v[0], v[3], v[2]);
  }

  /** Batch `n` of `node`'s feed started at `start`: a number skipped or a new start asks its groups again. */
  private count(node: string, start: number, n: number): void {
    const last = this.heard.get(node);
    if (last !== undefined && last.start === start && n <= last.n) return; // a repeat, or overtaken
    this.heard.set(node, { start, n });
    if (last !== undefined && last.start === start && n === last.n + 1) return;
    if (last === undefined && n === 1) return;
    this.stats.gaps++;
    for (let g = 0; g < this.o.groups.count; g++) if (this.o.ownership.ownerOf(g) === node) this.ask(g);
  }

  /**
   * Apply what `from` says of its users, where it is the owner of their group as this node's
   * table has it: live changes, or a snapshot page (`snapshot`: the users it must leave be).
   */
  private applyAll(from: string, changes: readonly WireChange[], snapshot?: ReadonlySet<UserKey>): void {
    for (const c of changes) {
      if (!Array.isArray(c) || !(c[0] instanceof Uint8Array) || typeof c[1] !== 'boolean' || typeof c[2] !== 'number') continue;
      const user = userKey(c[0]);
      const g = this.o.groups.ofUser(user);
      if (this.o.ownership.ownerOf(g) !== from) {
        this.stats.notFromOwner++;
        continue;
      }
      if (snapshot !== undefined) {
        if (snapshot.has(user)) continue;
      } else this.asking.get(g)?.add(user);
      this.o.table.apply(user, c[1], c[2]);
      this.stats.applied++;
    }
  }

  /**
   * Answer a snapshot page of group g ([start] or [start, the owner asked]) if this node owns it
   * and is the owner asked: [changes, next page start | null, this node].
   */
  private onSnapshotRequest(subject: string, data: Uint8Array, reply: string | undefined): void {
    if (reply === undefined) return;
    const g = Number(subject.slice(subject.lastIndexOf('.') + 1));
    if (!Number.isInteger(g) || this.o.ownership.ownerOf(g) !== this.o.node) return;
    let from = 0;
    try {
      const f = decodeValue(data);
      const [start, owner] = Array.isArray(f) ? f : [f, undefined];
      if (owner !== undefined && owner !== this.o.node) return;
      if (typeof start === 'number' && start >= 0) from = start;
    } catch {
      return;
    }
    const page: WireChange[] = [];
    let index = 0;
    let more = false;
    this.o.table.forEach((user, online, lastSeen) => {
      if (more || this.o.groups.ofUser(user) !== g) return;
      if (index++ < from) return;
      if (page.length >= PRESENCE_SNAPSHOT_CHUNK) {
        more = true;
        return;
      }
      page.push([userBytes(user), online, lastSeen]);
    });
    this.o.transport.publish(reply, encodeValue([page, more ? from + page.length : null, this.o.node]));
  }
}
