/**
 * The Inbox the router and sessions use, on top of the durable OfflineMailbox: ids at once,
 * durability in the background (a failed write is logged, never silently ignored), and
 * `pending` reads only after every write already issued is durable, so a session loading the
 * inbox at login never misses a message still being written.
 */
import type { Clock, Logger, StorageEngine } from '../runtime/Env.js';
import { STORED_BARE_FRAME, STORED_MESSAGE, type AppendResult, type Inbox, type StoredKind, type StoredMessage } from './Inbox.js';
import { canary } from './Canaries.js';
import type { OfflineMailbox } from './OfflineMailbox.js';
import { describeUser, userBytes, type UserKey } from './UserId.js';

export class MailboxInbox implements Inbox {
  constructor(
    private readonly mailbox: OfflineMailbox,
    private readonly storage: StorageEngine,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  append(user: UserKey, payload: Uint8Array, sender: Uint8Array = new Uint8Array(0), kind: StoredKind = STORED_MESSAGE): AppendResult {
    const r = this.mailbox.startAppend(userBytes(user), payload, { sender, sentAtMs: this.clock.wallMs(), kind });
    if (!r.ok) return { ok: false, reason: r.reason === 'inbox_full' ? 'inbox_full' : r.reason === 'invalid' ? 'invalid_recipient' : 'storage_unavailable' };
    const durable = r.durable.then((w) => {
      if (!w.ok) this.log.error({ user: describeUser(user), reason: w.reason, message: w.message }, 'message not stored');
      return w.ok;
    });
    return { ok: true, id: r.id, durable: canary('ack_before_fsync') ? Promise.resolve(true) : durable };
  }

  async pending(user: UserKey, limit: number, afterId?: Uint8Array): Promise<StoredMessage[]> {
    await this.storage.flush();
    const r = this.mailbox.list(userBytes(user), afterId === undefined ? { limit } : { afterId, limit });
    if (!r.ok) {
      this.log.error({ user: describeUser(user), message: r.message }, 'inbox unreadable');
      return [];
    }
    return r.entries.map((e) => ({ id: e.id, payload: e.payload, kind: e.kind === STORED_BARE_FRAME ? STORED_BARE_FRAME : STORED_MESSAGE }));
  }

  ack(user: UserKey, id: Uint8Array): Promise<boolean> {
    return this.mailbox.ack(userBytes(user), id).then((r) => {
      if (!r.ok) this.log.error({ user: describeUser(user), message: r.message }, 'ack not stored');
      return r.ok;
    });
  }
}
