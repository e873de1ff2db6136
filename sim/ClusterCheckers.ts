/**
 * The invariants of a cluster run, checked at its end over the history (sim/ClusterHistory.ts)
 * and the final state of the world: every node's disk (its LMDB copy of each group), the shard
 * and control streams as the JetStream model holds them, every node's ownership table and
 * presence table. Each returns violations with a short witness.
 *
 * - durable_lost: a message the core reported durable is not in its recipient's inbox on the
 *   group's final owner, and no owner was asked to remove it (a v1 client's ACK; nothing removes
 *   messages in a core-level run).
 * - ack_before_durable: the core reported a message durable while the owner's disk did not
 *   hold it (so before the PubAck and the local fsync), and no removal of it was durable yet.
 * - phantom / corrupt: a delivery nobody sent, one whose payload does not check out, one stamped
 *   with another sender, or one whose message the core never reported durable.
 * - duplicate_seq: one SEND_SEQ (sender, recipient, number) stored as two messages.
 * - order: one sender's messages to one recipient stored out of order (by number for SEND_SEQ,
 *   per session for plain routes), or first delivered out of order.
 * - stale_epoch: a shard-stream entry of an epoch older than a marker before it.
 * - replicas_disagree: two nodes' copies of a group at the same applied sequence differ, or a
 *   copy differs from the stream's entries folded up to its applied sequence.
 * - minority_write: a node that had seen fewer than a majority of the expected nodes for longer
 *   than the partition grace took a write instead of refusing it at once.
 * - ownership: after the heal a group without exactly one owner that every node agrees on and
 *   that serves it, or a record in the tables that is not the control stream's last.
 * - pending: an append on a node still running that never completed nor failed, or a request
 *   made after the heal that was never answered.
 * - liveness: the cluster did not settle after the heal, a user is not connected, or a message
 *   sent after the heal did not reach its recipient (every confirmed member, for a group).
 * - presence: after the heal a node's presence table disagrees with who is connected.
 * - group_membership / key_lost / prekey_reuse: a confirmed group member missing from the group
 *   on its owner, a confirmed prekey upload missing, a one-time prekey handed out twice or never
 *   uploaded.
 * - runtime: an exception escaped an event, a tripwire fired, a process crashed.
 */
import { decodeValue } from '../runtime/Envelope.js';
import { encodeKey } from '../runtime/StorageKey.js';
import type { ClusterNames } from '../core/cluster/ClusterNames.js';
import { APPLIED_KEY, META_TABLE } from '../core/cluster/GroupStore.js';
import type { OwnershipRecord } from '../core/cluster/OwnershipTable.js';
import { decodeRecord } from '../core/cluster/OwnershipTable.js';
import { groupTableName, routerShardName } from '../core/cluster/ShardGroups.js';
import { decodeEntry, parseMsgId } from '../core/cluster/ShardStream.js';
import type { ClusterHistory, ClusterAppend, ClusterSent } from './ClusterHistory.js';
import { majorityAtEndOf } from './ClusterWorkload.js';
import type { Violation } from './Checkers.js';
import { decodePayload, GROUP_TARGET, hexBytes, payloadKey } from './Payload.js';
import type { SimCluster } from './SimCluster.js';
import type { SimNode } from './SimNode.js';
import { keyText } from './SimStorage.js';

/** How far past the partition grace a minority node may still take a write (the guard's timer, one turn). */
export const MINORITY_SLACK_MS = 250;
/** Violations kept per invariant (the first ones tell the story). */
const MAX_PER_INVARIANT = 5;

export interface ClusterCheckInput {
  history: ClusterHistory;
  cluster: SimCluster;
  names: ClusterNames;
  shardGroups: number;
  graceMs: number;
  /** The cluster settled after the heal (every group served, every node agreeing, nobody in safe mode). */
  settled: boolean;
  /** Every user was connected before the end. */
  allOnline: boolean;
  left: ReadonlySet<number>;
  stayed: ReadonlySet<number>;
  /** The run's chat group (null if never created). */
  chat: { gid: string; group: number } | null;
  /** Problems found while running (exceptions, tripwires, crashed processes). */
  runtime: string[];
}

const utf8 = new TextEncoder();
const userBytesOf = (i: number): Uint8Array => utf8.encode(`u${i}`);

