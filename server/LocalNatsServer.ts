/**
 * The nats-server that `iris start --processes N` runs for its node processes when no NATS is
 * configured: one server with JetStream, its file store in `<wal_directory>/nats/jetstream`,
 * listening on loopback only, on a port the server picks itself (read back from its ports
 * file, so no other program can take it between a probe and the bind), with a random token
 * that only the node processes are given (kept in a 0600 config file, never on a command
 * line). It runs in its own process group, so a Ctrl-C reaches the supervisor, which stops it
 * after the nodes. A server left behind by a supervisor that was killed is found by its pid
 * file and stopped before a new one starts on the same store. Restarting keeps the port and the
 * token, so the nodes' NATS clients reconnect to it by themselves.
 *
 * One server holds one copy of every stream (R1): what JetStream acknowledged survives the
 * death of any process, but nats-server 2.9.10 writes its file store to disk every two
 * minutes, not per message (docs/cluster.md, "Every core of one machine").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** How long a starting server may take to write its ports file. */
export const LOCAL_NATS_START_TIMEOUT_MS = 15_000;
/** How long a stopping server may take to exit after SIGTERM before it is killed. */
export const LOCAL_NATS_STOP_TIMEOUT_MS = 10_000;
const POLL_MS = 20;
/** Lines of the server's output kept to explain a failure. */
const OUTPUT_TAIL_LINES = 20;

export interface LocalNatsOptions {
  /** The nats-server executable (config key local_nats_server). */
  readonly binary: string;
  /** The server's directory: config, pid and ports files, the JetStream store. */
  readonly dir: string;
}

export type LocalNatsStart = { readonly ok: true; readonly server: LocalNatsServer } | { readonly ok: false; readonly message: string };

export interface LocalNatsExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class LocalNatsServer {
  private stopping = false;

  private constructor(
    private readonly opts: LocalNatsOptions,
    private proc: ChildProcess,
    private tail: () => string,
    /** nats://127.0.0.1:<port> */
    readonly url: string,
    readonly port: number,
    /** The token every client must present. */
    readonly token: string,
    private exitedP: Promise<LocalNatsExit>,
  ) {}

  /** Start a server on `opts.dir` (on `port`, or one the server picks when 0). */
  static async start(opts: LocalNatsOptions, port = 0, token = randomBytes(24).toString('base64url')): Promise<LocalNatsStart> {
    const dir = resolve(opts.dir);
    try {
      mkdirSync(join(dir, 'jetstream'), { recursive: true, mode: 0o700 });
    } catch (err) {
      return { ok: false, message: `wal_directory: cannot create ${dir} for the local nats-server (${(err as Error).message})` };
    }
    await stopLeftover(dir);
    const conf = join(dir, 'nats-server.conf');
    for (const f of readdirSync(dir)) if (/^.+_\d+\.ports$/.test(f)) rmSync(join(dir, f), { force: true });
    writeFileSync(conf, configText(dir, port, token), { mode: 0o600 });
    chmodSync(conf, 0o600);
    const proc = spawn(opts.binary, ['-c', conf], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail = keepTail(proc);
    const exited = new Promise<LocalNatsExit>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
    const spawnError = new Promise<Error>((r) => proc.once('error', r));
    const deadline = Date.now() + LOCAL_NATS_START_TIMEOUT_MS;
    for (;;) {
      const early = await Promise.race([spawnError, exited, sleep(POLL_MS).then(() => null)]);
      if (early instanceof Error) {
        return { ok: false, message: `local_nats_server: cannot run '${opts.binary}' (${early.message}); install nats-server (scripts/setup.sh does) or set local_nats_server to its path, or set nats_servers` };
      }
      if (early !== null) {
        return { ok: false, message: `local_nats_server: '${opts.binary}' exited (${early.code ?? early.signal}) before it listened: ${tail()}` };
      }
      const url = proc.pid !== undefined ? readPortsFile(dir, proc.pid) : null;
      if (url !== null) {
        const server = new LocalNatsServer(opts, proc, tail, url, Number(new URL(url).port), token, exited);
        return { ok: true, server };
      }
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        return { ok: false, message: `local_nats_server: '${opts.binary}' did not listen within ${LOCAL_NATS_START_TIMEOUT_MS} ms: ${tail()}` };
      }
    }
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** Resolves when the current server process exits. */
  get exited(): Promise<LocalNatsExit> {
    return this.exitedP;
  }

  /** The last lines the server wrote. */
  output(): string {
    return this.tail();
  }

  /** Start the server again after it died: same directory, port and token. */
  async restart(): Promise<{ ok: true } | { ok: false; message: string }> {
    const again = await LocalNatsServer.start(this.opts, this.port, this.token);
    if (!again.ok) return again;
    this.proc = again.server.proc;
    this.tail = again.server.tail;
    this.exitedP = again.server.exitedP;
    return { ok: true };
  }

  /** SIGTERM (JetStream flushes and closes its store), SIGKILL after LOCAL_NATS_STOP_TIMEOUT_MS. */
  async stop(): Promise<void> {
    this.stopping = true;
    const proc = this.proc;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), LOCAL_NATS_STOP_TIMEOUT_MS);
    await this.exitedP;
    clearTimeout(timer);
  }

  /** stop() was called. */
  get stopped(): boolean {
    return this.stopping;
  }
}

function configText(dir: string, port: number, token: string): string {
  const q = (s: string) => JSON.stringify(s);
  return [
    '# Written by `iris start --processes`; rewritten at every start.',
    `server_name: ${q('iris_local')}`,
    `listen: ${q(`127.0.0.1:${port === 0 ? -1 : port}`)}`,
    `pid_file: ${q(join(dir, 'nats-server.pid'))}`,
    `ports_file_dir: ${q(dir)}`,
    `authorization { token: ${q(token)} }`,
    `jetstream { store_dir: ${q(join(dir, 'jetstream'))} }`,
    '',
  ].join('\n');
}

/** The client URL from the server's ports file (`<executable>_<pid>.ports`), once it is written. */
function readPortsFile(dir: string, pid: number): string | null {
  const file = readdirSync(dir).find((f) => f.endsWith(`_${pid}.ports`));
  if (file === undefined) return null;
  try {
    const ports = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nats?: string[] };
    return ports.nats?.find((u) => u.startsWith('nats://127.0.0.1:')) ?? null;
  } catch {
    return null; // not completely written yet
  }
}

/** A server still running on this store from an earlier supervisor that was killed: stop it. */
async function stopLeftover(dir: string): Promise<void> {
  const pidFile = join(dir, 'nats-server.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  rmSync(pidFile, { force: true });
  if (!Number.isInteger(pid) || pid <= 1) return;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return; // gone
  }
  if (!cmdline.includes(join(dir, 'nats-server.conf'))) return; // the pid was reused by something else
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + LOCAL_NATS_STOP_TIMEOUT_MS;
  while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await sleep(POLL_MS);
  if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
  while (existsSync(`/proc/${pid}`) && Date.now() < deadline + LOCAL_NATS_STOP_TIMEOUT_MS) await sleep(POLL_MS);
}

/** Drains the server's output (a full pipe would stall it) and keeps its last lines. */
function keepTail(proc: ChildProcess): () => string {
  const lines: string[] = [];
  const take = (d: Buffer) => {
    for (const l of d.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(l);
    if (lines.length > OUTPUT_TAIL_LINES) lines.splice(0, lines.length - OUTPUT_TAIL_LINES);
  };
  proc.stdout?.on('data', take);
  proc.stderr?.on('data', take);
  return () => lines.join('\n');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
