/**
 * Distribution bench (RT11, P2 cross-node): actor messages between two node processes through
 * one nats-server, against raw NATS publish→subscribe between two processes on the same
 * server in the same run; cross-node ping-pong round trips; and how long the cluster takes to
 * declare a SIGKILLed node process down with the default timings. The bench process is one
 * more node of the cluster (it places the bodies and reads the results).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { Pid } from '../runtime/Pid.js';
import { CLUSTER_DOWN_AFTER_MS, CLUSTER_HEARTBEAT_MS } from '../runtime/defaults.js';
import { RuntimeNode } from '../runtime/node/RuntimeNode.js';
import { startNodeProcess, waitForMembers, type NodeProcess } from '../test/support/clusterNodes.js';
import { NatsCluster } from '../test/support/natsCluster.js';
import { describeMachine } from './machine.js';

const BODIES = new URL('./benchBodies.js', import.meta.url).href;
const RAW_CHILD = new URL('./natsRawChild.js', import.meta.url).pathname;
const CLUSTER = 'bench';
const MESSAGES = 1_000_000;
const RAW_MESSAGES = 1_000_000;
/** Bytes of a raw NATS payload: about what one small actor message costs inside a batch. */
const RAW_PAYLOAD = 8;
const ROUND_TRIPS = 10_000;
const RUNS = 3;
const KILLS = 3;

interface Reply {
  t: string;
}

function childMessage(c: ChildProcess, t: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const on = (m: Reply): void => {
      if (m.t !== t) return;
      c.off('message', on);
      resolve();
    };
    c.on('message', on);
    c.once('exit', (code) => reject(new Error(`raw NATS child exited (${code}) before '${t}'`)));
  });
}

/** Raw NATS: one process publishes, another subscribes and counts; messages/s from go to the last one. */
async function rawNatsPerSecond(url: string): Promise<number> {
  const subject = `raw.${process.pid}`;
  const sub = fork(RAW_CHILD, ['sub', url, subject, String(RAW_MESSAGES), String(RAW_PAYLOAD)]);
  const pub = fork(RAW_CHILD, ['pub', url, subject, String(RAW_MESSAGES), String(RAW_PAYLOAD)]);
  try {
    await Promise.all([childMessage(sub, 'ready'), childMessage(pub, 'ready')]);
    const done = childMessage(sub, 'done');
    const t0 = performance.now();
    pub.send({ t: 'go' });
    await done;
    return RAW_MESSAGES / ((performance.now() - t0) / 1000);
  } finally {
    for (const c of [sub, pub]) c.kill('SIGKILL');
  }
}

function inbox(node: RuntimeNode): { pid: Pid; next<T>(): Promise<T> } {
  const queue: unknown[] = [];
  const waiting: Array<(m: unknown) => void> = [];
  const pid = node.spawn(() => (m) => {
    const w = waiting.shift();
    if (w !== undefined) w(m);
    else queue.push(m);
  });
  return {
    pid,
    next<T>(): Promise<T> {
      if (queue.length > 0) return Promise.resolve(queue.shift() as T);
      return new Promise<T>((r) => waiting.push(r as (m: unknown) => void));
    },
  };
}

async function spawnOn(node: RuntimeNode, where: string, fn: string, args: unknown[]): Promise<Pid> {
  const r = await node.spawnOn(0, { module: BODIES, fn, args }, undefined, where);
  if (!r.ok) throw new Error(`spawn ${fn} on ${where}: ${JSON.stringify(r)}`);
  return r.pid;
}

/** A blaster on node b1 sends MESSAGES numbers to a sink on node b2; messages/s until the sink has them all. */
async function crossNodePerSecond(bench: RuntimeNode): Promise<number> {
  const box = inbox(bench);
  const sink = await spawnOn(bench, 'b2', 'sink', [box.pid]);
  const t0 = performance.now();
  await spawnOn(bench, 'b1', 'blaster', [sink, MESSAGES]);
  const r = await box.next<{ count: number; inOrder: boolean }>();
  const t1 = performance.now();
  if (r.count !== MESSAGES || !r.inOrder) throw new Error(`cross-node run lost or reordered messages: ${JSON.stringify(r)}`);
  return MESSAGES / ((t1 - t0) / 1000);
}

