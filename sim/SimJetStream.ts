/**
 * The simulator's model of NATS JetStream as nats-server 2.9.10 runs it, where Iris's safety
 * depends on it (../shared/spec/cluster.md), on top of the server model (sim/SimNats.ts):
 *
 * - **Meta group.** Every server holds a replica of the JetStream meta group (a Raft group,
 *   sim/SimRaft.ts). Its leader alone answers the JetStream API: stream creation is placed on
 *   `replicas` servers, proposed, and answered once the new stream has its first leader.
 *   While the meta leader is re-elected (3–7 s after its server dies) the API answers
 *   `unavailable` (or times out when the leader a server believes in cannot be reached).
 * - **Streams.** Each stream is a Raft group on its servers with a leader. A publish goes from
 *   the node's server to every server whose replica leads the stream (the leader subscribes
 *   to the stream's subjects; the server must believe the route up): no leader known, no
 *   responders, `unavailable` within a round trip; a leader that cannot reach a quorum keeps
 *   it until the client's timeout. The leader pre-checks the Msg-Id against its dedup window
 *   and the entry size, proposes, and once the entry is committed (a quorum holds it) every
 *   replica applies it with the checks of sim/SimStreamState.ts; the leader that applies it
 *   sends the PubAck (or the refusal). Elections: 4–9 s after the leader is lost, among the
 *   most up-to-date replicas; a leader that loses its quorum steps down after 10–20 s.
 * - **Direct get.** `get`, `lastOnSubject` and `info` are answered by one replica the node's
 *   server can reach (its own if it holds one, else one at random, as a queue group picks),
 *   from that replica's applied state: a follower may lag the leader (a recent entry is
 *   `not_found` there, `lastOnSubject` older, `info.lastSeq` smaller). Reads need no leader.
 * - **Purge.** `purge` (JetStream's purge with `seq`) goes to the stream leader, which proposes
 *   it like an entry; every replica drops the entries below the sequence when it applies it, in
 *   the stream's order, and the leader answers. Purged entries stay in the model for the
 *   checkers only (`entryOn(…, purged)`).
 * - **Page cache and disk.** Each server's copy of each group (log and applied state) lives
 *   in its page cache and reaches its disk only at the group's sync, every 2 min from the
 *   group's start (nats-server 2.9 syncs stream data every 2 min). A killed server (`kill`)
 *   restarts with everything; an OS crash or power loss (`os`) goes back to the last sync,
 *   so a server restarts with less and catches up from the leader, and two such crashes
 *   within the sync interval can lose acknowledged entries. Term and vote are assumed durable.
 * - **KV update race** (`kvUpdateRace`, on by default as in 2.9.10, measured on the installed
 *   server): a non-zero `expectLastSubjectSeq` is checked only by the leader before proposing,
 *   so racing compare-and-sets can both win. Off models the check at apply (2.11).
 *
 * Everything is deterministic from the world's seed and runs on its event queue.
 */
import type { AppendOptions, AppendOutcome, GetOutcome, StreamOutcome, StreamSpec, StreamStore } from '../runtime/Env.js';
import type { SimOwner } from './EventQueue.js';
import type { SimNats, SimNatsServerEvent } from './SimNats.js';
import { subjectMatches } from './SimNats.js';
import type { SimNatsClient } from './SimNatsClient.js';
import { RaftStorage, SimRaftReplica, type RaftEntry, type RaftRole, type RaftTiming } from './SimRaft.js';
import type { SimRandom } from './SimRandom.js';
import { SimStreamState, type ApplyResult, type PendingReply, type StreamAppend } from './SimStreamState.js';
import { SimStreamStore } from './SimStreamStore.js';
import type { SimWorld } from './SimWorld.js';

