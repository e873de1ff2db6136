/**
 * The session of one logged-in user: its address in the router, and the one place that
 * orders what reaches the user's connection. At start it registers with the user's shard;
 * once registered it loads the stored inbox (oldest first) and hands it to the connection,
 * then forwards live deliveries, skipping any already loaded. It is linked to its
 * connection: either ending ends the other. A newer login replaces it (exit `replaced`).
 */
import { ProcessExit } from '../runtime/ExitReason.js';
import type { Pid } from '../runtime/Pid.js';
import type { ProcessBody, ProcessContext } from '../runtime/ProcessContext.js';
import { STORED_BARE_FRAME, type Inbox } from './Inbox.js';
import type { RouterRegister, ShardToSession } from './RouterShard.js';
import type { UserKey } from './UserId.js';

/** What a session sends to its connection. */
export type SessionToConnection = { t: 'deliver'; id: Uint8Array; payload: Uint8Array } | { t: 'frame'; frame: Uint8Array };

export interface SessionArgs {
  user: UserKey;
  connection: Pid;
  /** The user's router shard (a pid or a registered name). */
  shard: Pid | string;
  inbox: Inbox;
  /** Most stored messages loaded at login (the inbox cap). */
  loadLimit: number;
}

/** Byte-wise comparison of two ids (they sort in append order). */
export function compareIds(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
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
  private readonly loadLimit: number;
  /** Highest id handed over from the stored inbox; live deliveries up to it are duplicates. */
  private loadedUpTo: Uint8Array | null = null;
  private registered = false;

  constructor(
    args: SessionArgs,
    private readonly ctx: ProcessContext,
  ) {
    this.user = args.user;
    this.connection = args.connection;
    this.inbox = args.inbox;
    this.loadLimit = args.loadLimit;
    ctx.send(args.shard, { t: 'register', user: args.user, session: ctx.self } satisfies RouterRegister);
  }

  handle(raw: unknown): void | Promise<void> {
    const m = raw as ShardToSession;
    switch (m.t) {
      case 'registered':
        if (this.registered) return;
        this.registered = true;
        return this.load();
      case 'deliver':
        if (this.loadedUpTo !== null && compareIds(m.id, this.loadedUpTo) <= 0) return;
        // The shard's message has the connection's shape: passed on as it is.
        this.ctx.send(this.connection, m satisfies SessionToConnection);
        return;
      case 'frame':
        this.ctx.send(this.connection, m satisfies SessionToConnection);
        return;
      case 'replaced':
        throw new ProcessExit({ shutdown: 'replaced' });
    }
  }

  private async load(): Promise<void> {
    const { ctx, connection, inbox, user } = this;
    // Busy until loaded: live deliveries wait in the mailbox meanwhile, in order.
    const stored = await inbox.pending(user, this.loadLimit);
    for (const s of stored) {
      if (s.kind === STORED_BARE_FRAME) {
        // A stored receipt: handed over as the bare frame it is, not tracked for ACK.
        ctx.send(connection, { t: 'frame', frame: s.payload } satisfies SessionToConnection);
        void inbox.ack(user, s.id);
      } else ctx.send(connection, { t: 'deliver', id: s.id, payload: s.payload } satisfies SessionToConnection);
    }
    if (stored.length > 0) this.loadedUpTo = stored[stored.length - 1]!.id;
    // Idle until the next delivery: give back the mailbox storage meanwhile.
    ctx.hibernate();
  }
}
