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
 * order: when its oldest route has waited the retry wait, when the owner it was sent to is no
 * longer the owner, or when the owner answered "not now" (`storage_unavailable`). A route waiting
 * longer than the horizon is given up (the client is told its fate is unknown).
 *
 * The retry wait adapts to how long answers take, as TCP's retransmission timer does (RFC 6298):
 * `retryMs` (route_retry_ms) at least; srtt + 4 × rttvar of the answers to routes and
 * acknowledgements sent once (a repeat's answer could be the first copy's: not measured); doubled
 * each time something is sent again for want of an answer, until a fresh answer is measured; at
 * most ROUTE_RETRY_MAX_FACTOR × `retryMs`. A fixed wait resends everything in flight once the
 * owners answer slower than it (a loaded cluster), which loads them more: a collapse. A lane (or
 * the acknowledgements) moved to a new owner is *probing* until that owner answers: sent again
 * every `retryMs`, as the new owner may not serve yet when the table names it (it claims, then
 * writes its marker, then starts its services), and a late answer there is no sign of load.
 * Every answer timed also feeds the node's estimate (`RouteTiming`, shared by its connections),
 * and a connection that has timed nothing yet waits by it, as TCP starts a new connection from
 * the metrics it kept for the destination: a fresh connection on a loaded cluster otherwise sent
 * its first routes again after `retryMs`, before any answer could come.
 *
 * At most `limit` (route_in_flight) routes of a lane are *in flight* (sent and not answered):
 * the rest are *held* here, numbered, in order, and go out (`sendable`) as answers free room.
 * Only routes in flight are timed and sent again, so a held route costs the owners nothing and
 * a lane sent again is at most `limit` routes. Without it a connection put everything the
 * client had in flight (up to route_window) on the owners at once; once that was more than they
 * serve in a retry wait, every lane timed out and went out again whole, and the repeats loaded
 * the owners further: a collapse into resends (1,000 senders with 16 messages each in flight
 * cross-node: 11,104 routes and 14,464 acknowledgements sent again in 5 s, 453 µs of server CPU
 * per message delivered, against 92 resends and 278 µs with 4 in flight). Waiting at the edge is
 * cheap; the client's socket stops being read once route_window routes wait (V1Connection).
 * Routes in flight are always the lowest numbers of their lane, so the owner still takes a lane's
 * numbers in order, and a lane sent again is its routes in flight, in order.
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
  /** Times it was sent to an owner (its answer times the owner only when it is 1). */
  sends: number;
  /** Numbered but not sent yet: waits for room in flight (no timer runs for it). */
  held: boolean;
}

/** An acknowledgement waiting for its owner's answer. */
export interface PendingAck {
  readonly id: Uint8Array;
  sentTo: string;
  sentAt: number;
  readonly firstAt: number;
  sends: number;
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
  /** Moved to `owner`, which has not answered the lane since: retried every retryMs. */
  probing: boolean;
  /** Waiting routes not held. */
  flying: number;
  /** Held routes, lowest number first (all above the lane's routes in flight). */
  readonly held: PendingRoute[];
}

/** A node's smoothed answer time and its variation (ms; srtt < 0: nothing measured yet). */
export interface RouteTiming {
  srtt: number;
  rttvar: number;
}

/** A node's answer-time estimate before anything is measured. */
export function routeTiming(): RouteTiming {
  return { srtt: -1, rttvar: 0 };
}

/** Lane numbers stay below 2^32 per group, so (g, n) packs into one safe integer key. */
const LANE_SPAN = 0x1_0000_0000;

/** The retry wait never exceeds this many times route_retry_ms (the horizon gives up anyway). */
export const ROUTE_RETRY_MAX_FACTOR = 8;

export class RouteLedger {
  /** Waiting routes in the order they were first sent (a Map keeps insertion order). */
  private readonly routes = new Map<number, PendingRoute>();
  private readonly lanes = new Map<number, Lane>();
  private readonly acks = new Map<string, PendingAck>();
  /** Smoothed answer time and its variation (ms; srtt < 0: nothing measured yet). */
  private readonly own: RouteTiming = routeTiming();
  /** Doubles each time something is sent again for want of an answer; 1 after a fresh answer. */
  private backoff = 1;
  /** The owner the acknowledgements were last sent to, and whether it has answered since they moved there. */
  private ackOwner = '';
  private acksProbing = false;
  /** When the back-off last doubled, and its value before (one doubling per retry round, routes and acknowledgements alike). */
  private lastTimeoutAt = -Infinity;
  private backoffBefore = 1;

  /** `node`: the estimate shared by the node's connections (one of its own when not given). */
  constructor(private readonly node: RouteTiming = routeTiming()) {}

