/**
 * Turns each new client link into a connection process (protocol v1 today; v2 will be chosen
 * per listener) on the scheduler that owns the listeners, and forwards the link's events to it as messages (never blocking the socket).
 * A link the node may not take (connection cap, per-address rate) gets the plain-text
 * `RATE_LIMITED` answer and is closed, never silently dropped. With a ClientDrain every
 * connection is registered with it, and while the node drains a new link gets ERROR
 * `node_draining` and is closed.
 *
 * Input backlog: a listener hands over input as fast as the network brings it, and a
 * WebSocket link hands over one message per frame, so a client can send faster than its
 * connection process reads its mailbox. Once INPUT_BACKLOG_BYTES have been handed over
 * without the mailbox being seen (nearly) empty, the link is paused until the connection has
 * caught up: TCP stops reading, a WebSocket link holds frames up to its own limit
 * (ClientLink.pause). The connection's own pauses and this one are separate reasons: the link
 * reads again only when neither holds.
 */
import type { Scheduler } from '../runtime/Scheduler.js';
import type { Pid } from '../runtime/Pid.js';
import type { ClientDrain } from './ClientDrain.js';
import type { AcceptLink, ClientLink, ClientLinkHandlers, LinkClose, LinkTransport, PeerCertificate } from './ClientLink.js';
import type { ConnectionDeps } from './ConnectionDeps.js';
import { encodeRateLimitedText } from './protocol/V1Encoder.js';
import { v1Connection } from './v1/V1Connection.js';

/** Link events, sent to the connection process (one message per event, never blocking the socket). */
export type LinkEvent = { t: 'link_data'; bytes: Uint8Array } | { t: 'link_drain' } | { t: 'link_closed' };

const DRAIN: LinkEvent = { t: 'link_drain' };
const CLOSED: LinkEvent = { t: 'link_closed' };

/** Client input handed to a connection before its mailbox must be seen drained again. */
export const INPUT_BACKLOG_BYTES = 256 * 1024;
/** A mailbox with at most this many messages counts as drained (timers and deliveries come and go). */
const DRAINED_MAILBOX_MESSAGES = 16;

export interface AcceptHooks {
  /** Whether to take this link; refused links are answered and closed. */
  admit?(link: ClientLink): { ok: true } | { ok: false; retryAfterMs: number };
  /** The node's open connections for a drain; while it drains, new links get ERROR node_draining and are closed. */
  clients?: ClientDrain;
  opened?(): void;
  closed?(): void;
}

export function acceptConnections(s: Scheduler, deps: ConnectionDeps, hooks: AcceptHooks = {}): AcceptLink {
  return (link) => {
    if (hooks.clients !== undefined && !hooks.clients.admit(link)) return REFUSED;
    const admitted = hooks.admit?.(link) ?? { ok: true };
    if (!admitted.ok) {
      link.write(encodeRateLimitedText());
      link.end();
      return REFUSED;
    }
    const events = new LinkEvents(s, hooks, link);
    events.pid = s.spawn(v1Connection(events, deps), { label: 'Connection' });
    hooks.clients?.opened(events.pid);
    hooks.opened?.();
    return events;
  };
}

const REFUSED: ClientLinkHandlers = { data: () => {}, drain: () => {}, close: () => {} };

/** Why the link is paused (both may hold). */
const PAUSED_BY_CONNECTION = 1;
const PAUSED_FOR_BACKLOG = 2;

/**
 * One per link (a small object, no closures): the link's events as messages to its
 * connection process, and the link as the connection sees it, with the input-backlog pause
 * combined with the connection's own.
 */
class LinkEvents implements ClientLinkHandlers, ClientLink {
  pid: Pid | null = null;
  /** Input bytes handed over since the mailbox was last seen drained. */
  private unread = 0;
  private pausedFor = 0;
  constructor(
    private readonly s: Scheduler,
    private readonly hooks: AcceptHooks,
    private readonly link: ClientLink,
  ) {}

  // ---- the link's events, to the connection ------------------------------------------------
  data(bytes: Uint8Array): void {
    this.s.send(this.pid!, { t: 'link_data', bytes } satisfies LinkEvent, null);
    this.unread += bytes.length;
    if (this.unread > INPUT_BACKLOG_BYTES && (this.pausedFor & PAUSED_FOR_BACKLOG) === 0) this.checkBacklog();
  }
  drain(): void {
    this.s.send(this.pid!, DRAIN, null);
  }
  close(): void {
    // A half-closed TCP link is ended by its connection; one whose connection is gone (it
    // crashed) is ended here, or it would stay half-open.
    if (this.s.local(this.pid!) === undefined) this.link.end();
    else this.s.send(this.pid!, CLOSED, null);
    this.hooks.clients?.closed(this.pid!);
    this.hooks.closed?.();
  }

  /** Pause while the connection's mailbox is behind; look again every turn until it is not. */
  checkBacklog(): void {
    const p = this.s.local(this.pid!);
    if (p === undefined) return; // the connection is gone; its link is being closed
    if (p.queueLength() <= DRAINED_MAILBOX_MESSAGES) {
      this.unread = 0;
      if ((this.pausedFor & PAUSED_FOR_BACKLOG) !== 0) this.unpause(PAUSED_FOR_BACKLOG);
      return;
    }
    if ((this.pausedFor & PAUSED_FOR_BACKLOG) === 0) {
      if (this.pausedFor === 0) this.link.pause();
      this.pausedFor |= PAUSED_FOR_BACKLOG;
    }
    this.s.env.timers.defer(() => this.checkBacklog());
  }
  private unpause(reason: number): void {
    this.pausedFor &= ~reason;
    if (this.pausedFor === 0) this.link.resume();
  }

  // ---- the link, as the connection uses it ---------------------------------------------------
  get transport(): LinkTransport {
    return this.link.transport;
  }
  get remoteAddress(): string {
    return this.link.remoteAddress;
  }
  get peerCertificate(): PeerCertificate | null {
    return this.link.peerCertificate ?? null;
  }
  write(bytes: Uint8Array): boolean {
    return this.link.write(bytes);
  }
  bufferedBytes(): number {
    return this.link.bufferedBytes();
  }
  pause(): void {
    if (this.pausedFor === 0) this.link.pause();
    this.pausedFor |= PAUSED_BY_CONNECTION;
  }
  resume(): void {
    if ((this.pausedFor & PAUSED_BY_CONNECTION) !== 0) this.unpause(PAUSED_BY_CONNECTION);
  }
  end(close?: LinkClose): void {
    this.link.end(close);
  }
  destroy(): void {
    this.link.destroy();
  }
}
