/**
 * Cluster node child processes (test/support/clusterNodeMain.ts) for tests and benches:
 * start one joined to a NATS cluster, wait until it is up, SIGKILL or stop it by pid. Every
 * child still running when the parent exits is killed. Also: waiting, event-driven with a
 * deadline, until a node's membership shows a condition.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Membership, NodeMember } from '../../runtime/Membership.js';

const ENTRY = new URL('./clusterNodeMain.js', import.meta.url).pathname;
const START_MS = 20_000;

export interface ChildNodeOptions {
  name: string;
  cluster: string;
  servers: string[];
  schedulers?: number;
  heartbeatMs?: number;
  downAfterMs?: number;
  ignoreClusterUpdates?: boolean;
  noRandomize?: boolean;
  roles?: string[];
  /** Start the global name server. */
  global?: boolean;
  /** Start a process group scope with this name. */
  pgScope?: string;
  logLevel?: string;
}

export interface NodeProcess {
  readonly name: string;
  readonly pid: number;
  readonly incarnation: number;
  /** What the child wrote so far (stdout and stderr). */
  output(): string;
  /** SIGKILL by pid; resolves once it is gone. */
  kill(): Promise<void>;
  /** SIGTERM (orderly stop, the node says goodbye); resolves once it is gone. */
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

export async function startNodeProcess(opts: ChildNodeOptions): Promise<NodeProcess> {
  const child = spawn(process.execPath, [ENTRY, JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('node process: no pid');
  const pid = child.pid;
  children.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    children.delete(child);
    resolve();
  }));
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (!gone()) {
      try {
        process.kill(pid, sig);
      } catch {
        /* gone */
      }
    }
    await exited;
  };
  const deadline = Date.now() + START_MS;
  let m: RegExpExecArray | null;
  while ((m = /READY (\d+)/.exec(out)) === null) {
    if (gone()) throw new Error(`node ${opts.name} exited before it was up:\n${out}`);
    if (Date.now() > deadline) {
      await signal('SIGKILL');
      throw new Error(`node ${opts.name} was not up within ${START_MS} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return {
    name: opts.name,
    pid,
    incarnation: Number(m[1]),
    output: () => out,
    kill: () => signal('SIGKILL'),
    stop: () => signal('SIGTERM'),
  };
}

/** Resolve with the first truthy `probe(members)`, re-checked at every membership event. */
export function waitForMembers<T>(m: Membership, what: string, probe: (peers: NodeMember[]) => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const check = (): boolean => {
      const v = probe(m.peers());
      if (v === undefined || v === false) return false;
      stop();
      clearTimeout(timer);
      resolve(v);
      return true;
    };
    const stop = m.subscribe(() => void check());
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; peers: ${m.peers().map((p) => p.name).join(', ')}`));
    }, timeoutMs);
    check();
  });
}
