/**
 * Runs one scenario end to end: builds the world (one node today; the structure takes N),
 * starts the clients, lets the nemesis inject the scenario's faults during the safety phase,
 * heals everything, runs the liveness phase (clients keep sending, then half of them log out
 * and the rest ask for presence), and hands the history to the checkers. The result carries
 * the trace hash that a replay of the same scenario must reproduce exactly.
 */
import { plantCanary } from '../core/Canaries.js';
import { DEFAULT_CONFIG, type IrisConfig } from '../server/NodeConfig.js';
import type { Inbox } from '../core/Inbox.js';
import { userBytes, userKey, type UserKey } from '../core/UserId.js';
import { encodeKey } from '../runtime/StorageKey.js';
import { check, type Violation } from './Checkers.js';
import { History } from './History.js';
import { bytesHex } from './Payload.js';
import type { Scenario } from './Scenario.js';
import { SimClient, userIndex, userName, type ClientBehaviour, type SharedGroup } from './SimClient.js';
import * as GenServer from '../actors/GenServer.js';
import { GROUPS_NAME, type GroupsAdminReply, type GroupsAdminRequest } from '../core/Groups.js';
import { v1Payload } from '../edge/v1/V1Render.js';
import type { LinkProfile } from './SimLink.js';
import { SimNode } from './SimNode.js';
import type { SimRandom } from './SimRandom.js';
import { keyText } from './SimStorage.js';
import { SimWorld } from './SimWorld.js';
import { installTripwires } from './Tripwires.js';

export interface RunOptions {
  recordTrace?: boolean;
  recordCheckpoints?: boolean;
  /** Stop after this many events (the run then fails with a runtime violation). */
  maxEvents?: number;
}

export interface RunResult {
  scenario: Scenario;
  ok: boolean;
  violations: Violation[];
  /** Trace hash as 8 hex digits. */
  traceHash: string;
  events: number;
  simMs: number;
  wallMs: number;
  stats: { sent: number; delivered: number; claims: number; crashes: number; nodeIncarnations: number; fsyncGroups: number; failedGroups: number; processCrashes: number };
  history: History;
  /** The node as the run left it (for inspection). */
  node: SimNode;
  /** Faults the nemesis injected: virtual ms and name. */
  injected: string[];
  trace: string[] | null;
  checkpoints: number[] | null;
  logs: string[];
}

/** Service names that must be alive when a run ends (supervisors restart them). */
const SERVICE_NAMES = ['router_sup', 'services_sup', 'groups', 'key_directory'];

/** Virtual ms the liveness phase allows for the node to come back and settle. */
const HEAL_SETTLE_MS = 3000;
const DRAIN_MS = 8000;
const PRESENCE_MS = 3000;
/** Clients 0..GROUP_SIZE-1 are the group's members (groups are small; the cap is 256). */
const GROUP_SIZE = 16;
/** How long the operator waits for the groups server to answer an add. */
const OPERATOR_CALL_TIMEOUT_MS = 5_000;
/** Each staying client asks about this many others at the end. */
const PRESENCE_PEERS = 8;

export function simConfig(s: Scenario): IrisConfig {
  return {
    ...DEFAULT_CONFIG,
    node_name: 'n0',
    router_pool_size: 4,
    schedulers: s.schedulers,
    auth_enabled: false,
  };
}

const baseProfile = (): LinkProfile => ({ latencyMs: (r: SimRandom) => 1 + r.int(5), splitRate: 0 });