async function roundTrips(bench: RuntimeNode): Promise<number[]> {
  const box = inbox(bench);
  const ponger = await spawnOn(bench, 'b2', 'ponger', []);
  await spawnOn(bench, 'b1', 'pinger', [ponger, ROUND_TRIPS, box.pid]);
  return (await box.next<{ rttsMs: number[] }>()).rttsMs;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Start a node process, wait until the bench sees it, SIGKILL it, time until the bench declares it down. */
async function downDetectionSeconds(bench: RuntimeNode, url: string, i: number): Promise<number> {
  const name = `victim${i}`;
  const victim = await startNodeProcess({ name, cluster: CLUSTER, servers: [url], logLevel: 'silent' });
  await waitForMembers(bench.cluster!, `${name} up`, (peers) => peers.some((p) => p.name === name));
  const t0 = performance.now();
  await victim.kill();
  await waitForMembers(bench.cluster!, `${name} down`, (peers) => !peers.some((p) => p.name === name), 30_000);
  return (performance.now() - t0) / 1000;
}

export async function distributionBench(): Promise<object> {
  const nats = await NatsCluster.start({ servers: 1, jetstream: false });
  const url = nats.url(0);
  let bench: RuntimeNode | null = null;
  const nodes: NodeProcess[] = [];
  try {
    bench = await RuntimeNode.start({ name: 'bench', schedulers: 1, dirtyThreads: 1, logLevel: 'silent', cluster: { cluster: CLUSTER, servers: [url] } });
    nodes.push(...(await Promise.all(['b1', 'b2'].map((name) => startNodeProcess({ name, cluster: CLUSTER, servers: [url], logLevel: 'silent' })))));
    await waitForMembers(bench.cluster!, 'b1 and b2 up', (peers) => peers.filter((p) => p.name === 'b1' || p.name === 'b2').length === 2);

    const cross: number[] = [];
    const raw: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      cross.push(await crossNodePerSecond(bench));
      raw.push(await rawNatsPerSecond(url));
    }
    const rtts = (await roundTrips(bench)).sort((x, y) => x - y);
    await Promise.all(nodes.map((n) => n.kill()));
    nodes.length = 0;
    const detections: number[] = [];
    for (let i = 0; i < KILLS; i++) detections.push(await downDetectionSeconds(bench, url, i));
    detections.sort((x, y) => x - y);

    const crossBest = Math.max(...cross);
    const rawBest = Math.max(...raw);
    return {
      bench: 'distribution',
      when: new Date().toISOString(),
      machine: describeMachine(),
      method: {
        cross_node: `${MESSAGES.toLocaleString('en')} numbers from a process on node b1 to a process on node b2 (two node processes, one scheduler each, one nats-server), order checked, from the blaster's spawn to the sink's report; best of ${RUNS}`,
        raw_nats: `${RAW_MESSAGES.toLocaleString('en')} ${RAW_PAYLOAD}-byte messages published by one process and counted by another on one subject of the same nats-server, from 'go' to the last one; best of ${RUNS}, interleaved with the cross-node runs`,
        round_trip: `${ROUND_TRIPS.toLocaleString('en')} sequential ping-pongs between a process on b1 and one on b2, timed on b1`,
        node_down: `a node process SIGKILLed ${KILLS} times; time until the bench node (defaults: heartbeat ${CLUSTER_HEARTBEAT_MS} ms, down after ${CLUSTER_DOWN_AFTER_MS} ms) declares it down; median`,
        nats_server: 'nats-server 2.9.10 on loopback, one server, no JetStream',
      },
      results: {
        cross_node_msgs_per_s: crossBest,
        raw_nats_msgs_per_s: rawBest,
        cross_node_runs_msgs_per_s: cross,
        raw_nats_runs_msgs_per_s: raw,
        cross_node_rtt_p50_ms: percentile(rtts, 50),
        cross_node_rtt_p99_ms: percentile(rtts, 99),
        cross_node_rtt_max_ms: rtts[rtts.length - 1],
        node_down_detect_s: detections[Math.floor(detections.length / 2)],
        node_down_detect_runs_s: detections,
      },
      ratios: {
        cross_node_vs_raw_nats: Math.round((crossBest / rawBest) * 100) / 100,
      },
      targets: {
        cross_node_vs_raw_nats: 0.5,
        node_down_detect_s: 3,
      },
    };
  } finally {
    await Promise.all(nodes.map((n) => n.kill()));
    await bench?.stop();
    await nats.stopAll();
  }
}
