/**
 * A simulated client connection: a byte stream in each direction with its own latency,
 * order kept per direction (like TCP), the server side seen through the ClientLink interface
 * the edge uses for real sockets. Faults: latency and jitter, segments split into pieces
 * (the decoder must reassemble), clogging (nothing moves for a while), and resets (both
 * sides see the connection drop; bytes in flight are lost).
 *
 * The send buffer is modelled: bytes written by the server count as buffered until they
 * arrive, `write` returns false above the high-water mark and `drain` follows once the
 * client has taken enough, so the server's backpressure code runs as with a slow socket.
 */
import type { ClientLink, ClientLinkHandlers, AcceptLink } from '../edge/ClientLink.js';
import type { SimOwner } from './EventQueue.js';
import type { SimRandom } from './SimRandom.js';
import type { SimWorld } from './SimWorld.js';

export const LINK_HIGH_WATER = 64 * 1024;
export const LINK_LOW_WATER = 16 * 1024;

export interface LinkProfile {
  /** One-way latency of a segment, ms (drawn per segment; order is kept regardless). */
  latencyMs: (r: SimRandom) => number;
  /** Probability a segment is split in two pieces. */
  splitRate: number;
}

/** What the client side of a link hears. */
export interface LinkClientSide {
  onData(bytes: Uint8Array): void;
  onClose(): void;
}

export class SimLink implements ClientLink {
  readonly transport = 'sim' as const;
  private handlers: ClientLinkHandlers | null = null;
  private open = true;
  private serverClosedNotified = false;
  private buffered = 0;
  private wantDrain = false;
  private paused = false;
  private held: Uint8Array[] = [];
  /** The client closed while held bytes wait; close once they are handed over. */
  private finPending = false;
  private nextS2C = 0;
  private nextC2S = 0;
  /** Until this virtual time nothing moves on the link. */
  clogUntil = 0;

  constructor(
    private readonly world: SimWorld,
    private readonly random: SimRandom,
    private readonly profile: LinkProfile,
    /** The server node incarnation that accepted the link. */
    private readonly server: SimOwner,
    readonly remoteAddress: string,
    private readonly client: LinkClientSide,
    readonly id: number,
  ) {}

  /** Connect: the server's accept function takes the link (at once, like an accepted socket). */
  attach(accept: AcceptLink): void {
    this.handlers = accept(this);
  }

  get isOpen(): boolean {
    return this.open;
  }

  // ---- server side (ClientLink) ---------------------------------------------------------

  write(bytes: Uint8Array): boolean {
    if (!this.open) return false;
    const copy = bytes.slice();
    this.buffered += copy.length;
    this.transmit('s2c', copy, false);
    if (this.buffered >= LINK_HIGH_WATER) {
      this.wantDrain = true;
      return false;
    }
    return true;
  }

  bufferedBytes(): number {
    return this.buffered;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.held.length > 0) this.world.after(0, 'link_resume', () => this.releaseHeld(), this.server, this.id);
  }

  /** Hand over what arrived while reading was paused, in order, before anything newer. */
  private releaseHeld(): void {
    while (this.open && !this.paused && this.held.length > 0) this.handlers?.data(this.held.shift()!);
    if (this.finPending && this.open && !this.paused && this.held.length === 0) this.reset();
  }

  end(): void {
    if (!this.open) return;
    // Close once everything written so far has arrived.
    this.world.schedule(Math.max(this.world.now, this.nextS2C), 'link_fin_s', () => this.reset(), null, this.id);
  }

  destroy(): void {
    this.reset();
  }

  // ---- client side ------------------------------------------------------------------------

  /**
   * The client sends bytes. `whole` keeps them in one segment: v1's LOGIN has no length and
   * takes the rest of what the server has buffered, so clients send it alone and unsplit.
   */
  send(bytes: Uint8Array, whole = false): void {
    if (!this.open) return;
    this.transmit('c2s', bytes.slice(), whole);
  }

  /**
   * The client closes after its bytes in flight arrive. Like a FIN, the close reaches the
   * server after every byte sent before it, even if the server has paused reading or is
   * itself paused (the event is the server's, so it waits in order behind the data).
   */
  clientEnd(): void {
    if (!this.open) return;
    this.world.schedule(Math.max(this.world.now, this.nextC2S), 'link_fin_c', () => this.finFromClient(), this.server, this.id);
  }

  private finFromClient(): void {
    if (!this.open) return;
    if (this.paused || this.held.length > 0) this.finPending = true;
    else this.reset();
  }

  /** The connection drops now, in both directions; bytes in flight are lost. */
  reset(): void {
    if (!this.open) return;
    this.open = false;
    this.held = [];
    this.client.onClose();
    if (!this.serverClosedNotified) {
      this.serverClosedNotified = true;
      this.world.after(0, 'link_closed', () => this.handlers?.close(), this.server, this.id);
    }
  }

  private transmit(dir: 's2c' | 'c2s', bytes: Uint8Array, whole: boolean): void {
    const now = this.world.now;
    const at = Math.round(Math.max(now + this.profile.latencyMs(this.random), this.clogUntil, dir === 's2c' ? this.nextS2C : this.nextC2S));
    if (dir === 's2c') this.nextS2C = at;
    else this.nextC2S = at;
    let pieces = [bytes];
    if (!whole && bytes.length > 1 && this.profile.splitRate > 0 && this.random.chance(this.profile.splitRate)) {
      const cut = 1 + this.random.int(bytes.length - 1);
      pieces = [bytes.subarray(0, cut), bytes.subarray(cut)];
    }
    for (const piece of pieces) {
      if (dir === 's2c') this.world.schedule(at, 'net_s2c', () => this.open && this.arriveAtClient(piece), null, piece.length);
      else this.world.schedule(at, 'net_c2s', () => this.open && this.arriveAtServer(piece), this.server, piece.length);
    }
  }

  private arriveAtClient(piece: Uint8Array): void {
    this.buffered -= piece.length;
    this.client.onData(piece);
    if (this.wantDrain && this.buffered <= LINK_LOW_WATER && this.open) {
      this.wantDrain = false;
      this.world.after(0, 'link_drain', () => this.handlers?.drain(), this.server, this.id);
    }
  }

  private arriveAtServer(piece: Uint8Array): void {
    if (this.paused || this.held.length > 0) this.held.push(piece);
    else this.handlers?.data(piece);
  }
}
