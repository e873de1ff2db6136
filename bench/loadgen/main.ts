/**
 * The load generator process: many v1 connections (raw TCP, or WebSocket via `ws`) from one
 * process, or raw WebSocket echo traffic. Config is JSON on the command line (or `@file`); it
 * prints exactly one JSON result line (LoadgenResult) on stdout and exits.
 *
 * Traffic: each message payload carries its send time (performance.now(), this process), its
 * sender index and a per-sender sequence, so latency is measured at receipt and duplicates or
 * reorders are seen. Closed loop keeps `window` messages in flight per sender; open loop sends
 * `rate` messages/s in total. Writes are batched per connection per event-loop turn. Senders
 * and recipients form a ring, or pairs whose receiving half may sit on another node
 * (`shape`, `recipientPort`); the measured window starts with `{"event":"measuring"}` on stderr.
 * `hold` mode logs in and keeps connections idle; it reports `{"event":"ready"}` on stderr and
 * stops when stdin reads `stop` or closes.
 * `resume` mode leaves messages unacknowledged, reports `{"event":"primed"}`, and times how long
 * the connections the server then closes take to log in elsewhere and get them back.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { LatencyHistogram } from './histogram.js';
import type { LoadgenConfig, LoadgenResult, PhaseResult, ResumeResult, TrafficResult } from './types.js';
import { ACK_BYTES, ACK_OP, Frame, loginPacket, scanFrame, sendHeader, type Scan } from './wire.js';

const DEFAULTS = {
  wsPath: '/ws',
  userOffset: 0,
  connectConcurrency: 200,
  loginConcurrency: 2_000,
  msgBytes: 128,
  window: 16,
  rate: 0,
  maxOutstandingPerSender: 1_000,
  warmupMs: 1_000,
  durationMs: 5_000,
  drainMs: 3_000,
  maxMessages: Number.MAX_SAFE_INTEGER,
  wsCoalesce: false,
  maxRuntimeMs: 120_000,
  localPortBase: 0,
  localAddress: '',
  shape: 'ring' as const,
  recipientPort: 0,
  trackGaps: false,
  unacked: 2,
  reconnectPorts: [] as number[],
  primeDeadlineMs: 60_000,
  resumeDeadlineMs: 60_000,
};
/** resume: pause before a failed connect or login after a close is tried again. */
const RESUME_RETRY_MS = 100;
/** resume: most messages a connection may leave unacknowledged (one bit each). */
const RESUME_MAX_UNACKED = 32;
type Settings = Required<Omit<LoadgenConfig, 'tokensFile'>> & { tokensFile: string | undefined };

function readConfig(): Settings {
  const arg = process.argv[2];
  if (arg === undefined) throw new Error('usage: loadgen <json config | @file>');
  const raw = JSON.parse(arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg) as LoadgenConfig;
  const cfg = { ...DEFAULTS, ...raw, tokensFile: raw.tokensFile } as Settings;
  if (!['hold', 'deliver', 'echo', 'resume'].includes(cfg.mode)) throw new Error(`mode: hold, deliver, echo or resume (got ${String(cfg.mode)})`);
  if (cfg.mode === 'echo' && cfg.transport !== 'ws') throw new Error('echo runs over ws');
  if (!(cfg.conns >= 1)) throw new Error('conns must be at least 1');
  if (cfg.mode === 'deliver' && cfg.conns < 2) throw new Error('deliver needs at least 2 connections');
  if (!['ring', 'pairs'].includes(cfg.shape)) throw new Error(`shape: ring or pairs (got ${String(cfg.shape)})`);
  if (cfg.shape === 'pairs' && cfg.conns % 2 !== 0) throw new Error('pairs needs an even number of connections');
  if (cfg.recipientPort === 0) cfg.recipientPort = cfg.port;
  if (cfg.mode === 'resume') {
    if (cfg.transport !== 'tcp') throw new Error('resume runs over tcp');
    if (cfg.reconnectPorts.length === 0) throw new Error('resume needs reconnectPorts');
    if (!(cfg.unacked >= 1 && cfg.unacked <= RESUME_MAX_UNACKED)) throw new Error(`unacked must be 1..${RESUME_MAX_UNACKED}`);
  }
  if (!(cfg.msgBytes >= 16 && cfg.msgBytes <= 65_535)) throw new Error('msgBytes must be 16..65535');
  return cfg;
}

