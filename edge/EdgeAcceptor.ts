/**
 * Turns each new client link into a connection process (protocol v1 today; v2 will be chosen
 * per listener) on the scheduler that owns the listeners, and forwards the link's events to it as messages (never blocking the socket).
 * A link the node may not take (connection cap, per-address rate) gets the plain-text
 * `RATE_LIMITED` answer and is closed, never silently dropped.
 */
import type { Scheduler } from '../runtime/Scheduler.js';
import type { Pid } from '../runtime/Pid.js';
import type { AcceptLink, ClientLink, ClientLinkHandlers } from './ClientLink.js';
import type { ConnectionDeps } from './ConnectionDeps.js';
import { encodeRateLimitedText } from './protocol/V1Encoder.js';
import { v1Connection } from './v1/V1Connection.js';

/** Link events, sent to the connection process (one message per event, never blocking the socket). */
export type LinkEvent = { t: 'link_data'; bytes: Uint8Array } | { t: 'link_drain' } | { t: 'link_closed' };

const DRAIN: LinkEvent = { t: 'link_drain' };
const CLOSED: LinkEvent = { t: 'link_closed' };

export interface AcceptHooks {
  /** Whether to take this link; refused links are answered and closed. */
  admit?(link: ClientLink): { ok: true } | { ok: false; retryAfterMs: number };
  opened?(): void;
  closed?(): void;
}

export function acceptConnections(s: Scheduler, deps: ConnectionDeps, hooks: AcceptHooks = {}): AcceptLink {
  return (link) => {
    const admitted = hooks.admit?.(link) ?? { ok: true };
    if (!admitted.ok) {
      link.write(encodeRateLimitedText());
      link.end();
      return REFUSED;
    }
    const pid = s.spawn(v1Connection(link, deps), { label: 'Connection' });
    hooks.opened?.();
    return new LinkEvents(s, pid, hooks);
  };
}

const REFUSED: ClientLinkHandlers = { data: () => {}, drain: () => {}, close: () => {} };

/** A link's events as messages to its connection process (one small object per link, no closures). */
class LinkEvents implements ClientLinkHandlers {
  constructor(
    private readonly s: Scheduler,
    private readonly pid: Pid,
    private readonly hooks: AcceptHooks,
  ) {}
  data(bytes: Uint8Array): void {
    this.s.send(this.pid, { t: 'link_data', bytes } satisfies LinkEvent, null);
  }
  drain(): void {
    this.s.send(this.pid, DRAIN, null);
  }
  close(): void {
    this.s.send(this.pid, CLOSED, null);
    this.hooks.closed?.();
  }
}
