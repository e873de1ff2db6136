/**
 * The session of one logged-in user: its address in the router, and the one place that
 * orders what reaches the user's connection. At start it registers with the user's shard.
 * The connection reads the stored inbox through it page by page (`fetch`, after the last id it
 * wrote); between pages, and whenever the connection has fallen behind, live deliveries are
 * not forwarded: they are in the inbox already and come with the next page. Once a page ends
 * the inbox, the session forwards live deliveries again, skipping any the page held. It is
 * linked to its connection: either ending ends the other. A newer login replaces it (exit
 * `replaced`).
 */
import { ProcessExit } from '../runtime/ExitReason.js';
import type { Pid } from '../runtime/Pid.js';
import type { ProcessBody, ProcessContext } from '../runtime/ProcessContext.js';
import type { Delivery, Notice, ReadReceipt, Typing } from './Delivery.js';
import type { Inbox, StoredItem } from './Inbox.js';
import { compareMessageIds } from './MessageId.js';
import type { RouterRegister, ShardToSession } from './RouterShard.js';
import type { UserKey } from './UserId.js';

/** What a session sends to its connection. */
export type SessionToConnection =
  /** A live delivery (durable already). */
  | { t: 'deliver'; id: Uint8Array; rec: Delivery; bytes: number }
  /** The answer to `fetch`: stored messages after the asked id, oldest first. */
  | { t: 'page'; items: StoredItem[]; more: boolean }
  /**
   * A notice: live (`stored` false: droppable while the client does not keep up) or kept for the
   * user while it was offline (`stored` true: handed over once, at most noticeLimit per login).
   */
  | { t: 'notice'; rec: Notice; stored: boolean };

/** What a connection sends to its session. */
export interface SessionFetch {
  t: 'fetch';
  /** The last id the connection wrote (null: from the oldest stored message). */
  afterId: Uint8Array | null;
}

export interface SessionArgs {
  user: UserKey;
  connection: Pid;
  /** The user's router shard (a pid or a registered name). */
  shard: Pid | string;
  inbox: Inbox;
  /** Stored messages and bytes per page. */
  pageMessages: number;
  pageBytes: number;
  /** Receipts kept for the offline user handed over at the first fetch, at most. */
  noticeLimit: number;
}

export function sessionActor(args: SessionArgs): ProcessBody {
  return (ctx) => handlerOf(new Session(args, ctx));
}

/** The handler of one session (made here so that it closes over the session only, not `args`). */
function handlerOf(session: Session): (raw: unknown) => void | Promise<void> {
  return (raw) => session.handle(raw);
}

/** One session's state: an object, not closures, since a node holds one per online user. */
class Session {
  private readonly user: UserKey;
  private readonly connection: Pid;
  private readonly inbox: Inbox;
  private registered = false;
  /** Forward live deliveries (the connection has written everything stored before them). */
  private live = false;
  /** Highest id handed over in a page; live deliveries up to it are duplicates. */
  private pagedUpTo: Uint8Array | null = null;
  /** A fetch that arrived before the shard confirmed the registration. */
  private waitingFetch: SessionFetch | null = null;
  private noticesTaken = false;

  constructor(
    private readonly args: SessionArgs,
    private readonly ctx: ProcessContext,
  ) {
    this.user = args.user;
    this.connection = args.connection;
    this.inbox = args.inbox;
    ctx.send(args.shard, { t: 'register', user: args.user, session: ctx.self } satisfies RouterRegister);
  }

  handle(raw: unknown): void | Promise<void> {
    const m = raw as ShardToSession | SessionFetch;
    switch (m.t) {
      case 'registered': {
        if (this.registered) return;
        this.registered = true;
        const f = this.waitingFetch;
        this.waitingFetch = null;
        return f === null ? undefined : this.fetch(f.afterId);
      }
      case 'fetch':
        // Reading before the shard knows this session could miss a message stored and routed in between.
        if (!this.registered) {
          this.waitingFetch = m;
          return;
        }
        return this.fetch(m.afterId);
      case 'deliver':
        if (!this.live || (this.pagedUpTo !== null && compareMessageIds(m.id, this.pagedUpTo) <= 0)) return;
        // The shard's message has the connection's shape: passed on as it is.
        this.ctx.send(this.connection, m satisfies SessionToConnection);
        return;
      case 'notice':
        this.ctx.send(this.connection, { t: 'notice', rec: m.rec as Typing | ReadReceipt, stored: false } satisfies SessionToConnection);
        return;
      case 'replaced':
        throw new ProcessExit({ shutdown: 'replaced' });
    }
  }

  private async fetch(afterId: Uint8Array | null): Promise<void> {
    const { ctx, connection, inbox, user, args } = this;
    // Busy until read: live deliveries wait in the mailbox meanwhile, in order.
    this.live = false;
    if (!this.noticesTaken) {
      this.noticesTaken = true;
      for (const rec of await inbox.takeNotices(user, args.noticeLimit)) ctx.send(connection, { t: 'notice', rec, stored: true } satisfies SessionToConnection);
    }
    const page = await inbox.page(user, { afterId: afterId ?? undefined, maxCount: args.pageMessages, maxBytes: args.pageBytes });
    ctx.send(connection, { t: 'page', items: page.items, more: page.more } satisfies SessionToConnection);
    const last = page.items.length > 0 ? page.items[page.items.length - 1]!.id : afterId;
    if (last !== null && (this.pagedUpTo === null || compareMessageIds(last, this.pagedUpTo) > 0)) this.pagedUpTo = last;
    this.live = !page.more;
    // Idle until the next delivery: give back the mailbox storage meanwhile.
    if (this.live) ctx.hibernate();
  }
}
