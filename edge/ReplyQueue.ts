/**
 * Answers in request order. v1 requests carry no id, so a client with several requests in
 * flight (two FETCH_PREKEYS, a GET_STATUS behind a GROUP_ROSTER) can only match answers to
 * questions by their order. Each request that gets an answer takes a tag when it is read; the
 * services answer with the tag whenever they are done, and the answers leave in tag order.
 * An answer that turns out empty (a group message taken) still holds its place. Bounded by
 * the requests a connection may have open (the caller stops reading at `full`). A request
 * whose answer never comes (its service restarted mid-request, a reply lost between nodes)
 * would hold every later answer back: `expire` answers requests older than a deadline in
 * their turn instead.
 */

/** Written with the answer when its turn comes (null: nothing to write). */
export type Answer = Uint8Array | null;

export class ReplyQueue {
  /** Next tag to hand out; tags are consecutive numbers. */
  private nextTag = 1;
  /** Oldest tag not yet written. */
  private head = 1;
  /** Answers that arrived before their turn, by tag. */
  private early: Map<number, Answer> | null = null;
  /** When each request still waiting for its service was opened (monotonic ms), by tag, in tag order. */
  private waiting: Map<number, number> | null = null;

  constructor(
    private readonly write: (answer: Uint8Array) => void,
    /** Open requests at most before `full` says stop reading. */
    private readonly maxOpen: number,
  ) {}

  /** A tag for a request whose answer will come later from a service; `nowMs` starts its deadline. */
  open(nowMs: number): number {
    const tag = this.nextTag++;
    (this.waiting ??= new Map()).set(tag, nowMs);
    return tag;
  }

  /** When the oldest request still waiting was opened, or null when none waits. */
  oldestWaiting(): number | null {
    const w = this.waiting;
    if (w === null) return null;
    for (const at of w.values()) return at;
    return null;
  }

  /**
   * Answer `answer` (a refusal) for every request waiting since before `beforeMs`; later
   * answers for them are ignored. Returns how many expired.
   */
  expire(beforeMs: number, answer: Answer): number {
    const w = this.waiting;
    if (w === null) return 0;
    let n = 0;
    for (const [tag, at] of w) {
      if (at >= beforeMs) break;
      this.settle(tag, answer);
      n++;
    }
    return n;
  }

  /** Answer now, in turn: written at once when nothing older is open. */
  now(answer: Answer): void {
    this.settle(this.nextTag++, answer);
  }

  /** The answer to `tag`; written once every older answer is. Unknown or repeated tags are ignored. */
  settle(tag: number, answer: Answer): void {
    // Written already, or settled and waiting for its turn (an expired request's late answer).
    if (tag < this.head || tag >= this.nextTag || this.early?.has(tag) === true) return;
    const w = this.waiting;
    if (w !== null) {
      w.delete(tag);
      if (w.size === 0) this.waiting = null;
    }
    if (tag !== this.head) {
      (this.early ??= new Map()).set(tag, answer);
      return;
    }
    if (answer !== null) this.write(answer);
    this.head++;
    const early = this.early;
    if (early === null) return;
    for (let a = early.get(this.head); a !== undefined; a = early.get(this.head)) {
      early.delete(this.head);
      if (a !== null) this.write(a);
      this.head++;
    }
    if (early.size === 0) this.early = null;
  }

  /** Requests whose answers have not been written. */
  get pending(): number {
    return this.nextTag - this.head;
  }

  /** Too many answers outstanding: stop reading requests until some come back. */
  get full(): boolean {
    return this.nextTag - this.head >= this.maxOpen;
  }
}
