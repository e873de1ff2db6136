/**
 * The deliveries one connection has written and the client has not acknowledged, bounded in
 * count and in bytes, and the connection's place in the user's inbox. Every delivery is written
 * once per connection: nothing is kept to write again (what the client does not acknowledge
 * stays in the durable inbox and comes back at its next login), so the window holds ids and
 * sizes, never payloads.
 *
 * When a delivery cannot be written (the window is full or the client is not reading), it is
 * dropped and the window is `behind`: it is in the inbox already, and the connection reads the
 * inbox again from the last id it wrote once there is room (`fetch`), dropping live deliveries
 * until a page reaches the end of the inbox. So a slow or silent client costs the server a
 * bounded window, never a queue. Pure bookkeeping: no I/O, no clock.
 */
import { messageIdFromKey, messageIdKey } from '../core/MessageId.js';

export interface DeliveryWindowLimits {
  /** Unacknowledged deliveries at most (config key delivery_window_messages). */
  maxMessages: number;
  /** Their bytes at most (delivery_window_bytes); one delivery always fits an empty window. */
  maxBytes: number;
}

/** Shared by idle connections until the first delivery (an empty Map still costs ~150 bytes). */
const NO_UNACKED: ReadonlyMap<string, number> = new Map();

export class DeliveryWindow {
  /** Unacknowledged deliveries: id key → bytes, in write order. */
  private unacked = NO_UNACKED as Map<string, number>;
  private bytes = 0;
  /** The last id written on this connection (the inbox cursor). */
  lastWritten: Uint8Array | null = null;
  /** Something stored was not written: live deliveries are dropped until the inbox is read up to its end. */
  behind = true;
  /** A fetch is outstanding (at most one). */
  fetching = false;
  /** Bytes of the delivery that did not fit (0: none): the next page starts with it. */
  private waitingBytes = 0;

  constructor(private readonly limits: DeliveryWindowLimits) {}

  /** Whether a delivery of `bytes` may be written now. */
  fits(bytes: number): boolean {
    const n = this.unacked.size;
    if (n === 0) return true;
    return n < this.limits.maxMessages && this.bytes + bytes <= this.limits.maxBytes;
  }

  /**
   * Whether there is room to ask for more: room in both count and bytes, and for the delivery
   * that did not fit, if one did not (asking before it fits would only read it again).
   */
  hasRoom(): boolean {
    if (this.waitingBytes > 0) return this.fits(this.waitingBytes);
    return this.unacked.size < this.limits.maxMessages && this.bytes < this.limits.maxBytes;
  }

  /** A delivery of `bytes` did not fit: ask for more once acknowledgements make room for it. */
  blocked(bytes: number): void {
    this.waitingBytes = bytes;
  }

  /** `id` of `bytes` was written. */
  wrote(id: Uint8Array, bytes: number): void {
    if (this.unacked === NO_UNACKED) this.unacked = new Map();
    this.unacked.set(messageIdKey(id), bytes);
    this.bytes += bytes;
    this.lastWritten = id;
    this.waitingBytes = 0;
  }

  /** Whether `id` was written on this connection and not yet acknowledged (it is then forgotten). */
  ack(id: Uint8Array): boolean {
    const k = messageIdKey(id);
    const b = this.unacked.get(k);
    if (b === undefined) return false;
    this.unacked.delete(k);
    this.bytes -= b;
    if (this.unacked.size === 0 && this.unacked !== NO_UNACKED) this.unacked = NO_UNACKED as Map<string, number>;
    return true;
  }

  /** Whether `id` is written and unacknowledged. */
  has(id: Uint8Array): boolean {
    return this.unacked.has(messageIdKey(id));
  }

  /** The unacknowledged ids, in write order. */
  ids(): Uint8Array[] {
    return [...this.unacked.keys()].map(messageIdFromKey);
  }

  get count(): number {
    return this.unacked.size;
  }

  get unackedBytes(): number {
    return this.bytes;
  }
}
