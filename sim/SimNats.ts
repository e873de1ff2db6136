/**
 * Simulated NATS: M servers joined by routes (a full mesh, as a nats-server cluster is) and
 * one client connection per node (sim/SimNatsClient.ts, the Env's ClusterTransport). Core NATS
 * as nats-server 2.9 runs it: a message goes from the publisher to its server, over a route to
 * each server where a subscriber's connection lives, and down to the subscriber; at most once,
 * in order per publisher and subscriber; queue groups give each message to one member;
 * request/reply answers `no_responders` when the publisher's server knows of no subscriber.
 *
 * What a server knows is modelled apart from what is true. A server forwards along a route it
 * believes up and to connections it believes open; a route or connection that is silently cut
 * keeps being believed up until the ping timeout notices it (a route: the `routePingIntervalMs`
 * ticks, minutes by default; a client: nats.js's pings, ~15–20 s), so messages sent across it
 * meanwhile are lost and requests across it time out rather than answer no_responders. A crash
 * is noticed at once (connection reset), except across a cut.
 *
 * Faults: partitions between any two endpoints (a node and its server, two servers, or, for
 * rule tests, two nodes), symmetric or one-way; a server killed (`kill`: process gone, page
 * cache kept) or crashed with its OS (`os`: unsynced data lost, for the JetStream model),
 * restarted, paused; a node's link dropped and given back (`disconnect`/`reconnect`). Servers
 * report `down`/`up` to listeners (the JetStream model). Nothing here reads real time or
 * randomness: every delay is drawn from the world's streams and runs on its event queue.
 */
import type { ClusterTransport } from '../runtime/Env.js';
import { NATS_CONNECT_TIMEOUT_MS, NATS_PING_INTERVAL_MS, NATS_RECONNECT_WAIT_MS } from '../runtime/defaults.js';
import type { SimOwner } from './EventQueue.js';
import { SimNatsClient, staleAt, type NatsSession, type NatsSubscription } from './SimNatsClient.js';
import type { SimRandom } from './SimRandom.js';
import type { SimWorld } from './SimWorld.js';

export { SIM_NATS_MAX_PAYLOAD } from './SimNatsClient.js';
/** nats-server's default ping interval, for client connections and routes alike (2 minutes). */
export const NATS_SERVER_PING_INTERVAL_MS = 120_000;
/** nats-server's default ping_max: a connection is stale at the tick that would exceed it. */
export const NATS_SERVER_MAX_PINGS_OUT = 2;
/** How often a server retries a route it lost (nats-server's route reconnect delay). */
export const NATS_ROUTE_RECONNECT_MS = 1_000;
/** The production transport's client maxPingOut (runtime/node/NatsTransport.ts). */
export const NATS_CLIENT_MAX_PING_OUT = 2;
/** The server a SimNats without a server list runs. */
export const SIM_NATS_DEFAULT_SERVER = 'nats1';
/** Subjects cached with their matching subscriptions, at most (the cache is dropped beyond). */
const MATCH_CACHE_MAX = 4_096;

/** How a server went down: a killed process keeps its page cache; an OS crash loses it. */
export type ServerCrashKind = 'kill' | 'os';

export type SimNatsServerEvent = { readonly type: 'down'; readonly server: string; readonly kind: ServerCrashKind } | { readonly type: 'up'; readonly server: string };

/** Timings of the model; each default is the production one it stands for. */
export interface SimNatsOptions {
  /** Server names (distinct from node names). Default one server, SIM_NATS_DEFAULT_SERVER. */
  servers?: readonly string[];
  /** The client's ping interval (NATS_PING_INTERVAL_MS). */
  clientPingIntervalMs?: number;
  /** The client's maxPingOut (NATS_CLIENT_MAX_PING_OUT): stale at the tick after that many are pending. */
  clientMaxPingOut?: number;
  /** Wait before a client tries the same server again (NATS_RECONNECT_WAIT_MS), plus up to as much jitter. */
  reconnectWaitMs?: number;
  /** A connection attempt to a server that does not answer fails after this (NATS_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number;
  /** The server's ping interval for client connections (NATS_SERVER_PING_INTERVAL_MS). */
  serverPingIntervalMs?: number;
  /** The ping interval of routes (NATS_SERVER_PING_INTERVAL_MS; production clusters may set it lower). */
  routePingIntervalMs?: number;
  /** nats-server's ping_max (NATS_SERVER_MAX_PINGS_OUT), for client connections and routes. */
  serverMaxPingsOut?: number;
  /** Retry period of a lost route (NATS_ROUTE_RECONNECT_MS). */
  routeReconnectMs?: number;
}

