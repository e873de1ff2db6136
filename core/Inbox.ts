/**
 * What the router, sessions and connections need of a user's durable inbox. The id is
 * assigned at once (a live delivery never waits for the disk) and `durable` settles when the
 * message is on stable storage. Every message is stored before the recipient acknowledges it,
 * so an unacknowledged live delivery survives a crash and comes back at the next login.
 * Receipts for an offline user are kept apart from messages (their own cap): they can never
 * fill the message inbox.
 */
import type { Delivery, Notice, ReadReceipt } from './Delivery.js';
import type { UserKey } from './UserId.js';

export interface StoredItem {
  /** 16 bytes, increasing in append order for a user (core/MessageId.ts). */
  id: Uint8Array;
  /** A delivery, or a notice kept by a release that stored v1 frames (handed over, then removed). */
  rec: Delivery | Notice;
  /** Stored bytes (what the page and window limits count). */
  bytes: number;
}

export interface InboxPage {
  items: StoredItem[];
  /** Further stored messages follow the last item. */
  more: boolean;
}

export interface PageLimits {
  /** Only messages with ids above this one (from the oldest without it). */
  afterId?: Uint8Array;
  maxCount: number;
  /** Bytes per page; a page always holds at least one message if any is stored. */
  maxBytes: number;
}

export type AppendRefusal = 'inbox_full' | 'storage_unavailable' | 'invalid_recipient';

export type AppendResult =
  /** `durable` resolves true once the message is on stable storage, false if its write failed. */
  | { ok: true; id: Uint8Array; durable: Promise<boolean> }
  /** `invalid_recipient`: a user id the inbox cannot hold (empty or too long). */
  | { ok: false; reason: AppendRefusal };

export interface Inbox {
  /** Store `rec` for `user`. */
  append(user: UserKey, rec: Delivery): AppendResult;
  /** Keep a receipt for an offline user until its next login; false when dropped (its store is full or failed). */
  storeNotice(user: UserKey, rec: ReadReceipt): boolean;
  /**
   * Stored messages of `user` oldest first within `limits`, read after every append already
   * issued for `user` is durable (nothing in flight is missed).
   */
  page(user: UserKey, limits: PageLimits): Promise<InboxPage>;
  /** Receipts kept for `user`, oldest first, at most `limit`; they are removed as they are taken. */
  takeNotices(user: UserKey, limit: number): Promise<Notice[]>;
  /**
   * Remove a delivered message once the client acknowledged it; unknown ids are ignored.
   * Resolves true once the removal is durable (callers need not wait).
   */
  ack(user: UserKey, id: Uint8Array): Promise<boolean>;
}
