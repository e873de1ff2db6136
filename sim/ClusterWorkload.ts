/**
 * The workload of a cluster run, behind one interface (`ClusterWorkload`) so the simulation
 * does not care who the users are. Today's implementation, `CoreWorkload`, drives the clustered
 * core directly — no edge, no wire protocol: each user is a session process (an "agent") on the
 * node it is connected through, which registers with its router shard on the owner of its
 * shard group (a remote named send, like an edge session), routes messages into the owners'
 * router shards (plain and SEND_SEQ), sends group messages through the groups servers, uploads
 * and fetches prekeys through the key directories, relays read receipts, and records every
 * delivery. Users move between nodes, and reconnect elsewhere when their node is lost.
 *
 * The v1 workload (sim/V1ClusterWorkload.ts, scenario `workload: 'v1'`) has the same interface
 * with SimClients connected to the nodes' edges; this one stays as the core-level scenario (the
 * default): the simulation, the nemesis and the cluster checkers are the same for both.
 *
 * It also supplies the white-box view of the core (`wrapInbox`): every inbox append an owner
 * issues, with when the core reported it durable and what the disks held at that instant.
 * Randomness comes only from the world's streams; it never reads real time.
 */
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';
import * as GenServer from '../actors/GenServer.js';
import type { ClusterCore } from '../core/cluster/ClusterCore.js';
import { groupsServerName } from '../core/cluster/ShardGroups.js';
import type { DirectMessage, GroupMessage, ReadReceipt } from '../core/Delivery.js';
import type { GroupsAdminReply, GroupsAdminRequest, GroupsReply, GroupsRequest } from '../core/Groups.js';
import type { Inbox } from '../core/Inbox.js';
import type { KeyDirectoryReply, KeyDirectoryRequest } from '../core/KeyDirectory.js';
import type { PrekeyUpload } from '../core/Prekeys.js';
import { sendTo, type NamedOnNode, type ServiceAddress } from '../core/Router.js';
import type { RouterRegister, RouterRelay, RouterRoute, RouteRefused, ShardToSession } from '../core/RouterShard.js';
import { userBytes, userKey, type UserKey } from '../core/UserId.js';
import type { Pid } from '../runtime/Pid.js';
import type { ProcessBody, ProcessContext } from '../runtime/ProcessContext.js';
import { encodeKey } from '../runtime/StorageKey.js';
import { ClusterHistory, type ClusterRequest } from './ClusterHistory.js';
import { watchGroupInbox } from './ClusterInboxWatch.js';
import { bytesHex, encodePayload, GROUP_TARGET, payloadKey } from './Payload.js';
import type { SimCluster } from './SimCluster.js';
import type { SimNode } from './SimNode.js';
import type { SimRandom } from './SimRandom.js';
import { keyText } from './SimStorage.js';

/** What the simulation asks of any workload (core-level sessions, or v1 clients). */
export interface ClusterWorkload {
  readonly history: ClusterHistory;
  /** The white-box view of each group's inbox on each node (given to the nodes' cores). */
  wrapInbox(inner: Inbox, group: number, node: SimNode): Inbox;
  /** Users connect and start sending. */
  start(): void;
  /** Every user connected through `node` is cut off and reconnects elsewhere (an edge lost). */
  storm(node: string): void;
  /** One user moves to another node and resends its last SEND_SEQ messages. */
  move(): void;
  /** Sending on or off; what is sent while `liveness` must get through. */
  setSending(on: boolean, liveness: boolean): void;
  /** After the heal: every user whose session is gone reconnects, every session registers again. */
  reconnectAll(): void;
  /** Whether every user has a live, registered session. */
  allOnline(): boolean;
  /** The end: odd users leave (their sessions end), even ones stay. */
  finish(): { left: ReadonlySet<number>; stayed: ReadonlySet<number> };
  /** Stop every timer of the workload. */
  stop(): void;
}

/** How often the workload looks for users whose session is gone. */
const WORKLOAD_TICK_MS = 250;
/** A user whose node is lost reconnects after 100 ms .. this. */
const RECONNECT_JITTER_MS = 1_500;
/**
 * A session registers again when its group's owner changed (the workload checks every session
 * this often, rather than each session keeping a timer of its own), and always this often.
 */