export type SimNatsTiming = Required<Omit<SimNatsOptions, 'servers'>>;

/** One nats-server process. `owner` is its current incarnation (its events die with it). */
export interface SimNatsServer {
  readonly name: string;
  up: boolean;
  owner: SimOwner;
  incarnation: number;
}

/** Whether `subject` matches the pattern `tokens` (NATS wildcard rules). */
export function subjectMatches(tokens: readonly string[], subject: string): boolean {
  return tokensMatch(tokens, subject.split('.'));
}

/** Whether a subject split into `parts` matches the pattern `tokens`. */
function tokensMatch(tokens: readonly string[], parts: readonly string[]): boolean {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '>') return parts.length > i;
    if (i >= parts.length) return false;
    if (t !== '*' && t !== parts[i]) return false;
  }
  return parts.length === tokens.length;
}

const pairKey = (a: string, b: string): string => (a < b ? `${a}|${b}` : `${b}|${a}`);

/**
 * Directed pairs of endpoint names (`a` cannot reach `b`; `a` believes its route to `b` down).
 * Asked on every message, and nearly always empty: no key is built per question.
 */
class PairSet {
  private readonly to = new Map<string, Set<string>>();
  private count = 0;

  has(a: string, b: string): boolean {
    return this.count !== 0 && this.to.get(a)?.has(b) === true;
  }

  add(a: string, b: string): void {
    let s = this.to.get(a);
    if (s === undefined) this.to.set(a, (s = new Set()));
    if (!s.has(b)) {
      s.add(b);
      this.count++;
    }
  }

  delete(a: string, b: string): void {
    if (this.to.get(a)?.delete(b) === true) this.count--;
  }

  clear(): void {
    this.to.clear();
    this.count = 0;
  }
}

export class SimNats {
  readonly timing: SimNatsTiming;
  private readonly servers = new Map<string, SimNatsServer>();
  /** Every client connection ever made, by node: the current one for each node name. */
  private readonly clients = new Map<string, SimNatsClient>();
  private readonly subs: NatsSubscription[] = [];
  private readonly matchCache = new Map<string, NatsSubscription[]>();
  /** (a, b): what `a` sends does not reach `b` (endpoints are nodes or servers). */
  private readonly cut = new PairSet();
  /** (x, y): server x believes its route to y is closed. */
  private readonly routeDown = new PairSet();
  /** Per server pair: when the route (re)formed (the phase of its ping ticks), and its cut generation. */
  private readonly routeSince = new Map<string, number>();
  private readonly routeGen = new Map<string, number>();
  private readonly repairing = new Set<string>();
  /** Last arrival time per sender and receiver, so every pair stays FIFO. */
  private readonly lastAt = new Map<string, Map<string, number>>();
  private readonly serverListeners = new Set<(e: SimNatsServerEvent) => void>();
  private nextClientId = 0;
  private nextSessionId = 0;
  /** Latency from a publisher to a subscriber on the same server, ms. */
  latencyMs: (r: SimRandom) => number = (r) => r.between(1, 3);
  /** One hop: client to server, or server to server over a route, ms. */
  hopMs: (r: SimRandom) => number = (r) => r.between(1, 2);
  stats = { published: 0, delivered: 0, dropped: 0, reconnects: 0 };

