/**
 * Simulated NATS between the nodes of one simulation, behind the Env's ClusterTransport:
 * subjects with `*` and `>` wildcards, queue groups (one member per message, chosen by the
 * seeded stream), request/reply with reply subjects and `no_responders`, core NATS delivery
 * (at most once; order kept per publisher and subscriber). Faults: latency, and partitions
 * between nodes, symmetric or one-way, during which messages across the cut are lost.
 */
import type { ClusterTransport, TransportReply } from '../runtime/Env.js';
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

  /** The transport of node `node`; its deliveries are `owner`'s events (lost if it crashes). */
  connect(node: string, owner: SimOwner): ClusterTransport {
    let closed = false;
    const mine: Subscription[] = [];
    const transport: ClusterTransport = {
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
      if (this.cut.has(`${from}>${s.node}`)) {
        this.stats.dropped++;
        continue;
      }
      const pair = `${from}>${s.node}`;
      const at = Math.max(this.world.now + this.latencyMs(this.random), this.lastAt.get(pair) ?? 0);
      this.lastAt.set(pair, at);
      this.world.schedule(at, 'nats', () => {
        if (!s.active) return;
        this.stats.delivered++;
        s.onMessage(data.slice(), subject, reply);
      }, s.owner, data.length);
    }
    return targets.length;
  }
}