// ---------------------------------------------------------------------------------------------
// Connections

interface Link {
  /** Hands the bytes over (the caller never touches them again). */
  write(bytes: Buffer): void;
  /** Several writes about to follow (WebSocket frames): let them leave in one syscall. */
  cork(): void;
  uncork(): void;
  destroy(): void;
}

class Conn {
  link: Link | null = null;
  /** The server port this connection (or its next attempt) goes to. */
  port: number;
  state: 'idle' | 'connecting' | 'connected' | 'login' | 'online' | 'closed' = 'idle';
  closing = false;
  pending: Buffer | null = null;
  /** Output of this turn; `units` holds packet ends when each packet is its own WebSocket frame. */
  ob: Buffer = Buffer.allocUnsafe(512);
  len = 0;
  units: number[] = [];
  dirty = false;
  head: Buffer | null = null;
  constructor(
    readonly idx: number,
    readonly user: Buffer,
  ) {
    this.port = cfg.mode === 'deliver' && cfg.shape === 'pairs' && idx >= cfg.conns / 2 ? cfg.recipientPort : cfg.port;
  }
}

const cfg = readConfig();
const cpuAtStart = process.cpuUsage();
const conns: Conn[] = [];
for (let i = 0; i < cfg.conns; i++) conns.push(new Conn(i, Buffer.from(`${cfg.userPrefix}${cfg.userOffset + i}`, 'latin1')));
const tokens: string[] | null =
  cfg.tokensFile === undefined ? null : readFileSync(cfg.tokensFile, 'utf8').split('\n').slice(cfg.userOffset, cfg.userOffset + cfg.conns);
if (tokens !== null && tokens.length < cfg.conns) throw new Error(`tokensFile has ${tokens.length} tokens for ${cfg.conns} connections`);
const wsFrames = cfg.transport === 'ws' && !cfg.wsCoalesce;

let closedByPeer = 0;
let protocolErrors = 0;
let onConnectDone: ((c: Conn, ok: boolean) => void) | null = null;
let onLoginDone: ((c: Conn, ok: boolean) => void) | null = null;

function reserve(c: Conn, n: number): number {
  if (c.len + n > c.ob.length) {
    const grown = Buffer.allocUnsafe(Math.max(c.ob.length * 2, c.len + n));
    c.ob.copy(grown, 0, 0, c.len);
    c.ob = grown;
  }
  const at = c.len;
  c.len += n;
  if (wsFrames) c.units.push(c.len);
  if (!c.dirty) {
    c.dirty = true;
    dirty.push(c);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }
  return at;
}

const dirty: Conn[] = [];
let flushScheduled = false;
function flushAll(): void {
  flushScheduled = false;
  for (let k = 0; k < dirty.length; k++) {
    const c = dirty[k]!;
    c.dirty = false;
    if (c.len === 0 || c.link === null || c.state === 'closed') {
      c.len = 0;
      c.units.length = 0;
      continue;
    }
    const data = Buffer.allocUnsafe(c.len);
    c.ob.copy(data, 0, 0, c.len);
    if (wsFrames) {
      let from = 0;
      const many = c.units.length > 1;
      if (many) c.link.cork();
      for (const to of c.units) {
        c.link.write(data.subarray(from, to));
        from = to;
      }
      if (many) c.link.uncork();
      c.units.length = 0;
    } else c.link.write(data);
    c.len = 0;
  }
  dirty.length = 0;
}

function writeNow(c: Conn, bytes: Buffer): void {
  const at = reserve(c, bytes.length);
  bytes.copy(c.ob, at);
}