  constructor(
    private readonly world: SimWorld,
    private readonly random: SimRandom,
    opts: SimNatsOptions = {},
  ) {
    const serverPing = opts.serverPingIntervalMs ?? NATS_SERVER_PING_INTERVAL_MS;
    this.timing = {
      clientPingIntervalMs: opts.clientPingIntervalMs ?? NATS_PING_INTERVAL_MS,
      clientMaxPingOut: opts.clientMaxPingOut ?? NATS_CLIENT_MAX_PING_OUT,
      reconnectWaitMs: opts.reconnectWaitMs ?? NATS_RECONNECT_WAIT_MS,
      connectTimeoutMs: opts.connectTimeoutMs ?? NATS_CONNECT_TIMEOUT_MS,
      serverPingIntervalMs: serverPing,
      routePingIntervalMs: opts.routePingIntervalMs ?? serverPing,
      serverMaxPingsOut: opts.serverMaxPingsOut ?? NATS_SERVER_MAX_PINGS_OUT,
      routeReconnectMs: opts.routeReconnectMs ?? NATS_ROUTE_RECONNECT_MS,
    };
    const names = opts.servers ?? [SIM_NATS_DEFAULT_SERVER];
    if (names.length === 0 || new Set(names).size !== names.length) throw new Error('SimNats: server names must be given once each');
    for (const name of names) this.servers.set(name, { name, up: true, owner: { name, alive: true, pausedUntil: 0, backlog: [] }, incarnation: 1 });
  }

  // ---- topology ---------------------------------------------------------------------------

  /** Server names, in configuration order. */
  serverNames(): string[] {
    return [...this.servers.keys()];
  }

  server(name: string): SimNatsServer {
    const s = this.servers.get(name);
    if (s === undefined) throw new Error(`SimNats: no server ${name}`);
    return s;
  }

  /** The current client connection of `node` (undefined before its first connect). */
  client(node: string): SimNatsClient | undefined {
    return this.clients.get(node);
  }

  /** Listen to servers going down and coming up; returns a function that stops it. */
  onServer(listener: (e: SimNatsServerEvent) => void): () => void {
    this.serverListeners.add(listener);
    return () => this.serverListeners.delete(listener);
  }

  // ---- clients ----------------------------------------------------------------------------

  /**
   * The transport of node `node`; its deliveries are `owner`'s events (lost if it crashes).
   * It connects to `server` (default the first server) at once.
   */
  connect(node: string, owner: SimOwner, server?: string): ClusterTransport {
    return this.connectClient(node, owner, server).transport;
  }

  /** Like `connect`, returning the client connection itself (for the JetStream model). */
  connectClient(node: string, owner: SimOwner, server?: string): SimNatsClient {
    if (this.servers.has(node)) throw new Error(`SimNats: node name ${node} is also a server name`);
    const first = server ?? this.serverNames()[0]!;
    this.server(first);
    const c = new SimNatsClient(this, this.world, node, owner, ++this.nextClientId, this.serverNames(), first, this.world.random(`nats/client/${node}/${this.nextClientId}`));
    this.clients.set(node, c);
    return c;
  }

  /** Node `node` loses its link (a reset: both ends notice) and stays off until `reconnect`. */
  disconnect(node: string): void {
    const c = this.clients.get(node);
    if (c === undefined) return;
    c.held = true;
    c.lose(true);
  }

  /** Node `node` may connect again; it does so at once to its last server if that is reachable. */
  reconnect(node: string): void {
    const c = this.clients.get(node);
    if (c === undefined) return;
    c.held = false;
    c.reconnectNow();
  }

  // ---- faults -----------------------------------------------------------------------------

  /** Cut `a` from `b` (and `b` from `a` unless `oneWay`); endpoints are node or server names. */
  partition(a: string, b: string, oneWay = false): void {
    this.cut.add(a, b);
    if (!oneWay) this.cut.add(b, a);
    this.cutChanged(a, b);
  }

  /** Remove the cut between `a` and `b` (both directions). */
  healPair(a: string, b: string): void {
    this.cut.delete(a, b);
    this.cut.delete(b, a);
  }

  /** Remove every cut. Routes and connections that were noticed lost come back by retrying. */
  heal(): void {
    this.cut.clear();
  }

  /** Whether anything `a` sends to `b` is lost right now. */
  isCut(a: string, b: string): boolean {
    return this.cut.has(a, b);
  }

