/**
 * Distribution: several node processes as one actor system over a cluster transport with NATS
 * semantics, as Erlang distribution does over TCP. It keeps the member list (heartbeats, down
 * detection, incarnations), carries envelopes to other nodes batched per destination node per
 * turn, and turns every loss of contact into `noconnection` for the links and monitors that
 * cross it. It reaches NATS only through `ClusterTransport` and time only through the Env, so
 * the simulator runs it unchanged on SimNats; it never blocks and never throws at a sender.
 *
 * Subjects (`<c>` is the cluster name, `<n>` a node name escaped for NATS, see subjectToken):
 *
 * - `iris.<c>.hb`       heartbeats (every `heartbeatMs`, and at once on start and reconnect)
 *                       and the goodbye of an orderly stop; every node subscribes;
 * - `iris.<c>.ctl.<n>`  unicast control to node n: hello, bye, ack (below);
 * - `iris.<c>.env.<n>`  envelope batches for node n (msgpackr, the thread batch codec plus a
 *                       header: sender, sender incarnation, receiver incarnation).
 *
 * Views. A node process starts with a fresh incarnation, larger than any earlier one of the
 * same name. For each other node this node holds a record: `up`, `down` or `awaiting` (see
 * resets). A node first heard of (or a newer incarnation of a known one) is up at once, and is
 * sent a `hello` with this node's member record before anything else, so it knows us before
 * our envelopes arrive (one publisher's messages stay in order). A message from an older
 * incarnation is dropped; a newer incarnation first takes the old one down (`restarted`).
 *
 * Down. A node heard nothing from for `downAfterMs` is down (`silence`); one that says goodbye
 * is down at once (`left`); when this node loses its NATS link every other node is down
 * (`link_lost`). Down means: every scheduler of this node gets a NodeDown envelope (links and
 * monitors to that node fire `noconnection`, NODE_DOWN messages go out), outgoing envelopes to
 * it are dropped, links/monitors/spawns aimed at it are answered `noconnection` at once, and
 * batches from it are dropped.
 *
 * Resets. Contact lost on one side only (a paused process, a partition one side noticed first)
 * would leave links alive on the side that noticed nothing. So when a node that is `down` here
 * is heard from again under the same incarnation, this node sends it `bye` and waits
 * (`awaiting`, dropping its batches) for the `ack` of its latest bye. A node receiving `bye`
 * fires every link and monitor to the sender (`reset`, if it still had it up), answers `ack`
 * and considers it up again: both sides have dropped what crossed the old connection, and
 * nothing sent over it can arrive over the new one (it either arrived before the bye or is
 * dropped while awaiting). A bye is resent, with a new number, at most once per heartbeat
 * while awaiting; a stale ack is ignored. Membership subscribers see `down` then `up`.
 */
import { Kind, decodeNodeBatch, decodeValue, encodeNodeBatch, encodeValue, type Envelope, type PidCanonicaliser } from './Envelope.js';
import type { ClusterTransport, Env, TransportLinkState } from './Env.js';
import type { Membership, MembershipEvent, NodeDownCause, NodeMember } from './Membership.js';
import type { Pid, Ref } from './Pid.js';
import { CLUSTER_DOWN_AFTER_MS, CLUSTER_HEARTBEAT_MS, CLUSTER_MAX_DOWN_RECORDS, NODE_BATCH_MAX } from './defaults.js';

/** This node as the distribution reaches it: its schedulers and its pid canonicaliser. */
export interface LocalNode {
  /** Hand `env` to scheduler `sched` of this node, in order with earlier envelopes for it. */
  deliver(sched: number, env: Envelope): void;
  /** Turns decoded pids of this node's live processes into their own objects. */
  readonly canonical: PidCanonicaliser;
}