/** The model's timings and switches; defaults are nats-server 2.9.10's (SIM_JETSTREAM_DEFAULTS). */
export interface SimJetStreamOptions {
  /** Stream groups' election timeout (nats-server: 4–9 s). */
  electionMs?: readonly [number, number];
  /** The meta group's election timeout (measured: the API is back 3–7 s after its leader died). */
  metaElectionMs?: readonly [number, number];
  /** A new group's first campaign (nats-server: 100–800 ms). */
  firstElectionMs?: readonly [number, number];
  /** Leader heartbeats (nats-server: 1 s). */
  heartbeatMs?: number;
  /** A leader that heard from fewer than a quorum for this long steps down at its next check (10 s). */
  lostQuorumMs?: number;
  /** How often a leader checks its quorum (10 s). */
  lostQuorumCheckMs?: number;
  /** Page cache to disk, per group (nats-server 2.9: stream data every 2 min). */
  syncIntervalMs?: number;
  /** Client timeout when the caller gives none (nats.js JetStream default: 5 s). */
  requestTimeoutMs?: number;
  /** Most entries one Raft append message carries. */
  maxEntriesPerAppend?: number;
  /** nats-server 2.9.10's KV update race (leader-only pre-check of a non-zero expected subject sequence); default true, as measured. */
  kvUpdateRace?: boolean;
}

export type SimJetStreamConfig = { readonly [K in keyof SimJetStreamOptions]-?: NonNullable<SimJetStreamOptions[K]> };

export const SIM_JETSTREAM_DEFAULTS: SimJetStreamConfig = {
  electionMs: [4_000, 9_000],
  metaElectionMs: [3_000, 7_000],
  firstElectionMs: [100, 800],
  heartbeatMs: 1_000,
  lostQuorumMs: 10_000,
  lostQuorumCheckMs: 10_000,
  syncIntervalMs: 120_000,
  requestTimeoutMs: 5_000,
  maxEntriesPerAppend: 1_024,
  kvUpdateRace: true,
};

/** The Raft group name of the meta group. */
export const META_GROUP = '$meta';

/** A stream as the meta group assigned it. */
export interface StreamAssignment {
  readonly spec: StreamSpec;
  readonly servers: readonly string[];
  readonly reply: PendingReply | null;
}

type MetaOp = { readonly kind: 'create' } & StreamAssignment;

/** A request from a node's stream store to its server. */
export type JsRequest =
  | { readonly type: 'create'; readonly spec: StreamSpec }
  | { readonly type: 'append'; readonly stream: string; readonly subject: string; readonly data: Uint8Array; readonly opts: AppendOptions }
  | { readonly type: 'get'; readonly stream: string; readonly seq: number; readonly next: boolean; readonly subject: string | undefined }
  | { readonly type: 'last'; readonly stream: string; readonly subject: string }
  | { readonly type: 'info'; readonly stream: string }
  | { readonly type: 'purge'; readonly stream: string; readonly keepFromSeq: number };

/** What happened inside the model, for tests and checkers (`onEvent`). */
export type SimJetStreamEvent =
  | { readonly type: 'role'; readonly group: string; readonly server: string; readonly role: RaftRole; readonly term: number; readonly at: number }
  | { readonly type: 'ack'; readonly stream: string; readonly server: string; readonly seq: number; readonly index: number; readonly term: number; readonly duplicate: boolean; readonly at: number };

/** One replica of a stream as tests see it. */
export interface StreamReplicaView {
  readonly server: string;
  readonly role: RaftRole;
  readonly term: number;
  /** Raft log length, commit and applied index. */
  readonly lastIndex: number;
  readonly commit: number;
  readonly applied: number;
  /** Log entries on this server's disk (the last sync). */
  readonly syncedIndex: number;
  readonly lastSeq: number;
  readonly firstSeq: number;
}

interface StreamReplica {
  readonly raft: SimRaftReplica<StreamAppend>;
  state: SimStreamState;
}