  /** Stop server `name` like SIGKILL (`kill`) or with its OS (`os`). */
  crashServer(name: string, kind: ServerCrashKind = 'kill'): void {
    const s = this.server(name);
    if (!s.up) return;
    s.up = false;
    s.owner.alive = false;
    this.repairing.delete(name);
    for (const other of this.servers.values()) {
      if (other === s || !other.up) continue;
      // The reset reaches the peer unless the network between them is cut.
      if (!this.cut.has(name, other.name)) this.markRouteDown(other.name, name);
    }
    for (const c of this.clients.values()) c.serverDown(name);
    this.emit({ type: 'down', server: name, kind });
  }

  /** Start server `name` again (a new incarnation; routes form with every reachable peer). */
  restartServer(name: string): void {
    const s = this.server(name);
    if (s.up) return;
    s.up = true;
    s.incarnation++;
    s.owner = { name, alive: true, pausedUntil: 0, backlog: [] };
    this.repairing.delete(name);
    for (const other of this.servers.values()) {
      if (other === s) continue;
      this.routeDown.delete(name, other.name);
      if (other.up && this.passable(name, other.name) && this.passable(other.name, name)) this.formRoute(name, other.name);
      else this.markRouteDown(name, other.name);
    }
    this.emit({ type: 'up', server: name });
  }

  /** Stop server `name` for `ms` (a stopped VM): its events and the traffic through it wait. */
  pauseServer(name: string, ms: number): void {
    const s = this.server(name);
    if (s.up) this.world.pause(s.owner, this.world.now + ms);
  }

  // ---- what servers believe ----------------------------------------------------------------

  /** Whether server `from` would send to server `to` (itself, or a route it believes up). */
  believesRoute(from: string, to: string): boolean {
    return from === to || !this.routeDown.has(from, to);
  }

  /** Whether `to` is up and what `from` sends reaches it (nodes and servers). */
  passable(from: string, to: string): boolean {
    return !this.cut.has(from, to);
  }

  /** Whether server `name` runs now. */
  serverUp(name: string): boolean {
    return this.servers.get(name)?.up === true;
  }

  // ---- carrying messages (core NATS, and the JetStream model's requests) --------------------

  /**
   * Route a message `client` publishes. Returns how many subscriptions its server believes
   * it reaches (0: no responders), or -1 when it is lost before reaching the server. `data`
   * must be the publisher's copy (taken when it published): one receiver gets it, any other
   * its own copy, so no two parties share bytes.
   */
  publishFrom(client: SimNatsClient, subject: string, data: Uint8Array, reply: string | undefined): number {
    this.stats.published++;
    const s = client.liveSession();
    if (s === null) {
      this.stats.dropped++;
      return 0;
    }
    if (!this.passable(client.node, s.server) || !this.sessionServerLive(s)) {
      this.stats.dropped++;
      return -1;
    }
    const at = s.server;
    let chosen: Array<[NatsSubscription, NatsSession]> | null = null;
    let groups: Map<string, Array<[NatsSubscription, NatsSession]>> | null = null;
    for (const sub of this.matching(subject)) {
      // A crashed node's connections were reset by its OS: no interest survives it.
      if (!sub.active || !sub.client.owner.alive) continue;
      for (const sess of sub.client.sessions) {
        if (!this.sessionOpenAtServer(sess) || !this.believesRoute(at, sess.server)) continue;
        if (sub.queue === undefined) (chosen ??= []).push([sub, sess]);
        else {
          groups ??= new Map();
          let g = groups.get(sub.queue);
          if (g === undefined) groups.set(sub.queue, (g = []));
          g.push([sub, sess]);
        }
      }
    }
    if (groups !== null) for (const g of groups.values()) (chosen ??= []).push(this.random.pick(g));
    if (chosen === null) return 0;
    const last = chosen.length - 1;
    for (let i = 0; i <= last; i++) this.deliver(client.node, at, chosen[i]![0], chosen[i]![1], subject, i === last ? data : data.slice(), reply);
    return chosen.length;
  }

