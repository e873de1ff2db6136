/**
 * Real `nats-server` processes for tests and benches: N servers routed into one cluster on free
 * loopback ports, each with its own config, log and JetStream store under one temp directory.
 * A server can be killed, stopped, isolated (restarted on the same client port without its
 * cluster block, so no route reaches it) and rejoined; every wait polls the monitoring
 * endpoint with a deadline. `stopAll` kills every server by pid and removes the directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NATS_SERVER = process.env['NATS_SERVER'] ?? 'nats-server';
/** How long a server may take to answer its health check after start. */
const SERVER_START_MS = 10_000;
/** How long routes may take to form. */
const ROUTES_MS = 15_000;
const POLL_MS = 25;

export interface NatsClusterOptions {
  /** Servers in the cluster (default 3). */
  servers?: number;
  /** Route ping interval, so a cut route is noticed quickly (default 1 s). */
  routePingMs?: number;
  /** Enable JetStream (default true; stores live in the temp directory). */
  jetstream?: boolean;
  /** Config text added to every server (client `authorization`, `tls`, …). */
  extraConfig?: string;
}

interface ServerSlot {
  readonly index: number;
  readonly name: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly httpPort: number;
  proc: ChildProcess | null;
  exited: Promise<void> | null;
}

/** Ports the OS says are free on 127.0.0.1 right now (each bound once, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

async function getJson(url: string): Promise<Record<string, unknown> | null> {
  try {
    const r = await fetch(url);
    if (!r.ok) return null;
    return (await r.json()) as Record<string, unknown>;
  } catch {
    return null;
  }
}

async function until(what: string, cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`nats cluster: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The part of /jsz?streams=true the stream lookups read. */
interface Jsz {
  account_details?: Array<{ stream_detail?: Array<{ name: string; state?: { first_seq?: number; last_seq?: number }; cluster?: { leader?: string; replicas?: Array<{ name: string; current: boolean }> } }> }>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

export class NatsCluster {
  readonly dir: string;
  private readonly slots: ServerSlot[];

  private constructor(dir: string, slots: ServerSlot[], private readonly opts: Required<NatsClusterOptions>) {
    this.dir = dir;
    this.slots = slots;
  }

  static async start(opts: NatsClusterOptions = {}): Promise<NatsCluster> {
    const o: Required<NatsClusterOptions> = {
      servers: opts.servers ?? 3,
      routePingMs: opts.routePingMs ?? 1000,
      jetstream: opts.jetstream ?? true,
      extraConfig: opts.extraConfig ?? '',
    };
    const dir = mkdtempSync(join(tmpdir(), 'iris-nats-'));
    const ports = await freePorts(o.servers * 3);
    const slots: ServerSlot[] = [];
    for (let i = 0; i < o.servers; i++) {
      slots.push({ index: i, name: `s${i + 1}`, port: ports[i * 3]!, clusterPort: ports[i * 3 + 1]!, httpPort: ports[i * 3 + 2]!, proc: null, exited: null });
    }
    const c = new NatsCluster(dir, slots, o);
    try {
      await Promise.all(slots.map((s) => c.launch(s, true)));
      await c.waitRoutes();
    } catch (err) {
      await c.stopAll();
      throw err;
    }
    return c;
  }

  get size(): number {
    return this.slots.length;
  }

  /** Client URL of server `i`. */
  url(i: number): string {
    return `nats://127.0.0.1:${this.slot(i).port}`;
  }

  /** Every client URL, server 0 first. */
  get urls(): string[] {
    return this.slots.map((s) => `nats://127.0.0.1:${s.port}`);
  }

  /** Client port of server `i`. */
  port(i: number): number {
    return this.slot(i).port;
  }

  /** Monitoring URL (`http://127.0.0.1:<port>`) of server `i`: /varz, /routez, /jsz. */
  monitorUrl(i: number): string {
    return `http://127.0.0.1:${this.slot(i).httpPort}`;
  }

  /** Server name of server `i` (`s1`, `s2`, …), as JetStream reports leaders and peers. */
  serverName(i: number): string {
    return this.slot(i).name;
  }

