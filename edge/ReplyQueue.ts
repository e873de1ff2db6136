/**
 * Answers in request order. v1 requests carry no id, so a client with several requests in
 * flight (two FETCH_PREKEYS, a GET_STATUS behind a GROUP_ROSTER) can only match answers to
 * questions by their order. Each request that gets an answer takes a tag when it is read; the
 * services answer with the tag whenever they are done, and the answers leave in tag order.
 * An answer that turns out empty (a group message taken) still holds its place. Bounded by
 * the requests a connection may have open (the caller stops reading at `full`).
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

  constructor(
    private readonly write: (answer: Uint8Array) => void,
    /** Open requests at most before `full` says stop reading. */
    private readonly maxOpen: number,
  ) {}

  /** A tag for a request whose answer will come later. */
  open(): number {
    return this.nextTag++;
  }

  /** Answer now, in turn: written at once when nothing older is open. */
  now(answer: Answer): void {
    this.settle(this.open(), answer);
  }

  /** The answer to `tag`; written once every older answer is. Unknown or repeated tags are ignored. */
  settle(tag: number, answer: Answer): void {
    if (tag < this.head || tag >= this.nextTag) return;
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
