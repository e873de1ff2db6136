/**
 * The v1 workload of a cluster run (`workload: 'v1'`): every node runs the whole service in
 * cluster mode (server/IrisService.ts with the clustered core, as a node process does) and the
 * users are SimClients speaking protocol v1 over simulated links to the nodes' edges. Each
 * client connects through one node at a time and sends SEND and SEND_SEQ to the others and
 * GROUP_MSG to the run's chat group (client 0 creates it with GROUP_CREATE; an operator adds
 * the others with the groups server's admin call on the group's owner, as v1 has no add
 * opcode), acknowledges most deliveries (some late, some never before its connection ends),
 * resends its last SEND_SEQ messages after each reconnect, and through its extension
 * (sim/V1ClientExtras.ts) uploads and fetches prekeys, sends read receipts and asks for
 * presence. Clients move between edges now and then, an edge's clients all move at once in a
 * storm, and the clients of a node that crashed reconnect to other edges.
 *
 * Two histories: the clients' own (sim/History.ts, what the single-node checkers read: sends,
 * deliveries with their connection and login, ACKs made durable, presence answers) and the
 * cluster's (sim/ClusterHistory.ts: every inbox append and removal on the owners, requests to
 * the key directories and groups servers, the chat group's members). v1 answers SEND, SEND_SEQ
 * and GROUP_MSG with nothing when they succeed: what the sender's connection hears is the
 * owner's `route_accepted`, sent once the message is durable. So a message is *accepted* once
 * its owner reported it durable (a claim), and every accepted message must reach its recipient.
 * Randomness from the world's streams; time from the world.
 */
import * as GenServer from '../actors/GenServer.js';
import { groupsServerName } from '../core/cluster/ShardGroups.js';
import type { GroupsAdminReply, GroupsAdminRequest } from '../core/Groups.js';
import type { Inbox } from '../core/Inbox.js';
import { userKey } from '../core/UserId.js';
import { v1Payload } from '../edge/v1/V1Render.js';
import { DEFAULT_CONFIG, type IrisConfig } from '../server/NodeConfig.js';
import type { Violation } from './Checkers.js';
import { ClusterHistory, type ClusterRequest } from './ClusterHistory.js';
import { watchGroupInbox } from './ClusterInboxWatch.js';
import { SIM_STREAM_KEEP_ENTRIES, SIM_STREAM_TRIM_INTERVAL_MS, type ClusterScenario } from './ClusterScenario.js';
import { inboxKeyText, userIndexOf, type ClusterWorkload } from './ClusterWorkload.js';
import { History } from './History.js';
import { bytesHex } from './Payload.js';
import { SimClient, userName, type ClientBehaviour, type SharedGroup } from './SimClient.js';
import type { SimCluster } from './SimCluster.js';
import type { LinkProfile } from './SimLink.js';
import type { SimNode } from './SimNode.js';
import type { SimRandom } from './SimRandom.js';
import { checkV1Cluster } from './V1ClusterCheckers.js';
import { V1ClientExtras } from './V1ClientExtras.js';

/** Members of the run's chat group (clients 0..GROUP_SIZE-1). */
const GROUP_SIZE = 8;
/** The operator retries unconfirmed adds this often, each call waiting this long. */
const OPERATOR_RETRY_MS = 1_000;
const OPERATOR_CALL_TIMEOUT_MS = 3_000;
/** Clients start within this long of the workload's start. */
const START_SPREAD_MS = 500;
/** After the odd clients leave, the others ask for everyone's presence this much later. */
const PRESENCE_QUERY_AFTER_MS = 1_500;
/** Longest delay before a client acknowledges a delivery (some come late). */
const ACK_DELAY_MAX_MS = 1_500;
/**
 * The nodes' request_timeout_ms (default 10 s): v1 answers leave in request order, so a request
 * lost with a node before the heal holds back the answers after it until it times out. Shorter
 * than the time from the heal to the end of the run (settle ≥ 2 s, liveness 2 s, drain 3 s), so
 * what is asked after the heal is answered before the clients leave.
 */