export interface DistributionOptions {
  env: Env;
  transport: ClusterTransport;
  /** Cluster name: the subjects are `iris.<cluster>.…`; nodes of other clusters are invisible. */
  cluster: string;
  /** This node (its incarnation must be fresh for this start). */
  self: NodeMember;
  local: LocalNode;
  /** Default CLUSTER_HEARTBEAT_MS. */
  heartbeatMs?: number;
  /** Default CLUSTER_DOWN_AFTER_MS. */
  downAfterMs?: number;
}

export interface DistributionStats {
  batchesSent: number;
  envelopesSent: number;
  batchesReceived: number;
  envelopesReceived: number;
  /** Envelopes for a node that was not up (or went down before its batch left). */
  droppedNotUp: number;
  /** Batches dropped on arrival: for another incarnation of this node, or from a node not up here. */
  droppedBatches: number;
  /** Envelopes bigger than the transport's max payload on their own (dropped, logged). */
  oversized: number;
  /** Resets: byes sent and received. */
  byesSent: number;
  byesReceived: number;
}

export interface ClusterSubjects {
  readonly heartbeat: string;
  control(node: string): string;
  envelopes(node: string): string;
}

/** The subjects of cluster `cluster` (node names escaped, see subjectToken). */
export function clusterSubjects(cluster: string): ClusterSubjects {
  const base = `iris.${subjectToken(cluster)}`;
  return {
    heartbeat: `${base}.hb`,
    control: (node) => `${base}.ctl.${subjectToken(node)}`,
    envelopes: (node) => `${base}.env.${subjectToken(node)}`,
  };
}

/**
 * A name as one NATS subject token: `.`, `*`, `>`, `%`, whitespace and control characters
 * become `%XX`, so `iris@host.example` and `iris@host%2Eexample` stay distinct.
 */
export function subjectToken(name: string): string {
  let out = '';
  for (const c of name) {
    const code = c.codePointAt(0) as number;
    out += code <= 0x20 || code === 0x7f || c === '.' || c === '*' || c === '>' || c === '%' ? '%' + code.toString(16).toUpperCase().padStart(2, '0') : c;
  }
  return out;
}

// ---- internal ----------------------------------------------------------------------------

const enum Ctl {
  Heartbeat = 0,
  Leave = 1,
  Hello = 2,
  Bye = 3,
  Ack = 4,
}

type PeerState = 'up' | 'down' | 'awaiting';

interface Peer {
  member: NodeMember;
  state: PeerState;
  /** Why it went down last (meaningful while not up). */
  cause: NodeDownCause | null;
  /** Monotonic ms of the last message from it. */
  lastSeen: number;
  /** Number of the latest bye sent to it, and when. */
  byeSeq: number;
  byeSentAt: number;
  envSubject: string;
  ctlSubject: string;
  out: Envelope[];
  outScheds: number[];
}

type MemberWire = [string, number, string[], Record<string, string>, number];

function toWire(m: NodeMember): MemberWire {
  return [m.name, m.incarnation, [...m.roles], { ...m.addresses }, m.schedulers];
}

function fromWire(w: unknown): NodeMember | null {
  if (!Array.isArray(w) || w.length < 5) return null;
  const [name, incarnation, roles, addresses, schedulers] = w as unknown[];
  if (typeof name !== 'string' || typeof incarnation !== 'number' || typeof schedulers !== 'number') return null;
  if (!Array.isArray(roles) || typeof addresses !== 'object' || addresses === null) return null;
  return Object.freeze({
    name,
    incarnation,
    roles: Object.freeze(roles.filter((r): r is string => typeof r === 'string')),
    addresses: Object.freeze({ ...(addresses as Record<string, string>) }),
    schedulers,
  });
}

export class Distribution implements Membership {
  readonly self: NodeMember;
  readonly heartbeatMs: number;
  readonly downAfterMs: number;
  readonly stats: DistributionStats = {
    batchesSent: 0,
    envelopesSent: 0,
    batchesReceived: 0,
    envelopesReceived: 0,
    droppedNotUp: 0,
    droppedBatches: 0,
    oversized: 0,
    byesSent: 0,
    byesReceived: 0,
  };

