/**
 * The simulator's event queue: a binary heap ordered by (virtual time, sequence number), so
 * events at the same instant run in the order they were scheduled and every run of a seed
 * pops exactly the same sequence.
 */

/** Who an event belongs to; a crashed node's events are skipped, a paused node's postponed. */
export interface SimOwner {
  readonly name: string;
  alive: boolean;
  /** Virtual ms until which the owner's events wait (a process pause). */
  pausedUntil: number;
  /** Events that came due during a pause, in order; they run first when it ends. */
  backlog: SimEvent[];
}

export interface SimEvent {
  at: number;
  seq: number;
  /** Short fixed text naming what the event does; part of the trace hash. */
  label: string;
  /** A number describing the event (bytes, count, id); part of the trace hash. */
  detail: number;
  owner: SimOwner | null;
  cancelled: boolean;
  run: () => void;
}

export class EventQueue {
  private heap: SimEvent[] = [];

  get size(): number {
    return this.heap.length;
  }

  peek(): SimEvent | undefined {
    return this.heap[0];
  }

  push(e: SimEvent): void {
    const h = this.heap;
    let i = h.length;
    h.push(e);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent]!;
      if (before(p, e)) break;
      h[i] = p;
      i = parent;
    }
    h[i] = e;
  }

  pop(): SimEvent | undefined {
    const h = this.heap;
    const top = h[0];
    if (top === undefined) return undefined;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && before(h[r]!, h[l]!) ? r : l;
        if (before(last, h[c]!)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }

  clear(): void {
    this.heap = [];
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
