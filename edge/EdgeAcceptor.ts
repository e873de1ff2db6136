/**
 * Turns each new client link into a connection process on the scheduler that owns the
 * listeners, and forwards the link's events to it as messages (never blocking the socket).
 * A link the node may not take (connection cap, per-address rate) gets the plain-text
 * `RATE_LIMITED` answer and is closed, never silently dropped.
 */
import type { Scheduler } from '../runtime/Scheduler.js';
import type { Pid } from '../runtime/Pid.js';
import type { AcceptLink, ClientLink, ClientLinkHandlers } from './ClientLink.js';
import { connectionActor, type ConnectionDeps, type LinkEvent } from './Connection.js';
import type { LoginDecision } from './LoginGate.js';
import { encodeRateLimitedText } from './protocol/V1Encoder.js';

const DRAIN: LinkEvent = { t: 'link_drain' };
const CLOSED: LinkEvent = { t: 'link_closed' };

export interface AcceptHooks {
  /** Whether to take this link; refused links are answered and closed. */
  admit?(link: ClientLink): { ok: true } | { ok: false; retryAfterMs: number };
  opened?(): void;
  closed?(): void;
}

/** The connection's dependencies, with logins decided on everything the link proved. */
export interface EdgeDeps extends Omit<ConnectionDeps, 'authenticate'> {
  authenticate: LoginDecision;
}

export function acceptConnections(s: Scheduler, deps: EdgeDeps, hooks: AcceptHooks = {}): AcceptLink {
  // A connection asks to authenticate with the link's address only, so the client
  // certificate is bound here: links without one share one set of dependencies, a link with
  // one gets its own copy (TLS client authentication only).
  const shared: ConnectionDeps = { ...deps, authenticate: (user, token, remoteAddress) => deps.authenticate(user, token, remoteAddress, null) };
  return (link) => {
    const admitted = hooks.admit?.(link) ?? { ok: true };
    if (!admitted.ok) {
      link.write(encodeRateLimitedText());
      link.end();
      return REFUSED;
    }
    const peer = link.peerCertificate ?? null;
    const linkDeps: ConnectionDeps = peer === null ? shared : { ...shared, authenticate: (user, token, remoteAddress) => deps.authenticate(user, token, remoteAddress, peer) };
    const pid = s.spawn(connectionActor(link, linkDeps), { label: 'Connection' });
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