function peerClosed(c: Conn): void {
  const was = c.state;
  c.state = 'closed';
  c.link = null;
  if (c.closing) return;
  if (was === 'connecting') onConnectDone?.(c, false);
  else if (was === 'login') onLoginDone?.(c, false);
  else {
    if (generation[c.idx] === 0) closedByPeer++;
    if (resumePhase === 'primed') onResumeClosed(c);
  }
}

let nextLocalPort = cfg.localPortBase;

function openTcp(c: Conn, tries = 0): void {
  const local = cfg.localPortBase > 0 && generation[c.idx] === 0 ? { localAddress: cfg.localAddress !== '' ? cfg.localAddress : cfg.host, localPort: nextLocalPort++ } : {};
  const s: Socket = connect({ host: cfg.host, port: c.port, ...local });
  s.setNoDelay(true);
  c.link = { write: (b) => void s.write(b), cork: () => {}, uncork: () => {}, destroy: () => s.destroy() };
  let retried = false;
  s.once('connect', () => {
    c.state = 'connected';
    onConnectDone?.(c, true);
  });
  s.on('data', (chunk: Buffer) => onBytes(c, chunk));
  s.on('error', (err: NodeJS.ErrnoException) => {
    // An explicit source port someone else holds: take the next one.
    if (c.state === 'connecting' && err.code === 'EADDRINUSE' && tries < 100) {
      retried = true;
      openTcp(c, tries + 1);
    }
  });
  s.on('close', () => {
    if (!retried) peerClosed(c);
  });
}

function openWs(c: Conn): void {
  const ws = new WebSocket(`ws://${cfg.host}:${c.port}${cfg.wsPath}`, {
    perMessageDeflate: false,
    skipUTF8Validation: true,
    maxPayload: 64 * 1024 * 1024,
    // A zero mask: ws then skips the XOR pass. Fine for a load generator (servers accept any mask).
    generateMask: () => {},
  });
  // ws writes each frame to its socket at once; corking that socket batches a turn's frames.
  const sock = () => (ws as unknown as { _socket?: Socket | null })._socket ?? null;
  c.link = {
    write: (b) => ws.send(b, { binary: true }),
    cork: () => sock()?.cork(),
    uncork: () => sock()?.uncork(),
    destroy: () => ws.terminate(),
  };
  ws.once('open', () => {
    c.state = 'connected';
    onConnectDone?.(c, true);
  });
  ws.on('message', (data: Buffer) => onBytes(c, data));
  ws.on('error', () => {});
  ws.on('close', () => peerClosed(c));
}

function connectAll(): Promise<PhaseResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let next = 0;
    let ok = 0;
    let failed = 0;
    const startOne = () => {
      const c = conns[next++]!;
      c.state = 'connecting';
      if (cfg.transport === 'tcp') openTcp(c);
      else openWs(c);
    };
    onConnectDone = (_c, good) => {
      if (good) ok++;
      else failed++;
      if (next < conns.length) startOne();
      else if (ok + failed === conns.length) {
        onConnectDone = null;
        resolve(phase(ok, failed, performance.now() - t0));
      }
    };
    for (let i = 0; i < Math.min(cfg.connectConcurrency, conns.length); i++) startOne();
  });
}

let loginWall: [number, number] = [0, 0];
function loginAll(): Promise<PhaseResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    loginWall = [Date.now(), 0];
    const ready = conns.filter((c) => c.state === 'connected');
    const skipped = conns.length - ready.length;
    let next = 0;
    let ok = 0;
    let failed = 0;
    const finish = () => {
      onLoginDone = null;
      loginWall[1] = Date.now();
      resolve(phase(ok, failed + skipped, performance.now() - t0));
    };
    const startOne = () => {
      const c = ready[next]!;
      const token = tokens === null ? null : tokens[c.idx]!;
      next++;
      c.state = 'login';
      writeNow(c, loginPacket(c.user, token));
    };
    onLoginDone = (c, good) => {
      if (good) {
        ok++;
        c.state = 'online';
      } else {
        failed++;
        c.closing = true;
        if (c.state !== 'closed') {
          c.state = 'closed';
          c.link?.destroy();
        }
      }
      if (next < ready.length) startOne();
      else if (ok + failed === ready.length) finish();
    };
    if (ready.length === 0) finish();
    for (let i = 0; i < Math.min(cfg.loginConcurrency, ready.length); i++) startOne();
  });
}