export function checkCluster(input: ClusterCheckInput): Violation[] {
  const { history: h, cluster } = input;
  const out: Violation[] = [];
  const count = new Map<string, number>();
  const add = (invariant: string, message: string, witness: string[] | (() => string[]) = []): void => {
    const n = count.get(invariant) ?? 0;
    if (n >= MAX_PER_INVARIANT) return;
    count.set(invariant, n + 1);
    out.push({ invariant, message, witness: typeof witness === 'function' ? witness() : witness });
  };
  for (const r of input.runtime) add('runtime', r);
  if (!input.settled) add('liveness', 'the cluster did not settle after the heal (a group without a serving owner, tables disagreeing, or a node in safe mode)', () => ownershipWitness(cluster, input.shardGroups));

  // The final records: the control stream's last record of each group.
  const records = finalRecords(cluster, input.names, input.shardGroups, add);
  const live = cluster.nodes.filter((n) => n.status === 'up' && n.core !== null);
  checkOwnership(input, records, live, add);

  const ownerDisk = (g: number): SimNode | null => {
    const r = records[g];
    return r === undefined ? null : cluster.nodes.find((n) => n.name === r.owner) ?? null;
  };
  const finalInbox = new Map<ClusterAppend, boolean | null>();
  const inFinalInbox = (a: ClusterAppend): boolean | null => {
    let found = finalInbox.get(a);
    if (found !== undefined) return found;
    const n = ownerDisk(a.group);
    const k = encodeKey([userBytesOf(a.user), hexBytes(a.msgId)]);
    found = n === null ? null : k.ok && n.disk.table(groupTableName(a.group, 'inbox')).values.has(keyText(k.bytes));
    finalInbox.set(a, found);
    return found;
  };

  // ---- durability -------------------------------------------------------------------------
  const durable = h.appends.filter((a) => a.durable === true);
  const durableById = new Map<string, ClusterAppend>();
  for (const a of durable) durableById.set(`${a.user}/${a.msgId}`, a);
  for (const a of durable) {
    // A report that came late (an old owner settling an outcome) may find the message delivered and removed already.
    const removedAt = h.acked.get(`${a.user}/${a.msgId}`);
    if (a.onOwnerDisk === false && !(removedAt !== undefined && a.settledAt !== null && removedAt <= a.settledAt)) add('ack_before_durable', `the core reported message ${a.msgId} for u${a.user} durable at ${a.settledAt} ms on ${a.node} while its disk did not hold it`, [appendLine(a)]);
    if (inFinalInbox(a) === false && !h.removalsAsked.has(`${a.user}/${a.msgId}`)) add('durable_lost', `message ${a.msgId} (${describe(a.payloadHex)}) for u${a.user}, reported durable by ${a.node} at ${a.settledAt} ms, is not in the inbox on the group's final owner ${records[a.group]?.owner ?? '?'}`, () => [appendLine(a), ...recordLine(records[a.group]), ...h.log.filter((e) => e.at >= a.at - 3_000 && e.at <= (a.settledAt ?? a.at) + 3_000).slice(0, 8).map((e) => `${e.at}ms ${e.what}`)]);
  }

  // ---- deliveries: phantoms, corruption, order --------------------------------------------
  const sentByPayload = new Map<string, ClusterSent>();
  for (const s of h.sent) sentByPayload.set(s.payloadHex, s);
  const firstBySession = new Map<string, Map<string, number>>();
  for (const d of h.delivered) {
    const f = decodePayload(hexBytes(d.payloadHex));
    if (f === null) {
      add('corrupt', `u${d.user} received a payload that does not check out (id ${d.msgId})`, [`deliver at ${d.at} session ${d.session}`]);
      continue;
    }
    const s = sentByPayload.get(d.payloadHex);
    if (s === undefined || (f.target !== d.user && f.target !== GROUP_TARGET)) add('phantom', `u${d.user} received ${payloadKey(f)}, which nobody sent to it`, [`deliver at ${d.at} id ${d.msgId}`]);
    else if (f.sender !== d.from) add('corrupt', `u${d.user} received ${payloadKey(f)} stamped with sender u${d.from}`);
    if (!durableById.has(`${d.user}/${d.msgId}`)) add('phantom', `u${d.user} received message ${d.msgId} (${payloadKey(f)}) that the core never reported durable`, [`deliver at ${d.at} session ${d.session}`]);
    // First deliveries per (session, sender) of SEND_SEQ must come in number order.
    if (f.kind === 1 && f.target !== GROUP_TARGET) {
      const k = `${d.user}/${d.session}`;
      let m = firstBySession.get(k);
      if (m === undefined) firstBySession.set(k, (m = new Map()));
      const prev = m.get(`${f.sender}`) ?? 0;
      if (f.seq < prev) add('order', `u${d.user}'s session ${d.session} got SEND_SEQ #${f.seq} from u${f.sender} after #${prev}`);
      m.set(`${f.sender}`, Math.max(prev, f.seq));
    }
  }

  // Stored order and SEND_SEQ duplicates, over what the final inboxes hold.
  const storedSeq = new Map<string, Set<string>>();
  const byPair = new Map<string, Array<{ id: string; f: NonNullable<ReturnType<typeof decodePayload>> }>>();
  for (const a of durable) {
    if (inFinalInbox(a) !== true) continue;
    const f = decodePayload(hexBytes(a.payloadHex));
    if (f === null || f.target === GROUP_TARGET) continue;
    if (f.kind === 1) {
      const k = `${f.sender}>${f.target}#${f.seq}`;
      let ids = storedSeq.get(k);
      if (ids === undefined) storedSeq.set(k, (ids = new Set()));
      ids.add(a.msgId);
      if (ids.size === 2) add('duplicate_seq', `SEND_SEQ ${k} is stored as two messages`, [...ids].map((i) => `id ${i}`));
    }
    const pair = f.kind === 1 ? `${f.sender}>${f.target}/seq` : `${f.sender}>${f.target}/session${f.conn}`;
    let list = byPair.get(pair);
    if (list === undefined) byPair.set(pair, (list = []));
    list.push({ id: a.msgId, f });
  }
  for (const [pair, list] of byPair) {
    // Message ids sort in append order; one id may be listed twice (a duplicate append record).
    const sorted = [...new Map(list.map((x) => [x.id, x])).values()].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.f.seq <= sorted[i - 1]!.f.seq && !(sorted[i]!.f.kind === 1 && sorted[i]!.f.seq === sorted[i - 1]!.f.seq)) {
        add('order', `${pair}: #${sorted[i]!.f.seq} is stored after #${sorted[i - 1]!.f.seq}`, sorted.map((x) => `${x.id} ${payloadKey(x.f)}`).slice(0, 12));
        break;
      }
    }
  }

  // ---- the streams: stale epochs, and the copies against them -------------------------------
  for (let g = 0; g < input.shardGroups; g++) checkGroupStream(input, g, add);

  // ---- the minority side ---------------------------------------------------------------------
  for (const a of h.appends) {
    if (a.minorityForMs <= input.graceMs + MINORITY_SLACK_MS) continue;
    if (a.settledAt !== null && a.settledAt === a.at && a.durable === false) continue;
    const n = cluster.nodes.find((x) => x.name === a.nodeName)!;
    if (majorityAtEndOf(n, a.distIncarnation, a.majorityNeeded, a.at)) continue;
    // A paused node's guard timer waits with everything else: its grace counts running time only.
    if (n.pauses.some((p) => p.until > a.at - a.minorityForMs && p.from <= a.at)) continue;
    add('minority_write', `${a.node} took message ${a.msgId} for u${a.user} at ${a.at} ms after seeing a minority for ${a.minorityForMs} ms: ${a.durable === null ? 'never settled' : a.durable ? `reported durable at ${a.settledAt} ms` : `failed only at ${a.settledAt} ms`}`, [appendLine(a)]);
  }

  // ---- pending requests -----------------------------------------------------------------------
  for (const a of h.appends) {
    if (a.settledAt !== null) continue;
    const n = cluster.nodes.find((x) => x.name === a.nodeName)!;
    if (`${n.name}#${n.incarnations}` === a.node && n.status === 'up') add('pending', `an append on ${a.node} at ${a.at} ms (message ${a.msgId} for u${a.user}) never completed nor failed`, [appendLine(a)]);
  }
  for (const r of h.requests) if (r.liveness && r.answeredAt === null) add('pending', `u${r.user}'s ${r.op} (${r.detail}) made at ${r.at} ms after the heal was never answered`);
  for (const d of h.drains) {
    const n = cluster.nodes.find((x) => d.node.startsWith(`${x.name}#`))!;
    if (d.answeredAt === null && `${n.name}#${n.incarnations}` === d.node && n.status === 'up') add('pending', `the drain of ${d.node} called at ${d.at} ms never returned`);
  }

  // ---- liveness ---------------------------------------------------------------------------------
  if (!input.allOnline) add('liveness', 'not every user was connected and registered with its owner before the end');
  const deliveredTo = new Set(h.delivered.map((d) => `${d.user}|${d.payloadHex}`));
  const members = input.chat === null ? new Map<number, number>() : h.members.get(input.chat.gid) ?? new Map<number, number>();
  for (const s of h.sent) {
    if (!s.liveness) continue;
    if (s.target === GROUP_TARGET) {
      for (const [m, since] of members) {
        if (m !== s.sender && since < s.at && !deliveredTo.has(`${m}|${s.payloadHex}`)) add('liveness', `group message ${s.key}, sent after the heal at ${s.at} ms, never reached member u${m}`);
      }
    } else if (!deliveredTo.has(`${s.target}|${s.payloadHex}`)) add('liveness', `${s.key}, sent after the heal at ${s.at} ms through ${s.via}, never reached u${s.target}`, () => h.log.filter((e) => e.at >= s.at - 2_000 && e.at <= s.at + 2_000).slice(0, 10).map((e) => `${e.at}ms ${e.what}`));
  }

  // ---- presence everywhere --------------------------------------------------------------------
  for (const n of live) {
    for (const u of input.left) if (n.core!.presence.status(userKeyOf(u)).online) add('presence', `${n.name} shows u${u} online after it left`);
    for (const u of input.stayed) if (!n.core!.presence.status(userKeyOf(u)).online) add('presence', `${n.name} shows u${u} offline though it is connected`);
  }

  // ---- group membership and the key directory --------------------------------------------------
  if (input.chat !== null) {
    const owner = ownerDisk(input.chat.group);
    if (owner !== null) {
      for (const [m] of members) {
        const k = encodeKey([userBytesOf(m), input.chat.gid]);
        if (k.ok && !owner.disk.table(groupTableName(input.chat.group, 'members')).values.has(keyText(k.bytes))) add('group_membership', `u${m}, a confirmed member of ${input.chat.gid}, is not a member on its owner ${owner.name}`);
      }
    }
  }
  const uploadedKeys = new Set<string>();
  for (const r of h.requests) for (const k of (r as { otks?: string[] }).otks ?? []) uploadedKeys.add(k);
  const handed = new Map<string, string>();
  for (const p of h.prekeys) {
    const where = `fetched by u${p.fetcher} at ${p.at} ms`;
    const before = handed.get(p.keyHex);
    if (before !== undefined) add('prekey_reuse', `one-time prekey ${p.keyHex.slice(0, 12)}… of u${p.target} was handed out twice`, [before, where]);
    else handed.set(p.keyHex, where);
    if (!uploadedKeys.has(p.keyHex)) add('prekey_reuse', `one-time prekey ${p.keyHex.slice(0, 12)}… of u${p.target} was never uploaded`, [where]);
  }
  for (const [u] of h.uploaded) {
    const n = ownerDisk(groupOfUserAtEnd(cluster, u));
    const k = encodeKey([userBytesOf(u)]);
    if (n !== null && k.ok && !n.disk.table(groupTableName(groupOfUserAtEnd(cluster, u), 'prekeys')).values.has(keyText(k.bytes))) add('key_lost', `u${u}'s confirmed prekey upload is not in the key directory on ${n.name}`);
  }
  return out;
}

