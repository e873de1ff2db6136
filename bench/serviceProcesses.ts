/**
 * Child processes for the service bench: an Iris node started through dist/bin/iris.js, the
 * bare uWS echo server and load generator processes, each in its own process (own fd limit),
 * all tracked so that `stopAll()` stops every one by pid; plus /proc readings (RSS, fds, sockets).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { NodeMemoryMb } from '../server/IrisNode.js';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { LoadgenConfig, LoadgenResult } from './loadgen/types.js';

const DIST = new URL('../', import.meta.url);
export const IRIS_JS = fileURLToPath(new URL('bin/iris.js', DIST));
export const LOADGEN_JS = fileURLToPath(new URL('bench/loadgen/main.js', DIST));
export const UWS_ECHO_JS = fileURLToPath(new URL('bench/loadgen/uwsEcho.js', DIST));

/** Every child this bench started; stopped by pid, SIGTERM first, SIGKILL after a grace period. */
export class Children {
  private readonly live = new Set<ChildProcess>();

  constructor() {
    // Last resort if this process dies without reaching its finally blocks.
    process.once('exit', () => {
      for (const c of this.live) c.kill('SIGKILL');
    });
  }

  spawn(args: string[], nodeArgs: string[] = []): ChildProcess {
    const child = spawn(process.execPath, [...nodeArgs, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.live.add(child);
    child.once('exit', () => this.live.delete(child));
    return child;
  }

  async stop(child: ChildProcess, graceMs = 10_000): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) {
      this.live.delete(child);
      return;
    }
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
    this.live.delete(child);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.live].map((c) => this.stop(c, 3_000)));
  }
}

/** Lines of a stream, with the last few kept for error messages. */
function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): () => string {
  let buf = '';
  const tail: string[] = [];
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      tail.push(line);
      if (tail.length > 20) tail.shift();
      onLine(line);
    }
  });
  return () => [...tail, buf].join('\n').slice(-4_000);
}

export interface ServerHandle {
  child: ChildProcess;
  pid: number;
  tcpPort: number;
  httpPort: number;
}

/** `node dist/bin/iris.js start --port 0 --http-port 0 --data DIR --set k=v...`; resolves once it prints its ports. */
export function startServer(children: Children, dataDir: string, sets: Record<string, string>, nodeArgs: string[] = []): Promise<ServerHandle> {
  const args = [IRIS_JS, 'start', '--port', '0', '--http-port', '0', '--data', dataDir];
  for (const [k, v] of Object.entries(sets)) args.push('--set', `${k}=${v}`);
  const child = children.spawn(args, nodeArgs);
  return new Promise((resolve, reject) => {
    let tcpPort = 0;
    let httpPort = 0;
    child.stdout!.resume(); // pino logs (log_level=warn keeps them quiet); never let the pipe fill
    const tail = lines(child.stderr!, (line) => {
      const tcp = /v1 over TCP:\s+\S+:(\d+)/.exec(line);
      if (tcp) tcpPort = Number(tcp[1]);
      const ws = /ws:\/\/\S+:(\d+)\/ws/.exec(line);
      if (ws) httpPort = Number(ws[1]);
      if (tcpPort > 0 && httpPort > 0) {
        clearTimeout(timer);
        resolve({ child, pid: child.pid!, tcpPort, httpPort });
      }
    });
    const timer = setTimeout(() => reject(new Error(`iris node did not start in 30 s:\n${tail()}`)), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`iris node exited (${code}) before listening:\n${tail()}`));
    });
  });
}

/** The bare uWS echo server; resolves with its port. */
export function startEcho(children: Children): Promise<{ child: ChildProcess; pid: number; port: number }> {
  const child = children.spawn([UWS_ECHO_JS]);
  return new Promise((resolve, reject) => {
    const errTail = lines(child.stderr!, () => {});
    lines(child.stdout!, (line) => {
      const m = /"port":(\d+)/.exec(line);
      if (m) resolve({ child, pid: child.pid!, port: Number(m[1]) });
    });
    child.once('exit', (code) => reject(new Error(`uws echo exited (${code}):\n${errTail()}`)));
  });
}

export interface HeldLoad {
  child: ChildProcess;
  /** Resolves when every connection is connected and logged in (or failed). */
  ready: Promise<void>;
  /** Ask the generator to close its connections and report. */
  stop(): Promise<LoadgenResult>;
}