function phase(ok: number, failed: number, ms: number): PhaseResult {
  return { ok, failed, ms: Math.round(ms * 10) / 10, per_s: ms > 0 ? Math.round((ok / ms) * 1000) : 0 };
}

// ---------------------------------------------------------------------------------------------
// Traffic

const msgBytes = cfg.msgBytes;
const template = Buffer.alloc(msgBytes, 0x61);
const outstanding = new Int32Array(cfg.conns);
const nextSeq = new Uint32Array(cfg.conns);
const lastSeq = new Int32Array(cfg.conns).fill(-1);
const hist = new LatencyHistogram();
let trafficPhase: 'off' | 'warmup' | 'measure' | 'drain' = 'off';
let sending = false;
let sent = 0;
let received = 0;
let receivedInWindow = 0;
let sentInWindow = 0;
let rateLimited = 0;
let errors = 0;
const errorReasons = new Set<string>();
let dupOrReordered = 0;
let duplicates = 0;
let reordered = 0;
const disorderSamples: Array<[number, number, number, number]> = [];
/** Per sender, a bit per sequence number received (grown on demand): tells a duplicate from a reorder. */
const seenSeqs: Array<Uint8Array | undefined> = [];
/** Most duplicates and reorders sampled into the result. */
const DISORDER_SAMPLES = 20;

/** Marks (sender, seq) received; false when it was already. */
function markSeen(s: number, seq: number): boolean {
  let bits = seenSeqs[s];
  const byte = seq >>> 3;
  if (bits === undefined || byte >= bits.length) {
    const grown = new Uint8Array(Math.max(64, (byte + 1) * 2));
    if (bits !== undefined) grown.set(bits);
    seenSeqs[s] = bits = grown;
  }
  const mask = 1 << (seq & 7);
  if ((bits[byte]! & mask) !== 0) return false;
  bits[byte] = bits[byte]! | mask;
  return true;
}
let skipped = 0;
let now = 0;
const wallNow = (): number => performance.timeOrigin + performance.now();

/** trackGaps: per receiving connection, the last delivery and the longest gap between two (performance.now() times). */
const gapLast = cfg.trackGaps ? new Float64Array(cfg.conns) : null;
const gapMax = new Float64Array(cfg.trackGaps ? cfg.conns : 0);
const gapStart = new Float64Array(cfg.trackGaps ? cfg.conns : 0);
const gapEnd = new Float64Array(cfg.trackGaps ? cfg.conns : 0);

function sendFrom(s: number): boolean {
  const c = conns[s]!;
  if (c.state !== 'online' || sent >= cfg.maxMessages) return false;
  const head = c.head;
  const hl = head === null ? 0 : head.length;
  const at = reserve(c, hl + msgBytes);
  const ob = c.ob;
  if (head !== null) head.copy(ob, at);
  const p = at + hl;
  template.copy(ob, p);
  ob.writeDoubleLE(now, p);
  ob.writeUInt32LE(s, p + 8);
  ob.writeUInt32LE(nextSeq[s]!++, p + 12);
  outstanding[s]!++;
  sent++;
  if (trafficPhase === 'measure') sentInWindow++;
  return true;
}

function topUp(s: number): void {
  if (!sending || cfg.rate > 0) return;
  now = performance.now();
  while (outstanding[s]! < cfg.window && sendFrom(s)) {
    /* keep the window full */
  }
}