  /** OS pid of server `i` (undefined when it is not running). */
  pid(i: number): number | undefined {
    return this.slot(i).proc?.pid;
  }

  running(i: number): boolean {
    return this.slot(i).proc !== null;
  }

  /** SIGKILL server `i` by pid and wait until it is gone. */
  async kill(i: number): Promise<void> {
    await this.signal(this.slot(i), 'SIGKILL');
  }

  /** Stop server `i` cleanly (SIGTERM) and wait until it is gone. */
  async stop(i: number): Promise<void> {
    await this.signal(this.slot(i), 'SIGTERM');
  }

  /** Start server `i` again on its ports, routed to the others, and wait for the routes. */
  async restart(i: number): Promise<void> {
    const s = this.slot(i);
    if (s.proc !== null) await this.signal(s, 'SIGTERM');
    await this.launch(s, true);
    await this.waitRoutes();
  }

  /**
   * Cut server `i` off from the others: restart it on the same client port with no cluster
   * listener (the others' routes to it fail), so its clients see only each other. Its
   * clients lose their link once and reconnect to it (pin them with ignoreClusterUpdates).
   */
  async isolate(i: number): Promise<void> {
    const s = this.slot(i);
    if (s.proc !== null) await this.signal(s, 'SIGTERM');
    await this.launch(s, false);
    await until(`the other servers to drop their routes to ${s.name}`, async () => {
      for (const o of this.slots) {
        if (o === s || o.proc === null) continue;
        const z = await getJson(`http://127.0.0.1:${o.httpPort}/routez`);
        if (z === null || Number(z['num_routes']) !== this.runningRouted() - 1) return false;
      }
      return true;
    }, ROUTES_MS);
  }

  /** Undo `isolate`: restart server `i` with its routes and wait until the cluster is whole. */
  async rejoin(i: number): Promise<void> {
    await this.restart(i);
  }

  /** Wait until every running routed server has a route to every other one. */
  async waitRoutes(): Promise<void> {
    const routed = this.slots.filter((s) => s.proc !== null && this.isRouted(s));
    await until('routes between the servers', async () => {
      for (const s of routed) {
        const z = await getJson(`http://127.0.0.1:${s.httpPort}/routez`);
        if (z === null || Number(z['num_routes']) < routed.length - 1) return false;
      }
      return true;
    }, ROUTES_MS);
  }

  /**
   * The server leading JetStream stream `stream` as a majority of the servers sees it (their
   * /jsz); null while there is none. A restarted server may name itself leader for seconds
   * before it knows better, so one server's word is not enough.
   */
  async streamLeader(stream: string): Promise<number | null> {
    const views = await this.streamViews(stream);
    const votes = new Map<string, number>();
    for (const v of views) if (v.leader !== null) votes.set(v.leader, (votes.get(v.leader) ?? 0) + 1);
    const winner = this.slots.find((s) => s.proc !== null && (votes.get(s.name) ?? 0) > this.slots.length / 2);
    return winner === undefined ? null : winner.index;
  }

  /**
   * True when `stream` has a leader, every running server holds it up to the leader's last
   * sequence (by its own /jsz), and the leader counts every replica current. A direct get
   * through a server does not prove that server holds the entry: a replica that is catching up
   * leaves the answer to another one.
   */
  async streamCaughtUp(stream: string): Promise<boolean> {
    const views = await this.streamViews(stream);
    const leader = await this.streamLeader(stream);
    if (leader === null) return false;
    const lv = views.find((v) => v.server === leader);
    if (lv === undefined || lv.lastSeq === null || lv.replicas.some((r) => !r.current)) return false;
    return views.every((v) => v.lastSeq === lv.lastSeq);
  }

