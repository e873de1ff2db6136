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
}

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
  const flat: unknown[] = new Array(1 + batch.length * 6);
  flat[0] = pids;
  let k = 1;
  for (let i = 0; i < batch.length; i++) {
    const e = batch[i] as Envelope;
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

export function decodeBatch(bytes: Uint8Array): Envelope[] {
  const flat = packr.unpack(bytes) as unknown[];
  const pids = flat[0] as Pid[];
  const n = (flat.length - 1) / 6;
  const out: Envelope[] = new Array(n);
  let k = 1;
  for (let i = 0; i < n; i++) {
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