function onPayload(b: Buffer, at: number, len: number, r: number): void {
  if (len < 16) {
    protocolErrors++;
    return;
  }
  const t = b.readDoubleLE(at);
  const s = b.readUInt32LE(at + 8);
  const seq = b.readUInt32LE(at + 12);
  if (s >= cfg.conns) {
    protocolErrors++;
    return;
  }
  const fresh = markSeen(s, seq);
  if (seq <= lastSeq[s]!) {
    dupOrReordered++;
    if (disorderSamples.length < DISORDER_SAMPLES) disorderSamples.push([s, seq, lastSeq[s]!, Math.round(performance.timeOrigin + now)]);
    if (!fresh) {
      duplicates++;
      return;
    }
    reordered++;
  } else lastSeq[s] = seq;
  received++;
  outstanding[s]!--;
  if (gapLast !== null && (trafficPhase === 'measure' || trafficPhase === 'drain')) {
    const g = now - gapLast[r]!;
    if (g > gapMax[r]!) {
      gapMax[r] = g;
      gapStart[r] = gapLast[r]!;
      gapEnd[r] = now;
    }
    gapLast[r] = now;
  }
  if (trafficPhase === 'measure') {
    receivedInWindow++;
    hist.record((now - t) * 1000);
  }
  if (sending && cfg.rate === 0) {
    while (outstanding[s]! < cfg.window && sendFrom(s)) {
      /* keep the window full */
    }
  }
}

const scan: Scan = { size: 0, idAt: 0, idLen: 0, msgAt: 0, msgLen: 0 };

