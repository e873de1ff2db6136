/**
 * One node's client connection to the simulated NATS servers (sim/SimNats.ts), seen by the
 * node as its ClusterTransport, and behaving like the production transport (nats.js v3 with
 * the options of runtime/node/NatsTransport.ts): connected to one server at a time; a reset
 * (its server crashed, the link dropped) is noticed at once, a silent cut only when pings go
 * unanswered (nats.js: stale at the tick after `maxPingOut` pings are pending, ~15–20 s by
 * default); then it reports `down`, and reconnects for ever, trying the servers in turn (the
 * same server again only after the reconnect wait plus jitter; an unreachable one costs the
 * connect timeout), and reports `up` with its subscriptions in place. Its servers keep an
 * abandoned connection open (and its interest) until they notice it themselves.
 *
 * Everything it does runs as events of the node's incarnation (`owner`): a crashed node's
 * client does nothing more, and its connections count as reset.
 */
import type { ClusterTransport, TransportLinkState, TransportReply } from '../runtime/Env.js';
import type { SimEvent, SimOwner } from './EventQueue.js';
import type { SimNats } from './SimNats.js';
import type { SimRandom } from './SimRandom.js';
import type { SimWorld } from './SimWorld.js';

/** The max_payload SimNats reports (nats-server's default, 1 MiB). */
export const SIM_NATS_MAX_PAYLOAD = 1024 * 1024;

/**
 * When a connection that went silent at `cutAt` is declared stale: pings go out every
 * `interval` from `since`; the connection is closed at the tick where more than `maxOut`
 * would be outstanding (nats-server: the (maxOut+1)-th tick after the cut; pass maxOut + 1
 * for nats.js, which checks before sending).
 */
export function staleAt(since: number, cutAt: number, interval: number, maxOut: number): number {
  const firstTick = Math.floor((cutAt - since) / interval) + 1;
  return since + (firstTick + maxOut) * interval;
}

/** A client connection as a server sees it. */
export interface NatsSession {
  readonly id: number;
  readonly server: string;
  /** The server incarnation it was opened on (a restarted server has forgotten it). */
  readonly serverInc: number;
  /** When it opened: the phase of both sides' ping ticks. */
  readonly since: number;
  /** Whether the server still counts it open (and routes its subscriptions' messages to it). */
  serverOpen: boolean;
  /** Bumped at every new cut between the client and this server (a heal resets the pings). */
  cutGen: number;
}

export interface NatsSubscription {
  readonly client: SimNatsClient;
  readonly tokens: readonly string[];
  readonly queue: string | undefined;
  readonly onMessage: (data: Uint8Array, subject: string, reply: string | undefined) => void;
  active: boolean;
}

export class SimNatsClient {
  state: TransportLinkState = 'up';
  /** Sessions its servers count as open: the current one, and abandoned ones not yet noticed. */
  sessions: NatsSession[] = [];
  /** Bumped at every loss: what was in flight to the client before it is not delivered. */
  epoch = 0;
  /** Kept down by `SimNats.disconnect` until `reconnect`. */
  held = false;
  /** The server of the current (or last) session. */
  lastServer: string;
  readonly transport: ClusterTransport;
  private current: NatsSession | null = null;
  private closed = false;
  private readonly listeners = new Set<(state: TransportLinkState) => void>();
  private readonly mine: NatsSubscription[] = [];
  private readonly rotation: string[];
  private readonly lastTried = new Map<string, number>();
  private attempt: SimEvent | null = null;
  private readonly inboxPrefix: string;
  private readonly inboxHandlers = new Map<string, (data: Uint8Array) => void>();
  private inboxSub: { unsubscribe(): void } | null = null;
  private nextInbox = 0;

  constructor(
    private readonly net: SimNats,
    private readonly world: SimWorld,
    readonly node: string,
    readonly owner: SimOwner,
    readonly id: number,
    servers: readonly string[],
    first: string,
    private readonly random: SimRandom,
  ) {
    // nats.js shuffles its server list; the first connection goes where the deployment says.
    const others = servers.filter((s) => s !== first);
    for (let i = others.length - 1; i > 0; i--) {
      const j = random.int(i + 1);
      [others[i], others[j]] = [others[j]!, others[i]!];
    }
    this.rotation = [...others, first];
    this.lastServer = first;
    this.inboxPrefix = `_INBOX.c${id}.`;
    this.transport = this.makeTransport();
    // The first server that answers; with none, start down and keep trying (a production node
    // would fail its start after the connect timeout; a simulated one waits for the cluster).
    const start = [first, ...others].find((srv) => this.reachable(srv));
    if (start !== undefined) {
      this.rotateToEnd(start);
      this.open(start);
      this.lastTried.set(start, world.now);
    } else {
      this.state = 'down';
      this.tryNext();
    }
  }