const REGISTER_CHECK_MS = 500;
const REGISTER_REFRESH_MS = 4_000;
/** Members of the run's chat group (users 0..GROUP_SIZE-1). */
const GROUP_SIZE = 8;
/** The operator retries unconfirmed adds this often, each call waiting this long. */
const OPERATOR_RETRY_MS = 1_000;
const OPERATOR_CALL_TIMEOUT_MS = 3_000;
/** A session resends this many of its last SEND_SEQ messages after moving. */
const RESEND_LAST = 3;
/** One-time prekeys per upload. */
export const OTKS_PER_UPLOAD = 4;
/** Payload padding bytes (messages are small; the payload checks itself). */
const PAYLOAD_PADDING = 24;

// ---- a fixed signing identity: deterministic (Ed25519 signs without randomness) -----------------

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const IDENTITY_SEED = Buffer.alloc(32, 0x5a);
const identityKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, IDENTITY_SEED]), format: 'der', type: 'pkcs8' });
export const IDENTITY_PUBLIC = new Uint8Array(createPublicKey(identityKey).export({ format: 'der', type: 'spki' }).subarray(12));
export const SIGNED_PREKEY = new Uint8Array(32).fill(7);
export const SIGNED_PREKEY_SIGNATURE = new Uint8Array(sign(null, SIGNED_PREKEY, identityKey));

/** What the workload tells a session to do (sent into the session process). */
type AgentCommand =
  | { readonly t: 'w_route'; readonly to: UserKey; readonly rec: DirectMessage; readonly seq?: bigint }
  | { readonly t: 'w_relay'; readonly to: UserKey; readonly rec: ReadReceipt }
  | { readonly t: 'w_groups'; readonly at: ServiceAddress; readonly req: GroupsRequest }
  | { readonly t: 'w_keys'; readonly req: KeyDirectoryRequest; readonly about: UserKey }
  | { readonly t: 'w_register' };

interface UserState {
  readonly index: number;
  readonly key: UserKey;
  /** The node of the current session (null while reconnecting). */
  node: string | null;
  nodeIncarnation: number;
  agent: Pid | null;
  /** Session counter (each new agent is a new session). */
  session: number;
  /** Wants to be connected (false once it left at the end). */
  wantsOnline: boolean;
  reconnectAt: number | null;
  /** The core of the node its session runs on (null while reconnecting). */
  core: ClusterCore | null;
  /** The owner (`<node>#<incarnation>`) its session last registered with, and whether the shard confirmed it. */
  registeredWith: string | null;
  registered: boolean;
  /** When its session was last told to register (virtual ms). */
  lastRegister: number;
  /** Next message number per target. */
  readonly next: Map<number, number>;
  /** Its last SEND_SEQ sends (resent after a move). */
  readonly lastSeq: Array<{ to: number; n: number; payload: Uint8Array }>;
  uploads: number;
}

export interface CoreWorkloadOptions {
  cluster: SimCluster;
  random: SimRandom;
  users: number;
  /** Messages per virtual second over the whole cluster. */
  rate: number;
}

export class CoreWorkload implements ClusterWorkload {
  readonly history = new ClusterHistory();
  private readonly users: UserState[] = [];
  private sending = false;
  private liveness = false;
  private stopped = false;
  private nextRequest = 1;
  private readonly pending = new Map<number, ClusterRequest>();
  /** The run's chat group, once created: its gid and its shard group. */
  private chat: { gid: string; group: number } | null = null;
  private creating = false;
  private readonly adding = new Set<number>();
  private nextRegisterCheck = 0;

  constructor(private readonly o: CoreWorkloadOptions) {
    for (let i = 0; i < o.users; i++) {
      this.users.push({ index: i, key: userKey(new TextEncoder().encode(`u${i}`)), node: null, nodeIncarnation: 0, agent: null, session: 0, wantsOnline: true, reconnectAt: null, core: null, registeredWith: null, registered: false, lastRegister: -Infinity, next: new Map(), lastSeq: [], uploads: 0 });
    }
  }

  private get world() {
    return this.o.cluster.world;
  }

  // ---- white-box: the groups' inboxes --------------------------------------------------------

