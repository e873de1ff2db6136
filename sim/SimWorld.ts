/**
 * The simulation kernel: one event queue ordered by (virtual time, sequence) that drives a
 * whole deployment in one thread. Nodes, links, disks and clients schedule events; the loop
 * runs every event of an instant, then lets promise continuations of that instant settle
 * (they see the same virtual time), then moves on. Nothing here reads the real clock or
 * real randomness, so a seed replays the same run, event for event.
 *
 * Every executed event is folded into a trace hash (time, label, detail, owner); two runs of
 * one seed must end with the same hash, and `checkpoints` lets a mismatch be located.
 */
import { EventQueue, type SimEvent, type SimOwner } from './EventQueue.js';
import { fnv1a, SimRandom } from './SimRandom.js';
import { realNextTick } from './Tripwires.js';

export interface SimWorldOptions {
  seed: number;
  /** Keep a text line per event (for trace files and locating a divergence). */
  recordTrace?: boolean;
  /** Keep the running hash after every event (to find where two runs diverge). */
  recordCheckpoints?: boolean;
}

/** Most events one instant may hold before the run is declared livelocked. */
const MAX_EVENTS_PER_INSTANT = 1_000_000;

/**
 * How the loop lets every promise continuation an instant released run, however long its
 * chain, before the clock moves: it waits for a process tick. Called from inside a microtask,
 * a tick runs only once V8 has drained the whole microtask queue, follow-ups included; so it
 * drains exactly what a macrotask turn (setImmediate) would, without a trip through the event
 * loop's poll phase, which cost more than the events of most instants. (The loop's first wait
 * is a plain `await`, which puts it inside a microtask for good.)
 */
const settleTick = (resolve: () => void): void => realNextTick(resolve);

export class SimWorld {
  readonly seed: number;
  now = 0;
  private seq = 0;
  private readonly queue = new EventQueue();
  /** Events executed. */
  events = 0;
  /** Running trace hash. */
  hash = 0x811c9dc5;
  readonly trace: string[] | null;
  readonly checkpoints: number[] | null;
  /** Errors thrown by events (simulator bugs or escaped exceptions). */
  readonly failures: string[] = [];

  constructor(opts: SimWorldOptions) {
    this.seed = opts.seed >>> 0;
    this.trace = opts.recordTrace === true ? [] : null;
    this.checkpoints = opts.recordCheckpoints === true ? [] : null;
  }

  /** The random stream `name` of this run. */
  random(name: string): SimRandom {
    return SimRandom.stream(this.seed, name);
  }

  /** Run `run` at virtual time `at` (not before now). */
  schedule(at: number, label: string, run: () => void, owner: SimOwner | null = null, detail = 0): SimEvent {
    const e: SimEvent = { at: at < this.now ? this.now : at, seq: this.seq++, label, detail, owner, cancelled: false, run };
    this.queue.push(e);
    return e;
  }

  after(ms: number, label: string, run: () => void, owner: SimOwner | null = null, detail = 0): SimEvent {
    return this.schedule(this.now + ms, label, run, owner, detail);
  }

  cancel(e: SimEvent): void {
    e.cancelled = true;
  }

  /**
   * Stop `owner` until `until`: its events wait, in order, and run before anything newer of
   * it once the pause ends (a stopped process finds its socket data and timers in order).
   */
  pause(owner: SimOwner, until: number): void {
    if (until <= owner.pausedUntil) return;
    owner.pausedUntil = until;
    this.schedule(until, 'unpause', () => {
      if (owner.pausedUntil > this.now || !owner.alive) return;
      const backlog = owner.backlog;
      owner.backlog = [];
      for (const e of backlog) if (!e.cancelled && owner.alive) this.exec(e);
    }, null, 0);
  }

  pending(): number {
    return this.queue.size;
  }

  /** Fold a fact into the trace hash (events do this themselves; observers may add more). */
  note(label: string, detail: number): void {
    let h = fnv1a(label, this.hash);
    h ^= detail | 0;
    this.hash = Math.imul(h, 0x01000193) >>> 0;
  }

  /**
   * Run events up to virtual time `until` (then set the clock there). Stops early and
   * returns false if `maxEvents` more events ran.
   */
  async runUntil(until: number, maxEvents = Number.MAX_SAFE_INTEGER): Promise<boolean> {
    const stopAt = this.events + maxEvents;
    let inMicrotask = false;
    for (;;) {
      const head = this.queue.peek();
      if (head === undefined || head.at > until) break;
      const t = head.at;
      this.now = t;
      let n = 0;
      for (;;) {
        const e = this.queue.peek();
        if (e === undefined || e.at !== t) break;
        this.queue.pop();
        if (e.cancelled) continue;
        const o = e.owner;
        if (o !== null) {
          if (!o.alive) continue;
          if (o.pausedUntil > t || o.backlog.length > 0) {
            o.backlog.push(e);
            continue;
          }
        }
        this.exec(e);
        if (++n > MAX_EVENTS_PER_INSTANT) throw new Error(`livelock: more than ${MAX_EVENTS_PER_INSTANT} events at virtual time ${t}`);
        if (this.events >= stopAt) return false;
      }
      // Promise continuations of this instant run now, at this virtual time.
      if (!inMicrotask) {
        await undefined;
        inMicrotask = true;
      }
      await new Promise<void>(settleTick);
    }
    if (until > this.now && until !== Number.POSITIVE_INFINITY) this.now = until;
    return true;
  }

  private exec(e: SimEvent): void {
    this.events++;
    let h = fnv1a(e.label, this.hash ^ (e.at * 1000));
    if (e.owner !== null) h = fnv1a(e.owner.name, h);
    h ^= e.detail | 0;
    this.hash = Math.imul(h, 0x01000193) >>> 0;
    if (this.trace !== null) this.trace.push(`${e.at.toFixed(3)} ${e.owner?.name ?? '-'} ${e.label} ${e.detail}`);
    if (this.checkpoints !== null) this.checkpoints.push(this.hash);
    try {
      e.run();
    } catch (err) {
      this.failures.push(`${e.label} at ${e.at}: ${(err as Error).stack ?? String(err)}`);
    }
  }
}
