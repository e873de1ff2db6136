/**
 * JetStream bench: acknowledged appends/s through the Env's StreamStore (JetStreamStore) on an
 * R3 stream across 3 local nats-servers, for batch-sized entries (1 KiB and 64 KiB, 1 and 100
 * appends in flight), and the pause of appends when the stream's leader server is SIGKILLed
 * (until the first ack after the kill). Every server is stopped by pid at the end.
 */
import { performance } from 'node:perf_hooks';
import type { StreamStore } from '../runtime/Env.js';
import { JetStreamStore } from '../runtime/node/JetStreamStore.js';
import { connectNats, type NatsTransport } from '../runtime/node/NatsTransport.js';
import { NatsCluster } from '../test/support/natsCluster.js';
import { describeMachine } from './machine.js';

/** Seconds each throughput configuration runs. */
const RUN_S = 4;
/** Upper bound on appends of one throughput run (the time bound usually ends it first). */
const MAX_APPENDS = 200_000;
const SIZES = [1_024, 65_536];
const IN_FLIGHT = [1, 100];
const KILLS = 3;
/** Append timeout while the leader is gone (an unanswered append costs at most this). */
const FAILOVER_APPEND_TIMEOUT_MS = 1_000;
/** Pause between appends that failed fast (no responders) during an election. */
const RETRY_PACE_MS = 20;
/** A failover that takes longer than this is reported as a failure of the bench. */
const FAILOVER_DEADLINE_MS = 60_000;
const SETUP_DEADLINE_MS = 30_000;
/** How long a restarted server may take to hold the whole stream again. */
const RECOVERY_DEADLINE_MS = 120_000;
const POLL_MS = 25;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs: number): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== null && v !== false) return v;
    if (performance.now() > deadline) throw new Error(`jetstream bench: timed out waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

function spec(name: string) {
  return { name, subjects: [`${name.toLowerCase()}.>`], replicas: 3, duplicateWindowMs: 120_000 };
}

/** Appends of `size` bytes with `inFlight` outstanding, for RUN_S seconds: acked appends/s. */
async function appendsPerSecond(store: StreamStore, stream: string, size: number, inFlight: number): Promise<{ appends_per_s: number; mib_per_s: number; appends: number }> {
  const data = new Uint8Array(size).fill(7);
  const subject = `${stream.toLowerCase()}.e`;
  let acked = 0;
  let sent = 0;
  let failed = '';
  const t0 = performance.now();
  const end = t0 + RUN_S * 1000;
  const lane = async (): Promise<void> => {
    while (performance.now() < end && sent < MAX_APPENDS && failed === '') {
      sent++;
      const r = await store.append(stream, subject, data, { msgId: `m${sent}` });
      if (r.ok) acked++;
      else failed = `${r.reason}: ${r.message}`;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  const s = (performance.now() - t0) / 1000;
  if (failed !== '') throw new Error(`jetstream bench: an append failed (${failed})`);
  return { appends_per_s: acked / s, mib_per_s: (acked * size) / 2 ** 20 / s, appends: acked };
}

interface Failover {
  /** ms from the kill to the first ack after it; null: none within FAILOVER_DEADLINE_MS. */
  pause_ms: number | null;
  failed: Record<string, number>;
  /** Each server's view of the stream when appends did not resume (for the report). */
  stuck?: string;
}

/**
 * Kill the leader of a healthy stream (every replica current) under steady appends; ms from
 * the kill to the first ack after it. Then restart the server and wait until the stream is
 * healthy again.
 */
async function failover(cluster: NatsCluster, store: StreamStore, stream: string, round: number): Promise<Failover> {
  await until('every replica current', async () => cluster.streamCaughtUp(stream), RECOVERY_DEADLINE_MS);
  const leader = await until('a stream leader', () => cluster.streamLeader(stream), SETUP_DEADLINE_MS);
  const subject = `${stream.toLowerCase()}.f`;
  const data = new Uint8Array(1_024);
  let n = 0;
  const next = (): Promise<Awaited<ReturnType<StreamStore['append']>>> => store.append(stream, subject, data, { msgId: `f${round}.${n++}`, timeoutMs: FAILOVER_APPEND_TIMEOUT_MS });
  for (let i = 0; i < 20; i++) {
    const r = await next();
    if (!r.ok) throw new Error(`jetstream bench: append before the kill failed: ${r.message}`);
  }
  const failed: Record<string, number> = {};
  const killedAt = performance.now();
  await cluster.kill(leader);
  let pause: number | null = null;
  while (pause === null && performance.now() - killedAt < FAILOVER_DEADLINE_MS) {
    const r = await next();
    if (r.ok) pause = performance.now() - killedAt;
    else {
      failed[r.reason] = (failed[r.reason] ?? 0) + 1;
      if (r.reason === 'unavailable') await sleep(RETRY_PACE_MS);
    }
  }
  const stuck = pause === null ? await jetstreamView(cluster, stream) : undefined;
  await cluster.restart(leader);
  return { pause_ms: pause, failed, ...(stuck !== undefined ? { stuck } : {}) };
}

/** Each running server's view of the stream (leader, last seq, replicas current), for a failure report. */
async function jetstreamView(cluster: NatsCluster, stream: string): Promise<string> {
  const out: string[] = [];
  for (let i = 0; i < cluster.size; i++) {
    if (!cluster.running(i)) {
      out.push(`${cluster.serverName(i)} down`);
      continue;
    }
    try {
      const z = (await (await fetch(`${cluster.monitorUrl(i)}/jsz?streams=true`)).json()) as { meta_cluster?: { leader?: string }; account_details?: Array<{ stream_detail?: Array<{ name: string; state?: { last_seq?: number }; cluster?: { leader?: string; replicas?: Array<{ name: string; current: boolean }> } }> }> };
      const d = z.account_details?.flatMap((a) => a.stream_detail ?? []).find((x) => x.name === stream);
      out.push(`${cluster.serverName(i)}: meta leader ${z.meta_cluster?.leader}, stream leader ${d?.cluster?.leader}, last ${d?.state?.last_seq}, replicas ${JSON.stringify(d?.cluster?.replicas?.map((r) => [r.name, r.current]))}`);
    } catch (err) {
      out.push(`${cluster.serverName(i)}: ${String(err)}`);
    }
  }
  return out.join('; ');
}

export async function jetstreamBench(): Promise<object> {
  const cluster = await NatsCluster.start({ servers: 3 });
  const transports: NatsTransport[] = [];
  const open = async (servers: string[], pin: boolean): Promise<StreamStore> => {
    const r = await connectNats({ servers, name: `bench-${transports.length}`, ignoreClusterUpdates: pin, reconnectWaitMs: 50 });
    if (!r.ok) throw new Error(r.message);
    transports.push(r.transport);
    return new JetStreamStore(r.transport.connection, { apiTimeoutMs: 2_000 });
  };
  try {
    const store = await open(cluster.urls, false);
    const throughput: Array<{ entry_bytes: number; in_flight: number; appends_per_s: number; mib_per_s: number; appends: number }> = [];
    let k = 0;
    for (const size of SIZES) {
      for (const inFlight of IN_FLIGHT) {
        const name = `BENCH${++k}`;
        await until(`stream ${name}`, async () => (await store.ensureStream(spec(name))).ok, SETUP_DEADLINE_MS);
        const r = await appendsPerSecond(store, name, size, inFlight);
        throughput.push({ entry_bytes: size, in_flight: inFlight, ...r });
        console.error(`jetstream bench: ${size} B entries, ${inFlight} in flight: ${Math.round(r.appends_per_s)} appends/s, ${r.mib_per_s.toFixed(1)} MiB/s`);
      }
    }
    const failStream = 'FAILOVER';
    await until(`stream ${failStream}`, async () => (await store.ensureStream(spec(failStream))).ok, SETUP_DEADLINE_MS);
    const failovers: Failover[] = [];
    for (let i = 0; i < KILLS; i++) {
      const f = await failover(cluster, store, failStream, i);
      failovers.push(f);
      console.error(`jetstream bench: leader killed, appends ${f.pause_ms === null ? `did not resume within ${FAILOVER_DEADLINE_MS} ms (${f.stuck})` : `resumed after ${Math.round(f.pause_ms)} ms`} (${JSON.stringify(f.failed)})`);
    }
    const pauses = failovers.flatMap((f) => (f.pause_ms === null ? [] : [f.pause_ms])).sort((x, y) => x - y);
    return {
      bench: 'jetstream',
      when: new Date().toISOString(),
      machine: describeMachine(),
      method: {
        throughput: `JetStreamStore.append on one R3 file stream (3 nats-servers on loopback sharing the machine), each append a distinct Msg-Id, one client connection; ${IN_FLIGHT.join(' and ')} appends in flight; each configuration runs ${RUN_S} s on a fresh stream; an entry stands for a batch of storage operations`,
        failover: `1 KiB appends one at a time (timeout ${FAILOVER_APPEND_TIMEOUT_MS} ms, ${RETRY_PACE_MS} ms pause after a fast refusal); the stream leader's server SIGKILLed ${KILLS} times, each time once every server held the whole stream and the leader counted every replica current (restarted between kills), after the throughput runs (whose streams stay on the servers); pause = first ack after the kill minus the kill; null = no ack within ${FAILOVER_DEADLINE_MS} ms`,
        nats_server: 'nats-server 2.9.10, 3 routed servers, JetStream file store in a temp directory',
      },
      results: {
        throughput,
        failover_pause_ms_median: pauses[Math.floor(pauses.length / 2)] ?? null,
        failover_pause_ms_runs: failovers.map((f) => f.pause_ms),
        failover_not_resumed: failovers.filter((f) => f.pause_ms === null).length,
        failover_failed_appends: failovers.map((f) => f.failed),
        ...(failovers.some((f) => f.stuck !== undefined) ? { failover_stuck_views: failovers.flatMap((f) => (f.stuck !== undefined ? [f.stuck] : [])) } : {}),
      },
    };
  } finally {
    for (const t of transports) await t.close();
    await cluster.stopAll();
  }
}