  wrapInbox(inner: Inbox, group: number, node: SimNode): Inbox {
    return watchGroupInbox(inner, group, node, this.o.cluster, this.history);
  }

  // ---- the run ----------------------------------------------------------------------------

  start(): void {
    for (const u of this.users) u.reconnectAt = this.world.now + this.o.random.int(500);
    this.sending = true;
    this.world.after(WORKLOAD_TICK_MS, 'workload', this.tick);
    this.world.after(this.interval(), 'workload_op', this.operate);
    this.world.after(OPERATOR_RETRY_MS, 'operator', this.operatorTick);
  }

  stop(): void {
    this.stopped = true;
  }

  setSending(on: boolean, liveness: boolean): void {
    this.sending = on;
    this.liveness = liveness;
  }

  storm(node: string): void {
    this.history.note(this.world.now, `storm: every user on ${node} reconnects elsewhere`);
    for (const u of this.users) if (u.node === node) this.drop(u, true);
  }

  move(): void {
    const online = this.users.filter((u) => u.agent !== null);
    if (online.length === 0) return;
    const u = this.o.random.pick(online);
    this.history.note(this.world.now, `move: u${u.index} leaves ${u.node}`);
    this.drop(u, true);
  }

  reconnectAll(): void {
    for (const u of this.users) {
      if (!u.wantsOnline) continue;
      if (u.agent === null || !this.agentAlive(u)) {
        this.drop(u, false);
        u.reconnectAt = this.world.now;
      } else u.registeredWith = null; // register again at the next check
    }
  }

  allOnline(): boolean {
    return this.users.every((u) => !u.wantsOnline || (u.agent !== null && this.agentAlive(u) && u.registered && u.registeredWith === this.ownerNow(u)));
  }

  finish(): { left: ReadonlySet<number>; stayed: ReadonlySet<number> } {
    const left = new Set<number>();
    const stayed = new Set<number>();
    for (const u of this.users) {
      if (u.index % 2 === 1) {
        left.add(u.index);
        u.wantsOnline = false;
        this.drop(u, false);
      } else stayed.add(u.index);
    }
    this.history.note(this.world.now, `finish: ${[...left].map((i) => `u${i}`).join(' ')} leave`);
    return { left, stayed };
  }

  /** Requests still unanswered (with whether they were made after the heal). */
  unanswered(): ClusterRequest[] {
    return [...this.pending.values()];
  }

  /** The chat group of the run (null if never created). */
  chatGroup(): { gid: string; group: number } | null {
    return this.chat;
  }

  // ---- sessions ---------------------------------------------------------------------------

  private readonly tick = (): void => {
    if (this.stopped) return;
    const now = this.world.now;
    for (const u of this.users) {
      if (u.agent !== null && !this.agentAlive(u)) {
        // Its node died or restarted: the session is gone; reconnect elsewhere soon.
        this.history.note(now, `u${u.index}: session ${u.session} on ${u.node} lost`);
        this.drop(u, true);
      }
      if (u.agent === null && u.wantsOnline && u.reconnectAt !== null && now >= u.reconnectAt) this.connect(u);
    }
    if (now >= this.nextRegisterCheck) {
      this.nextRegisterCheck = now + REGISTER_CHECK_MS;
      // A session registers again with each new owner (or new life of it), and now and then anyway.
      for (const u of this.users) {
        if (u.core === null || (ownerLife(u.core, u.key) === u.registeredWith && now - u.lastRegister <= REGISTER_REFRESH_MS)) continue;
        if (this.command(u, { t: 'w_register' })) u.lastRegister = now;
      }
    }
    this.world.after(WORKLOAD_TICK_MS, 'workload', this.tick);
  };

  private agentAlive(u: UserState): boolean {
    if (u.node === null) return false;
    const n = this.o.cluster.node(u.node);
    return n.status === 'up' && n.incarnations === u.nodeIncarnation && n.core !== null;
  }