// ---- helpers ---------------------------------------------------------------------------------

function userKeyOf(i: number) {
  return `u${i}` as Parameters<NonNullable<SimNode['core']>['presence']['status']>[0];
}

function groupOfUserAtEnd(cluster: SimCluster, u: number): number {
  const core = cluster.nodes.find((n) => n.core !== null)?.core;
  return core === undefined || core === null ? 0 : core.plane.groups.ofUser(userKeyOf(u));
}

function describe(payloadHex: string): string {
  const f = decodePayload(hexBytes(payloadHex));
  return f === null ? '?' : payloadKey(f);
}

function appendLine(a: ClusterAppend): string {
  return `append at ${a.at} on ${a.node}${a.safeMode ? ' (safe mode)' : ''} group ${a.group} u${a.user} ${a.msgId} ${describe(a.payloadHex)}: ${a.durable === null ? 'unsettled' : a.durable ? 'durable' : 'failed'} at ${a.settledAt}`;
}

function recordLine(r: OwnershipRecord | undefined): string[] {
  return r === undefined ? [] : [`final record: epoch ${r.epoch} owner ${r.owner} standbys ${r.standbys.join(',')} (${r.reason})`];
}

/** The replica of `stream` holding the most (live servers only). */
function fullestReplica(cluster: SimCluster, stream: string): string | null {
  const js = cluster.jetstream;
  if (js === null) return null;
  let best: { server: string; applied: number } | null = null;
  for (const r of js.replicas(stream)) if (best === null || r.lastSeq > best.applied) best = { server: r.server, applied: r.lastSeq };
  return best?.server ?? null;
}