  /** Each running server's own view of `stream` (from /jsz?streams=true). */
  async streamViews(stream: string): Promise<Array<{ server: number; leader: string | null; firstSeq: number | null; lastSeq: number | null; replicas: Array<{ name: string; current: boolean }> }>> {
    const out = [];
    for (const s of this.slots) {
      if (s.proc === null) continue;
      const z = (await getJson(`http://127.0.0.1:${s.httpPort}/jsz?streams=true`)) as Jsz | null;
      const d = z?.account_details?.flatMap((a) => a.stream_detail ?? []).find((x) => x.name === stream);
      out.push({
        server: s.index,
        leader: d?.cluster?.leader !== undefined && d.cluster.leader !== '' ? d.cluster.leader : null,
        firstSeq: d?.state?.first_seq ?? null,
        lastSeq: d?.state?.last_seq ?? null,
        replicas: (d?.cluster?.replicas ?? []).map((r) => ({ name: r.name, current: r.current })),
      });
    }
    return out;
  }

  /** Kill every server by pid and delete the temp directory. */
  async stopAll(): Promise<void> {
    await Promise.all(this.slots.map((s) => this.signal(s, 'SIGKILL')));
    rmSync(this.dir, { recursive: true, force: true });
  }

  // ---- internal ---------------------------------------------------------------------------

  private readonly unrouted = new Set<number>();

  private isRouted(s: ServerSlot): boolean {
    return !this.unrouted.has(s.index);
  }

  private runningRouted(): number {
    return this.slots.filter((s) => s.proc !== null && this.isRouted(s)).length;
  }

  private slot(i: number): ServerSlot {
    const s = this.slots[i];
    if (s === undefined) throw new Error(`nats cluster: no server ${i}`);
    return s;
  }

  private config(s: ServerSlot, routed: boolean): string {
    const lines = [
      `server_name: ${s.name}`,
      `listen: 127.0.0.1:${s.port}`,
      `http: 127.0.0.1:${s.httpPort}`,
      'max_pending: 256MB',
      this.opts.extraConfig,
    ];
    if (this.opts.jetstream) {
      const store = join(this.dir, routed ? s.name : `${s.name}-isolated`);
      mkdirSync(store, { recursive: true });
      lines.push(`jetstream { store_dir: "${store}", max_memory_store: 64MB, max_file_store: 512MB }`);
    }
    if (routed && this.slots.length > 1) {
      const routes = this.slots.filter((o) => o !== s).map((o) => `nats-route://127.0.0.1:${o.clusterPort}`);
      lines.push(
        'cluster {',
        '  name: iris-test',
        `  listen: 127.0.0.1:${s.clusterPort}`,
        `  routes: [${routes.join(', ')}]`,
        '}',
        `ping_interval: "${Math.max(1, Math.round(this.opts.routePingMs / 1000))}s"`,
      );
    }
    return lines.join('\n') + '\n';
  }

  private async launch(s: ServerSlot, routed: boolean): Promise<void> {
    const conf = join(this.dir, `${s.name}.conf`);
    writeFileSync(conf, this.config(s, routed));
    if (routed) this.unrouted.delete(s.index);
    else this.unrouted.add(s.index);
    const proc = spawn(NATS_SERVER, ['-c', conf, '-l', join(this.dir, `${s.name}.log`)], { stdio: 'ignore' });
    s.proc = proc;
    live.add(proc);
    s.exited = new Promise((resolve) => {
      proc.once('exit', () => {
        live.delete(proc);
        if (s.proc === proc) s.proc = null;
        resolve();
      });
    });
    const failed = new Promise<never>((_, reject) => proc.once('error', reject));
    await Promise.race([
      failed,
      until(`${s.name} to answer /healthz`, async () => {
        if (s.proc !== proc) throw new Error(`${s.name} exited during start (see ${join(this.dir, `${s.name}.log`)})`);
        return (await getJson(`http://127.0.0.1:${s.httpPort}/varz`)) !== null;
      }, SERVER_START_MS),
    ]);
  }

  private async signal(s: ServerSlot, sig: NodeJS.Signals): Promise<void> {
    const proc = s.proc;
    if (proc === null || proc.pid === undefined) return;
    const exited = s.exited;
    try {
      process.kill(proc.pid, sig);
    } catch {
      /* already gone */
    }
    await exited;
  }
}