  /** End the user's session (it may reconnect elsewhere after a jitter). */
  private drop(u: UserState, reconnect: boolean): void {
    if (u.agent !== null && u.node !== null) {
      const n = this.o.cluster.node(u.node);
      if (n.status === 'up' && n.incarnations === u.nodeIncarnation) n.schedulers[0]?.kill(u.agent, 'shutdown');
    }
    u.agent = null;
    u.core = null;
    u.registered = false;
    u.registeredWith = null;
    u.reconnectAt = reconnect && u.wantsOnline ? this.world.now + 100 + this.o.random.int(RECONNECT_JITTER_MS) : u.reconnectAt;
    if (!reconnect) u.reconnectAt = null;
  }

  private connect(u: UserState): void {
    const candidates = this.o.cluster.nodes.filter((n) => n.status === 'up' && n.core !== null && n.name !== u.node);
    const all = candidates.length > 0 ? candidates : this.o.cluster.nodes.filter((n) => n.status === 'up' && n.core !== null);
    if (all.length === 0) {
      u.reconnectAt = this.world.now + 500;
      return;
    }
    const node = this.o.random.pick(all);
    u.session++;
    u.node = node.name;
    u.nodeIncarnation = node.incarnations;
    u.registered = false;
    u.registeredWith = null;
    u.reconnectAt = null;
    u.core = node.core;
    u.lastRegister = this.world.now;
    u.agent = node.schedulers[0]!.spawn(this.agentBody(u, u.session, node.core!), { label: 'SimSession' });
    this.history.note(this.world.now, `u${u.index}: session ${u.session} on ${node.name}`);
    if (u.uploads === 0) this.upload(u);
    if (u.lastSeq.length > 0 && u.session > 1) this.resend(u);
  }

  private ownerNow(u: UserState): string | undefined {
    if (u.node === null) return undefined;
    const core = this.o.cluster.node(u.node).core;
    return core === null ? undefined : ownerLife(core, u.key);
  }

  private agentBody(u: UserState, session: number, core: ClusterCore): ProcessBody {
    return (ctx: ProcessContext) => {
      const mine = (): boolean => u.session === session && u.agent !== null;
      const register = (): void => {
        const at = core.shardOf(u.key);
        u.registeredWith = ownerLife(core, u.key);
        u.registered = false;
        sendTo(ctx, at, { t: 'register', user: u.key, session: ctx.self } satisfies RouterRegister);
      };
      register();
      return (raw) => {
        const m = raw as AgentCommand | ShardToSession | RouteRefused | GroupsReply | KeyDirectoryReply;
        switch (m.t) {
          case 'w_register':
            if (mine()) register();
            return;
          case 'w_route':
            sendTo(ctx, core.shardOf(m.to), { t: 'route', to: m.to, rec: m.rec, replyTo: ctx.self, ...(m.seq !== undefined ? { seq: m.seq } : {}) } satisfies RouterRoute);
            return;
          case 'w_relay':
            sendTo(ctx, core.shardOf(m.to), { t: 'relay', to: m.to, rec: m.rec } satisfies RouterRelay);
            return;
          case 'w_groups':
            sendTo(ctx, m.at, { $gen: 'cast', msg: m.req });
            return;
          case 'w_keys':
            sendTo(ctx, core.keyDirectoryOf(m.about), { $gen: 'cast', msg: m.req });
            return;
          case 'registered':
            if (mine()) u.registered = true;
            return;
          case 'deliver': {
            const rec = m.rec;
            const payload = rec.k === 'direct' ? rec.body : rec.k === 'group' ? rec.ciphertext : new Uint8Array(0);
            this.history.delivered.push({ at: this.world.now, user: u.index, session, msgId: bytesHex(m.id), payloadHex: bytesHex(payload), from: userIndexOf(userKey(rec.from)) });
            return;
          }
          case 'route_refused':
            this.history.refusals.set(m.code, (this.history.refusals.get(m.code) ?? 0) + 1);
            return;
          case 'group_created':
            this.answer(m.tag, `created ${m.gid}`);
            if (this.chat === null) {
              this.chat = { gid: m.gid, group: core.plane.groups.ofChatGroup(m.gid) };
              this.history.members.set(m.gid, new Map([[u.index, this.world.now]]));
              this.history.note(this.world.now, `chat group ${m.gid} created by u${u.index} in shard group ${this.chat.group}`);
            }
            this.creating = false;
            return;
          case 'group_done':
          case 'group_left':
          case 'group_roster':
            this.answer(m.tag, m.t);
            return;
          case 'group_error':
            this.answer(m.tag, `error ${m.code}`);
            if (this.pending.get(m.tag) === undefined) this.creating = false;
            return;
          case 'prekeys':
            this.onPrekeys(u, m);
            return;
          default:
            return; // notices (receipts), replaced
        }
      };
    };
  }