/** JetStream inside one running server incarnation. */
interface JsServer {
  readonly name: string;
  readonly owner: SimOwner;
  readonly random: SimRandom;
  meta: SimRaftReplica<MetaOp>;
  readonly assignments: Map<string, StreamAssignment>;
  readonly streams: Map<string, StreamReplica>;
}

const groupOf = (stream: string): string => `S:${stream}`;

export class SimJetStream {
  readonly config: SimJetStreamConfig;
  /** Called for every role change and PubAck (tests and checkers). */
  onEvent: ((e: SimJetStreamEvent) => void) | null = null;
  /** What each server keeps per group, across restarts: page cache and disk. */
  private readonly storage = new Map<string, Map<string, RaftStorage<unknown>>>();
  private readonly live = new Map<string, JsServer>();
  private readonly incarnations = new Map<string, number>();

  constructor(
    private readonly world: SimWorld,
    readonly nats: SimNats,
    opts: SimJetStreamOptions = {},
  ) {
    this.config = { ...SIM_JETSTREAM_DEFAULTS, ...definedOnly(opts) };
    for (const name of nats.serverNames()) {
      this.storage.set(name, new Map());
      if (nats.serverUp(name)) this.startServer(name);
    }
    nats.onServer((e) => this.onServerEvent(e));
  }

  /** The StreamStore of a node: requests go through its client connection `client`. */
  storeFor(client: SimNatsClient): StreamStore {
    return new SimStreamStore(this, client, this.world, this.config.requestTimeoutMs);
  }

  // ---- what tests and the next layers look at ------------------------------------------------

  /** The server whose replica leads `stream` now (the highest term if a stale one lingers), or null. */
  leaderOf(stream: string): string | null {
    return this.leaderOfGroup(groupOf(stream));
  }

  /** The meta leader now, or null during its election. */
  metaLeader(): string | null {
    return this.leaderOfGroup(META_GROUP);
  }

  /** Whether the JetStream API answers everywhere: a meta leader that every running server knows. */
  apiReady(): boolean {
    const leader = this.metaLeader();
    if (leader === null) return false;
    for (const js of this.live.values()) if (js.meta.leader !== leader) return false;
    return true;
  }

  /** The servers `stream` was placed on (empty if no server knows it yet). */
  placement(stream: string): readonly string[] {
    for (const js of this.live.values()) {
      const a = js.assignments.get(stream);
      if (a !== undefined) return a.servers;
    }
    return [];
  }

  /** Every live replica of `stream`. */
  replicas(stream: string): StreamReplicaView[] {
    const out: StreamReplicaView[] = [];
    for (const js of this.live.values()) {
      const r = js.streams.get(stream);
      if (r === undefined) continue;
      out.push({
        server: js.name,
        role: r.raft.role,
        term: r.raft.term,
        lastIndex: r.raft.lastIndex,
        commit: r.raft.commit,
        applied: r.raft.store.applied,
        syncedIndex: r.raft.store.disk.log.length,
        lastSeq: r.state.lastSeq,
        firstSeq: r.state.firstSeq,
      });
    }
    return out;
  }

  /** Servers whose log holds entry `index` of `stream` written in `term` (live or not: their page cache). */
  holders(stream: string, index: number, term: number): string[] {
    const out: string[] = [];
    for (const [server, groups] of this.storage) {
      const st = groups.get(groupOf(stream));
      if (st !== undefined && st.log[index - 1]?.term === term) out.push(server);
    }
    return out;
  }

  /**
   * The entry at `seq` as the replica on `server` has applied it (null if absent or not running);
   * with `purged`, also an entry purged since (the checkers fold a trimmed stream from its start).
   */
  entryOn(server: string, stream: string, seq: number, purged = false): ReturnType<SimStreamState['get']> {
    const st = this.live.get(server)?.streams.get(stream)?.state;
    if (st === undefined) return null;
    return purged ? st.everStored(seq) : st.get(seq, false, undefined);
  }

  // ---- requests from node stream stores ---------------------------------------------------