  /** The current session while the link is up and the node alive. */
  liveSession(): NatsSession | null {
    return this.state === 'up' && this.owner.alive ? this.current : null;
  }

  /**
   * The link is lost. `reset`: a connection reset both ends see at once (the server drops the
   * session now if it can hear it); otherwise the client gave up a silent connection, which
   * its server keeps until its own ping timeout.
   */
  lose(reset: boolean): void {
    if (this.state !== 'up') return;
    const s = this.current!;
    this.state = 'down';
    this.epoch++;
    this.current = null;
    if (reset && this.net.passable(this.node, s.server)) this.dropSession(s);
    else this.watchServerSide(s, () => true);
    this.tell('down');
    this.rotateToEnd(s.server);
    this.tryNext();
  }

  /** Server `server` went down: its sessions are gone; the client notices at once unless cut from it. */
  serverDown(server: string): void {
    for (const s of [...this.sessions]) if (s.server === server) this.dropSession(s);
    if (this.current?.server === server && this.state === 'up' && this.net.passable(server, this.node)) this.lose(true);
  }

  /** A new cut between this client and `server`: both ends notice at their ping timeouts. */
  cutFrom(server: string): void {
    for (const s of this.sessions) {
      if (s.server !== server) continue;
      const gen = ++s.cutGen;
      const broken = (): boolean => s.cutGen === gen && (!this.net.passable(this.node, server) || !this.net.passable(server, this.node) || !this.net.sessionServerLive(s));
      if (s === this.current) {
        const t = this.net.timing;
        const at = staleAt(s.since, this.world.now, t.clientPingIntervalMs, t.clientMaxPingOut + 1);
        this.world.schedule(at, 'nats_stale', () => {
          if (this.current === s && broken()) this.lose(false);
        }, this.owner, 0);
      }
      this.watchServerSide(s, () => s !== this.current || broken());
    }
  }

  /** Connect again now (after `SimNats.reconnect`): to the last server if it can be reached. */
  reconnectNow(): void {
    if (this.state !== 'down' || this.held || this.closed) return;
    const target = this.lastServer;
    if (this.reachable(target)) {
      if (this.attempt !== null) this.world.cancel(this.attempt);
      this.attempt = null;
      this.up(target);
    } else this.tryNext();
  }

  // ---- internal ---------------------------------------------------------------------------

  private reachable(server: string): boolean {
    return this.net.serverUp(server) && this.net.passable(this.node, server) && this.net.passable(server, this.node);
  }

  private open(server: string): void {
    const s = this.net.openSession(this, server);
    this.current = s;
    this.sessions.push(s);
    this.lastServer = server;
  }

  private up(server: string): void {
    this.open(server);
    this.state = 'up';
    this.net.stats.reconnects++;
    this.tell('up');
  }

  private dropSession(s: NatsSession): void {
    s.serverOpen = false;
    const i = this.sessions.indexOf(s);
    if (i >= 0) this.sessions.splice(i, 1);
  }

  /** The server closes `s` at its own ping timeout if `stale()` then holds. */
  private watchServerSide(s: NatsSession, stale: () => boolean): void {
    const t = this.net.timing;
    const at = staleAt(s.since, this.world.now, t.serverPingIntervalMs, t.serverMaxPingsOut);
    this.world.schedule(at, 'nats_session_stale', () => {
      if (s.serverOpen && stale()) this.dropSession(s);
    }, this.net.serverOwner(s.server), 0);
  }

  private rotateToEnd(server: string): void {
    const i = this.rotation.indexOf(server);
    if (i >= 0) this.rotation.splice(i, 1);
    this.rotation.push(server);
  }

  /** Schedule the next connection attempt: the next server in turn, not sooner than the reconnect wait after its last try. */
  private tryNext(): void {
    if (this.attempt !== null || this.state !== 'down' || this.held || this.closed) return;
    const target = this.rotation[0]!;
    const wait = this.net.timing.reconnectWaitMs;
    const earliest = (this.lastTried.get(target) ?? -Infinity) + wait;
    const delay = earliest > this.world.now ? earliest - this.world.now + this.random.int(wait + 1) : 0;
    this.attempt = this.world.after(delay, 'nats_reconnect', () => {
      this.attempt = null;
      this.connectTo(target);
    }, this.owner, 0);
  }

