/**
 * Runs one `iris` command (dist/bin/iris.js) as a child process, without blocking the test's
 * event loop (its clients keep sending meanwhile), bounded in time: a command still running at
 * the deadline is SIGKILLed by pid and reported as such.
 */
import { spawn } from 'node:child_process';

const CLI = new URL('../../bin/iris.js', import.meta.url).pathname;

export interface CliRun {
  /** Exit code; null when killed. */
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export function runIrisCli(args: readonly string[], timeoutMs = 60_000): Promise<CliRun> {
  const t0 = Date.now();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      fail(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}
