/**
 * The Inbox the router and sessions use, on two durable OfflineMailboxes: one for messages
 * (their cap is the user's inbox cap in count and bytes) and one for receipts kept for offline
 * users (a cap of their own, so receipts never fill the message inbox). Ids at once,
 * durability in the background (a failed write is logged, never silently ignored), and pages
 * read only after every write already issued is durable, so a session loading the inbox never
 * misses a message still being written. Records are stored in their protocol-neutral form
 * (core/Delivery.ts); a row the codec cannot read is logged and skipped, never rewritten.
 */
import type { Clock, Logger, StorageEngine } from '../runtime/Env.js';
import { canary } from './Canaries.js';
import { decodeStored, encodeStored, isNotice, type Delivery, type Notice, type ReadReceipt } from './Delivery.js';
import type { AppendResult, Inbox, InboxPage, PageLimits, StoredItem } from './Inbox.js';
import type { OfflineMailbox } from './OfflineMailbox.js';
import { describeUser, userBytes, type UserKey } from './UserId.js';

/** The table of receipts kept for offline users (apart from the message inbox). */
export const RECEIPTS_TABLE = 'receipts';

export class MailboxInbox implements Inbox {
  /** Receipts dropped because the user's receipt store was full (for /metrics). */
  droppedNotices = 0;

  constructor(
    private readonly messages: OfflineMailbox,
    private readonly notices: OfflineMailbox,
    private readonly storage: StorageEngine,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  append(user: UserKey, rec: Delivery): AppendResult {
    const stored = encodeStored(rec);
    const r = this.messages.startAppend(userBytes(user), stored.payload, { sender: rec.from, sentAtMs: this.clock.wallMs(), kind: stored.kind });
    if (!r.ok) return { ok: false, reason: r.reason === 'inbox_full' ? 'inbox_full' : 'invalid_recipient' };
    const durable = r.durable.then((w) => {
      if (!w.ok) this.log.error({ user: describeUser(user), reason: w.reason, message: w.message }, 'message not stored');
      return w.ok;
    });
    return { ok: true, id: r.id, durable: canary('ack_before_fsync') ? Promise.resolve(true) : durable };
  }

  storeNotice(user: UserKey, rec: ReadReceipt): boolean {
    const stored = encodeStored(rec);
    const r = this.notices.startAppend(userBytes(user), stored.payload, { sender: rec.from, sentAtMs: this.clock.wallMs(), kind: stored.kind });
    if (!r.ok) {
      this.droppedNotices++;
      return false;
    }
    void r.durable.then((w) => {
      if (!w.ok) this.log.warn({ user: describeUser(user), message: w.message }, 'receipt not stored');
    });
    return true;
  }

  async page(user: UserKey, limits: PageLimits): Promise<InboxPage> {
    await this.storage.flush();
    const r = this.messages.list(userBytes(user), { afterId: limits.afterId, limit: limits.maxCount, maxBytes: limits.maxBytes });
    if (!r.ok) {
      this.log.error({ user: describeUser(user), message: r.message }, 'inbox unreadable');
      return { items: [], more: false };
    }
    const items: StoredItem[] = [];
    for (const e of r.entries) {
      const rec = decodeStored(e.kind, e.payload, e.sender);
      if (rec === null) {
        this.log.error({ user: describeUser(user), kind: e.kind, bytes: e.storedBytes }, 'stored message unreadable; left in place');
        continue;
      }
      items.push({ id: e.id, rec, bytes: e.storedBytes });
    }
    return { items, more: r.more };
  }

  async takeNotices(user: UserKey, limit: number): Promise<Notice[]> {
    await this.storage.flush();
    const ub = userBytes(user);
    const r = this.notices.list(ub, { limit });
    if (!r.ok) {
      this.log.error({ user: describeUser(user), message: r.message }, 'receipts unreadable');
      return [];
    }
    const out: Notice[] = [];
    for (const e of r.entries) {
      const rec = decodeStored(e.kind, e.payload, e.sender);
      if (rec === null || !isNotice(rec)) {
        // Never repaired by deleting: it stays for an operator to look at.
        this.log.error({ user: describeUser(user), kind: e.kind }, 'stored receipt unreadable; left in place');
        continue;
      }
      out.push(rec);
      void this.notices.ack(ub, e.id);
    }
    return out;
  }

  ack(user: UserKey, id: Uint8Array): Promise<boolean> {
    return this.messages.ack(userBytes(user), id).then((r) => {
      if (!r.ok) this.log.error({ user: describeUser(user), message: r.message }, 'ack not stored');
      return r.ok;
    });
  }
}