export async function runScenario(s: Scenario, opts: RunOptions = {}): Promise<RunResult> {
  const wallStart = Date.now();
  const world = new SimWorld({ seed: s.seed, recordTrace: opts.recordTrace === true, recordCheckpoints: opts.recordCheckpoints === true });
  const history = new History();
  const has = (f: string): boolean => (s.faults as string[]).includes(f);
  let inc = 1;
  let liveness = false;

  // White-box: what the inbox reports durable, checked against what is on the disk.
  const everOnDisk = new Set<string>();
  const inboxKey = (user: UserKey, id: Uint8Array): string => {
    const k = encodeKey([userBytes(user), id]);
    return k.ok ? keyText(k.bytes) : '';
  };
  const wrapInbox = (inner: Inbox): Inbox => ({
    append(user, rec) {
      const r = inner.append(user, rec);
      if (r.ok) {
        const at = world.now;
        const id = r.id.slice();
        // What a v1 client receives inside RELIABLE_MSG for this record.
        const bytes = v1Payload(rec).slice();
        const incName = `${node.name}#${node.incarnations}`;
        void r.durable.then((stored) => {
          const u = userIndex(userBytes(user));
          if (stored) history.claims.push({ at: world.now, node: incName, user: u, msgId: bytesHex(id), payloadHex: bytesHex(bytes), onDisk: everOnDisk.has(inboxKey(user, id)) });
          else history.storeFailed.push({ at, user: u, msgId: bytesHex(id) });
        });
      }
      return r;
    },
    storeNotice: (user, rec) => inner.storeNotice(user, rec),
    page: (user, limits) => inner.page(user, limits),
    takeNotices: (user, limit) => inner.takeNotices(user, limit),
    ack(user, id) {
      const p = inner.ack(user, id);
      const k = `${userIndex(userBytes(user))}/${bytesHex(id)}`;
      void p.then((ok) => {
        if (ok && !history.ackDurable.has(k)) history.ackDurable.set(k, world.now);
      });
      return p;
    },
  });

  const node: SimNode = new SimNode(world, { name: 'n0', schedulers: s.schedulers, config: simConfig(s), wrapInbox, keepLogLines: opts.recordTrace === true }, () => inc++);
  node.disk.onDurable = (w) => {
    if (w.table === 'inbox' && w.value !== undefined) everOnDisk.add(w.key);
  };

  const behaviour = (): ClientBehaviour => ({
    rate: s.rate,
    seqShare: 0.5,
    ackRate: 0.8,
    ackDelayMaxMs: 300,
    disconnectRate: has('reset') ? 0.02 : 0,
    resendOnReconnect: has('duplicate') ? 3 : 0,
    groupShare: 0.2,
  });
  const profile = (): LinkProfile => ({
    latencyMs: has('jitter') ? (r: SimRandom) => 1 + r.int(r.chance(0.2) ? 200 : 10) : baseProfile().latencyMs,
    splitRate: has('split') ? 0.3 : 0,
  });
  // One group: client 0 creates it; an operator process on the node adds everyone else
  // (v1 has no add opcode) and retries until each add is confirmed durable.
  const group: SharedGroup = {
    gid: null,
    created: () => {
      history.groupMembers.set(0, world.now);
      operate();
    },
  };
  const adding = new Set<string>();
  const operate = (): void => {
    const gid = group.gid;
    if (gid === null || node.status !== 'up') return;
    const gidText = new TextDecoder().decode(gid);
    for (let i = 1; i < Math.min(s.clients, GROUP_SIZE); i++) {
      const k = `${node.incarnations}/${i}`;
      if (history.groupMembers.has(i) || adding.has(k)) continue;
      adding.add(k);
      const add: GroupsAdminRequest = { t: 'admin', op: 'add', actor: userKey(userName(0)), gid: gidText, user: userKey(userName(i)) };
      node.schedulers[0]!.spawn(async (ctx) => {
        const r = await GenServer.call<GroupsAdminReply>(ctx, GROUPS_NAME, add, OPERATOR_CALL_TIMEOUT_MS);
        if (r.ok && (r.value.ok || r.value.code === 'already_member') && !history.groupMembers.has(i)) {
          history.groupMembers.set(i, world.now);
          history.add({ at: world.now, client: i, type: 'ok', op: 'group_add', value: gidText, conn: 0 });
        }
        adding.delete(k);
      }, { label: 'SimOperator' });
    }
  };
  const operatorTick = (): void => {
    operate();
    world.after(1000, 'operator', operatorTick);
  };
  world.after(1000, 'operator', operatorTick);
  const clients: SimClient[] = [];
  for (let i = 0; i < s.clients; i++) clients.push(new SimClient(i, world, world.random(`client/${i}`), history, () => node, s.clients, behaviour(), profile(), () => liveness, group));

  const tripwires = installTripwires();
  if (s.canary !== undefined) plantCanary(s.canary);
  const runtime: string[] = [];
  const maxEvents = opts.maxEvents ?? 20_000_000;
  const run = async (until: number): Promise<void> => {
    if (!(await world.runUntil(until, maxEvents - world.events))) runtime.push(`event budget of ${maxEvents} exhausted at ${world.now} ms`);
  };
  try {
    node.boot();
    if (has('clock')) {
      const r = world.random('clock');
      node.clock.skewMs = r.between(-5000, 5000);
    }
    for (const c of clients) world.after(world.random('start').int(500), 'client_start', () => {
      c.connect();
      c.startSending();
    }, null, c.index);

    // Safety phase: the nemesis strikes now and then.
    const nemesis = world.random('nemesis');
    const faults = s.faults.filter((f) => f !== 'jitter' && f !== 'split' && f !== 'duplicate' && f !== 'reset');
    const injected: string[] = [];
    const strike = (): void => {
      if (liveness || faults.length === 0) return;
      const f = nemesis.pick(faults);
      world.note(`fault:${f}`, 0);
      injected.push(`${world.now} ${f}`);
      switch (f) {
        case 'clog': {
          const links = node.openLinks();
          if (links.length > 0) nemesis.pick(links).clogUntil = world.now + nemesis.between(200, 3000);
          break;
        }
        case 'storm':
          for (const c of clients) c.drop();
          break;
        case 'crash':
          node.crash();
          world.after(nemesis.between(100, 3000), 'restart', () => !liveness && node.boot());
          break;
        case 'pause':
          node.pause(nemesis.between(100, 2000));
          break;
        case 'clock':
          node.clock.wallJumpMs += nemesis.between(-60_000, 60_000);
          break;
        case 'slow_disk': {
          node.disk.faults.fsyncMs = (r) => 20 + r.int(480);
          world.after(nemesis.between(500, 4000), 'disk_ok', () => (node.disk.faults.fsyncMs = () => 1));
          break;
        }
        case 'disk_full':
          node.disk.faults.full = true;
          world.after(nemesis.between(100, 2000), 'disk_ok', () => (node.disk.faults.full = false));
          break;
        case 'fsync_fail':
          node.disk.faults.fsyncFailRate = 0.3;
          world.after(nemesis.between(100, 2000), 'disk_ok', () => (node.disk.faults.fsyncFailRate = 0));
          break;
      }
      world.after(nemesis.between(300, 3000), 'nemesis', strike);
    };
    world.after(nemesis.between(200, 1500), 'nemesis', strike);
    await run(s.safetyMs);

    // Heal: every fault off, the node up, every client back.
    liveness = true;
    world.note('heal', 0);
    node.disk.faults = { fsyncMs: () => 1, fsyncFailRate: 0, full: false };
    if (node.status === 'down') node.boot();
    for (const l of node.openLinks()) l.clogUntil = 0;
    for (const c of clients) {
      c.behaviour = { ...c.behaviour, disconnectRate: 0 };
      c.profile = baseProfile();
      c.sending = false;
      c.connect();
    }
    // Let logins and redeliveries settle, then send once more with nothing in the way.
    await run(world.now + HEAL_SETTLE_MS);
    for (const c of clients) c.startSending();
    await run(world.now + s.livenessSendMs);
    for (const c of clients) c.sending = false;
    await run(world.now + DRAIN_MS);

    // Presence: odd clients log out, even ones ask about everyone.
    const left = new Set<number>();
    for (const c of clients) if (c.index % 2 === 1) {
      left.add(c.index);
      c.leave();
    }
    await run(world.now + PRESENCE_MS);
    const presenceAt = world.now;
    for (const c of clients) if (!left.has(c.index)) c.queryPresence(PRESENCE_PEERS);
    await run(world.now + PRESENCE_MS);

    const online = new Set(clients.filter((c) => c.state === 'online').map((c) => c.index));
    runtime.push(...world.failures.map((f) => `exception in an event: ${f}`));
    runtime.push(...tripwires.violations.map((v) => `tripwire: ${v}`));
    if (node.status !== 'up') runtime.push(`node ${node.name} is ${node.status} at the end of the run`);
    else for (const name of [...SERVICE_NAMES, ...(node.service!.router?.shardNames ?? [])]) if (node.schedulers[0]!.whereis(name) === undefined) runtime.push(`service process ${name} is not running at the end of the run`);
    for (const c of node.crashes) runtime.push(`process crashed: ${c.label ?? '?'} on ${c.node} at ${c.at} ms: ${c.reason}`);

    const violations = check({ history, clients: s.clients, leftAtEnd: left, presenceAt, onlineAtEnd: online, runtime });
    return {
      scenario: s,
      ok: violations.length === 0,
      violations,
      traceHash: world.hash.toString(16).padStart(8, '0'),
      events: world.events,
      simMs: world.now,
      wallMs: Date.now() - wallStart,
      stats: {
        sent: history.sent.length,
        delivered: history.delivered.length,
        claims: history.claims.length,
        crashes: node.incarnations - 1,
        nodeIncarnations: node.incarnations,
        fsyncGroups: node.disk.stats.groups,
        failedGroups: node.disk.stats.failedGroups,
        processCrashes: node.crashes.length,
      },
      history,
      node,
      injected,
      trace: world.trace,
      checkpoints: world.checkpoints,
      logs: node.log.lines,
    };
  } finally {
    plantCanary(null);
    tripwires.remove();
  }
}