  /**
   * Send `req` from `client` to its server; the outcome reaches `reply`. False when the
   * client's link is down (nothing sent).
   */
  send(client: SimNatsClient, req: JsRequest, reply: PendingReply): boolean {
    const detail = req.type === 'append' ? req.data.length : 0;
    return this.nats.toServer(client, `js_${req.type}`, (server) => this.atClientServer(server, req, reply), detail);
  }

  private answer(from: string, reply: PendingReply | null, outcome: unknown): void {
    if (reply === null) return;
    this.nats.toClient(from, reply.client, 'js_reply', () => reply.deliver(outcome));
  }

  /** The request reached the client's server: route it as the server's interest says. */
  private atClientServer(at: string, req: JsRequest, reply: PendingReply): void {
    const js = this.live.get(at);
    if (js === undefined) return;
    switch (req.type) {
      case 'create': {
        const leader = js.meta.leader;
        if (leader === null || !this.nats.believesRoute(at, leader)) {
          this.answer(at, reply, { ok: false, reason: 'unavailable', message: 'JetStream cluster not available: no meta leader' });
          return;
        }
        this.nats.toPeer(at, leader, 'js_api', () => this.createAtLeader(leader, req.spec, reply));
        return;
      }
      case 'append': {
        let sent = 0;
        for (const l of this.leadersOf(groupOf(req.stream))) {
          if (!this.nats.believesRoute(at, l)) continue;
          sent++;
          this.nats.toPeer(at, l, 'js_publish', () => this.appendAtLeader(l, req, reply), req.data.length);
        }
        if (sent === 0) this.answer(at, reply, { ok: false, reason: 'unavailable', message: `no responders: stream ${req.stream} has no leader` });
        return;
      }
      case 'purge': {
        // $JS.API.STREAM.PURGE is answered by the stream leader, which proposes it to the group
        // (the meta leader answers for a stream it never assigned, as for info).
        if (!js.assignments.has(req.stream) && js.meta.leader !== null) {
          this.answer(at, reply, { ok: false, reason: 'invalid', message: `no stream ${req.stream}` });
          return;
        }
        const l = this.leadersOf(groupOf(req.stream)).find((x) => this.nats.believesRoute(at, x));
        if (l === undefined) {
          this.answer(at, reply, { ok: false, reason: 'unavailable', message: `no responders: stream ${req.stream} has no leader` });
          return;
        }
        this.nats.toPeer(at, l, 'js_api', () => this.purgeAtLeader(l, req, reply));
        return;
      }
      default: {
        if (req.type === 'info' && !js.assignments.has(req.stream) && js.meta.leader !== null) {
          // nats-server: the meta leader answers the info of a stream it never assigned (10059).
          this.answer(at, reply, { ok: false, reason: 'invalid', message: `no stream ${req.stream}` });
          return;
        }
        const holders: string[] = [];
        for (const other of this.live.values()) if (other.streams.has(req.stream) && this.nats.believesRoute(at, other.name)) holders.push(other.name);
        if (holders.length === 0) {
          this.answer(at, reply, { ok: false, reason: 'unavailable', message: `no responders: no replica of ${req.stream} reachable` });
          return;
        }
        const target = holders.includes(at) ? at : js.random.pick(holders);
        this.nats.toPeer(at, target, 'js_direct_get', () => this.readAtReplica(target, req, reply));
        return;
      }
    }
  }

