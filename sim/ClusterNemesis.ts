/**
 * The nemesis of a cluster run: during the safety phase it strikes every 0.3–2.5 virtual s with
 * one of the scenario's enabled faults, drawn from its own random stream, through the
 * SimCluster fault API (Iris node crash and restart, pauses, clock jumps, NATS server kill and
 * OS crash, server pauses, silent partitions node↔server and server↔server, symmetric or
 * one-way, slow and failing disks), the control plane's drain (a core node drained, leaving and
 * joining again; rolling restarts) and the workload (reconnect storms, users moving). Each fault
 * undoes itself after a drawn while, unless the heal comes first: `healAll` then undoes
 * everything at once. It never breaks more than the cluster could survive by design only where
 * a test says so: it may take any node or server down, and the checkers judge what follows.
 */
import { drain } from '../core/cluster/ControlPlane.js';
import type { ClusterScenario, ClusterFaultName } from './ClusterScenario.js';
import type { ClusterWorkload } from './ClusterWorkload.js';
import type { SimCluster } from './SimCluster.js';
import type { SimNode } from './SimNode.js';
import type { SimRandom } from './SimRandom.js';

/** Virtual ms between strikes. */
const STRIKE_GAP_MS: readonly [number, number] = [300, 2_500];
/** How long a drain may take before the nemesis gives up on it. */
const DRAIN_TIMEOUT_MS = 20_000;
/** A rolling restart waits this long for a restarted node to be up before the next one. */
const ROLLING_STEP_MS = 6_000;
/**
 * OS crashes stay inside what JetStream survives: nats-server syncs every 2 min, so an OS crash
 * loses a server's unsynced copy, and a second server fault before it has caught up (another
 * OS crash, or a lagging replica it then votes for) can lose acknowledged entries — NATS's
 * documented limit, not Iris's. So an OS crash strikes only when every server has been up and
 * connected for this long, at most once per run, and no other server fault follows it until its
 * server has been back this long.
 */
const OS_CRASH_QUIET_MS = 20_000;
const DISK_OK = { fsyncMs: () => 1, fsyncFailRate: 0, full: false };

export class ClusterNemesis {
  /** What was injected, as `<virtual ms> <fault>`. */
  readonly injected: string[] = [];
  private active = false;
  private rolling = false;
  /** Drained nodes that left so far (every other one comes back with an empty disk). */
  private leaves = 0;
  /** Server faults (kill, OS crash, pause, route cut) are in force until this virtual ms. */
  private serverFaultUntil = 0;
  /** No server fault before this virtual ms (an OS-crashed server catches up). */
  private serverQuietUntil = 0;
  private osCrashed = false;
  private readonly faults: ClusterFaultName[];
  /** Undo actions of faults still in force. */
  private readonly undo = new Set<() => void>();

  constructor(
    private readonly c: SimCluster,
    private readonly workload: ClusterWorkload,
    s: ClusterScenario,
    private readonly r: SimRandom,
  ) {
    this.faults = [...s.faults];
  }

  start(): void {
    if (this.faults.length === 0) return;
    this.active = true;
    this.strike();
  }

  stop(): void {
    this.active = false;
  }

  /** Undo every fault: partitions healed, servers and nodes running, disks healthy. */
  healAll(): void {
    this.active = false;
    for (const u of [...this.undo]) u();
    this.undo.clear();
    this.c.heal();
    for (const s of this.c.servers) if (!this.c.nats.serverUp(s)) this.c.restartServer(s);
    for (const n of this.c.nodes) {
      n.disk.faults = { ...DISK_OK };
      if (n.status === 'down') this.c.restartNode(n.name);
    }
  }

  private note(what: string): void {
    this.injected.push(`${this.c.now} ${what}`);
    this.c.world.note(`nemesis:${what}`, 0);
  }

  /** Run `fn` after `ms` unless the heal came first (then the heal's undo does it). */
  private later(ms: number, fn: () => void): void {
    const undo = (): void => {
      this.undo.delete(undo);
      fn();
    };
    this.undo.add(undo);
    this.c.world.after(ms, 'nemesis_undo', () => {
      if (this.undo.has(undo)) undo();
    });
  }

  /** A server fault in force for `ms` from now. */
  private serverFault(ms: number): void {
    this.serverFaultUntil = Math.max(this.serverFaultUntil, this.c.now + ms);
  }

  private readonly strike = (): void => {
    if (!this.active) return;
    this.act(this.r.pick(this.faults));
    this.c.world.after(this.r.between(STRIKE_GAP_MS[0], STRIKE_GAP_MS[1]), 'nemesis', this.strike);
  };

  private upNodes(): SimNode[] {
    return this.c.nodes.filter((n) => n.status === 'up');
  }

