/**
 * The session of one logged-in user: its address in the router, and the one place that
 * orders what reaches the user's connection. At start it registers with the user's shard;
 * once registered it loads the stored inbox (oldest first) and hands it to the connection,
 * then forwards live deliveries, skipping any already loaded. It is linked to its
 * connection: either ending ends the other. A newer login replaces it (exit `replaced`).
 */
import { ProcessExit } from '../runtime/ExitReason.js';
import type { Pid } from '../runtime/Pid.js';
import type { ProcessBody } from '../runtime/ProcessContext.js';
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
  return (ctx) => {
    ctx.send(args.shard, { t: 'register', user: args.user, session: ctx.self } satisfies RouterRegister);
    /** Highest id handed over from the stored inbox; live deliveries up to it are duplicates. */
    let loadedUpTo: Uint8Array | null = null;
    let registered = false;
    const load = async (): Promise<void> => {
      // Busy until loaded: live deliveries wait in the mailbox meanwhile, in order.
      const stored = await args.inbox.pending(args.user, args.loadLimit);
      for (const s of stored) {
        if (s.kind === STORED_BARE_FRAME) {
          // A stored receipt: handed over as the bare frame it is, not tracked for ACK.
          ctx.send(args.connection, { t: 'frame', frame: s.payload } satisfies SessionToConnection);
          void args.inbox.ack(args.user, s.id);
        } else ctx.send(args.connection, { t: 'deliver', id: s.id, payload: s.payload } satisfies SessionToConnection);
      }
      if (stored.length > 0) loadedUpTo = stored[stored.length - 1]!.id;
    };
    return (raw) => {
      const m = raw as ShardToSession;
      switch (m.t) {
        case 'registered':
          if (registered) return;
          registered = true;
          return load();
        case 'deliver':
          if (loadedUpTo !== null && compareIds(m.id, loadedUpTo) <= 0) return;
          ctx.send(args.connection, { t: 'deliver', id: m.id, payload: m.payload } satisfies SessionToConnection);
          return;
        case 'frame':
          ctx.send(args.connection, m satisfies SessionToConnection);
          return;
        case 'replaced':
          throw new ProcessExit({ shutdown: 'replaced' });
      }
    };
  };
}