  private deliver(origin: string, at: string, sub: NatsSubscription, sess: NatsSession, subject: string, data: Uint8Array, reply: string | undefined): void {
    const target = sub.client;
    const far = sess.server !== at;
    if (sess !== target.liveSession() || !this.sessionServerLive(sess) || (far && !this.routePassable(at, sess.server)) || !this.passable(sess.server, target.node) || !this.passable(origin, target.node)) {
      this.stats.dropped++;
      return;
    }
    let latency = this.latencyMs(this.random);
    if (far) latency += this.hopMs(this.random);
    const arrive = this.fifo(origin, target.node, Math.max(this.world.now, this.pausedUntil(at), this.pausedUntil(sess.server)) + latency);
    const epoch = target.epoch;
    this.world.schedule(arrive, 'nats', () => {
      if (!sub.active || target.epoch !== epoch) {
        this.stats.dropped++;
        return;
      }
      this.stats.delivered++;
      sub.onMessage(data, subject, reply);
    }, target.owner, data.length);
  }

  /**
   * Carry `run` from `client` to its server, as that server's event. False when the client's
   * link is down (nothing left); true otherwise, even if the message is lost on the way.
   */
  toServer(client: SimNatsClient, label: string, run: (server: string) => void, detail = 0): boolean {
    const s = client.liveSession();
    if (s === null) return false;
    if (!this.passable(client.node, s.server)) return true;
    const srv = this.server(s.server);
    const inc = srv.incarnation;
    const arrive = this.fifo(client.node, s.server, this.world.now + this.hopMs(this.random));
    this.world.schedule(arrive, label, () => {
      if (srv.incarnation === inc && srv.up) run(s.server);
    }, srv.owner, detail);
    return true;
  }

  /** Carry `run` from server `from` to server `to` over their route, as `to`'s event (lost if the route is closed or cut). */
  toPeer(from: string, to: string, label: string, run: () => void, detail = 0): void {
    const dst = this.server(to);
    if (from !== to && (!this.believesRoute(from, to) || !this.routePassable(from, to))) return;
    if (!dst.up) return;
    const inc = dst.incarnation;
    const arrive = from === to ? this.world.now : this.fifo(from, to, this.world.now + this.hopMs(this.random));
    this.world.schedule(arrive, label, () => {
      if (dst.incarnation === inc && dst.up) run();
    }, dst.owner, detail);
  }

  /**
   * Carry `run` from server `from` to `client` wherever it is connected now (a reply to its
   * inbox), as the client's event; lost if any hop is cut or the client moved meanwhile.
   */
  toClient(from: string, client: SimNatsClient, label: string, run: () => void, detail = 0): void {
    const s = client.liveSession();
    if (s === null || !this.sessionServerLive(s)) return;
    const far = s.server !== from;
    if (far && (!this.believesRoute(from, s.server) || !this.routePassable(from, s.server))) return;
    if (!this.passable(s.server, client.node)) return;
    let latency = this.hopMs(this.random);
    if (far) latency += this.hopMs(this.random);
    const arrive = this.fifo(from, client.node, Math.max(this.world.now, this.pausedUntil(s.server)) + latency);
    const epoch = client.epoch;
    this.world.schedule(arrive, label, () => {
      if (client.epoch === epoch && client.liveSession() === s) run();
    }, client.owner, detail);
  }

  // ---- for SimNatsClient ------------------------------------------------------------------

  /** @internal A subscription was added or removed. */
  subscriptionsChanged(sub: NatsSubscription, added: boolean): void {
    if (added) this.subs.push(sub);
    else {
      const i = this.subs.indexOf(sub);
      if (i >= 0) this.subs.splice(i, 1);
    }
    this.matchCache.clear();
  }

  /** @internal Open a session of `client` on `server` now. */
  openSession(client: SimNatsClient, server: string): NatsSession {
    const srv = this.server(server);
    return { id: ++this.nextSessionId, server, serverInc: srv.incarnation, since: this.world.now, serverOpen: true, cutGen: 0 };
  }

  /** @internal Whether `sess`'s server still runs the incarnation it was opened on. */
  sessionServerLive(sess: NatsSession): boolean {
    const srv = this.servers.get(sess.server)!;
    return srv.up && srv.incarnation === sess.serverInc;
  }