  private command(u: UserState, c: AgentCommand): boolean {
    if (u.agent === null || !this.agentAlive(u)) return false;
    this.o.cluster.node(u.node!).schedulers[0]!.send(u.agent, c, null);
    return true;
  }

  private request(u: UserState, op: ClusterRequest['op'], detail: string): ClusterRequest {
    const r: ClusterRequest = { id: this.nextRequest++, at: this.world.now, user: u.index, session: u.session, op, detail, liveness: this.liveness, answeredAt: null, answer: null };
    this.history.requests.push(r);
    this.pending.set(r.id, r);
    return r;
  }

  private answer(tag: number, answer: string): void {
    const r = this.pending.get(tag);
    if (r === undefined) return;
    this.pending.delete(tag);
    r.answeredAt = this.world.now;
    r.answer = answer;
  }

  // ---- what users do ------------------------------------------------------------------------

  private interval(): number {
    // Exponential gaps at the scenario's rate (at least 1 ms).
    return Math.max(1, Math.round((-Math.log(1 - this.o.random.float()) * 1000) / this.o.rate));
  }

  private readonly operate = (): void => {
    if (this.stopped) return;
    this.world.after(this.interval(), 'workload_op', this.operate);
    if (!this.sending) return;
    const online = this.users.filter((u) => u.agent !== null && this.agentAlive(u) && u.registered);
    if (online.length === 0) return;
    const r = this.o.random;
    const u = r.pick(online);
    const x = r.float();
    if (x < 0.65 || this.users.length < 2) this.sendDirect(u, r.chance(0.5) ? 1 : 0);
    else if (x < 0.8) this.sendGroup(u);
    else if (x < 0.9) this.fetch(u);
    else if (x < 0.93) this.upload(u);
    else this.receipt(u);
  };

  private other(u: UserState): UserState {
    const r = this.o.random;
    let t = this.users[r.int(this.users.length - 1)]!;
    if (t.index >= u.index) t = this.users[t.index + 1]!;
    return t;
  }

  private sendDirect(u: UserState, kind: 0 | 1): void {
    const t = this.other(u);
    const n = u.next.get(t.index) ?? 1;
    u.next.set(t.index, n + 1);
    const payload = encodePayload({ sender: u.index, target: t.index, kind, seq: n, conn: u.session }, PAYLOAD_PADDING);
    const key = payloadKey({ sender: u.index, target: t.index, kind, seq: n, conn: u.session });
    const rec: DirectMessage = { k: 'direct', from: userBytes(u.key), body: payload, format: 'opaque' };
    if (!this.command(u, { t: 'w_route', to: t.key, rec, ...(kind === 1 ? { seq: BigInt(n) } : {}) })) return;
    this.history.sent.push({ at: this.world.now, sender: u.index, target: t.index, kind, n, session: u.session, via: u.node!, key, payloadHex: bytesHex(payload), liveness: this.liveness });
    if (kind === 1) {
      u.lastSeq.push({ to: t.index, n, payload });
      if (u.lastSeq.length > RESEND_LAST) u.lastSeq.shift();
    }
  }

  /** Route the last SEND_SEQ messages again, with their numbers (the shard must drop repeats). */
  private resend(u: UserState): void {
    for (const s of u.lastSeq) {
      const t = this.users[s.to]!;
      const rec: DirectMessage = { k: 'direct', from: userBytes(u.key), body: s.payload, format: 'opaque' };
      if (this.command(u, { t: 'w_route', to: t.key, rec, seq: BigInt(s.n) })) this.history.resent.add(bytesHex(s.payload));
    }
  }

  private receipt(u: UserState): void {
    const t = this.other(u);
    this.command(u, { t: 'w_relay', to: t.key, rec: { k: 'receipt', from: userBytes(u.key), msgId: new Uint8Array(16), atMs: 0 } });
  }