  private createAtLeader(server: string, spec: StreamSpec, reply: PendingReply): void {
    const js = this.live.get(server);
    if (js === undefined || js.meta.role !== 'leader') return;
    const existing = js.assignments.get(spec.name);
    if (existing !== undefined) {
      this.answer(server, reply, sameSpec(existing.spec, spec) ? { ok: true, created: false } : { ok: false, reason: 'invalid', message: `stream ${spec.name} exists with another configuration` });
      return;
    }
    const replicas = Math.max(1, spec.replicas);
    const candidates = this.nats.serverNames().filter((s) => this.nats.believesRoute(server, s));
    if (candidates.length < replicas) {
      this.answer(server, reply, { ok: false, reason: 'unavailable', message: `insufficient resources: ${candidates.length} servers for ${replicas} replicas` });
      return;
    }
    // Fewest streams first; ties broken by the seed.
    const load = new Map<string, number>(candidates.map((c) => [c, 0]));
    for (const a of js.assignments.values()) for (const s of a.servers) if (load.has(s)) load.set(s, load.get(s)! + 1);
    const keyed = candidates.map((c) => ({ c, k: load.get(c)! * 4_294_967_296 + js.random.uint32() }));
    keyed.sort((x, y) => x.k - y.k);
    const servers = keyed.slice(0, replicas).map((x) => x.c);
    js.meta.propose({ kind: 'create', spec: { ...spec, subjects: [...spec.subjects] }, servers, reply });
  }

  private purgeAtLeader(server: string, req: Extract<JsRequest, { type: 'purge' }>, reply: PendingReply): void {
    const r = this.live.get(server)?.streams.get(req.stream);
    if (r === undefined || r.raft.role !== 'leader') return;
    r.raft.propose({ subject: '', data: new Uint8Array(0), msgId: null, expectLastMsgId: undefined, expectLastSubjectSeq: undefined, expectLastSeq: undefined, subjectSeqPrechecked: false, ts: this.world.now, reply, purgeBelow: req.keepFromSeq });
  }

  private appendAtLeader(server: string, req: Extract<JsRequest, { type: 'append' }>, reply: PendingReply): void {
    const r = this.live.get(server)?.streams.get(req.stream);
    if (r === undefined || r.raft.role !== 'leader') return; // not leading any more: nobody answers
    const spec = r.state.spec;
    if (!spec.subjects.some((p) => subjectMatches(p.split('.'), req.subject))) {
      this.answer(server, reply, { ok: false, reason: 'unavailable', message: `stream ${req.stream} does not capture ${req.subject}` });
      return;
    }
    if (spec.maxEntryBytes !== undefined && req.data.length > spec.maxEntryBytes) {
      this.answer(server, reply, { ok: false, reason: 'too_large', message: `entry of ${req.data.length} bytes exceeds ${spec.maxEntryBytes}` });
      return;
    }
    const o = req.opts;
    const now = this.world.now;
    if (o.msgId !== undefined) {
      const seq = r.state.duplicateOf(o.msgId, now);
      if (seq !== null) {
        this.answer(server, reply, { ok: true, seq, duplicate: true });
        return;
      }
    }
    let prechecked = false;
    if (this.config.kvUpdateRace && o.expectLastSubjectSeq !== undefined && o.expectLastSubjectSeq > 0) {
      const last = r.state.lastSeqOn(req.subject);
      if (last !== o.expectLastSubjectSeq) {
        this.answer(server, reply, { ok: false, reason: 'wrong_last_subject_seq', message: `last sequence on ${req.subject} is ${last}, expected ${o.expectLastSubjectSeq}` });
        return;
      }
      prechecked = true;
    }
    r.raft.propose({
      subject: req.subject,
      data: req.data,
      msgId: o.msgId ?? null,
      expectLastMsgId: o.expectLastMsgId,
      expectLastSubjectSeq: o.expectLastSubjectSeq,
      expectLastSeq: o.expectLastSeq,
      subjectSeqPrechecked: prechecked,
      ts: now,
      reply,
    });
  }