  /** @internal Whether `sess`'s server counts it as an open connection (interest lives there). */
  sessionOpenAtServer(sess: NatsSession): boolean {
    return sess.serverOpen && this.sessionServerLive(sess);
  }

  /** @internal The owner of server `name`'s current incarnation. */
  serverOwner(name: string): SimOwner {
    return this.server(name).owner;
  }

  /** @internal Arrival time for a message from `from` to `to`, kept after the previous one. */
  fifo(from: string, to: string, at: number): number {
    let m = this.lastAt.get(from);
    if (m === undefined) this.lastAt.set(from, (m = new Map()));
    const t = Math.max(at, m.get(to) ?? 0);
    m.set(to, t);
    return t;
  }

  // ---- internal ---------------------------------------------------------------------------

  private matching(subject: string): NatsSubscription[] {
    let m = this.matchCache.get(subject);
    if (m !== undefined) return m;
    m = [];
    const parts = subject.split('.');
    for (const s of this.subs) if (tokensMatch(s.tokens, parts)) m.push(s);
    if (!subject.startsWith('_INBOX.')) {
      if (this.matchCache.size >= MATCH_CACHE_MAX) this.matchCache.clear();
      this.matchCache.set(subject, m);
    }
    return m;
  }

  private pausedUntil(server: string): number {
    return this.servers.get(server)!.owner.pausedUntil;
  }

  private routePassable(from: string, to: string): boolean {
    return this.serverUp(from) && this.serverUp(to) && this.passable(from, to);
  }

  private emit(e: SimNatsServerEvent): void {
    for (const fn of [...this.serverListeners]) fn(e);
  }

  /** A new cut between `a` and `b`: whoever talks across it notices only at its ping timeout. */
  private cutChanged(a: string, b: string): void {
    const sa = this.servers.has(a);
    const sb = this.servers.has(b);
    if (sa && sb) {
      const key = pairKey(a, b);
      const gen = (this.routeGen.get(key) ?? 0) + 1;
      this.routeGen.set(key, gen);
      this.watchRoute(a, b, gen);
      this.watchRoute(b, a, gen);
    } else if (sa !== sb) {
      const node = sa ? b : a;
      const server = sa ? a : b;
      this.clients.get(node)?.cutFrom(server);
    }
  }

  /** Server `x` notices its route to `y` is silent at the ping tick that exceeds ping_max. */
  private watchRoute(x: string, y: string, gen: number): void {
    const sx = this.servers.get(x)!;
    if (!sx.up || this.routeDown.has(x, y)) return;
    const key = pairKey(x, y);
    const at = staleAt(this.routeSince.get(key) ?? 0, this.world.now, this.timing.routePingIntervalMs, this.timing.serverMaxPingsOut);
    this.world.schedule(at, 'route_stale', () => {
      if (this.routeGen.get(key) !== gen) return;
      if (this.passable(x, y) && this.passable(y, x) && this.serverUp(y)) return;
      this.markRouteDown(x, y);
    }, sx.owner, 0);
  }

  private markRouteDown(x: string, y: string): void {
    this.routeDown.add(x, y);
    if (this.repairing.has(x)) return;
    this.repairing.add(x);
    const sx = this.servers.get(x)!;
    const owner = sx.owner;
    const retry = (): void => {
      let left = false;
      for (const other of this.servers.values()) {
        if (other.name === x || !this.routeDown.has(x, other.name)) continue;
        if (other.up && this.passable(x, other.name) && this.passable(other.name, x)) this.formRoute(x, other.name);
        else left = true;
      }
      if (left && owner.alive) this.world.after(this.timing.routeReconnectMs, 'route_retry', retry, owner, 0);
      else this.repairing.delete(x);
    };
    this.world.after(this.timing.routeReconnectMs, 'route_retry', retry, owner, 0);
  }

  private formRoute(x: string, y: string): void {
    this.routeDown.delete(x, y);
    this.routeDown.delete(y, x);
    const key = pairKey(x, y);
    this.routeSince.set(key, this.world.now);
    this.routeGen.set(key, (this.routeGen.get(key) ?? 0) + 1);
  }
}
