/**
 * The session of one logged-in user: its address in the router, and the one place that
 * orders what reaches the user's connection. At start it registers with the user's shard.
 * The connection reads the stored inbox through it page by page (`fetch`, after the last id it
 * wrote); between pages, and whenever the connection has fallen behind, live deliveries are
 * not forwarded: they are in the inbox already and come with the next page. Once a page ends
 * the inbox, the session forwards live deliveries again, skipping any the page held. It is
 * linked to its connection: either ending ends the other. A newer login replaces it (exit
 * `replaced`).
 *
 * In a cluster (`follow` given) the user's shard lives on the owner node of the user's shard
 * group, and ownership moves: the session registers with the shard the ownership table names
 * (again every `retryMs` until it answers), monitors the shard that answered, reads the inbox
 * from that shard (`inbox_read`, answered within `readTimeoutMs` or read again), and when that
 * shard goes down (its node died, or the group moved and its services stopped) it registers
 * with the new owner and tells its connection there was a gap (`gap`): the connection reads
 * the inbox again from the last id it wrote, so nothing stored meanwhile is skipped and nothing
 * it wrote comes again. A shard on another node numbers its deliveries and now and then says
 * how many it sent (`delivered`): core NATS may lose one without either node noticing, so a
 * number skipped, or a count above what arrived, is a gap too (the delivery that showed it is
 * not passed on: it comes with the page, after the one that was lost). It never waits on a
 * remote answer except inside a fetch, which is bounded by `readTimeoutMs`.
 */
import { isDownMessage, ProcessExit } from '../runtime/ExitReason.js';
import { refEquals, type Pid, type Ref } from '../runtime/Pid.js';
import type { ProcessBody, ProcessContext } from '../runtime/ProcessContext.js';
import type { Delivery, Notice, ReadReceipt, Typing } from './Delivery.js';
import type { Inbox, InboxPage, StoredItem } from './Inbox.js';
import { compareMessageIds } from './MessageId.js';
import { sendTo, type ServiceAddress } from './Router.js';
import type { InboxReadReply, RouterInboxRead, RouterRegister, ShardToSession } from './RouterShard.js';
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
  | { t: 'notice'; rec: Notice; stored: boolean }
  /** In a cluster: the session registered again after its shard moved, or a delivery was lost on the way; read the inbox again. */
  | { t: 'gap' };

/** What a connection sends to its session. */
export interface SessionFetch {
  t: 'fetch';
  /** The last id the connection wrote (null: from the oldest stored message). */
  afterId: Uint8Array | null;
}

/** How sessions follow their shard in a cluster (one object shared by every session of a node). */
export interface ShardFollowing {
  /** The user's router shard now (on the owner the ownership table names). */
  shardOf(user: UserKey): ServiceAddress;
  /** Registration is sent again this often until a shard answers. */
  retryMs: number;
  /** A read of the inbox not answered within this long is asked again. */
  readTimeoutMs: number;
}

export interface SessionArgs {
  user: UserKey;
  connection: Pid;
  /** The user's router shard (a pid or a registered name); in a cluster, where to register first. */
  shard: ServiceAddress;
  /** The stored inbox, read directly (a single node); null in a cluster, where the shard reads it. */
  inbox: Inbox | null;
  /** In a cluster: how to follow the shard as ownership moves. */
  follow?: ShardFollowing;
  /** In a cluster: when the login happened (wall ms), so a session registering again loses to a newer login. */
  loginAtMs?: number;
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

/** Registration is due again (cluster only). */
interface Rejoin {
  t: 'rejoin';
}

/** One session's state: an object, not closures, since a node holds one per online user. */
class Session {
  private readonly user: UserKey;
  private readonly connection: Pid;
  private registered = false;
  /** Forward live deliveries (the connection has written everything stored before them). */
  private live = false;
  /** Highest id handed over in a page; live deliveries up to it are duplicates. */
  private pagedUpTo: Uint8Array | null = null;
  /** A fetch that arrived before the shard confirmed the registration. */
  private waitingFetch: SessionFetch | null = null;
  private noticesTaken = false;
  /** Cluster only: the shard that answered the registration, and the monitor on it. */
  private shard: Pid | null = null;
  private shardMonitor: Ref | null = null;
  /** Cluster only: registering again after the shard went down (the connection is told of the gap). */
  private rejoining = false;
  private rejoinArmed = false;
  /** Cluster only: the number of the last delivery a shard on another node sent (undefined: it numbers none). */
  private lastNumber: number | undefined = undefined;

  constructor(
    private readonly args: SessionArgs,
    private readonly ctx: ProcessContext,
  ) {
    this.user = args.user;
    this.connection = args.connection;
    this.register(args.shard);
  }