export const V1_REQUEST_TIMEOUT_MS = 5_000;

/** The configuration every node's service runs with (the node name and cluster name are the node's). */
export function v1NodeConfig(s: ClusterScenario, graceMs: number): IrisConfig {
  return {
    ...DEFAULT_CONFIG,
    mode: 'dev',
    auth_enabled: false,
    schedulers: 1,
    expected_cluster_nodes: s.nodes,
    shard_groups: s.shardGroups,
    durability: s.durability,
    partition_grace_ms: graceMs,
    stream_trim_interval_ms: SIM_STREAM_TRIM_INTERVAL_MS,
    stream_keep_entries: SIM_STREAM_KEEP_ENTRIES,
    request_timeout_ms: V1_REQUEST_TIMEOUT_MS,
  };
}

export interface V1ClusterWorkloadOptions {
  cluster: SimCluster;
  random: SimRandom;
  scenario: ClusterScenario;
}

export class V1ClusterWorkload implements ClusterWorkload {
  readonly history = new ClusterHistory();
  /** The clients' own history (the single-node checkers' input). */
  readonly clients = new History();
  private readonly sims: SimClient[] = [];
  /** The node each client connects through. */
  private readonly edges: Array<string | null>;
  private readonly extras: V1ClientExtras;
  private readonly group: SharedGroup;
  /** Past the heal: sends must get through, every delivery is acknowledged. */
  private afterHeal = false;
  private stopped = false;
  private chat: { gid: string; group: number } | null = null;
  private readonly adding = new Set<number>();
  private nextRequest = 1_000_000;
  private presenceAt = Infinity;
  private left: ReadonlySet<number> = new Set();

  constructor(private readonly o: V1ClusterWorkloadOptions) {
    const s = o.scenario;
    const world = o.cluster.world;
    this.edges = Array.from({ length: s.users }, () => null);
    this.group = {
      gid: null,
      created: (gid) => this.groupCreated(gid),
    };
    this.extras = new V1ClientExtras({ world, random: world.random('v1-extras'), history: this.history, users: s.users, group: this.group, requestTimeoutMs: V1_REQUEST_TIMEOUT_MS, liveness: () => this.afterHeal });
    const moves = s.faults.includes('move');
    const behaviour: ClientBehaviour = {
      rate: s.rate / s.users,
      seqShare: 0.5,
      ackRate: 0.8,
      ackDelayMaxMs: ACK_DELAY_MAX_MS,
      disconnectRate: moves ? 0.02 : 0,
      resendOnReconnect: 3,
      groupShare: 0.15,
    };
    const profile: LinkProfile = { latencyMs: (r) => 1 + r.int(5), splitRate: 0.1 };
    for (let i = 0; i < s.users; i++) {
      const c = new SimClient(i, world, world.random(`v1client/${i}`), this.clients, () => this.edgeFor(i), s.users, { ...behaviour }, profile, () => this.afterHeal, this.group);
      c.extension = this.extras;
      this.sims.push(c);
    }
  }

  private get world() {
    return this.o.cluster.world;
  }

  // ---- white-box: the groups' inboxes --------------------------------------------------------

  /**
   * The cluster's inbox watch, and the clients' view of it: every message an owner reports
   * durable is a claim (with the bytes a v1 client receives for it), every removal made durable
   * an ACK made durable.
   */
  wrapInbox(inner: Inbox, group: number, node: SimNode): Inbox {
    const watched = watchGroupInbox(inner, group, node, this.o.cluster, this.history);
    const clients = this.clients;
    const world = this.world;
    const incName = `${node.name}#${node.incarnations}`;
    return {
      append(user, rec) {
        const r = watched.append(user, rec);
        if (!r.ok) return r;
        const id = r.id.slice();
        const bytes = v1Payload(rec).slice();
        void r.durable.then((stored) => {
          if (!stored) return;
          const onDisk = node.disk.table(`g${group}.inbox`).values.has(inboxKeyText(user, id));
          clients.claims.push({ at: world.now, node: incName, user: userIndexOf(user), msgId: bytesHex(id), payloadHex: bytesHex(bytes), onDisk });
        });
        return r;
      },
      storeNotice: (user, rec) => watched.storeNotice(user, rec),
      page: (user, limits) => watched.page(user, limits),
      takeNotices: (user, limit) => watched.takeNotices(user, limit),
      ack(user, id) {
        const p = watched.ack(user, id);
        const key = `${userIndexOf(user)}/${bytesHex(id)}`;
        void p.then((ok) => {
          if (ok && !clients.ackDurable.has(key)) clients.ackDurable.set(key, world.now);
        });
        return p;
      },
    };
  }