function onBytes(c: Conn, chunk: Buffer): void {
  now = performance.now();
  if (cfg.mode === 'echo') {
    for (let p = 0; p + msgBytes <= chunk.length; p += msgBytes) onPayload(chunk, p, msgBytes, c.idx);
    return;
  }
  let b = chunk;
  if (c.pending !== null) {
    b = Buffer.concat([c.pending, chunk]);
    c.pending = null;
  }
  const end = b.length;
  let p = 0;
  while (p < end) {
    const f = scanFrame(b, p, end, scan);
    if (f === Frame.NeedMore) break;
    switch (f) {
      case Frame.Reliable: {
        if (scan.idLen !== 16) {
          protocolErrors++;
          break;
        }
        if (cfg.mode === 'resume') {
          onResumeMessage(c, b, scan);
          break;
        }
        const at = reserve(c, ACK_BYTES);
        c.ob[at] = ACK_OP;
        b.copy(c.ob, at + 1, scan.idAt, scan.idAt + 16);
        onPayload(b, scan.msgAt, scan.msgLen, c.idx);
        break;
      }
      case Frame.LoginOk:
        if (c.state === 'login') onLoginDone?.(c, true);
        break;
      case Frame.RateLimited: {
        rateLimited++;
        outstanding[c.idx]!--;
        const retry = Math.min(1_000, b.readUInt32BE(scan.msgAt));
        const s = c.idx;
        setTimeout(() => topUp(s), retry);
        break;
      }
      case Frame.Error:
        errors++;
        if (errorReasons.size < 8) errorReasons.add(b.toString('latin1', scan.msgAt, scan.msgAt + scan.msgLen));
        break;
      case Frame.Other:
        break;
      case Frame.AuthFailedText:
      case Frame.RateLimitedText:
        if (c.state === 'login') onLoginDone?.(c, false);
        else {
          c.closing = true;
          c.state = 'closed';
          c.link?.destroy();
        }
        return;
      default:
        protocolErrors++;
        c.closing = true;
        c.state = 'closed';
        c.link?.destroy();
        return;
    }
    p += scan.size;
  }
  if (p < end) c.pending = b.subarray(p);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The connection that sends to receiving connection `r`, or -1 (echo: each connection is its own). */
function senderOf(r: number): number {
  if (cfg.mode !== 'deliver') return r;
  if (cfg.shape === 'pairs') return r >= cfg.conns / 2 ? r - cfg.conns / 2 : -1;
  return (r + cfg.conns - 1) % cfg.conns;
}

async function runTraffic(): Promise<TrafficResult> {
  const half = cfg.conns / 2;
  const pairs = cfg.mode === 'deliver' && cfg.shape === 'pairs';
  const online = conns.filter((c) => c.state === 'online' && (!pairs || c.idx < half));
  if (cfg.mode === 'deliver') {
    for (const c of conns) {
      if (pairs && c.idx >= half) continue;
      const target = conns[pairs ? half + c.idx : (c.idx + 1) % conns.length]!;
      c.head = sendHeader(target.user, msgBytes);
    }
  }
  trafficPhase = 'warmup';
  sending = true;
  now = performance.now();
  let ticker: NodeJS.Timeout | null = null;
  if (cfg.rate > 0) {
    const t0 = now;
    let due = 0;
    let rr = 0;
    const cap = Math.max(1, Math.floor(cfg.rate / 20)); // at most 50 ms of catch-up per tick
    ticker = setInterval(() => {
      if (!sending) return;
      now = performance.now();
      const target = Math.floor(((now - t0) * cfg.rate) / 1000);
      let n = Math.min(cap, target - due);
      due = target;
      while (n-- > 0) {
        const c = online[rr++ % online.length]!;
        if (outstanding[c.idx]! >= cfg.maxOutstandingPerSender) skipped++;
        else sendFrom(c.idx);
      }
    }, 1);
  } else {
    for (const c of online) topUp(c.idx);
  }
  await sleep(cfg.warmupMs);
  const m0 = performance.now();
  if (gapLast !== null) gapLast.fill(m0);
  trafficPhase = 'measure';
  process.stderr.write(JSON.stringify({ event: 'measuring' }) + '\n');
  await sleep(cfg.durationMs);
  const m1 = performance.now();
  trafficPhase = 'drain';
  sending = false;
  if (ticker !== null) clearInterval(ticker);
  const drainUntil = performance.now() + cfg.drainMs;
  while (sent - received - rateLimited > 0 && performance.now() < drainUntil) await sleep(10);
  const windowMs = m1 - m0;
  const wall = (t: number) => Math.round(performance.timeOrigin + t);
  let gaps: TrafficResult['recipient_gaps'];
  if (gapLast !== null) {
    const end = performance.now();
    gaps = [];
    for (let r = 0; r < cfg.conns; r++) {
      const s = senderOf(r);
      if (s < 0) continue;
      // Still owed messages at the end: the gap since its last delivery never closed.
      const open = outstanding[s]! > 0 && end - gapLast[r]! > gapMax[r]!;
      const len = open ? end - gapLast[r]! : gapMax[r]!;
      gaps.push([conns[r]!.user.toString('latin1'), Math.round(len * 10) / 10, wall(open ? gapLast[r]! : gapStart[r]!), open ? null : wall(gapEnd[r]!)]);
    }
  }
  return {
    sent,
    received,
    received_in_window: receivedInWindow,
    window_ms: Math.round(windowMs),
    delivered_per_s: Math.round((receivedInWindow / windowMs) * 1000),
    sent_in_window: sentInWindow,
    sent_per_s: Math.round((sentInWindow / windowMs) * 1000),
    rate_limited: rateLimited,
    errors,
    error_reasons: [...errorReasons],
    dup_or_reordered: dupOrReordered,
    duplicates,
    reordered,
    disorder_samples: disorderSamples,
    missing_after_drain: Math.max(0, sent - received - rateLimited),
    skipped,
    latency_ms: hist.summaryMs(),
    latency_sparse_us: hist.toSparse(),
    measure_wall_ms: [wall(m0), wall(m1)],
    ...(gaps !== undefined ? { recipient_gaps: gaps } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Resume: unacknowledged messages, a close by the server, a login elsewhere, the messages back

let resumePhase: 'off' | 'priming' | 'primed' = 'off';
/** 0: the first connection; n: the n-th connection after the server closed one. */
const generation = new Uint16Array(cfg.conns);
/** Bit k: the message with sequence k arrived (before the close / after the new login). */
const primedSeen = new Uint32Array(cfg.mode === 'resume' ? cfg.conns : 0);
const resumeSeen = new Uint32Array(cfg.mode === 'resume' ? cfg.conns : 0);
const allBits = cfg.unacked >= 32 ? 0xffffffff : (1 << cfg.unacked) - 1;
let primedClients = 0;
let resumedClients = 0;
let closedAfterPrime = 0;
let firstClose: number | null = null;
let lastClose: number | null = null;
let resumeDuplicates = 0;
let resumeUnexpected = 0;
let resumeRetries = 0;
const loginWalls: number[] = [];
const resumedWalls: number[] = [];
const reconnectQueue: Conn[] = [];
let reconnectsInFlight = 0;

function onResumeMessage(c: Conn, b: Buffer, f: Scan): void {
  const after = generation[c.idx]! > 0;
  if (after) {
    const at = reserve(c, ACK_BYTES);
    c.ob[at] = ACK_OP;
    b.copy(c.ob, at + 1, f.idAt, f.idAt + 16);
  }
  const sender = f.msgLen >= 16 ? b.readUInt32LE(f.msgAt + 8) : -1;
  const seq = f.msgLen >= 16 ? b.readUInt32LE(f.msgAt + 12) : -1;
  if (sender !== c.idx || seq < 0 || seq >= cfg.unacked) {
    resumeUnexpected++;
    return;
  }
  const bit = 2 ** seq;
  const seen = after ? resumeSeen : primedSeen;
  if ((seen[c.idx]! & bit) !== 0) {
    resumeDuplicates++;
    return;
  }
  seen[c.idx] = (seen[c.idx]! | bit) >>> 0;
  if (seen[c.idx] !== allBits >>> 0) return;
  if (!after) primedClients++;
  else {
    resumedClients++;
    resumedWalls.push(Math.round(wallNow()));
  }
}

function onResumeClosed(c: Conn): void {
  if (generation[c.idx] === 0) {
    const t = Math.round(wallNow());
    closedAfterPrime++;
    firstClose ??= t;
    lastClose = t;
  }
  generation[c.idx]!++;
  c.pending = null;
  c.len = 0;
  c.units.length = 0;
  c.port = cfg.reconnectPorts[c.idx % cfg.reconnectPorts.length]!;
  reconnectQueue.push(c);
  pumpReconnects();
}

function pumpReconnects(): void {
  while (reconnectsInFlight < cfg.loginConcurrency && reconnectQueue.length > 0) {
    const c = reconnectQueue.shift()!;
    reconnectsInFlight++;
    c.closing = false;
    c.state = 'connecting';
    openTcp(c);
  }
}

function retryReconnect(c: Conn): void {
  reconnectsInFlight--;
  resumeRetries++;
  c.closing = true;
  c.link?.destroy();
  c.state = 'closed';
  setTimeout(() => {
    reconnectQueue.push(c);
    pumpReconnects();
  }, RESUME_RETRY_MS);
  pumpReconnects();
}

async function runResume(): Promise<ResumeResult> {
  const online = conns.filter((c) => c.state === 'online');
  const t0 = performance.now();
  resumePhase = 'priming';
  now = t0;
  for (const c of online) {
    c.head = sendHeader(c.user, msgBytes);
    for (let k = 0; k < cfg.unacked; k++) sendFrom(c.idx);
  }
  while (primedClients < online.length && performance.now() - t0 < cfg.primeDeadlineMs) await sleep(10);
  const primeMs = performance.now() - t0;
  onConnectDone = (c, ok) => {
    if (!ok) return retryReconnect(c);
    c.state = 'login';
    writeNow(c, loginPacket(c.user, tokens === null ? null : tokens[c.idx]!));
  };
  onLoginDone = (c, ok) => {
    if (!ok) return retryReconnect(c);
    c.state = 'online';
    reconnectsInFlight--;
    loginWalls.push(Math.round(wallNow()));
    pumpReconnects();
  };
  let stop = false;
  const stopNow = () => (stop = true);
  process.stdin.on('data', (d: Buffer) => {
    if (d.toString().includes('stop')) stopNow();
  });
  process.stdin.on('end', stopNow);
  process.once('SIGTERM', stopNow);
  resumePhase = 'primed';
  process.stderr.write(JSON.stringify({ event: 'primed', clients: online.length, primed: primedClients, ms: Math.round(primeMs) }) + '\n');
  for (;;) {
    if (stop || resumedClients >= primedClients) break;
    if (firstClose !== null && wallNow() - firstClose > cfg.resumeDeadlineMs) break;
    await sleep(10);
  }
  return {
    clients: cfg.conns,
    unacked_per_client: cfg.unacked,
    primed: primedClients,
    prime_ms: Math.round(primeMs),
    closed: closedAfterPrime,
    first_close_wall_ms: firstClose,
    last_close_wall_ms: lastClose,
    login_wall_ms: loginWalls.sort((x, y) => x - y),
    resumed_wall_ms: resumedWalls.sort((x, y) => x - y),
    duplicates: resumeDuplicates,
    unexpected: resumeUnexpected,
    retries: resumeRetries,
    errors,
    error_reasons: [...errorReasons],
  };
}

function waitForStop(): Promise<void> {
  return new Promise((resolve) => {
    let buf = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => {
      buf += d;
      if (buf.includes('stop')) resolve();
    });
    process.stdin.on('end', () => resolve());
    process.stdin.on('close', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

function closeAll(): number {
  let open = 0;
  for (const c of conns) {
    if (c.state === 'online' || c.state === 'connected' || c.state === 'login') open++;
    c.closing = true;
    c.link?.destroy();
    c.state = 'closed';
  }
  return open;
}

function emit(r: LoadgenResult): void {
  process.stdout.write(JSON.stringify(r) + '\n');
}

function base(): Omit<LoadgenResult, 'ok' | 'connect' | 'login' | 'open_at_end'> {
  const cpu = process.cpuUsage(cpuAtStart);
  return {
    mode: cfg.mode,
    transport: cfg.transport,
    conns: cfg.conns,
    login_wall_ms: loginWall,
    closed_by_peer: closedByPeer,
    protocol_errors: protocolErrors,
    cpu_ms: Math.round((cpu.user + cpu.system) / 1000),
    rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

async function main(): Promise<void> {
  const guard = setTimeout(() => {
    emit({ ...base(), ok: false, error: `maxRuntimeMs ${cfg.maxRuntimeMs} exceeded`, connect: phase(0, 0, 0), login: phase(0, 0, 0), open_at_end: 0 });
    process.exit(3);
  }, cfg.maxRuntimeMs);
  const connectR = await connectAll();
  let loginR: PhaseResult;
  if (cfg.mode === 'echo') {
    for (const c of conns) if (c.state === 'connected') c.state = 'online';
    loginR = phase(0, 0, 0);
  } else loginR = await loginAll();
  let traffic: TrafficResult | undefined;
  let resume: ResumeResult | undefined;
  if (cfg.mode === 'hold') {
    process.stderr.write(JSON.stringify({ event: 'ready', connected: connectR.ok, logged_in: loginR.ok }) + '\n');
    await waitForStop();
  } else if (cfg.mode === 'resume') {
    resume = await runResume();
  } else {
    traffic = await runTraffic();
  }
  const openAtEnd = closeAll();
  clearTimeout(guard);
  emit({ ...base(), ok: true, connect: connectR, login: loginR, open_at_end: openAtEnd, ...(traffic !== undefined ? { traffic } : {}), ...(resume !== undefined ? { resume } : {}) });
  setTimeout(() => process.exit(0), 50);
}

main().catch((err: unknown) => {
  emit({ ...base(), ok: false, error: String((err as Error)?.stack ?? err), connect: phase(0, 0, 0), login: phase(0, 0, 0), open_at_end: 0 });
  process.exit(1);
});
