/**
 * Envelopes: the unit that crosses scheduler threads and nodes, and their binary codec.
 *
 * An envelope is a small tuple `[kind, to, from, a, b, trace]`. Every signal (message, link,
 * exit, monitor, down, spawn) travels as one, in one FIFO channel per (source, destination),
 * so per-pair ordering holds across every hop. Batches are encoded with msgpackr; pids and
 * refs are msgpack extension types and decode back to equal values on any thread.
 */
import { Packr, addExtension } from 'msgpackr';
import { Pid, Ref } from './Pid.js';

export const enum Kind {
  Msg = 0,
  Link = 1,
  Unlink = 2,
  Exit = 3,
  Monitor = 4,
  Demonitor = 5,
  Down = 6,
  Spawn = 7,
  SpawnReply = 8,
  Named = 9,
  /** Worker scheduler -> its node's main thread: an envelope for another node, to send on. */
  Relay = 10,
  /** Distribution -> every scheduler of its node: a node is up (joined or back). */
  NodeUp = 11,
  /** Distribution -> every scheduler of its node: a node is down; its links and monitors fire. */
  NodeDown = 12,
}

/**
 * Added to the kind of a worker scheduler's envelope for another node when its `to` pid names
 * the destination (everything but Spawn and Named): the main thread subtracts it and sends the
 * envelope on. Flat, so its pids stay in the batch's pid table (a nested Relay would not).
 */
export const RELAYED = 32;

/**
 * [kind, to, from, a, b, trace]
 * - Msg:        to pid, from pid|null, a = message
 * - Link/Unlink: to pid, from pid
 * - Exit:       to pid, from pid, a = reason, b = 1 when it is a link signal
 * - Monitor:    to = target pid, from = watcher, a = ref
 * - Demonitor:  to = target pid, from = watcher, a = ref
 * - Down:       to = watcher, from = target, a = ref, b = reason
 * - Spawn:      to = null, from = requester, a = { spec, opts }, b = request ref
 * - SpawnReply: to = requester, from = child pid | null, a = request ref, b = error reason | null
 * - Named:      to = name (string), from pid|null, a = message
 * - Relay:      to = destination node (string), a = destination scheduler, b = the envelope
 *               (Spawn and Named; the others travel flat as RELAYED + kind)
 * - NodeUp:     a = the member (runtime/Membership.ts NodeMember)
 * - NodeDown:   a = the member, b = why it is down (NodeDownCause)
 */
export type Envelope = [Kind, unknown, Pid | null, unknown, unknown, number];

/** Turns a decoded pid into the receiving thread's canonical object when it is local. */
export type PidCanonicaliser = (pid: Pid) => Pid;
let canonicalise: PidCanonicaliser = (pid) => pid;

export function setPidCanonicaliser(fn: PidCanonicaliser): void {
  canonicalise = fn;
}

addExtension({
  Class: Pid,
  type: 0x50,
  write(pid: Pid) {
    return [pid.node, pid.sched, pid.inc, pid.slot, pid.gen];
  },
  read(a: [string, number, number, number, number]) {
    return canonicalise(new Pid(a[0], a[1], a[2], a[3], a[4]));
  },
});

addExtension({
  Class: Ref,
  type: 0x52,
  write(ref: Ref) {
    return [ref.node, ref.sched, ref.inc, ref.n];
  },
  read(a: [string, number, number, number]) {
    return new Ref(a[0], a[1], a[2], a[3]);
  },
});

const packr = new Packr({ moreTypes: true, useRecords: false, structuredClone: false, int64AsType: 'bigint' });

/**
 * Encode a batch into an owned buffer (msgpackr reuses its own buffer, so copy). The batch is
 * flattened and the destination/source pids are replaced by indexes into a per-batch pid
 * table: a batch usually repeats the same few pids thousands of times.
 */
export function encodeBatch(batch: Envelope[]): Uint8Array {
  return packFlat(null, null, batch, 0, batch.length);
}

export function decodeBatch(bytes: Uint8Array): Envelope[] {
  const flat = packr.unpack(bytes) as unknown[];
  return unflatten(flat, 1, 6, null);
}

