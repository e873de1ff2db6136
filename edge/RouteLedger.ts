/**
 * What one connection has sent into a cluster and not yet had answered for good: its routes
 * (messages on their way to the owner of the recipient's shard group) and its
 * acknowledgements (removals from its user's inbox on the owner). Core NATS delivers at most
 * once and ownership moves, so the connection keeps each until the owner answers and sends it
 * again meanwhile (docs/cluster.md, "Routing across nodes").
 *
 * Routes are numbered per shard group (a *lane*: 1, 2, …); a route is sent with its number and
 * the lane's `base`, the lowest number still waiting, and the owner's shard takes a lane's
 * numbers once and in order (core/RouteLanes.ts). So a lane is always sent again whole and in
 * order: when its oldest route has waited `retryMs`, when the owner it was sent to is no longer
 * the owner, or when the owner answered "not now" (`storage_unavailable`). A route waiting
 * longer than the horizon is given up (the client is told its fate is unknown).
 *
 * Pure bookkeeping: the caller sends, and gives the time.
 */
import type { RouterRoute } from '../core/RouterShard.js';
import { messageIdKey } from '../core/MessageId.js';

/** A route waiting for its owner's answer. */
export interface PendingRoute {
  readonly g: number;
  readonly n: number;
  /** The route as routed (without its ticket). */
  readonly msg: RouterRoute;
  /** The owner node it was last sent to ('' when no owner was known: not sent yet). */
  sentTo: string;
  /** When it was last sent (ms; -Infinity: due at the next retry). */
  sentAt: number;
  /** When it was first sent (ms): the horizon counts from here. */
  readonly firstAt: number;
}

/** An acknowledgement waiting for its owner's answer. */
export interface PendingAck {
  readonly id: Uint8Array;
  sentTo: string;
  sentAt: number;
  readonly firstAt: number;
}

interface Lane {
  /** The next number to give. */
  next: number;
  /** No waiting route of the lane has a lower number than this. */
  low: number;
  /** Waiting routes of the lane. */
  count: number;
  /** The owner the lane's routes were last sent to ('' none): a new route checks it in O(1). */
  owner: string;
}

/** Lane numbers stay below 2^32 per group, so (g, n) packs into one safe integer key. */
const LANE_SPAN = 0x1_0000_0000;

export class RouteLedger {
  /** Waiting routes in the order they were first sent (a Map keeps insertion order). */
  private readonly routes = new Map<number, PendingRoute>();
  private readonly lanes = new Map<number, Lane>();
  private readonly acks = new Map<string, PendingAck>();

  /** Routes waiting. */
  get size(): number {
    return this.routes.size;
  }

  /** Acknowledgements waiting. */
  get ackCount(): number {
    return this.acks.size;
  }

  /** Nothing waits. */
  get empty(): boolean {
    return this.routes.size === 0 && this.acks.size === 0;
  }

  /** Number a new route of lane `g` (not sent yet: `sentTo` '', due at once). */
  add(g: number, msg: RouterRoute, now: number): PendingRoute {
    let lane = this.lanes.get(g);
    if (lane === undefined) this.lanes.set(g, (lane = { next: 1, low: 1, count: 0, owner: '' }));
    const p: PendingRoute = { g, n: lane.next++, msg, sentTo: '', sentAt: -Infinity, firstAt: now };
    lane.count++;
    this.routes.set(g * LANE_SPAN + p.n, p);
    return p;
  }

  /** The lowest number of lane `g` still waiting (the next to give when none waits). */
  base(g: number): number {
    const lane = this.lanes.get(g);
    if (lane === undefined) return 1;
    if (lane.count === 0) return lane.next;
    while (lane.low < lane.next && !this.routes.has(g * LANE_SPAN + lane.low)) lane.low++;
    return lane.low;
  }

  /** Route `n` of lane `g` was answered for good; the route, or undefined if it was not waiting. */
  settle(g: number, n: number): PendingRoute | undefined {
    const key = g * LANE_SPAN + n;
    const p = this.routes.get(key);
    if (p === undefined) return undefined;
    this.routes.delete(key);
    this.lanes.get(g)!.count--;
    return p;
  }

  /** `p` is being sent to `owner` ('' when none is known: it waits) at `now`. */
  sent(p: PendingRoute, owner: string, now: number): void {
    p.sentTo = owner;
    p.sentAt = now;
    this.lanes.get(p.g)!.owner = owner;
  }

  /** Route `n` of lane `g` must be sent again (the owner said "not now"). */
  retry(g: number, n: number): void {
    const p = this.routes.get(g * LANE_SPAN + n);
    if (p !== undefined) p.sentAt = -Infinity;
  }

  /** The waiting routes of lane `g`, lowest number first. */
  lane(g: number): PendingRoute[] {
    const out: PendingRoute[] = [];
    for (const p of this.routes.values()) if (p.g === g) out.push(p);
    return out.sort((a, b) => a.n - b.n);
  }

  /** Whether lane `g` has routes waiting that were last sent to an owner other than `owner` (or not sent). */
  laneMoved(g: number, owner: string): boolean {
    const lane = this.lanes.get(g);
    return lane !== undefined && lane.count > 0 && lane.owner !== owner;
  }

  /**
   * Lanes to send again now: a route of theirs waited `retryMs` since it was last sent, was
   * asked to be sent again, or went to a node `ownerOf` no longer names.
   */
  lanesDue(now: number, retryMs: number, ownerOf: (g: number) => string | undefined): number[] {
    const due = new Set<number>();
    for (const p of this.routes.values()) {
      if (due.has(p.g)) continue;
      if (p.sentAt + retryMs <= now || p.sentTo !== (ownerOf(p.g) ?? '')) due.add(p.g);
    }
    return [...due];
  }

  /** Routes first sent `horizonMs` or more ago: taken out, to be given up. */
  expired(now: number, horizonMs: number): PendingRoute[] {
    const out: PendingRoute[] = [];
    for (const p of this.routes.values()) {
      if (p.firstAt + horizonMs > now) break; // first-sent order: the rest are younger
      out.push(p);
    }
    for (const p of out) this.settle(p.g, p.n);
    return out;
  }

  // ---- acknowledgements -------------------------------------------------------------------

  addAck(id: Uint8Array, now: number): PendingAck {
    const key = messageIdKey(id);
    let a = this.acks.get(key);
    if (a === undefined) this.acks.set(key, (a = { id, sentTo: '', sentAt: -Infinity, firstAt: now }));
    return a;
  }

  /** The owner confirmed the acknowledgement of `id` is durable. */
  ackDone(id: Uint8Array): void {
    this.acks.delete(messageIdKey(id));
  }

  /** Acknowledgements last sent to a node other than `owner` (or not sent). */
  acksMoved(owner: string): PendingAck[] {
    const out: PendingAck[] = [];
    for (const a of this.acks.values()) if (a.sentTo !== owner) out.push(a);
    return out;
  }

  /**
   * Acknowledgements to send again (waited `retryMs`, or went to a node that is no longer the
   * owner); those first sent `horizonMs` ago are dropped instead (the message comes back at
   * the next login: at least once).
   */
  acksDue(now: number, retryMs: number, owner: string, horizonMs: number): PendingAck[] {
    const out: PendingAck[] = [];
    for (const [k, a] of this.acks) {
      if (a.firstAt + horizonMs <= now) this.acks.delete(k);
      else if (a.sentAt + retryMs <= now || a.sentTo !== owner) out.push(a);
    }
    return out;
  }
}