  private act(f: ClusterFaultName): void {
    const r = this.r;
    const c = this.c;
    switch (f) {
      case 'node_crash': {
        const up = this.upNodes();
        if (up.length === 0) return;
        const n = r.pick(up).name;
        this.note(`crash ${n}`);
        c.crashNode(n);
        this.later(r.between(1_000, 6_000), () => c.restartNode(n));
        return;
      }
      case 'node_pause': {
        const up = this.upNodes();
        if (up.length === 0) return;
        const n = r.pick(up).name;
        const ms = r.between(200, 4_000);
        this.note(`pause ${n} ${ms}ms`);
        c.pauseNode(n, ms);
        return;
      }
      case 'clock': {
        const n = r.pick(c.nodes).name;
        const ms = r.between(-60_000, 60_000);
        this.note(`clock ${n} ${ms}ms`);
        c.jumpClock(n, ms);
        return;
      }
      case 'server_kill':
      case 'server_os_crash': {
        const os = f === 'server_os_crash';
        if (c.now < this.serverQuietUntil || (os && (this.osCrashed || c.now < this.serverFaultUntil + OS_CRASH_QUIET_MS))) return;
        const up = c.servers.filter((s) => c.nats.serverUp(s));
        if (up.length === 0) return;
        const s = r.pick(up);
        const ms = r.between(2_000, 12_000);
        this.note(`${os ? 'os crash' : 'kill'} ${s}`);
        this.serverFault(ms);
        if (os) {
          this.osCrashed = true;
          this.serverQuietUntil = c.now + ms + OS_CRASH_QUIET_MS;
          c.osCrashServer(s);
        } else c.killServer(s);
        this.later(ms, () => {
          if (!c.nats.serverUp(s)) c.restartServer(s);
        });
        return;
      }
      case 'server_pause': {
        if (c.now < this.serverQuietUntil) return;
        const s = r.pick(c.servers);
        const ms = r.between(500, 5_000);
        this.note(`pause ${s} ${ms}ms`);
        this.serverFault(ms);
        c.pauseServer(s, ms);
        return;
      }
      case 'partition_node': {
        const n = r.pick(c.nodes).name;
        const ms = r.between(1_000, 10_000);
        if (r.chance(0.4)) {
          this.note(`isolate ${n} ${ms}ms`);
          c.isolateNode(n);
          this.later(ms, () => {
            for (const s of c.servers) c.heal(n, s);
          });
          return;
        }
        const s = c.serverOf(n) ?? r.pick(c.servers);
        const oneWay = r.chance(0.4);
        const [a, b] = oneWay && r.chance(0.5) ? [s, n] : [n, s];
        this.note(`cut ${a}${oneWay ? '->' : '<->'}${b} ${ms}ms`);
        c.partition(a, b, oneWay);
        this.later(ms, () => c.heal(a, b));
        return;
      }
      case 'partition_servers': {
        if (c.now < this.serverQuietUntil) return;
        const a = r.pick(c.servers);
        const b = r.pick(c.servers.filter((x) => x !== a));
        const oneWay = r.chance(0.3);
        const ms = r.between(2_000, 15_000);
        this.note(`cut ${a}${oneWay ? '->' : '<->'}${b} ${ms}ms`);
        this.serverFault(ms);
        c.partition(a, b, oneWay);
        this.later(ms, () => c.heal(a, b));
        return;
      }
      case 'slow_disk':
      case 'disk_full':
      case 'fsync_fail': {
        const n = r.pick(c.nodes);
        const ms = r.between(300, 4_000);
        this.note(`${f} ${n.name} ${ms}ms`);
        if (f === 'slow_disk') n.disk.faults.fsyncMs = (x) => 20 + x.int(480);
        else if (f === 'disk_full') n.disk.faults.full = true;
        else n.disk.faults.fsyncFailRate = 0.3;
        this.later(ms, () => (n.disk.faults = { ...DISK_OK }));
        return;
      }
      case 'drain': {
        const up = this.upNodes().filter((n) => n.core !== null);
        if (up.length <= Math.floor(c.nodes.length / 2) + 1) return;
        const n = r.pick(up);
        void this.drainAndLeave(n, r.between(1_000, 5_000));
        return;
      }
      case 'rolling_restart':
        if (!this.rolling) void this.rollingRestart();
        return;
      case 'storm': {
        const n = r.pick(c.nodes).name;
        this.note(`storm ${n}`);
        this.workload.storm(n);
        return;
      }
      case 'move':
        this.note('move');
        this.workload.move();
        return;
    }
  }

  /**
   * Drain `n`; once drained it leaves (stops) and joins again after `awayMs`, every other time
   * with an empty disk (a node replaced: its copies come back from peers' snapshots, the shard streams
   * being trimmed).
   */
  private async drainAndLeave(n: SimNode, awayMs: number): Promise<boolean> {
    const sched = n.schedulers[0];
    if (sched === undefined || n.core === null) return false;
    const incarnation = n.incarnations;
    this.note(`drain ${n.name}`);
    const rec = { at: this.c.now, node: `${n.name}#${incarnation}`, answeredAt: null as number | null, ok: null as boolean | null, message: '' };
    this.workload.history.drains.push(rec);
    const res = await drain(sched, DRAIN_TIMEOUT_MS).catch((e: unknown) => ({ ok: false as const, message: String(e) }));
    rec.answeredAt = this.c.now;
    rec.ok = res.ok;
    rec.message = res.ok ? 'drained' : res.message;
    if (!res.ok || n.incarnations !== incarnation || n.status !== 'up' || !this.active) return false;
    // Every other leave, counted rather than drawn: the fault draws stay those of the seed.
    const wipe = this.leaves++ % 2 === 1;
    this.note(`leave ${n.name}${wipe ? ' (disk replaced)' : ''}`);
    this.c.crashNode(n.name);
    if (wipe) this.c.wipeNode(n.name);
    this.later(awayMs, () => {
      this.note(`join ${n.name}`);
      this.c.restartNode(n.name);
    });
    return true;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.c.world.after(ms, 'nemesis_wait', resolve));
  }

  /** Every node in turn: drained, stopped, started again; stops at the heal. */
  private async rollingRestart(): Promise<void> {
    this.rolling = true;
    this.note('rolling restart');
    for (const n of this.c.nodes) {
      if (!this.active) break;
      if (n.status !== 'up' || n.core === null) continue;
      await this.drainAndLeave(n, 500);
      const until = this.c.now + ROLLING_STEP_MS;
      while (this.active && this.c.now < until && !(n.status === 'up' && n.core !== null)) await this.sleep(100);
    }
    this.rolling = false;
  }
}