/**
 * Who sent a batch between nodes and to whom: the sending node's name and incarnation, and the
 * incarnation of the receiving node it was meant for (a restarted node drops batches meant for
 * its previous life).
 */
export interface NodeBatchHeader {
  from: string;
  fromInc: number;
  toInc: number;
}

export interface NodeBatch {
  header: NodeBatchHeader;
  /** Destination scheduler of each envelope. */
  scheds: number[];
  envelopes: Envelope[];
}

/**
 * Encode envelopes `start..end` of `batch` for another node: the same flat layout and pid
 * table as between threads, plus a header and each envelope's destination scheduler.
 */
export function encodeNodeBatch(header: NodeBatchHeader, scheds: readonly number[], batch: readonly Envelope[], start = 0, end = batch.length): Uint8Array {
  return packFlat([header.from, header.fromInc, header.toInc], scheds, batch, start, end);
}

/**
 * Decode a batch from another node. `canonical` turns pids of the receiving node's live
 * processes into their own objects (given explicitly, so several nodes can share a thread,
 * as in the simulator and in tests).
 */
export function decodeNodeBatch(bytes: Uint8Array, canonical: PidCanonicaliser): NodeBatch {
  const prev = canonicalise;
  canonicalise = canonical;
  let flat: unknown[];
  try {
    flat = packr.unpack(bytes) as unknown[];
  } finally {
    canonicalise = prev;
  }
  const h = flat[1] as [string, number, number];
  const scheds: number[] = [];
  const envelopes = unflatten(flat, 2, 7, scheds);
  return { header: { from: h[0], fromInc: h[1], toInc: h[2] }, scheds, envelopes };
}

/** [pids, header?, (sched?, kind, to, from, a, b, trace)*] */
function packFlat(header: unknown, scheds: readonly number[] | null, batch: readonly Envelope[], start: number, end: number): Uint8Array {
  const pids: Pid[] = [];
  const index = new Map<Pid, number>();
  const ix = (pid: Pid): number => {
    let i = index.get(pid);
    if (i === undefined) {
      i = pids.length;
      pids.push(pid);
      index.set(pid, i);
    }
    return i;
  };
  const width = scheds === null ? 6 : 7;
  const base = header === null ? 1 : 2;
  const flat: unknown[] = new Array(base + (end - start) * width);
  flat[0] = pids;
  if (header !== null) flat[1] = header;
  let k = base;
  for (let i = start; i < end; i++) {
    const e = batch[i] as Envelope;
    if (scheds !== null) flat[k++] = scheds[i];
    flat[k] = e[0];
    flat[k + 1] = e[1] instanceof Pid ? ix(e[1]) : e[1];
    flat[k + 2] = e[2] === null ? null : ix(e[2]);
    flat[k + 3] = e[3];
    flat[k + 4] = e[4];
    flat[k + 5] = e[5];
    k += 6;
  }
  const view = packr.pack(flat);
  const out = new Uint8Array(view.length);
  out.set(view);
  return out;
}

function unflatten(flat: unknown[], base: number, width: number, scheds: number[] | null): Envelope[] {
  const pids = flat[0] as Pid[];
  const n = (flat.length - base) / width;
  const out: Envelope[] = new Array(n);
  let k = base;
  for (let i = 0; i < n; i++) {
    if (scheds !== null) scheds.push(flat[k++] as number);
    const to = flat[k + 1];
    const from = flat[k + 2];
    out[i] = [
      flat[k] as Kind,
      typeof to === 'number' ? pids[to] : to,
      from === null || from === undefined ? null : (pids[from as number] as Pid),
      flat[k + 3],
      flat[k + 4],
      flat[k + 5] as number,
    ];
    k += 6;
  }
  return out;
}

/** Encode any value the way envelopes encode messages (used by transports and storage). */
export function encodeValue(value: unknown): Uint8Array {
  const view = packr.pack(value);
  const out = new Uint8Array(view.length);
  out.set(view);
  return out;
}

export function decodeValue(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}
