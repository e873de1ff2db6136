/**
 * Runs `iris start` as a child process on a given data directory (ports chosen by the OS and
 * read from its startup banner on stderr), so a test can SIGKILL the whole server by pid and
 * start it again on the same storage.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const CLI = new URL('../../bin/iris.js', import.meta.url).pathname;

export interface IrisChild {
  readonly pid: number;
  readonly tcpPort: number;
  readonly httpPort: number;
  /** Everything the child wrote so far (stdout and stderr). */
  output(): string;
  /** SIGKILL by pid; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM by pid (clean stop); resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
  /** Resolves with the exit code once the process has exited by itself (fails after `timeoutMs`). */
  waitExit(timeoutMs: number): Promise<number | null>;
  readonly exited: boolean;
}

function waitExit(child: ChildProcess, exited: Promise<number | null>, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.exitCode);
      return;
    }
    const timer = setTimeout(() => reject(new Error(`child ${child.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
    void exited.then((code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

export async function startIrisChild(dataDir: string, sets: readonly string[] = [], timeoutMs = 15_000): Promise<IrisChild> {
  const args = [CLI, 'start', '--port', '0', '--http-port', '0', '--data', dataDir, '--set', 'log_level=warn'];
  for (const s of sets) args.push('--set', s);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('iris start: no pid');
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const kill = async (): Promise<void> => {
    if (gone()) return;
    process.kill(pid, 'SIGKILL');
    await waitExit(child, exited, 10_000);
  };
  try {
    const deadline = Date.now() + timeoutMs;
    let tcp: RegExpExecArray | null = null;
    let ws: RegExpExecArray | null = null;
    while ((tcp = /v1 over TCP:\s+\S+:(\d+)/.exec(out)) === null || (ws = /ws:\/\/\S+:(\d+)\/ws/.exec(out)) === null) {
      if (gone()) throw new Error(`iris start exited (${child.exitCode ?? child.signalCode}) before it was up:\n${out}`);
      if (Date.now() > deadline) throw new Error(`iris start was not up within ${timeoutMs} ms:\n${out}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return {
      pid,
      tcpPort: Number(tcp[1]),
      httpPort: Number(ws[1]),
      output: () => out,
      kill,
      async stop(stopTimeoutMs = 10_000) {
        if (gone()) return child.exitCode;
        process.kill(pid, 'SIGTERM');
        return waitExit(child, exited, stopTimeoutMs);
      },
      waitExit: (t) => waitExit(child, exited, t),
      get exited() {
        return gone();
      },
    };
  } catch (err) {
    await kill();
    throw err;
  }
}