  private connectTo(target: string): void {
    if (this.state !== 'down' || this.held || this.closed) return;
    this.lastTried.set(target, this.world.now);
    this.rotateToEnd(target);
    if (!this.net.serverUp(target)) {
      this.tryNext(); // refused at once
      return;
    }
    const reachable = (): boolean => this.reachable(target);
    const delay = reachable() ? 2 * this.net.hopMs(this.random) : this.net.timing.connectTimeoutMs;
    this.attempt = this.world.after(delay, 'nats_connect', () => {
      this.attempt = null;
      if (this.state !== 'down' || this.held || this.closed) return;
      if (reachable()) this.up(target);
      else this.tryNext();
    }, this.owner, 0);
  }

  private tell(state: TransportLinkState): void {
    this.world.after(0, 'nats_link', () => {
      for (const fn of [...this.listeners]) fn(state);
    }, this.owner, 0);
  }

  private subscribe(subject: string, onMessage: NatsSubscription['onMessage'], queue: string | undefined): { unsubscribe(): void } {
    const sub: NatsSubscription = { client: this, tokens: subject.split('.'), queue, onMessage, active: !this.closed };
    if (sub.active) {
      this.mine.push(sub);
      this.net.subscriptionsChanged(sub, true);
    }
    return {
      unsubscribe: () => {
        if (!sub.active) return;
        sub.active = false;
        const i = this.mine.indexOf(sub);
        if (i >= 0) this.mine.splice(i, 1);
        this.net.subscriptionsChanged(sub, false);
      },
    };
  }

  private request(subject: string, data: Uint8Array, timeoutMs: number): Promise<TransportReply> {
    if (this.closed) return Promise.resolve({ ok: false, reason: 'closed' });
    if (this.inboxSub === null) {
      this.inboxSub = this.subscribe(`${this.inboxPrefix}*`, (d, s) => this.inboxHandlers.get(s.slice(this.inboxPrefix.length))?.(d), undefined);
    }
    const token = String(++this.nextInbox);
    return new Promise<TransportReply>((resolve) => {
      let done = false;
      const finish = (r: TransportReply): void => {
        if (done) return;
        done = true;
        this.inboxHandlers.delete(token);
        this.world.cancel(timer);
        resolve(r);
      };
      this.inboxHandlers.set(token, (d) => finish({ ok: true, data: d }));
      const timer = this.world.after(timeoutMs, 'nats_timeout', () => finish({ ok: false, reason: 'timeout' }), this.owner, 0);
      const linked = this.liveSession() !== null;
      const reached = this.net.publishFrom(this, subject, data.slice(), this.inboxPrefix + token);
      if (reached !== 0) return;
      if (!linked) finish({ ok: false, reason: 'no_responders' });
      // The server answers no-responders: one round trip.
      else this.world.after(2 * this.net.hopMs(this.random), 'nats_no_responders', () => finish({ ok: false, reason: 'no_responders' }), this.owner, 0);
    });
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.attempt !== null) this.world.cancel(this.attempt);
    this.attempt = null;
    this.current = null;
    for (const s of [...this.sessions]) this.dropSession(s);
    for (const sub of this.mine.splice(0)) {
      sub.active = false;
      this.net.subscriptionsChanged(sub, false);
    }
    this.inboxHandlers.clear();
    if (this.state !== 'closed') {
      this.state = 'closed';
      this.tell('closed');
    }
  }

  private makeTransport(): ClusterTransport {
    const state = (): TransportLinkState => this.state;
    return {
      get linkState() {
        return state();
      },
      onLinkState: (fn) => {
        this.listeners.add(fn);
        return () => this.listeners.delete(fn);
      },
      maxPayload: SIM_NATS_MAX_PAYLOAD,
      publish: (subject, data, reply) => {
        if (!this.closed) this.net.publishFrom(this, subject, data.slice(), reply);
      },
      subscribe: (subject, onMessage, opts) => this.subscribe(subject, onMessage, opts?.queue),
      request: (subject, data, timeoutMs) => this.request(subject, data, timeoutMs),
      flush: () => Promise.resolve(),
      close: () => {
        this.close();
        return Promise.resolve();
      },
    };
  }
}