  private readonly env: Env;
  private readonly transport: ClusterTransport;
  private readonly local: LocalNode;
  private readonly subjects: ClusterSubjects;
  private readonly schedulers: number;
  private readonly tickMs: number;
  private readonly records = new Map<string, Peer>();
  private readonly listeners = new Set<(e: MembershipEvent) => void>();
  private readonly subs: Array<{ unsubscribe(): void }> = [];
  private stopLinkListener: (() => void) | null = null;
  private dirty: Peer[] = [];
  private flushScheduled = false;
  private running = false;
  private linkUp = false;
  private timer: unknown = undefined;
  private lastTickAt = 0;
  private lastHeartbeatAt = -Infinity;
  private readonly duplicateNames = new Set<number>();
  private readonly flushAll = (): void => this.flush();

  constructor(opts: DistributionOptions) {
    this.env = opts.env;
    this.transport = opts.transport;
    this.local = opts.local;
    this.self = Object.freeze({ ...opts.self, roles: Object.freeze([...opts.self.roles]), addresses: Object.freeze({ ...opts.self.addresses }) });
    this.schedulers = opts.self.schedulers;
    this.heartbeatMs = opts.heartbeatMs ?? CLUSTER_HEARTBEAT_MS;
    this.downAfterMs = opts.downAfterMs ?? CLUSTER_DOWN_AFTER_MS;
    if (!(this.heartbeatMs > 0) || !(this.downAfterMs > this.heartbeatMs)) {
      throw new Error(`distribution: downAfterMs (${this.downAfterMs}) must exceed heartbeatMs (${this.heartbeatMs}) > 0`);
    }
    // Sweep often enough that detection lands within an eighth of down-after past the limit.
    this.tickMs = Math.max(5, Math.min(this.heartbeatMs, this.downAfterMs / 8));
    this.subjects = clusterSubjects(opts.cluster);
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /** Subscribe, announce this node and start heartbeats. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const t = this.transport;
    this.subs.push(t.subscribe(this.subjects.heartbeat, (d) => this.onControl(d)));
    this.subs.push(t.subscribe(this.subjects.control(this.self.name), (d) => this.onControl(d)));
    this.subs.push(t.subscribe(this.subjects.envelopes(this.self.name), (d) => this.onEnvelopes(d)));
    this.stopLinkListener = t.onLinkState((s) => this.onLinkState(s));
    this.linkUp = t.linkState === 'up';
    this.lastTickAt = this.now();
    if (this.linkUp) this.heartbeat();
    this.timer = this.env.timers.setTimer(this.tickMs, this.tick);
  }

  /**
   * Orderly stop: send what is batched, say goodbye (peers take this node down at once), stop
   * heartbeats and subscriptions. The transport stays open (its owner closes it).
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.flush();
    if (this.linkUp) this.publish(this.subjects.heartbeat, encodeValue([Ctl.Leave, toWire(this.self)]));
    this.running = false;
    this.env.timers.clearTimer(this.timer);
    for (const s of this.subs.splice(0)) s.unsubscribe();
    this.stopLinkListener?.();
    this.stopLinkListener = null;
    try {
      await this.transport.flush();
    } catch {
      /* a transport already gone loses the goodbye; peers notice the silence instead */
    }
  }

  // ---- Membership --------------------------------------------------------------------------

  peers(): NodeMember[] {
    const out: NodeMember[] = [];
    for (const p of this.records.values()) if (p.state === 'up') out.push(p.member);
    return out.sort(byName);
  }

  members(): NodeMember[] {
    return [...this.peers(), this.self].sort(byName);
  }

  subscribe(listener: (event: MembershipEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Whether this node's link to NATS is up. */
  get connected(): boolean {
    return this.linkUp;
  }

  // ---- outgoing envelopes (the SchedulerHost's route for other nodes) ---------------------

  /**
   * Send `env` to scheduler `sched` of node `node`. Batched per node until the end of the
   * turn (or NODE_BATCH_MAX). A node that is not up: messages are dropped, and links,
   * monitors and spawns are answered `noconnection` here.
   */
  route(node: string, sched: number, env: Envelope): void {
    const peer = this.records.get(node);
    if (peer === undefined || peer.state !== 'up' || !this.running) {
      this.stats.droppedNotUp++;
      this.bounce(env);
      return;
    }
    peer.out.push(env);
    peer.outScheds.push(sched);
    if (peer.out.length === 1) {
      this.dirty.push(peer);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        this.env.timers.defer(this.flushAll);
      }
    } else if (peer.out.length >= NODE_BATCH_MAX) {
      this.flushPeer(peer);
    }
  }

  /** Send every batch now (normally at the end of the turn). */
  flush(): void {
    this.flushScheduled = false;
    const dirty = this.dirty;
    this.dirty = [];
    for (const p of dirty) this.flushPeer(p);
  }

  private flushPeer(peer: Peer): void {
    const out = peer.out;
    if (out.length === 0) return;
    const scheds = peer.outScheds;
    peer.out = [];
    peer.outScheds = [];
    if (peer.state !== 'up' || !this.linkUp) {
      this.stats.droppedNotUp += out.length;
      return;
    }
    this.publishBatch(peer, out, scheds, 0, out.length);
  }

  private publishBatch(peer: Peer, out: Envelope[], scheds: number[], start: number, end: number): void {
    const header = { from: this.self.name, fromInc: this.self.incarnation, toInc: peer.member.incarnation };
    const bytes = encodeNodeBatch(header, scheds, out, start, end);
    if (bytes.length > this.transport.maxPayload) {
      if (end - start === 1) {
        this.stats.oversized++;
        this.env.log.warn({ to: peer.member.name, bytes: bytes.length, max: this.transport.maxPayload }, 'envelope larger than the NATS max payload dropped');
        return;
      }
      const mid = (start + end) >>> 1;
      this.publishBatch(peer, out, scheds, start, mid);
      this.publishBatch(peer, out, scheds, mid, end);
      return;
    }
    this.publish(peer.envSubject, bytes);
    this.stats.batchesSent++;
    this.stats.envelopesSent += end - start;
  }

  /** Answer, locally, a signal that cannot reach its node: what a lost connection would do. */
  private bounce(env: Envelope): void {
    const from = env[2];
    if (from === null || from.node !== this.self.name) return;
    switch (env[0]) {
      case Kind.Link:
        this.local.deliver(from.sched, [Kind.Exit, from, env[1] as Pid, 'noconnection', 1, env[5]]);
        return;
      case Kind.Monitor:
        this.local.deliver(from.sched, [Kind.Down, from, env[1] as Pid, env[3] as Ref, 'noconnection', env[5]]);
        return;
      case Kind.Spawn:
        this.local.deliver(from.sched, [Kind.SpawnReply, from, null, env[4] as Ref, 'noconnection', env[5]]);
        return;
      default:
        return; // messages and one-way signals to an unreachable node are lost
    }
  }

  // ---- incoming --------------------------------------------------------------------------

  private onEnvelopes(bytes: Uint8Array): void {
    if (!this.running) return;
    let batch;
    try {
      batch = decodeNodeBatch(bytes, this.local.canonical);
    } catch (err) {
      this.stats.droppedBatches++;
      this.env.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'undecodable envelope batch dropped');
      return;
    }
    const h = batch.header;
    const peer = this.records.get(h.from);
    if (h.toInc !== this.self.incarnation || peer === undefined || peer.member.incarnation !== h.fromInc || peer.state !== 'up') {
      this.stats.droppedBatches++;
      if (peer !== undefined && peer.member.incarnation === h.fromInc && peer.state === 'down' && h.toInc === this.self.incarnation) this.sendBye(peer);
      return;
    }
    peer.lastSeen = this.now();
    this.stats.batchesReceived++;
    const envs = batch.envelopes;
    const scheds = batch.scheds;
    this.stats.envelopesReceived += envs.length;
    for (let i = 0; i < envs.length; i++) this.local.deliver(scheds[i] as number, envs[i] as Envelope);
  }

  private onControl(bytes: Uint8Array): void {
    if (!this.running || !this.linkUp) return;
    let msg: unknown;
    try {
      msg = decodeValue(bytes);
    } catch {
      return;
    }
    if (!Array.isArray(msg)) return;
    const kind = msg[0] as Ctl;
    const member = fromWire(msg[1]);
    if (member === null) return;
    if (member.name === this.self.name) {
      // A smaller incarnation is this node's previous life (late messages); a larger one is
      // another process started under this name.
      if (member.incarnation > this.self.incarnation && !this.duplicateNames.has(member.incarnation)) {
        this.duplicateNames.add(member.incarnation);
        this.env.log.error({ node: member.name, incarnation: member.incarnation }, 'another node process uses this node name');
      }
      return;
    }
    const seq = typeof msg[2] === 'number' ? msg[2] : 0;
    const forMe = msg[3] === undefined || msg[3] === this.self.incarnation;
    let peer = this.records.get(member.name);
    if (peer !== undefined && member.incarnation < peer.member.incarnation) return; // an earlier life
    if (kind === Ctl.Leave) {
      if (peer !== undefined && peer.member.incarnation === member.incarnation) this.declareDown(peer, 'left');
      return;
    }
    if (peer !== undefined && member.incarnation > peer.member.incarnation) {
      this.declareDown(peer, 'restarted');
      peer = undefined;
    }
    if (peer === undefined) {
      peer = this.addUp(member);
      if (kind === Ctl.Bye && forMe) {
        this.stats.byesReceived++;
        this.sendAck(peer, seq);
      }
      return;
    }
    peer.lastSeen = this.now();
    const bye = kind === Ctl.Bye && forMe;
    if (bye) this.stats.byesReceived++;
    switch (peer.state) {
      case 'up':
        if (bye) {
          this.declareDown(peer, 'reset');
          this.sendAck(peer, seq);
          this.markUp(peer);
        }
        return;
      case 'down':
        if (bye) {
          this.sendAck(peer, seq);
          this.markUp(peer);
        } else if (kind !== Ctl.Ack && peer.cause !== 'left') {
          this.sendBye(peer);
        }
        return;
      case 'awaiting':
        if (bye) {
          this.sendAck(peer, seq);
          this.markUp(peer);
        } else if (kind === Ctl.Ack) {
          if (forMe && seq === peer.byeSeq) this.markUp(peer);
        } else if (this.now() - peer.byeSentAt >= this.heartbeatMs) {
          this.sendBye(peer);
        }
        return;
    }
  }

  private onLinkState(state: TransportLinkState): void {
    if (!this.running) return;
    if (state === 'up') {
      if (this.linkUp) return;
      this.linkUp = true;
      this.env.log.info({ node: this.self.name }, 'NATS link up; rejoining the cluster');
      this.heartbeat();
      for (const p of this.records.values()) if (p.state === 'down' && p.cause === 'link_lost') this.sendBye(p);
      return;
    }
    if (!this.linkUp) return;
    this.linkUp = false;
    this.env.log.warn({ node: this.self.name, state }, 'NATS link lost; every other node is down until it is back');
    for (const p of this.records.values()) if (p.state !== 'down') this.declareDown(p, 'link_lost');
  }

  // ---- views ----------------------------------------------------------------------------

  private addUp(member: NodeMember): Peer {
    const peer: Peer = {
      member,
      state: 'up',
      cause: null,
      lastSeen: this.now(),
      byeSeq: 0,
      byeSentAt: -Infinity,
      envSubject: this.subjects.envelopes(member.name),
      ctlSubject: this.subjects.control(member.name),
      out: [],
      outScheds: [],
    };
    this.records.set(member.name, peer);
    this.sendControl(peer, [Ctl.Hello, toWire(this.self), 0, member.incarnation]);
    this.emit({ type: 'up', member });
    return peer;
  }

  private markUp(peer: Peer): void {
    peer.state = 'up';
    peer.cause = null;
    peer.lastSeen = this.now();
    this.emit({ type: 'up', member: peer.member });
  }

  private declareDown(peer: Peer, cause: NodeDownCause): void {
    const wasUp = peer.state === 'up';
    peer.state = 'down';
    peer.cause = cause;
    if (peer.out.length > 0) {
      this.stats.droppedNotUp += peer.out.length;
      peer.out = [];
      peer.outScheds = [];
    }
    if (wasUp) {
      this.env.log.info({ node: peer.member.name, incarnation: peer.member.incarnation, cause }, 'node down');
      this.emit({ type: 'down', member: peer.member, cause });
    }
    this.trimDownRecords();
  }

  private emit(event: MembershipEvent): void {
    const env: Envelope =
      event.type === 'up' ? [Kind.NodeUp, null, null, event.member, null, 0] : [Kind.NodeDown, null, null, event.member, event.cause, 0];
    for (let s = 0; s < this.schedulers; s++) this.local.deliver(s, env);
    for (const fn of [...this.listeners]) {
      try {
        fn(event);
      } catch (err) {
        this.env.log.error({ err: err instanceof Error ? err.message : String(err) }, 'membership listener threw');
      }
    }
  }

  private trimDownRecords(): void {
    let down = 0;
    for (const p of this.records.values()) if (p.state === 'down') down++;
    if (down <= CLUSTER_MAX_DOWN_RECORDS) return;
    for (const [name, p] of this.records) {
      if (p.state !== 'down') continue;
      this.records.delete(name);
      if (--down <= CLUSTER_MAX_DOWN_RECORDS) return;
    }
  }

  // ---- control messages -------------------------------------------------------------------

  private sendBye(peer: Peer): void {
    peer.state = 'awaiting';
    peer.byeSeq++;
    peer.byeSentAt = this.now();
    this.stats.byesSent++;
    this.sendControl(peer, [Ctl.Bye, toWire(this.self), peer.byeSeq, peer.member.incarnation]);
  }

  private sendAck(peer: Peer, seq: number): void {
    this.sendControl(peer, [Ctl.Ack, toWire(this.self), seq, peer.member.incarnation]);
  }

  private sendControl(peer: Peer, msg: unknown[]): void {
    if (this.linkUp) this.publish(peer.ctlSubject, encodeValue(msg));
  }

  private heartbeat(): void {
    this.lastHeartbeatAt = this.now();
    this.publish(this.subjects.heartbeat, encodeValue([Ctl.Heartbeat, toWire(this.self)]));
  }

  private publish(subject: string, bytes: Uint8Array): void {
    try {
      this.transport.publish(subject, bytes);
    } catch (err) {
      // At most once: a publish the transport refuses (closing, reconnecting) is a lost message.
      this.env.log.debug({ subject, err: err instanceof Error ? err.message : String(err) }, 'publish refused');
    }
  }

  private readonly tick = (): void => {
    if (!this.running) return;
    const now = this.now();
    // A tick much later than planned means this thread was stalled: messages that arrived
    // meanwhile have not been read yet, so silence measured now would be this node's own.
    const stalled = now - this.lastTickAt > this.downAfterMs / 2;
    this.lastTickAt = now;
    if (this.linkUp) {
      if (now - this.lastHeartbeatAt >= this.heartbeatMs) this.heartbeat();
      if (!stalled) {
        for (const p of this.records.values()) {
          if (p.state !== 'down' && now - p.lastSeen > this.downAfterMs) this.declareDown(p, 'silence');
        }
      }
    }
    this.timer = this.env.timers.setTimer(this.tickMs, this.tick);
  };

  private now(): number {
    return this.env.clock.monotonicMs();
  }
}

function byName(a: NodeMember, b: NodeMember): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
