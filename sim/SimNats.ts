/**
 * Simulated NATS between the nodes of one simulation, behind the Env's ClusterTransport:
 * subjects with `*` and `>` wildcards, queue groups (one member per message, chosen by the
 * seeded stream), request/reply with reply subjects and `no_responders`, core NATS delivery
 * (at most once; order kept per publisher and subscriber), link state per node. Faults:
 * latency, partitions between nodes (symmetric or one-way) during which messages across the
 * cut are lost, and a node's link to NATS lost and regained (`disconnect`/`reconnect`): while
 * down, it neither sends nor receives, and whatever was in flight to it is lost, as when a
 * real client loses its server.
 */
import type { ClusterTransport, TransportLinkState, TransportReply } from '../runtime/Env.js';
import type { SimOwner } from './EventQueue.js';
import type { SimRandom } from './SimRandom.js';
import type { SimWorld } from './SimWorld.js';

interface Subscription {
  node: string;
  owner: SimOwner;
  tokens: string[];
  queue: string | undefined;
  onMessage: (data: Uint8Array, subject: string, reply: string | undefined) => void;
  active: boolean;
}

/** A node's link to the simulated NATS: its state, the listeners, and how often it was lost. */
interface NodeLink {
  state: TransportLinkState;
  /** Incremented at every loss; a message published in an earlier epoch is not delivered. */
  epoch: number;
  readonly listeners: Set<(state: TransportLinkState) => void>;
  owner: SimOwner;
}

/** The max_payload SimNats reports (nats-server's default, 1 MiB). */
export const SIM_NATS_MAX_PAYLOAD = 1024 * 1024;

/** Whether `subject` matches the pattern `tokens` (NATS wildcard rules). */
export function subjectMatches(tokens: readonly string[], subject: string): boolean {
  const parts = subject.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '>') return parts.length > i;
    if (i >= parts.length) return false;
    if (t !== '*' && t !== parts[i]) return false;
  }
  return parts.length === tokens.length;
}

export class SimNats {
  private readonly subs: Subscription[] = [];
  /** "a>b": a's messages do not reach b. */
  private readonly cut = new Set<string>();
  /** Last delivery time per (publisher node, subscriber node), for FIFO. */
  private readonly lastAt = new Map<string, number>();
  private inboxes = 0;
  private readonly links = new Map<string, NodeLink>();
  latencyMs: (r: SimRandom) => number = (r) => r.between(1, 3);
  stats = { published: 0, delivered: 0, dropped: 0 };

  constructor(
    private readonly world: SimWorld,
    private readonly random: SimRandom,
  ) {}

  /** Cut `a` from `b` (and `b` from `a` unless `oneWay`). */
  partition(a: string, b: string, oneWay = false): void {
    this.cut.add(`${a}>${b}`);
    if (!oneWay) this.cut.add(`${b}>${a}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Node `node` loses its link to NATS: link state `down`, messages in flight to it lost. */
  disconnect(node: string): void {
    const l = this.links.get(node);
    if (l === undefined || l.state !== 'up') return;
    l.state = 'down';
    l.epoch++;
    this.tellLink(l);
  }

  /** Node `node` gets its link back (its subscriptions are in place again). */
  reconnect(node: string): void {
    const l = this.links.get(node);
    if (l === undefined || l.state !== 'down') return;
    l.state = 'up';
    this.tellLink(l);
  }

  private tellLink(l: NodeLink): void {
    const state = l.state;
    this.world.after(0, 'nats_link', () => {
      for (const fn of [...l.listeners]) fn(state);
    }, l.owner);
  }

  private linkUp(node: string): boolean {
    return this.links.get(node)?.state === 'up';
  }

  /** The transport of node `node`; its deliveries are `owner`'s events (lost if it crashes). */
  connect(node: string, owner: SimOwner): ClusterTransport {
    let closed = false;
    const mine: Subscription[] = [];
    const link: NodeLink = { state: 'up', epoch: 0, listeners: new Set(), owner };
    this.links.set(node, link);
    const transport: ClusterTransport = {
      get linkState() {
        return link.state;
      },
      onLinkState: (fn) => {
        link.listeners.add(fn);
        return () => link.listeners.delete(fn);
      },
      maxPayload: SIM_NATS_MAX_PAYLOAD,
      publish: (subject, data, reply) => {
        if (!closed) this.publish(node, subject, data.slice(), reply);
      },
      subscribe: (subject, onMessage, opts) => {
        const sub: Subscription = { node, owner, tokens: subject.split('.'), queue: opts?.queue, onMessage, active: !closed };
        if (sub.active) {
          this.subs.push(sub);
          mine.push(sub);
        }
        return {
          unsubscribe: () => {
            sub.active = false;
            const i = this.subs.indexOf(sub);
            if (i >= 0) this.subs.splice(i, 1);
          },
        };
      },
      request: (subject, data, timeoutMs) => {
        if (closed) return Promise.resolve({ ok: false, reason: 'closed' } satisfies TransportReply);
        const inbox = `_INBOX.${node}.${++this.inboxes}`;
        return new Promise<TransportReply>((resolve) => {
          let done = false;
          const finish = (r: TransportReply): void => {
            if (done) return;
            done = true;
            s.unsubscribe();
            this.world.cancel(timer);
            resolve(r);
          };
          const s = transport.subscribe(inbox, (d) => finish({ ok: true, data: d }));
          const timer = this.world.after(timeoutMs, 'nats_timeout', () => finish({ ok: false, reason: 'timeout' }), owner);
          if (this.publish(node, subject, data.slice(), inbox) === 0) finish({ ok: false, reason: 'no_responders' });
        });
      },
      flush: () => Promise.resolve(),
      close: () => {
        closed = true;
        if (this.links.get(node) === link) this.links.delete(node);
        if (link.state !== 'closed') {
          link.state = 'closed';
          this.tellLink(link);
        }
        for (const s of mine) {
          s.active = false;
          const i = this.subs.indexOf(s);
          if (i >= 0) this.subs.splice(i, 1);
        }
        return Promise.resolve();
      },
    };
    return transport;
  }

  /** Route one message; returns how many subscribers it was sent to (before losses). */
  private publish(from: string, subject: string, data: Uint8Array, reply: string | undefined): number {
    this.stats.published++;
    if (!this.linkUp(from)) {
      this.stats.dropped++;
      return 0;
    }
    const targets: Subscription[] = [];
    const groups = new Map<string, Subscription[]>();
    for (const s of this.subs) {
      if (!s.active || !s.owner.alive || !subjectMatches(s.tokens, subject)) continue;
      if (s.queue === undefined) targets.push(s);
      else {
        let g = groups.get(s.queue);
        if (g === undefined) groups.set(s.queue, (g = []));
        g.push(s);
      }
    }
    for (const g of groups.values()) targets.push(this.random.pick(g));
    for (const s of targets) {
      const to = this.links.get(s.node);
      if (this.cut.has(`${from}>${s.node}`) || to === undefined || to.state !== 'up') {
        this.stats.dropped++;
        continue;
      }
      const epoch = to.epoch;
      const pair = `${from}>${s.node}`;
      const at = Math.max(this.world.now + this.latencyMs(this.random), this.lastAt.get(pair) ?? 0);
      this.lastAt.set(pair, at);
      this.world.schedule(at, 'nats', () => {
        if (!s.active) return;
        if (to.state !== 'up' || to.epoch !== epoch) {
          this.stats.dropped++;
          return;
        }
        this.stats.delivered++;
        s.onMessage(data.slice(), subject, reply);
      }, s.owner, data.length);
    }
    return targets.length;
  }
}