  handle(raw: unknown): void | Promise<void> {
    if (isDownMessage(raw)) {
      if (refEquals(raw.ref, this.shardMonitor)) this.shardDown();
      return;
    }
    const m = raw as ShardToSession | SessionFetch | Rejoin | InboxReadReply;
    switch (m.t) {
      case 'registered': {
        if (this.args.follow !== undefined) this.followShard(m.shard);
        if (this.registered) return;
        this.registered = true;
        this.lastNumber = m.n;
        if (this.rejoining) {
          this.rejoining = false;
          this.ctx.send(this.connection, { t: 'gap' } satisfies SessionToConnection);
        }
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
        if (m.n !== undefined && !this.counted(m.n, true)) return;
        if (!this.live || (this.pagedUpTo !== null && compareMessageIds(m.id, this.pagedUpTo) <= 0)) return;
        // The shard's message has the connection's shape: passed on as it is.
        this.ctx.send(this.connection, m satisfies SessionToConnection);
        return;
      case 'notice':
        this.ctx.send(this.connection, { t: 'notice', rec: m.rec as Typing | ReadReceipt, stored: false } satisfies SessionToConnection);
        return;
      case 'delivered':
        this.counted(m.n, false);
        return;
      case 'replaced':
        throw new ProcessExit({ shutdown: 'replaced' });
      case 'rejoin':
        this.rejoinArmed = false;
        if (!this.registered) this.register(this.args.follow!.shardOf(this.user));
        return;
      case 'inbox_read_reply':
        // A late answer to a read that was asked again: the newer one counts.
        return;
    }
  }

  /**
   * A numbered delivery (`next`: it should be the one after the last) or a count of those sent:
   * false when one was lost on the way, and then the connection reads the inbox again.
   */
  private counted(n: number, next: boolean): boolean {
    const last = this.lastNumber;
    if (!this.registered || last === undefined) return true;
    if (next ? n === last + 1 : n <= last) {
      if (next) this.lastNumber = n;
      return true;
    }
    this.lastNumber = Math.max(last, n);
    this.ctx.send(this.connection, { t: 'gap' } satisfies SessionToConnection);
    return false;
  }

  /** Ask `shard` to register this session; in a cluster, again every retryMs until one answers. */
  private register(shard: ServiceAddress): void {
    const { args, ctx } = this;
    const m: RouterRegister = { t: 'register', user: this.user, session: ctx.self };
    if (args.follow === undefined) {
      ctx.send(shard as Pid | string, m);
      return;
    }
    m.at = args.loginAtMs ?? 0;
    if (this.rejoining) m.rejoin = true;
    sendTo(ctx, shard, m);
    if (!this.rejoinArmed) {
      this.rejoinArmed = true;
      ctx.sendAfter(args.follow.retryMs, { t: 'rejoin' } satisfies Rejoin);
    }
  }

  /** The shard that answered: monitored from now on (its going down starts a new registration). */
  private followShard(shard: Pid): void {
    if (this.shard !== null && this.shard.key === shard.key) return;
    if (this.shardMonitor !== null) this.ctx.demonitor(this.shardMonitor, { flush: true });
    this.shard = shard;
    this.shardMonitor = this.ctx.monitor(shard);
  }

  /** The shard went down: register with the owner the table names now, and tell the connection of the gap. */
  private shardDown(): void {
    this.shard = null;
    this.shardMonitor = null;
    this.registered = false;
    this.rejoining = true;
    this.register(this.args.follow!.shardOf(this.user));
  }

  private async fetch(afterId: Uint8Array | null): Promise<void> {
    const { ctx, connection, args } = this;
    // Busy until read: live deliveries wait in the mailbox meanwhile, in order.
    this.live = false;
    const read = args.inbox !== null ? await this.readLocal(args.inbox, afterId) : await this.readRemote(afterId);
    if (read === null) {
      // No answer in time (the shard is moving): an empty page that asks the connection to read again.
      ctx.send(connection, { t: 'page', items: [], more: true } satisfies SessionToConnection);
      return;
    }
    for (const rec of read.notices) ctx.send(connection, { t: 'notice', rec, stored: true } satisfies SessionToConnection);
    const page = read.page;
    ctx.send(connection, { t: 'page', items: page.items, more: page.more } satisfies SessionToConnection);
    const last = page.items.length > 0 ? page.items[page.items.length - 1]!.id : afterId;
    if (last !== null && (this.pagedUpTo === null || compareMessageIds(last, this.pagedUpTo) > 0)) this.pagedUpTo = last;
    this.live = !page.more;
    // Idle until the next delivery: give back the mailbox storage meanwhile.
    if (this.live) ctx.hibernate();
  }

  private async readLocal(inbox: Inbox, afterId: Uint8Array | null): Promise<{ page: InboxPage; notices: Notice[] }> {
    const { user, args } = this;
    let notices: Notice[] = [];
    if (!this.noticesTaken) {
      this.noticesTaken = true;
      notices = await inbox.takeNotices(user, args.noticeLimit);
    }
    const page = await inbox.page(user, { afterId: afterId ?? undefined, maxCount: args.pageMessages, maxBytes: args.pageBytes });
    return { page, notices };
  }

  /** Read from the shard this session is registered with (cluster); null when it did not answer in time. */
  private async readRemote(afterId: Uint8Array | null): Promise<{ page: InboxPage; notices: Notice[] } | null> {
    const { ctx, args } = this;
    const shard = this.shard;
    if (shard === null) return null;
    const ref = ctx.makeRef();
    const notices = this.noticesTaken ? 0 : args.noticeLimit;
    ctx.send(shard, { t: 'inbox_read', user: this.user, afterId, maxCount: args.pageMessages, maxBytes: args.pageBytes, notices, replyTo: ctx.self, ref } satisfies RouterInboxRead);
    const got = await ctx.receive<InboxReadReply>((x) => (x as InboxReadReply).t === 'inbox_read_reply' && refEquals((x as InboxReadReply).ref, ref), args.follow!.readTimeoutMs);
    if (typeof got !== 'object' || got === null || (got as InboxReadReply).t !== 'inbox_read_reply') return null;
    const reply = got as InboxReadReply;
    this.noticesTaken = true;
    return { page: { items: reply.items, more: reply.more }, notices: reply.notices };
  }
}
