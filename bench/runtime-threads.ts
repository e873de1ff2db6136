/**
 * Cross-scheduler figures of the runtime bench (P2): our batched envelope transport between
 * two worker schedulers, against naive one-postMessage-per-message between two threads.
 */
import { performance } from 'node:perf_hooks';
import { MessageChannel, Worker } from 'node:worker_threads';
import { RuntimeNode } from '../runtime/node/RuntimeNode.js';

const BODIES = new URL('./benchBodies.js', import.meta.url).href;

/** A blaster on scheduler 1 sends `count` messages to a sink on scheduler 2. */
export async function crossSchedulerPerSecond(count = 1_000_000): Promise<number> {
  const node = await RuntimeNode.start({ schedulers: 3, logLevel: 'silent' });
  try {
    let done!: (v: { count: number; inOrder: boolean }) => void;
    const finished = new Promise<{ count: number; inOrder: boolean }>((r) => (done = r));
    const probe = node.spawn(() => (m) => done(m as { count: number; inOrder: boolean }));
    const sink = await node.spawnOn(2, { module: BODIES, fn: 'sink', args: [probe] });
    if (!sink.ok) throw new Error('sink spawn failed');
    const t0 = performance.now();
    const blaster = await node.spawnOn(1, { module: BODIES, fn: 'blaster', args: [sink.pid, count] });
    if (!blaster.ok) throw new Error('blaster spawn failed');
    const r = await finished;
    const t1 = performance.now();
    if (r.count !== count || !r.inOrder) throw new Error(`cross-scheduler run lost or reordered messages: ${JSON.stringify(r)}`);
    return count / ((t1 - t0) / 1000);
  } finally {
    await node.stop();
  }
}

/** Two threads, one postMessage per message. */
export async function naivePostMessagePerSecond(count = 300_000): Promise<number> {
  const file = new URL('./naivePostMessage.js', import.meta.url);
  const receiver = new Worker(file, { workerData: { role: 'receive', count } });
  const sender = new Worker(file, { workerData: { role: 'send', count } });
  try {
    const { port1, port2 } = new MessageChannel();
    const ready = (w: Worker) => new Promise<void>((r) => w.once('message', () => r()));
    const rr = ready(receiver);
    const sr = ready(sender);
    receiver.postMessage({ port: port1 }, [port1]);
    sender.postMessage({ port: port2 }, [port2]);
    await Promise.all([rr, sr]);
    const done = new Promise<void>((r) => receiver.once('message', () => r()));
    const t0 = performance.now();
    sender.postMessage('go');
    await done;
    const t1 = performance.now();
    return count / ((t1 - t0) / 1000);
  } finally {
    await Promise.all([receiver.terminate(), sender.terminate()]);
  }
}