/** The last record of each group in the control stream. */
function finalRecords(cluster: SimCluster, names: ClusterNames, groups: number, add: (i: string, m: string, w?: string[]) => void): Array<OwnershipRecord | undefined> {
  const out: Array<OwnershipRecord | undefined> = new Array(groups).fill(undefined);
  const server = fullestReplica(cluster, names.ctlStream);
  if (server === null) return out;
  const last = cluster.jetstream!.replicas(names.ctlStream).find((r) => r.server === server)!.lastSeq;
  for (let seq = 1; seq <= last; seq++) {
    const e = cluster.jetstream!.entryOn(server, names.ctlStream, seq);
    if (e === null) continue;
    const r = decodeRecord(e.data);
    if (r === null || r.group >= groups || e.subject !== names.groupSubject(r.group)) continue;
    // Compare-and-append: each record of a group follows the one its writer read, epoch + 1.
    const prev = out[r.group];
    if (r.epoch !== (prev?.epoch ?? 0) + 1) add('ownership', `record ${seq} of group ${r.group} (epoch ${r.epoch}, owner ${r.owner}, ${r.reason}) follows epoch ${prev?.epoch ?? 'none'}: two writers won the same compare-and-append`, recordLine(prev));
    out[r.group] = r;
  }
  return out;
}

