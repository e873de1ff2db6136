/**
 * A router shard's record of the routes each connection sent it, in a cluster (docs/cluster.md,
 * "Routing across nodes"). A connection numbers its routes per shard group (its *lane* for that
 * group: 1, 2, …) and sends each again, with the same number, until the owner answers; every
 * route also carries `base`, the lowest number of the lane the connection has not yet had
 * answered for good. The shard takes a lane's routes strictly in number order, once:
 *
 * - `n < next` and not being written: a repeat. Answered again: `refused` with the code it got
 *   if it was refused, otherwise `accepted` (it was taken and is durable).
 * - `n` being written: a repeat of a write in flight (its answer will come), or of a failed
 *   write not yet given back; dropped.
 * - `n > next`: an earlier route of the lane is missing (lost in flight, or sent to the old
 *   owner); dropped: the connection sends the lane again, in order, so the order of one
 *   sender's messages holds through losses and ownership moves.
 * - `n == next`: taken.
 *
 * The lane's state is kept durably in the group's table `route_lanes` (one row per connection,
 * written in the same turn as the message it accompanies, so it is in the same shard-stream
 * entry and a new owner has it): the highest number settled and the recent refusals. Because a
 * shard stream entry lands only after every entry issued before it, a durable row that says
 * "settled up to h" means every route of the lane up to h was written or refused. Rows and lanes
 * unused for ROUTE_LANES_KEEP_MS are pruned (the edge gives a route up long before).
 *
 * Pure bookkeeping: no I/O beyond the table it is given, no clock of its own.
 */
import type { StorageTable } from '../runtime/Env.js';
import { decodeValue, encodeValue } from '../runtime/Envelope.js';
import { ROUTE_LANE_REFUSALS_KEPT } from './defaults.js';

/** The group table holding one row per connection lane. */
export const ROUTE_LANES_TABLE = 'route_lanes';

/** A route's place in its connection's lane for the shard's group (cluster only). */
export interface RouteTicket {
  /** The shard group (echoed in answers, so the connection finds its lane). */
  readonly g: number;
  /** The route's number in the lane (from 1). */
  readonly n: number;
  /** The connection's lowest number of the lane not yet answered for good. */
  readonly base: number;
}

/** A refusal a lane remembers (the code is what the connection is told again on a repeat). */
export type LaneRefusal = 'inbox_full' | 'invalid_recipient';

/** What to do with an incoming ticketed route. */
export type LaneVerdict =
  | { readonly t: 'take' }
  | { readonly t: 'repeat_accepted' }
  | { readonly t: 'repeat_refused'; readonly code: LaneRefusal }
  | { readonly t: 'drop' };

interface LaneState {
  next: number;
  /** Numbers whose write is in flight. */
  readonly writing: Set<number>;
  /** Recent refusals (number → code), at most ROUTE_LANE_REFUSALS_KEPT. */
  readonly refused: Map<number, LaneRefusal>;
  /** When the lane was last used (the caller's clock, ms). */
  touched: number;
}

/** The durable row: [highest settled number, wall ms written, [[n, code], …]]. */
type Row = [number, number, Array<[number, LaneRefusal]>];

export class RouteLanes {
  private readonly lanes = new Map<string, LaneState>();

  constructor(private readonly table: StorageTable) {}

  /** Decide about route `t.n` of connection `conn`; `now` is any monotonic ms. */
  verdict(conn: string, t: RouteTicket, now: number): LaneVerdict {
    const lane = this.lane(conn, now);
    if (t.base > lane.next && lane.writing.size === 0) lane.next = t.base;
    if (lane.writing.has(t.n)) return DROP;
    if (t.n < lane.next) {
      const code = lane.refused.get(t.n);
      return code !== undefined ? { t: 'repeat_refused', code } : REPEAT_ACCEPTED;
    }
    return t.n === lane.next ? TAKE : DROP;
  }

  /**
   * Route `n` is being written (taken by `verdict`): returns the row to write in the same turn
   * (its key and value), so the row is durable exactly when the message is.
   */
  writing(conn: string, n: number, wallMs: number): { key: [string]; value: Uint8Array } {
    const lane = this.lanes.get(conn)!;
    lane.next = n + 1;
    lane.writing.add(n);
    return this.row(conn, lane, wallMs);
  }

  /** Route `n` was taken without a write of its own (a SEND_SEQ repeat): its row to write. */
  accepted(conn: string, n: number, wallMs: number): { key: [string]; value: Uint8Array } {
    const lane = this.lanes.get(conn)!;
    lane.next = n + 1;
    return this.row(conn, lane, wallMs);
  }

  /** Route `n` was refused for good without a write: remembered, and its row to write. */
  refused(conn: string, n: number, code: LaneRefusal, wallMs: number): { key: [string]; value: Uint8Array } {
    const lane = this.lanes.get(conn)!;
    lane.next = n + 1;
    lane.refused.set(n, code);
    if (lane.refused.size > ROUTE_LANE_REFUSALS_KEPT) lane.refused.delete(lane.refused.keys().next().value!);
    return this.row(conn, lane, wallMs);
  }

  /**
   * The write of route `n` settled. A failed one is given back: the lane's next number is `n`
   * again, so later routes wait (dropped as out of order) until `n` is sent again.
   */
  settled(conn: string, n: number, ok: boolean): void {
    const lane = this.lanes.get(conn);
    if (lane === undefined) return;
    lane.writing.delete(n);
    if (!ok && n < lane.next) lane.next = n;
  }

  /** Lanes held in memory. */
  get size(): number {
    return this.lanes.size;
  }

  /**
   * Forget lanes unused since `before` (ms, the caller's clock) with nothing in flight, and
   * return the keys of table rows written before `wallBefore` (wall ms) for the caller to remove.
   */
  prune(before: number, wallBefore: number): Array<[string]> {
    for (const [k, lane] of this.lanes) if (lane.touched < before && lane.writing.size === 0) this.lanes.delete(k);
    const old: Array<[string]> = [];
    for (const e of this.table.getRange({})) {
      const row = decodeRow(e.value);
      if (row === null || row[1] < wallBefore) old.push([String(e.key[0])]);
    }
    return old;
  }

  private lane(conn: string, now: number): LaneState {
    let lane = this.lanes.get(conn);
    if (lane === undefined) {
      const raw = this.table.get([conn]);
      const row = raw === undefined ? null : decodeRow(raw);
      lane = { next: row === null ? 1 : row[0] + 1, writing: new Set(), refused: new Map(row === null ? [] : row[2]), touched: now };
      this.lanes.set(conn, lane);
    }
    lane.touched = now;
    return lane;
  }

  private row(conn: string, lane: LaneState, wallMs: number): { key: [string]; value: Uint8Array } {
    const row: Row = [lane.next - 1, wallMs, [...lane.refused]];
    return { key: [conn], value: encodeValue(row) };
  }
}

const TAKE: LaneVerdict = Object.freeze({ t: 'take' });
const DROP: LaneVerdict = Object.freeze({ t: 'drop' });
const REPEAT_ACCEPTED: LaneVerdict = Object.freeze({ t: 'repeat_accepted' });

function decodeRow(b: Uint8Array): Row | null {
  try {
    const v = decodeValue(b);
    if (!Array.isArray(v) || typeof v[0] !== 'number' || typeof v[1] !== 'number' || !Array.isArray(v[2])) return null;
    return v as Row;
  } catch {
    return null;
  }
}