/** A running load generator: its result line, and the `{"event": …}` lines it writes on stderr. */
export interface LoadgenRun {
  child: ChildProcess;
  result: Promise<LoadgenResult>;
  /** Resolves with the first event line named `name` (at once if it came already); rejects if the generator ends first. */
  event(name: string): Promise<Record<string, unknown>>;
  /** Ask the generator to stop (stdin `stop`) and return its result. */
  stop(): Promise<LoadgenResult>;
}

/** Start a load generator process; see LoadgenRun. */
export function startLoadgen(children: Children, cfg: LoadgenConfig): LoadgenRun {
  const child = children.spawn([LOADGEN_JS, JSON.stringify(cfg)]);
  const seen = new Map<string, Record<string, unknown>>();
  const waiting = new Map<string, Array<(e: Record<string, unknown>) => void>>();
  const { result } = loadgenResult(child, (line) => {
    if (!line.startsWith('{"event"')) return;
    const e = JSON.parse(line) as Record<string, unknown>;
    const name = String(e['event']);
    if (!seen.has(name)) seen.set(name, e);
    for (const w of waiting.get(name) ?? []) w(e);
    waiting.delete(name);
  });
  return {
    child,
    result,
    event: (name) => {
      const e = seen.get(name);
      if (e !== undefined) return Promise.resolve(e);
      return new Promise((resolve, reject) => {
        waiting.set(name, [...(waiting.get(name) ?? []), resolve]);
        result.then(() => reject(new Error(`load generator ended before '${name}'`)), reject);
      });
    },
    stop: async () => {
      child.stdin!.end('stop\n');
      return result;
    },
  };
}

function loadgenResult(child: ChildProcess, onStderrLine: (line: string) => void = () => {}): { result: Promise<LoadgenResult>; stderr: () => string } {
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => (out += d));
  const stderr = lines(child.stderr!, onStderrLine);
  const result = new Promise<LoadgenResult>((resolve, reject) => {
    child.once('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line === undefined) {
        reject(new Error(`load generator exited (${code}) without a result:\n${stderr()}`));
        return;
      }
      const r = JSON.parse(line) as LoadgenResult;
      if (!r.ok) reject(new Error(`load generator failed: ${r.error ?? 'unknown'}\n${stderr()}`));
      else resolve(r);
    });
  });
  return { result, stderr };
}

/** Run a load generator to completion and return its result line. */
export function runLoadgen(children: Children, cfg: LoadgenConfig): Promise<LoadgenResult> {
  const child = children.spawn([LOADGEN_JS, JSON.stringify(cfg)]);
  return loadgenResult(child).result;
}

/** Start a `hold` load generator; it keeps its connections until stop(). */
export function holdLoadgen(children: Children, cfg: LoadgenConfig): HeldLoad {
  const run = startLoadgen(children, { ...cfg, mode: 'hold' });
  return { child: run.child, ready: run.event('ready').then(() => undefined), stop: run.stop };
}

// ---------------------------------------------------------------------------------------------
// /proc readings

export function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** CPU time (user + system) a process has used so far, ms (/proc/<pid>/stat, at clock-tick resolution). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS_PER_S;
}

/** USER_HZ: the unit of /proc/<pid>/stat times (100 on Linux unless the kernel was built otherwise). */
const CLOCK_TICKS_PER_S = 100;

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** TCP sockets in use and their buffer memory (bytes) from /proc/net/sockstat (this network namespace). */
export function tcpSockstat(): { inuse: number; memBytes: number } {
  const m = /TCP: inuse (\d+) orphan \d+ tw \d+ alloc \d+ mem (\d+)/.exec(readFileSync('/proc/net/sockstat', 'utf8'));
  return m ? { inuse: Number(m[1]), memBytes: Number(m[2]) * 4096 } : { inuse: NaN, memBytes: NaN };
}

/** Connections the kernel dropped because a listen socket's accept queue was full, machine-wide (/proc/net/netstat ListenOverflows). */
export function listenOverflows(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
  const keys = lines[0]?.split(' ') ?? [];
  const values = lines[1]?.split(' ') ?? [];
  const i = keys.indexOf('ListenOverflows');
  return i < 0 ? NaN : Number(values[i]);
}

/** Kernel slab memory in kB (/proc/meminfo `Slab`), machine-wide. */
export function slabKb(): number {
  const m = /Slab:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** GET /health of a node. */
export async function health(httpPort: number): Promise<{ connections: number; online_users: number; memory?: NodeMemoryMb }> {
  const r = await fetch(`http://127.0.0.1:${httpPort}/health`);
  return (await r.json()) as { connections: number; online_users: number; memory?: NodeMemoryMb };
}