  private readAtReplica(server: string, req: Exclude<JsRequest, { type: 'create' | 'append' | 'purge' }>, reply: PendingReply): void {
    const r = this.live.get(server)?.streams.get(req.stream);
    if (r === undefined) return;
    const st = r.state;
    if (req.type === 'info') {
      this.answer(server, reply, { ok: true, firstSeq: st.firstSeq, lastSeq: st.lastSeq } satisfies StreamOutcome<{ firstSeq: number; lastSeq: number }>);
      return;
    }
    const entry = req.type === 'get' ? st.get(req.seq, req.next, req.subject) : st.lastOn(req.subject);
    const outcome: GetOutcome = entry !== null ? { ok: true, entry } : { ok: false, reason: 'not_found', message: req.type === 'get' ? `no entry at ${req.seq}` : `no entry on ${req.subject}` };
    this.answer(server, reply, outcome);
  }

  // ---- servers ----------------------------------------------------------------------------

  private onServerEvent(e: SimNatsServerEvent): void {
    if (e.type === 'up') {
      this.startServer(e.server);
      return;
    }
    const js = this.live.get(e.server);
    if (js !== undefined) {
      js.meta.stop();
      for (const r of js.streams.values()) r.raft.stop();
      this.live.delete(e.server);
    }
    if (e.kind === 'os') for (const st of this.storage.get(e.server)!.values()) st.loseUnsynced();
  }

  private startServer(name: string): void {
    const inc = (this.incarnations.get(name) ?? 0) + 1;
    this.incarnations.set(name, inc);
    const owner = this.nats.serverOwner(name);
    const random = this.world.random(`js/${name}/${inc}`);
    const js: JsServer = { name, owner, random, meta: null!, assignments: new Map(), streams: new Map() };
    this.live.set(name, js);
    const peers = this.nats.serverNames().filter((s) => s !== name);
    const { store, fresh } = this.storageFor(name, META_GROUP);
    js.meta = new SimRaftReplica<MetaOp>(META_GROUP, name, peers, store as RaftStorage<MetaOp>, {
      world: this.world,
      owner,
      random,
      send: (to, msg) => this.nats.toPeer(name, to, 'raft_meta', () => this.live.get(to)?.meta.receive(name, msg), msg.type === 'append' ? msg.entries.length : 0),
      apply: (_i, entry, replay) => this.applyMeta(js, entry, replay),
      reset: () => {
        js.assignments.clear();
      },
      roleChanged: (role) => this.roleChanged(js, META_GROUP, role, js.meta.term),
    }, this.timing(this.config.metaElectionMs));
    js.meta.start(fresh);
    this.syncEvery(js, store);
  }

  private storageFor(server: string, group: string): { store: RaftStorage<unknown>; fresh: boolean } {
    const groups = this.storage.get(server)!;
    let store = groups.get(group);
    const fresh = store === undefined;
    if (store === undefined) groups.set(group, (store = new RaftStorage<unknown>()));
    return { store, fresh };
  }

  private timing(electionMs: readonly [number, number]): RaftTiming {
    const c = this.config;
    return { electionMs, firstElectionMs: c.firstElectionMs, heartbeatMs: c.heartbeatMs, lostQuorumMs: c.lostQuorumMs, lostQuorumCheckMs: c.lostQuorumCheckMs, maxEntriesPerAppend: c.maxEntriesPerAppend };
  }

  /** The group's copy reaches this server's disk every sync interval from its start. */
  private syncEvery(js: JsServer, store: RaftStorage<unknown>): void {
    const tick = (): void => {
      store.sync();
      this.world.after(this.config.syncIntervalMs, 'js_sync', tick, js.owner, 0);
    };
    this.world.after(this.config.syncIntervalMs, 'js_sync', tick, js.owner, 0);
  }

  private applyMeta(js: JsServer, entry: RaftEntry<MetaOp>, replay: boolean): void {
    const op = entry.payload;
    if (op === null) return;
    const existing = js.assignments.get(op.spec.name);
    if (existing !== undefined) {
      if (!replay && js.meta.role === 'leader') {
        this.answer(js.name, op.reply, sameSpec(existing.spec, op.spec) ? { ok: true, created: false } : { ok: false, reason: 'invalid', message: `stream ${op.spec.name} exists with another configuration` });
      }
      return;
    }
    const a: StreamAssignment = { spec: op.spec, servers: op.servers, reply: op.reply };
    js.assignments.set(op.spec.name, a);
    if (op.servers.includes(js.name) && !js.streams.has(op.spec.name)) this.startStreamReplica(js, a);
  }