function checkOwnership(input: ClusterCheckInput, records: Array<OwnershipRecord | undefined>, live: SimNode[], add: (i: string, m: string, w?: string[]) => void): void {
  if (!input.settled) return; // reported once above, with the witness
  for (let g = 0; g < input.shardGroups; g++) {
    const r = records[g];
    if (r === undefined) {
      add('ownership', `group ${g} has no record in the control stream after the heal`);
      continue;
    }
    for (const n of live) {
      const mine = n.core!.plane.table.get(g);
      if (mine?.epoch !== r.epoch || mine.owner !== r.owner) add('ownership', `${n.name}'s table shows group ${g} at epoch ${mine?.epoch} owned by ${mine?.owner}; the control stream's last record is epoch ${r.epoch} owned by ${r.owner}`);
    }
    const serving = live.filter((n) => {
      const p = n.core!.plane.replicas.get(g)?.phase;
      return p === 'owner' || p === 'handing_off';
    });
    const owner = live.find((n) => n.name === r.owner);
    if (owner === undefined) add('ownership', `group ${g}'s owner ${r.owner} is not running after the heal`);
    else if (owner.schedulers[0]?.whereis(routerShardName(g)) === undefined) add('ownership', `group ${g}'s owner ${r.owner} does not serve it (no ${routerShardName(g)})`);
    if (serving.length !== 1 || serving[0]!.name !== r.owner) add('ownership', `group ${g} is served by [${serving.map((n) => n.name).join(', ')}], its record names ${r.owner}`);
  }
}

