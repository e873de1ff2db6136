/**
 * What the router, sessions and connections need of the durable offline mailbox. The id is
 * assigned at once (so a live delivery never waits for the disk) and `durable` settles when
 * the message is on stable storage. Every message is stored before it is acknowledged by the
 * recipient, so an unacknowledged live delivery survives a crash and comes back at login.
 */
import type { UserKey } from './UserId.js';

/** What a stored payload is: a message delivered as RELIABLE_MSG, or a bare frame (a read receipt). */
export const STORED_MESSAGE = 0;
export const STORED_BARE_FRAME = 1;
export type StoredKind = typeof STORED_MESSAGE | typeof STORED_BARE_FRAME;

export interface StoredMessage {
  /** 16 bytes, increasing in append order for a user. */
  id: Uint8Array;
  payload: Uint8Array;
  kind: StoredKind;
}

export type AppendResult =
  /** `durable` resolves true once the message is on stable storage, false if its write failed. */
  | { ok: true; id: Uint8Array; durable: Promise<boolean> }
  /** `invalid_recipient`: a user id the mailbox cannot hold (empty). */
  | { ok: false; reason: 'inbox_full' | 'storage_unavailable' | 'invalid_recipient' };

export interface Inbox {
  /** Store `payload` for `user`; `sender` is kept beside it (empty when unknown). */
  append(user: UserKey, payload: Uint8Array, sender?: Uint8Array, kind?: StoredKind): AppendResult;
  /**
   * Up to `limit` stored messages with ids greater than `afterId`, oldest first, read after every
   * append already issued for `user` is durable (nothing in flight is missed).
   */
  pending(user: UserKey, limit: number, afterId?: Uint8Array): Promise<StoredMessage[]>;
  /**
   * Remove a delivered message once the client acknowledged it; unknown ids are ignored.
   * Resolves true once the removal is durable (callers need not wait).
   */
  ack(user: UserKey, id: Uint8Array): Promise<boolean>;
}