  /** Routes waiting. */
  get size(): number {
    return this.routes.size;
  }

  /** Routes of lane `g` sent (or given to no owner yet) and not answered: waiting and not held. */
  inFlight(g: number): number {
    return this.lanes.get(g)?.flying ?? 0;
  }

  /** Acknowledgements waiting. */
  get ackCount(): number {
    return this.acks.size;
  }

  /** Nothing waits. */
  get empty(): boolean {
    return this.routes.size === 0 && this.acks.size === 0;
  }

  /** Number a new route of lane `g`: held until `sendable` lets it go (or `sent` sends it). */
  add(g: number, msg: RouterRoute, now: number): PendingRoute {
    let lane = this.lanes.get(g);
    if (lane === undefined) this.lanes.set(g, (lane = { next: 1, low: 1, count: 0, owner: '', probing: false, flying: 0, held: [] }));
    const p: PendingRoute = { g, n: lane.next++, msg, sentTo: '', sentAt: -Infinity, firstAt: now, sends: 0, held: true };
    lane.count++;
    this.routes.set(g * LANE_SPAN + p.n, p);
    lane.held.push(p);
    return p;
  }

  /**
   * The held routes of lane `g` that fit in flight now (at most `limit` of the lane in flight),
   * lowest number first; each goes out with `sent`, in this order.
   */
  sendable(g: number, limit: number): PendingRoute[] {
    const lane = this.lanes.get(g);
    if (lane === undefined) return [];
    return lane.held.slice(0, Math.max(0, limit - lane.flying));
  }

  /** The lanes that hold routes. */
  holding(): number[] {
    const out: number[] = [];
    for (const [g, lane] of this.lanes) if (lane.held.length > 0) out.push(g);
    return out;
  }

  /** The lowest number of lane `g` still waiting (the next to give when none waits). */
  base(g: number): number {
    const lane = this.lanes.get(g);
    if (lane === undefined) return 1;
    if (lane.count === 0) return lane.next;
    while (lane.low < lane.next && !this.routes.has(g * LANE_SPAN + lane.low)) lane.low++;
    return lane.low;
  }

  /**
   * Route `n` of lane `g` was answered for good (at `now`, when given: the answer is timed);
   * the route, or undefined if it was not waiting.
   */
  settle(g: number, n: number, now?: number): PendingRoute | undefined {
    const key = g * LANE_SPAN + n;
    const p = this.routes.get(key);
    if (p === undefined) return undefined;
    this.routes.delete(key);
    const lane = this.lanes.get(g)!;
    if (p.held) lane.held.splice(lane.held.indexOf(p), 1);
    else lane.flying--;
    lane.count--;
    lane.probing = false;
    if (now !== undefined && p.sends === 1) this.answeredAfter(now - p.sentAt);
    return p;
  }

  /** `p` is being sent to `owner` ('' when none is known: it waits) at `now` (a held route is in flight from now). */
  sent(p: PendingRoute, owner: string, now: number): void {
    const lane = this.lanes.get(p.g)!;
    if (p.held) {
      p.held = false;
      lane.held.splice(lane.held.indexOf(p), 1);
      lane.flying++;
    }
    p.sentTo = owner;
    p.sentAt = now;
    if (owner !== '') p.sends++;
    if (owner !== '' && lane.owner !== '' && lane.owner !== owner) lane.probing = true;
    lane.owner = owner;
  }

  /**
   * How long something sent waits for its answer before it is sent again: at least `retryMs`,
   * srtt + 4 × rttvar once answers were timed, times the back-off, at most
   * ROUTE_RETRY_MAX_FACTOR × `retryMs`.
   */
  retryWait(retryMs: number): number {
    return this.waitWith(retryMs, this.backoff);
  }

  private waitWith(retryMs: number, backoff: number): number {
    const t = this.own.srtt < 0 ? this.node : this.own;
    const measured = t.srtt < 0 ? 0 : t.srtt + 4 * t.rttvar;
    return Math.min(ROUTE_RETRY_MAX_FACTOR * retryMs, Math.max(retryMs, measured) * backoff);
  }

  /** The wait a retry round at `now` uses: a doubling made earlier in the same round does not count yet. */
  private waitAt(now: number, retryMs: number): number {
    return this.waitWith(retryMs, now === this.lastTimeoutAt ? this.backoffBefore : this.backoff);
  }

  /** An answer came `ms` after its only send (RFC 6298's estimator, here and the node's); the back-off ends. */
  private answeredAfter(ms: number): void {
    const r = Math.max(0, ms);
    measure(this.own, r);
    measure(this.node, r);
    this.backoff = 1;
  }