  private startStreamReplica(js: JsServer, a: StreamAssignment): void {
    const name = a.spec.name;
    const group = groupOf(name);
    const { store, fresh } = this.storageFor(js.name, group);
    const peers = a.servers.filter((s) => s !== js.name);
    const replica: StreamReplica = { raft: null!, state: new SimStreamState(a.spec) };
    (replica as { raft: SimRaftReplica<StreamAppend> }).raft = new SimRaftReplica<StreamAppend>(group, js.name, peers, store as RaftStorage<StreamAppend>, {
      world: this.world,
      owner: js.owner,
      random: js.random,
      send: (to, msg) => this.nats.toPeer(js.name, to, 'raft', () => this.live.get(to)?.streams.get(name)?.raft.receive(js.name, msg), msg.type === 'append' ? msg.entries.length : 0),
      apply: (index, entry, replay) => this.applyStream(js, name, replica, index, entry, replay),
      reset: () => {
        replica.state = new SimStreamState(a.spec);
      },
      roleChanged: (role) => {
        this.roleChanged(js, group, role, replica.raft.term);
        // The first leader of a new stream answers its creation.
        if (role === 'leader' && replica.raft.lastIndex === 1) this.answer(js.name, a.reply, { ok: true, created: true });
      },
    }, this.timing(this.config.electionMs));
    js.streams.set(name, replica);
    replica.raft.start(fresh);
    this.syncEvery(js, store);
  }

  private applyStream(js: JsServer, stream: string, r: StreamReplica, index: number, entry: RaftEntry<StreamAppend>, replay: boolean): void {
    const e = entry.payload;
    if (e === null) return;
    if (e.purgeBelow !== undefined) {
      const purged = r.state.purge(e.purgeBelow);
      if (!replay && r.raft.role === 'leader') this.answer(js.name, e.reply, { ok: true, purged } satisfies StreamOutcome<{ purged: number }>);
      return;
    }
    const result: ApplyResult = r.state.apply(e);
    if (replay || r.raft.role !== 'leader' || e.reply === null) return;
    if (result.ok) this.onEvent?.({ type: 'ack', stream, server: js.name, seq: result.seq, index, term: entry.term, duplicate: result.duplicate, at: this.world.now });
    this.answer(js.name, e.reply, result satisfies AppendOutcome);
  }

  private roleChanged(js: JsServer, group: string, role: RaftRole, term: number): void {
    this.world.note(`js_role:${group}:${role}`, term);
    this.onEvent?.({ type: 'role', group, server: js.name, role, term, at: this.world.now });
  }

  /** Live servers whose replica of `group` is leading, highest term first. */
  private leadersOf(group: string): string[] {
    const out: { s: string; t: number }[] = [];
    for (const js of this.live.values()) {
      const raft = group === META_GROUP ? js.meta : js.streams.get(group.slice(2))?.raft;
      if (raft !== undefined && raft.role === 'leader') out.push({ s: js.name, t: raft.term });
    }
    return out.sort((a, b) => b.t - a.t).map((x) => x.s);
  }

  private leaderOfGroup(group: string): string | null {
    return this.leadersOf(group)[0] ?? null;
  }
}

function sameSpec(a: StreamSpec, b: StreamSpec): boolean {
  return (
    a.replicas === b.replicas &&
    a.duplicateWindowMs === b.duplicateWindowMs &&
    (a.maxAgeMs ?? 0) === (b.maxAgeMs ?? 0) &&
    a.maxEntryBytes === b.maxEntryBytes &&
    a.subjects.length === b.subjects.length &&
    a.subjects.every((s, i) => s === b.subjects[i])
  );
}

function definedOnly<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
