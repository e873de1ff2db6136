/**
 * Runs `iris start --processes N` as a child process and reads what its banner and later lines
 * say (the shared ports, the supervisor's, node processes' and nats-server's pids, restarts),
 * so a test can reach the shared ports, kill one node process by pid, and stop the supervisor
 * and check by pid that everything it started is gone. Also: which process holds the server
 * side of a client's connection, from the kernel's socket table (`ss`).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLI = new URL('../../bin/iris.js', import.meta.url).pathname;
const POLL_MS = 20;

export interface IrisSupervisor {
  readonly pid: number;
  readonly tcpPort: number;
  readonly httpPort: number;
  readonly natsPid: number;
  /** Node process name → pid, as the banner listed them. */
  readonly nodePids: ReadonlyMap<string, number>;
  /** Everything the supervisor and its processes wrote so far. */
  output(): string;
  /** Resolves with the first match of `re` in the output (from `from` on), polled until `timeoutMs`. */
  waitOutput(re: RegExp, timeoutMs: number, from?: number): Promise<RegExpExecArray>;
  /** SIGTERM by pid; resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL by pid (its node processes end with their IPC channel; its nats-server does not). */
  kill(): Promise<void>;
  readonly exited: boolean;
}

export async function startIrisSupervisor(dataDir: string, processes: number, sets: readonly string[], timeoutMs = 60_000): Promise<IrisSupervisor> {
  const args = [CLI, 'start', '--processes', String(processes), '--port', '0', '--http-port', '0', '--data', dataDir];
  for (const s of sets) args.push('--set', s);
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('iris start: no pid');
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exitedP = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const waitOutput = async (re: RegExp, waitMs: number, from = 0): Promise<RegExpExecArray> => {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const m = re.exec(out.slice(from));
      if (m !== null) return m;
      if (gone()) throw new Error(`iris start exited (${child.exitCode ?? child.signalCode}) while waiting for ${re}:\n${out.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`no ${re} within ${waitMs} ms:\n${out.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  };
  const waitExit = async (waitMs: number): Promise<number | null> => {
    if (gone()) return child.exitCode;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`supervisor ${pid} did not exit within ${waitMs} ms:\n${out.slice(-4000)}`)), waitMs)));
    try {
      return await Promise.race([exitedP, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
  const kill = async () => {
    if (gone()) return;
    process.kill(pid, 'SIGKILL');
    await waitExit(10_000);
  };
  try {
    await waitOutput(/iris: try it:/, timeoutMs);
    const tcp = /v1 over TCP:\s+\S+:(\d+)/.exec(out);
    const ws = /ws:\/\/\S+:(\d+)\/ws/.exec(out);
    const nats = /nats-server:\s+\S+ \(pid (\d+)\)/.exec(out);
    if (tcp === null || ws === null || nats === null) throw new Error(`unexpected banner:\n${out}`);
    const nodePids = new Map<string, number>();
    for (const m of out.matchAll(/node process:\s+(\S+) \(pid (\d+)\)/g)) nodePids.set(m[1]!, Number(m[2]));
    return {
      pid,
      tcpPort: Number(tcp[1]),
      httpPort: Number(ws[1]),
      natsPid: Number(nats[1]),
      nodePids,
      output: () => out,
      waitOutput,
      async stop(stopTimeoutMs = 30_000) {
        if (gone()) return child.exitCode;
        process.kill(pid, 'SIGTERM');
        return waitExit(stopTimeoutMs);
      },
      kill,
      get exited() {
        return gone();
      },
    };
  } catch (err) {
    await kill();
    throw err;
  }
}

/** Whether a process with this pid exists (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * The pid of the process holding the server side of the TCP connection from client port
 * `clientPort` to `serverPort` on loopback, once exactly one of `candidates` holds it (a socket
 * the supervisor accepted is handed over to a node process).
 */
export async function serverSideOwner(serverPort: number, clientPort: number, candidates: readonly number[], timeoutMs = 5_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const table = execFileSync('ss', ['-tnpH', 'state', 'established', `( sport = :${serverPort} and dport = :${clientPort} )`], { encoding: 'utf8' });
    const pids = [...new Set([...table.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])))];
    if (pids.length === 1 && candidates.includes(pids[0]!)) return pids[0]!;
    if (Date.now() > deadline) throw new Error(`the server side of 127.0.0.1:${clientPort} → :${serverPort} is held by [${pids.join(', ')}], not one of [${candidates.join(', ')}]:\n${table}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