  /** Something is sent again at `now` because its answer did not come within the retry wait. */
  private timedOut(now: number): void {
    if (now === this.lastTimeoutAt) return;
    this.lastTimeoutAt = now;
    this.backoffBefore = this.backoff;
    if (this.backoff < ROUTE_RETRY_MAX_FACTOR) this.backoff *= 2;
  }

  /** Route `n` of lane `g` must be sent again (the owner said "not now"). */
  retry(g: number, n: number): void {
    const p = this.routes.get(g * LANE_SPAN + n);
    if (p !== undefined && !p.held) p.sentAt = -Infinity;
  }

  /** The routes of lane `g` in flight (held ones not), lowest number first. */
  lane(g: number): PendingRoute[] {
    const out: PendingRoute[] = [];
    for (const p of this.routes.values()) if (p.g === g && !p.held) out.push(p);
    return out.sort((a, b) => a.n - b.n);
  }

  /** Whether lane `g` has routes waiting that were last sent to an owner other than `owner` (or not sent). */
  laneMoved(g: number, owner: string): boolean {
    const lane = this.lanes.get(g);
    return lane !== undefined && lane.count > 0 && lane.owner !== owner;
  }

  /**
   * Lanes to send again now: a route of theirs waited the retry wait since it was last sent, was
   * asked to be sent again, or went to a node `ownerOf` no longer names. A lane due only because
   * its answer is late doubles the retry wait (the back-off).
   */
  lanesDue(now: number, retryMs: number, ownerOf: (g: number) => string | undefined): number[] {
    const wait = this.waitAt(now, retryMs);
    const due = new Set<number>();
    let late = false;
    for (const p of this.routes.values()) {
      if (p.held) continue; // not sent: not timed
      if (due.has(p.g)) continue;
      const moved = p.sentTo !== (ownerOf(p.g) ?? '');
      const probing = this.lanes.get(p.g)!.probing;
      if (moved || p.sentAt + (probing ? retryMs : wait) <= now) {
        due.add(p.g);
        if (!moved && !probing && p.sentAt !== -Infinity) late = true;
      }
    }
    if (late) this.timedOut(now);
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
    if (a === undefined) this.acks.set(key, (a = { id, sentTo: '', sentAt: -Infinity, firstAt: now, sends: 0 }));
    return a;
  }

  /** `a` is being sent to `owner` ('' when none is known: it waits) at `now`. */
  ackSent(a: PendingAck, owner: string, now: number): void {
    a.sentTo = owner;
    a.sentAt = now;
    if (owner === '') return;
    a.sends++;
    if (this.ackOwner !== '' && this.ackOwner !== owner) this.acksProbing = true;
    this.ackOwner = owner;
  }

  /** The owner confirmed the acknowledgement of `id` is durable (at `now`, when given: the answer is timed). */
  ackDone(id: Uint8Array, now?: number): void {
    const key = messageIdKey(id);
    const a = this.acks.get(key);
    if (a === undefined) return;
    this.acks.delete(key);
    this.acksProbing = false;
    if (now !== undefined && a.sends === 1) this.answeredAfter(now - a.sentAt);
  }

  /** Acknowledgements last sent to a node other than `owner` (or not sent). */
  acksMoved(owner: string): PendingAck[] {
    const out: PendingAck[] = [];
    for (const a of this.acks.values()) if (a.sentTo !== owner) out.push(a);
    return out;
  }

  /**
   * Acknowledgements to send again (waited the retry wait, or went to a node that is no longer
   * the owner); those first sent `horizonMs` ago are dropped instead (the message comes back at
   * the next login: at least once). One due only because its answer is late doubles the retry wait.
   */
  acksDue(now: number, retryMs: number, owner: string, horizonMs: number): PendingAck[] {
    const wait = this.acksProbing ? retryMs : this.waitAt(now, retryMs);
    const out: PendingAck[] = [];
    let late = false;
    for (const [k, a] of this.acks) {
      if (a.firstAt + horizonMs <= now) this.acks.delete(k);
      else if (a.sentTo !== owner) out.push(a);
      else if (a.sentAt + wait <= now) {
        out.push(a);
        if (a.sentAt !== -Infinity && !this.acksProbing) late = true;
      }
    }
    if (late) this.timedOut(now);
    return out;
  }
}

/** RFC 6298's estimator: `t` takes an answer time `r` (ms). */
function measure(t: RouteTiming, r: number): void {
  if (t.srtt < 0) {
    t.srtt = r;
    t.rttvar = r / 2;
  } else {
    t.rttvar = 0.75 * t.rttvar + 0.25 * Math.abs(t.srtt - r);
    t.srtt = 0.875 * t.srtt + 0.125 * r;
  }
}