  // ---- the run ------------------------------------------------------------------------------

  start(): void {
    const r = this.o.random;
    for (const c of this.sims) {
      this.world.after(r.int(START_SPREAD_MS), 'v1_client_start', () => {
        c.connect();
        c.startSending();
      });
    }
    this.world.after(OPERATOR_RETRY_MS, 'operator', this.operatorTick);
  }

  stop(): void {
    this.stopped = true;
    for (const c of this.sims) c.sending = false;
  }

  setSending(on: boolean, liveness: boolean): void {
    if (liveness) this.afterHeal = true;
    for (const c of this.sims) {
      if (on) c.startSending();
      else c.sending = false;
    }
  }

  storm(node: string): void {
    this.history.note(this.world.now, `storm: every client on ${node} reconnects to another edge`);
    for (const c of this.sims) {
      if (this.edges[c.index] !== node) continue;
      this.moveAway(c.index);
      c.drop();
    }
  }

  move(): void {
    const online = this.sims.filter((c) => c.state === 'online');
    if (online.length === 0) return;
    const c = this.o.random.pick(online);
    const from = this.edges[c.index];
    this.moveAway(c.index);
    this.history.note(this.world.now, `move: u${c.index} leaves ${from} for ${this.edges[c.index]}`);
    c.drop();
  }

  reconnectAll(): void {
    for (const c of this.sims) {
      // No more deliberate disconnects: the liveness phase needs everyone connected.
      c.behaviour = { ...c.behaviour, disconnectRate: 0 };
      if (c.wantsOnline && c.state === 'offline') c.connect();
    }
  }

  allOnline(): boolean {
    return this.sims.every((c) => !c.wantsOnline || c.state === 'online');
  }

  finish(): { left: ReadonlySet<number>; stayed: ReadonlySet<number> } {
    const left = new Set<number>();
    const stayed = new Set<number>();
    for (const c of this.sims) {
      if (c.index % 2 === 1) {
        left.add(c.index);
        c.leave();
      } else stayed.add(c.index);
    }
    this.left = left;
    this.history.note(this.world.now, `finish: ${[...left].map((i) => `u${i}`).join(' ')} leave`);
    // Presence has had time to spread: the others ask about everyone.
    this.world.after(PRESENCE_QUERY_AFTER_MS, 'v1_presence', () => {
      this.presenceAt = this.world.now;
      for (const c of this.sims) if (!left.has(c.index)) c.queryPresence(this.sims.length);
    });
    return { left, stayed };
  }

  /** The chat group of the run (null if never created). */
  chatGroup(): { gid: string; group: number } | null {
    return this.chat;
  }

  /** Sends and deliveries the clients made (for the run's statistics). */
  counts(): { sent: number; delivered: number } {
    return { sent: this.clients.sent.length, delivered: this.clients.delivered.length };
  }

  /** The v1 invariants over the clients' history and the cluster's (sim/V1ClusterCheckers.ts). */
  check(): Violation[] {
    return checkV1Cluster({
      clients: this.clients,
      cluster: this.history,
      users: this.sims.length,
      left: this.left,
      presenceAt: this.presenceAt,
      onlineAtEnd: new Set(this.sims.filter((c) => c.state === 'online').map((c) => c.index)),
      receiptsSent: this.extras.receiptsSent,
      receiptsSeen: this.extras.receiptsSeen,
    });
  }