/** Walk group g's stream: no entry of an epoch older than an earlier marker; every copy equals the stream's prefix. */
function checkGroupStream(input: ClusterCheckInput, g: number, add: (i: string, m: string, w?: string[]) => void): void {
  const { cluster, names } = input;
  const stream = names.groupStream(g);
  const server = fullestReplica(cluster, stream);
  if (server === null) return;
  const js = cluster.jetstream!;
  const last = js.replicas(stream).find((r) => r.server === server)!.lastSeq;
  // The copies to compare, by applied sequence.
  const copies = new Map<number, SimNode[]>();
  for (const n of cluster.nodes) {
    const raw = n.disk.table(groupTableName(g, META_TABLE)).values.get(appliedKeyText());
    if (raw === undefined) continue;
    const v = decodeValue(raw) as [number, string];
    const list = copies.get(v[0]) ?? [];
    list.push(n);
    copies.set(v[0], list);
  }
  const state = new Map<string, Map<string, Uint8Array>>();
  let markerEpoch = 0;
  let prev: { epoch: number; n: number } | null = null;
  const compareAt = (seq: number): void => {
    const nodes = copies.get(seq);
    if (nodes === undefined) return;
    for (const n of nodes) {
      const diff = diffCopy(n, g, state);
      if (diff !== null) add('replicas_disagree', `${n.name}'s copy of group ${g} at applied sequence ${seq} differs from the stream's entries 1..${seq}: ${diff}`, nodes.map((x) => x.name));
    }
  };
  compareAt(0);
  for (let seq = 1; seq <= last; seq++) {
    const e = js.entryOn(server, stream, seq, true);
    if (e === null) {
      add('replicas_disagree', `entry ${seq} of ${stream} is missing on ${server}`);
      return;
    }
    const id = parseMsgId(e.msgId);
    const entry = decodeEntry(e.data);
    if (id === null || entry === null) {
      add('stale_epoch', `entry ${seq} of ${stream} is not a shard entry (Msg-Id ${e.msgId})`);
      return;
    }
    if (id.epoch < markerEpoch) add('stale_epoch', `entry ${seq} of ${stream} (Msg-Id ${e.msgId}) is of epoch ${id.epoch}, after the marker of epoch ${markerEpoch}`, [`previous entry ${prev === null ? 'none' : `${prev.epoch}.${prev.n}`}`]);
    if (entry.t === 'marker') markerEpoch = Math.max(markerEpoch, id.epoch);
    // An owner's entries number up within its epoch (failed appends leave gaps in the numbers).
    else if (prev !== null && id.epoch === prev.epoch && id.n <= prev.n) add('stale_epoch', `entry ${seq} of ${stream} (Msg-Id ${e.msgId}) comes after ${prev.epoch}.${prev.n} of the same epoch`);
    prev = id;
    if (entry.t === 'ops') {
      for (const op of entry.ops) {
        const k = encodeKey(op.key);
        if (!k.ok) continue;
        let t = state.get(op.table);
        if (t === undefined) state.set(op.table, (t = new Map()));
        if (op.type === 'put') t.set(keyText(k.bytes), op.value);
        else t.delete(keyText(k.bytes));
      }
    }
    compareAt(seq);
  }
  for (const [seq, nodes] of copies) if (seq > last) add('replicas_disagree', `${nodes.map((n) => n.name).join(', ')} applied group ${g} up to ${seq}, beyond the stream's last entry ${last}`);
}

let appliedKeyCache: string | null = null;
function appliedKeyText(): string {
  if (appliedKeyCache === null) {
    const k = encodeKey([...APPLIED_KEY]);
    appliedKeyCache = k.ok ? keyText(k.bytes) : '';
  }
  return appliedKeyCache;
}

/** How `n`'s durable copy of group g differs from `state` (null: equal). */
function diffCopy(n: SimNode, g: number, state: Map<string, Map<string, Uint8Array>>): string | null {
  const prefix = `g${g}.`;
  const appliedKey = appliedKeyText();
  const seen = new Set<string>();
  for (const [name, table] of n.disk.tables) {
    if (!name.startsWith(prefix)) continue;
    const t = name.slice(prefix.length);
    seen.add(t);
    const want = state.get(t) ?? new Map<string, Uint8Array>();
    let size = 0;
    for (const k of table.keys) {
      if (t === META_TABLE && k === appliedKey) continue;
      size++;
      const v = table.values.get(k)!;
      const w = want.get(k);
      if (w === undefined) return `table ${t} holds a key the stream never put`;
      if (!sameBytes(w, v)) return `table ${t} holds another value for a key`;
    }
    if (size !== want.size) return `table ${t} holds ${size} keys, the stream ${want.size}`;
  }
  for (const [t, m] of state) if (!seen.has(t) && m.size > 0) return `table ${t} is missing (${m.size} keys in the stream)`;
  return null;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function ownershipWitness(cluster: SimCluster, groups: number): string[] {
  const lines: string[] = [];
  for (const n of cluster.nodes) {
    if (n.core === null) {
      lines.push(`${n.name}: ${n.status}${n.coreFailures.length > 0 ? `, core failed: ${n.coreFailures[n.coreFailures.length - 1]!.message}` : ''}`);
      continue;
    }
    const phases: string[] = [];
    for (let g = 0; g < groups; g++) {
      const r = n.core.plane.table.get(g);
      phases.push(`${g}:${r?.owner ?? '-'}@${r?.epoch ?? 0}/${n.core.plane.replicas.get(g)?.phase ?? '-'}`);
    }
    lines.push(`${n.name}${n.core.guard.safeMode() ? ' (safe mode)' : ''}: ${phases.join(' ')}`);
  }
  return lines;
}