  private sendGroup(u: UserState): void {
    const chat = this.chat;
    if (chat === null) {
      if (!this.creating && u.index === 0 && u.node !== null) {
        const core = this.o.cluster.node(u.node).core!;
        const g = this.o.random.int(core.plane.groups.count);
        const at: NamedOnNode = { name: groupsServerName(g), node: core.plane.table.ownerOf(g) ?? u.node, sched: 0 };
        const req = this.request(u, 'group_create', `in shard group ${g}`);
        if (this.command(u, { t: 'w_groups', at, req: { t: 'create', user: u.key, name: new TextEncoder().encode('sim'), replyTo: u.agent!, tag: req.id } })) this.creating = true;
      }
      return;
    }
    const members = this.history.members.get(chat.gid)!;
    if (!members.has(u.index)) return;
    const n = u.next.get(GROUP_TARGET) ?? 1;
    u.next.set(GROUP_TARGET, n + 1);
    const payload = encodePayload({ sender: u.index, target: GROUP_TARGET, kind: 0, seq: n, conn: u.session }, PAYLOAD_PADDING);
    const core = this.o.cluster.node(u.node!).core!;
    const req = this.request(u, 'group_msg', payloadKey({ sender: u.index, target: GROUP_TARGET, kind: 0, seq: n, conn: u.session }));
    const msg: GroupMessage = { k: 'group', from: userBytes(u.key), gid: chat.gid, header: new Uint8Array([0xa0]), ciphertext: payload };
    if (!this.command(u, { t: 'w_groups', at: core.groupsServerOf(chat.gid), req: { t: 'msg', user: u.key, gid: chat.gid, header: msg.header, ciphertext: payload, replyTo: u.agent!, tag: req.id } })) {
      this.pending.delete(req.id);
      return;
    }
    this.history.sent.push({ at: this.world.now, sender: u.index, target: GROUP_TARGET, kind: 0, n, session: u.session, via: u.node!, key: req.detail, payloadHex: bytesHex(payload), liveness: this.liveness });
  }

  private upload(u: UserState): void {
    if (u.agent === null) return;
    const round = ++u.uploads;
    const otks = Array.from({ length: OTKS_PER_UPLOAD }, (_, i) => Uint8Array.from({ length: 32 }, (_, j) => (j === 0 ? u.index : j === 1 ? round : j === 2 ? i : 0)));
    const upload: PrekeyUpload = { identityKey: IDENTITY_PUBLIC, signedPrekey: SIGNED_PREKEY, signedPrekeySignature: SIGNED_PREKEY_SIGNATURE, oneTimePrekeys: otks, signedPrekeyTimestamp: 1 };
    const req = this.request(u, 'key_upload', `round ${round}`);
    (req as { otks?: string[] }).otks = otks.map(bytesHex);
    if (!this.command(u, { t: 'w_keys', about: u.key, req: { t: 'upload', user: u.key, upload, replyTo: u.agent, tag: req.id } })) this.pending.delete(req.id);
  }

  private fetch(u: UserState): void {
    const t = this.other(u);
    const req = this.request(u, 'key_fetch', `u${t.index}`);
    if (!this.command(u, { t: 'w_keys', about: t.key, req: { t: 'fetch', target: t.key, replyTo: u.agent!, tag: req.id } })) this.pending.delete(req.id);
  }

  private onPrekeys(u: UserState, m: KeyDirectoryReply): void {
    const r = this.pending.get(m.tag);
    this.answer(m.tag, m.status === 'error' ? `error ${m.reason}` : m.status);
    if (r === undefined) return;
    if (r.op === 'key_upload' && m.status === 'ok') {
      const list = this.history.uploaded.get(u.index) ?? [];
      list.push(...((r as { otks?: string[] }).otks ?? []));
      this.history.uploaded.set(u.index, list);
    }
    if (m.status === 'bundle' && m.bundle.oneTimePrekey !== null) {
      this.history.prekeys.push({ at: this.world.now, fetcher: u.index, target: userIndexOf(m.user), keyHex: bytesHex(m.bundle.oneTimePrekey) });
    }
  }

  // ---- the operator: adds the chat group's members through the admin call on the owner ----