  // ---- edges --------------------------------------------------------------------------------

  /** The node client `i` connects through: its own while that one accepts, else another one. */
  private edgeFor(i: number): SimNode {
    const name = this.edges[i];
    const n = name === null ? undefined : this.o.cluster.node(name);
    if (n !== undefined && n.status === 'up' && n.service !== null) return n;
    this.moveAway(i);
    return this.o.cluster.node(this.edges[i]!);
  }

  /** Give client `i` another edge: a node that accepts now if any (else any other; its connect is retried). */
  private moveAway(i: number): void {
    const nodes = this.o.cluster.nodes;
    const others = nodes.filter((n) => n.name !== this.edges[i]);
    const up = others.filter((n) => n.status === 'up' && n.service !== null);
    const pick = this.o.random.pick(up.length > 0 ? up : others.length > 0 ? others : [...nodes]);
    this.edges[i] = pick.name;
  }

  // ---- the chat group -------------------------------------------------------------------------

  private groupCreated(gid: Uint8Array): void {
    const text = new TextDecoder().decode(gid);
    const core = this.o.cluster.nodes.find((n) => n.core !== null)?.core;
    if (this.chat !== null || core === undefined || core === null) return;
    this.chat = { gid: text, group: core.plane.groups.ofChatGroup(text) };
    this.history.members.set(text, new Map([[0, this.world.now]]));
    this.clients.groupMembers.set(0, this.world.now);
    this.history.note(this.world.now, `chat group ${text} created by u0 in shard group ${this.chat.group}`);
  }

  /** Adds the chat group's members through the admin call on the group's owner, until each add is confirmed. */
  private readonly operatorTick = (): void => {
    if (this.stopped) return;
    this.world.after(OPERATOR_RETRY_MS, 'operator', this.operatorTick);
    const chat = this.chat;
    if (chat === null) return;
    const members = this.history.members.get(chat.gid)!;
    for (let i = 1; i < Math.min(this.sims.length, GROUP_SIZE); i++) {
      if (members.has(i) || this.adding.has(i)) continue;
      const ownerName = this.anyTable()?.ownerOf(chat.group);
      const owner = ownerName === undefined ? undefined : this.o.cluster.node(ownerName);
      if (owner === undefined || owner.status !== 'up') return;
      this.adding.add(i);
      const incarnation = owner.incarnations;
      const add: GroupsAdminRequest = { t: 'admin', op: 'add', actor: userKey(userName(0)), gid: chat.gid, user: userKey(userName(i)) };
      const req = this.request('group_add', `u${i}`);
      owner.schedulers[0]!.spawn(async (ctx) => {
        const r = await GenServer.call<GroupsAdminReply>(ctx, groupsServerName(chat.group), add, OPERATOR_CALL_TIMEOUT_MS);
        this.adding.delete(i);
        const ok = r.ok && (r.value.ok || r.value.code === 'already_member');
        req.answeredAt = this.world.now;
        req.answer = r.ok ? (r.value.ok ? 'ok' : r.value.code) : `call failed: ${JSON.stringify(r.reason)}`;
        if (ok && !members.has(i)) {
          members.set(i, this.world.now);
          this.clients.groupMembers.set(i, this.world.now);
        }
      }, { label: 'SimOperator' });
      // A call that dies with its node is retried by the next tick.
      this.world.after(OPERATOR_CALL_TIMEOUT_MS + 100, 'operator_timeout', () => {
        if (owner.incarnations !== incarnation || owner.status !== 'up') this.adding.delete(i);
      });
    }
  };

  private request(op: ClusterRequest['op'], detail: string): ClusterRequest {
    const r: ClusterRequest = { id: this.nextRequest++, at: this.world.now, user: 0, session: 0, op, detail, liveness: this.afterHeal, answeredAt: null, answer: null };
    this.history.requests.push(r);
    return r;
  }

  private anyTable() {
    for (const n of this.o.cluster.nodes) if (n.core !== null) return n.core.plane.table;
    return undefined;
  }
}