  private readonly operatorTick = (): void => {
    if (this.stopped) return;
    this.world.after(OPERATOR_RETRY_MS, 'operator', this.operatorTick);
    const chat = this.chat;
    if (chat === null) return;
    const members = this.history.members.get(chat.gid)!;
    for (let i = 1; i < Math.min(this.users.length, GROUP_SIZE); i++) {
      if (members.has(i) || this.adding.has(i)) continue;
      const ownerName = this.anyTable()?.ownerOf(chat.group);
      const owner = ownerName === undefined ? undefined : this.o.cluster.node(ownerName);
      if (owner === undefined || owner.status !== 'up') return;
      this.adding.add(i);
      const incarnation = owner.incarnations;
      const add: GroupsAdminRequest = { t: 'admin', op: 'add', actor: this.users[0]!.key, gid: chat.gid, user: this.users[i]!.key };
      const req = this.request(this.users[0]!, 'group_add', `u${i}`);
      owner.schedulers[0]!.spawn(async (ctx) => {
        const r = await GenServer.call<GroupsAdminReply>(ctx, groupsServerName(chat.group), add, OPERATOR_CALL_TIMEOUT_MS);
        this.adding.delete(i);
        const ok = r.ok && (r.value.ok || r.value.code === 'already_member');
        this.answer(req.id, r.ok ? (r.value.ok ? 'ok' : r.value.code) : `call failed: ${JSON.stringify(r.reason)}`);
        if (ok && !members.has(i)) members.set(i, this.world.now);
      }, { label: 'SimOperator' });
      // A call that dies with its node is retried by the next tick.
      this.world.after(OPERATOR_CALL_TIMEOUT_MS + 100, 'operator_timeout', () => {
        if (owner.incarnations !== incarnation || owner.status !== 'up') {
          this.adding.delete(i);
          this.pending.delete(req.id);
        }
      });
    }
  };

  private anyTable() {
    for (const n of this.o.cluster.nodes) if (n.core !== null) return n.core.plane.table;
    return undefined;
  }
}

/**
 * The record of `user`'s group as `core`'s table says now: its owner, the owner's incarnation
 * and the epoch (a new epoch may be a new router shard on the same node, which knows no session).
 */
function ownerLife(core: ClusterCore, user: UserKey): string {
  const r = core.plane.table.get(core.plane.groups.ofUser(user));
  return r === undefined ? '' : `${r.owner}#${r.ownerIncarnation}@${r.epoch}`;
}

/** The user index of `u<i>`. */
export function userIndexOf(user: UserKey): number {
  return Number(user.slice(1));
}

/** The key of `user`'s message `id` in a group's inbox table, as the simulated disk holds it. */
export function inboxKeyText(user: UserKey, id: Uint8Array): string {
  const k = encodeKey([userBytes(user), id]);
  return k.ok ? keyText(k.bytes) : '';
}

/**
 * How long `node` (its current incarnation) has seen fewer than a majority of the expected
 * nodes at `now`, by its own membership (0 when it sees a majority).
 */
/**
 * Whether `node`'s incarnation `incarnation` saw a majority once every membership event of the
 * instant `at` was applied (a write taken at `at` before the membership caught up in that same
 * instant was taken by a node that saw a majority by the time its storage decided).
 */
export function majorityAtEndOf(node: SimNode, incarnation: number, needed: number, at: number): boolean {
  const up = new Set<string>();
  for (const m of node.membership) {
    if (m.incarnation !== incarnation || m.at > at) continue;
    if (m.event.type === 'up') up.add(m.event.member.name);
    else up.delete(m.event.member.name);
  }
  return up.size + 1 >= needed;
}

export function minorityFor(node: SimNode, core: ClusterCore, now: number): number {
  const needed = core.guard.needed;
  const dist = node.dist;
  if (dist === null || dist.members().length >= needed) return 0;
  const inc = dist.self.incarnation;
  const up = new Set<string>();
  // A node starts seeing only itself.
  let since: number | null = needed > 1 ? node.bootedAt : null;
  for (const m of node.membership) {
    if (m.incarnation !== inc) continue;
    if (m.event.type === 'up') up.add(m.event.member.name);
    else up.delete(m.event.member.name);
    if (up.size + 1 >= needed) since = null;
    else if (since === null) since = m.at;
  }
  return since === null ? 0 : now - since;
}
