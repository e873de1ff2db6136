/**
 * The scheduler: runs the processes of one thread, one handler at a time, and applies every
 * OTP signal rule (links, monitors, exit signals, trapExit, timers, names).
 *
 * It touches the world only through its Env (time, timers, randomness) and its
 * SchedulerHost (envelopes to other schedulers and nodes), so the same code runs on a worker
 * thread in production and inside the deterministic simulator. It never blocks: sends only
 * enqueue, and the run loop yields to I/O after a bounded number of messages.
 *
 * Other nodes. The scheduler keeps its own copy of which other nodes are up, told by its
 * node's distribution layer through NodeUp/NodeDown envelopes (in order with every other
 * envelope it receives). A link, monitor or spawn aimed at a node that is not up is answered
 * at once with `noconnection`; a node going down fires every link and monitor to it.
 */
import { Kind, RELAYED, setPidCanonicaliser, type Envelope } from './Envelope.js';
import type { Env } from './Env.js';
import { ProcessExit, crashReason, describeReason, isNormalExit, type ExitReason } from './ExitReason.js';
import { Pid, Ref, pidEquals } from './Pid.js';
import {
  F_BUSY,
  F_DEAD,
  F_QUEUED,
  F_RUNNING,
  F_STARTING,
  F_STOPPING,
  F_TRAP,
  Process,
  type MonitorEntry,
  type Waiter,
} from './Process.js';
import {
  TIMEOUT,
  type MessageHandler,
  type ModuleSpec,
  type ProcessBody,
  type ProcessInfo,
  type RemoteSpawnResult,
  type SpawnOptions,
} from './ProcessContext.js';
import { MAILBOX_HIGH_WATERMARK, MESSAGES_PER_TURN, REDUCTIONS_PER_SLICE } from './defaults.js';
import type { NodeDownCause, NodeDownMessage, NodeMember, NodeUpMessage } from './Membership.js';
import { SmallMap } from './SmallMap.js';

/** Where envelopes for other schedulers and nodes go. The node (or simulator) provides it. */
export interface SchedulerHost {
  /** Deliver `env` to scheduler `sched` of `node`, preserving order per destination. */
  route(node: string, sched: number, env: Envelope): void;
  /** Load a module-named body (dynamic import in production). */
  loadBody(spec: ModuleSpec): Promise<ProcessBody>;
}

export interface SchedulerOptions {
  node: string;
  id: number;
  /** Incarnation: differs every time a scheduler with this id starts. */
  inc: number;
  env: Env;
  host?: SchedulerHost;
  /** Shared heartbeat cells read by the watchdog: [handler invocations, current slot, in run loop, ticks]. */
  heartbeat?: Int32Array;
}

export interface SchedulerMetrics {
  processes: number;
  runQueue: number;
  messagesHandled: number;
  spawned: number;
  exited: number;
  crashed: number;
  overflowDropped: number;
  overflowRejected: number;
  /** Processes whose mailbox went above MAILBOX_HIGH_WATERMARK. */
  aboveHighWatermark: number;
  maxQueueLen: number;
  /** Pending timers (sendAfter, behaviour timeouts). */
  timers: number;
}

interface PendingSpawn {
  requester: Pid;
  resolve: (r: RemoteSpawnResult) => void;
  node: string;
  sched: number;
  link: boolean;
  monitorRef: Ref | null;
  /** Set when the requester died before the reply. */
  requesterReason?: ExitReason;
}

interface TimerEntry {
  handle: unknown;
  deadline: number;
  /** The local process the timer's message is for: its exit cancels the timer (OTP). */
  target: Process | undefined;
}

/** A timer fired or was cancelled: its target no longer waits for it. */
function untrackTimer(t: TimerEntry, key: string): void {
  const p = t.target;
  if (p === undefined || p.timers === null) return;
  p.timers.delete(key);
  if (p.timers.size === 0) p.timers = null;
}

const noopHost: SchedulerHost = {
  route() {},
  async loadBody(spec) {
    const mod = (await import(spec.module)) as Record<string, (...a: unknown[]) => ProcessBody>;
    const factory = mod[spec.fn];
    if (typeof factory !== 'function') throw new Error(`${spec.module} has no export ${spec.fn}`);
    return factory(...(spec.args ?? []));
  },
};

/** Queue length from which a process's mailbox depth is tracked for watermarks. */
const DEPTH_TRACK_FROM = 64;

export class Scheduler {
  readonly node: string;
  readonly id: number;
  readonly inc: number;
  readonly env: Env;
  host: SchedulerHost;
  private readonly hb: Int32Array | null;

  private slots: (Process | undefined)[] = [];
  private gens: number[] = [];
  private free: number[] = [];
  private live = 0;

  private rq: (Process | undefined)[] = [];
  private rqh = 0;
  private rqt = 0;
  private loopScheduled = false;
  private running = false;
  private readonly loopFn = () => this.loop();

  private refCounter = 0;
  private readonly names = new Map<string, Process>();
  private readonly timers = new Map<string, TimerEntry>();
  private readonly pendingSpawns = new Map<string, PendingSpawn>();
  /** Sender of signals that come from outside any process (tests, the node itself). */
  readonly outsider: Pid;
  /** Set by spawn() when a monitor was requested; read right after by spawnMonitor. */
  lastSpawnMonitorRef: Ref | null = null;
  /** Other nodes that are up, as this node's distribution reported them. */
  private readonly peersUp = new Map<string, NodeMember>();
  /** Processes that asked for NODE_UP/NODE_DOWN messages. */
  private nodeWatchers: Set<Process> | null = null;

  private readonly m: SchedulerMetrics = {
    processes: 0,
    runQueue: 0,
    timers: 0,
    messagesHandled: 0,
    spawned: 0,
    exited: 0,
    crashed: 0,
    overflowDropped: 0,
    overflowRejected: 0,
    aboveHighWatermark: 0,
    maxQueueLen: 0,
  };
  /** Called for every abnormal exit (a crash report); the node wires it to its logger. */
  onCrash: ((pid: Pid, reason: ExitReason, label: string | null) => void) | null = null;

  constructor(opts: SchedulerOptions) {
    this.node = opts.node;
    this.id = opts.id;
    this.inc = opts.inc;
    this.env = opts.env;
    this.host = opts.host ?? noopHost;
    this.hb = opts.heartbeat ?? null;
    this.outsider = new Pid(this.node, this.id, this.inc, -1, 0);
    this.onCrash = (pid, reason, label) =>
      this.env.log.warn({ pid: pid.toString(), behaviour: label, reason: describeReason(reason) }, 'process crashed');
  }

  /** Make decoded pids that name this scheduler's live processes identical to the originals. */
  installCanonicaliser(): void {
    setPidCanonicaliser((pid) => this.canonical(pid));
  }

  /** The live process's own Pid object when `pid` names it, else `pid` itself. */
  canonical(pid: Pid): Pid {
    if (pid.sched !== this.id || pid.inc !== this.inc || pid.node !== this.node) return pid;
    const p = this.slots[pid.slot];
    return p !== undefined && p.self.gen === pid.gen ? p.self : pid;
  }

  // ---- spawning -------------------------------------------------------------------------

  spawn(body: ProcessBody, opts?: SpawnOptions, parent?: Process): Pid {
    let slot: number;
    let gen: number;
    if (this.free.length > 0) {
      slot = this.free.pop() as number;
      gen = ++this.gens[slot];
    } else {
      slot = this.slots.length;
      this.slots.push(undefined);
      this.gens.push(0);
      gen = 0;
    }
    const pid = new Pid(this.node, this.id, this.inc, slot, gen);
    const p = new Process(pid, this, body);
    pid.$p = p;
    this.slots[slot] = p;
    this.live++;
    this.m.spawned++;
    if (parent !== undefined) p.traceId = parent.traceId;
    this.lastSpawnMonitorRef = null;
    if (opts !== undefined) {
      if (opts.label !== undefined) p.label = opts.label;
      if (opts.mailbox !== undefined) p.ext().limit = opts.mailbox;
      if (opts.trapExit === true) p.flags |= F_TRAP;
      // The monitor comes first so that even a child that never runs (name taken) is a DOWN.
      if (parent !== undefined && opts.monitor === true) {
        const ref = this.makeRef();
        const e: MonitorEntry = { ref, pid: parent.self };
        (p.monitoredBy ??= new SmallMap()).set(ref.key, e);
        (parent.monitors ??= new SmallMap()).set(ref.key, { ref, pid });
        this.lastSpawnMonitorRef = ref;
      }
      if (opts.name !== undefined && !this.register(opts.name, pid)) {
        // Name taken: the child never runs, like a failed register in OTP's start.
        this.terminate(p, { error: `name already registered: ${opts.name}`, name: 'already_registered' });
        return pid;
      }
      if (parent !== undefined && opts.link === true) {
        (p.links ??= new SmallMap()).set(parent.self.key, parent.self);
        // A parent already dead (async code running on after a kill) links like a dead pid: noproc.
        if ((parent.flags & F_DEAD) !== 0) this.exitSignal(p, parent.self, 'noproc', true);
        else (parent.links ??= new SmallMap()).set(pid.key, pid);
        if ((p.flags & F_DEAD) !== 0) return pid;
      }
    }
    this.makeRunnable(p);
    return pid;
  }

  /** Start a module-named body on scheduler `sched` (this one or another thread). */
  spawnOn(sched: number, spec: ModuleSpec, opts: SpawnOptions | undefined, parent: Process | undefined, node?: string): Promise<RemoteSpawnResult> {
    const targetNode = node ?? this.node;
    if (targetNode === this.node && sched === this.id) {
      const pid = this.spawn(this.moduleBody(spec), opts, parent);
      const ref = this.lastSpawnMonitorRef ?? undefined;
      return Promise.resolve(ref ? { ok: true, pid, ref } : { ok: true, pid });
    }
    if (parent === undefined) return Promise.resolve({ ok: false, reason: 'no_parent_process' });
    if (!this.reachable(targetNode)) return Promise.resolve({ ok: false, reason: 'noconnection' });
    const reqRef = this.makeRef();
    return new Promise((resolve) => {
      const monitorRef = opts?.monitor === true ? this.makeRef() : null;
      this.pendingSpawns.set(reqRef.key, {
        requester: parent.self,
        resolve,
        node: targetNode,
        sched,
        link: opts?.link === true,
        monitorRef,
      });
      const wireOpts = { ...opts, monitorRef };
      this.host.route(targetNode, sched, [Kind.Spawn, null, parent.self, { spec, opts: wireOpts }, reqRef, parent.traceId]);
    });
  }

  private moduleBody(spec: ModuleSpec): ProcessBody {
    const host = this.host;
    return async (ctx) => {
      const body = await host.loadBody(spec);
      return body(ctx);
    };
  }

  // ---- sending --------------------------------------------------------------------------

  /** The hot path: a local pid with a live process is one enqueue. */
  send(to: Pid | string, msg: unknown, from: Process | null, trace: number = from === null ? 0 : from.traceId): void {
    if (typeof to === 'string') {
      const p = this.names.get(to);
      if (p !== undefined) this.deliver(p, msg, trace, from === null ? null : from.self);
      return;
    }
    const p = to.$p as Process | undefined;
    if (p !== undefined) {
      this.deliver(p, msg, trace, from === null ? null : from.self);
      return;
    }
    if (to.sched === this.id && to.node === this.node) {
      const q = this.local(to);
      if (q !== undefined) this.deliver(q, msg, trace, from === null ? null : from.self);
      return; // dead: dropped
    }
    this.host.route(to.node, to.sched, [Kind.Msg, to, from === null ? null : from.self, msg, null, trace]);
  }

  sendNamed(name: string, sched: number, msg: unknown, from: Process | null, node?: string): void {
    const n = node ?? this.node;
    if (n === this.node && sched === this.id) {
      this.send(name, msg, from);
      return;
    }
    this.host.route(n, sched, [Kind.Named, name, from === null ? null : from.self, msg, null, from === null ? 0 : from.traceId]);
  }

  /** Enqueue one user message. */
  private deliver(p: Process, msg: unknown, trace: number, from: Pid | null): void {
    if ((p.flags & F_DEAD) !== 0) return;
    const w = p.waiter;
    if (w !== null && (w.match === undefined || w.match(msg))) {
      p.waiter = null;
      if (w.timer !== undefined) this.env.timers.clearTimer(w.timer);
      p.traceId = trace;
      w.resolve(msg);
      return;
    }
    let q = p.q;
    if (q === null) q = p.q = [];
    const x = p.extra;
    if (x !== null && x.limit !== null && (p.qt - p.qh) >> 1 >= x.limit.capacity) {
      if (!this.overflow(p, x.limit.overflow, msg, from)) return;
      q = p.q as unknown[];
    }
    const t = p.qt;
    q[t] = msg;
    q[t + 1] = trace;
    p.qt = t + 2;
    const depth = t + 2 - p.qh;
    if (depth > DEPTH_TRACK_FROM) this.noteDepth(p, depth >> 1);
    if ((p.flags & (F_QUEUED | F_BUSY | F_RUNNING)) === 0) this.makeRunnable(p);
  }

  /** Applies a full mailbox's policy; true if the new message should still be queued. */
  private overflow(p: Process, policy: string, msg: unknown, from: Pid | null): boolean {
    switch (policy) {
      case 'drop_oldest': {
        if (p.qh === p.qt) {
          // Nothing older to evict (capacity 0): the new message is the one dropped.
          this.m.overflowDropped++;
          return false;
        }
        const q = p.q as unknown[];
        q[p.qh] = undefined;
        q[p.qh + 1] = undefined;
        p.qh += 2;
        p.compact();
        this.m.overflowDropped++;
        return true;
      }
      case 'reject':
        this.m.overflowRejected++;
        if (from !== null) this.sendSystem(from, { type: 'MAILBOX_FULL', to: p.self, message: msg });
        return false;
      case 'stop':
        this.terminate(p, 'mailbox_overflow');
        return false;
      default:
        this.m.overflowDropped++;
        return false;
    }
  }

  private noteDepth(p: Process, depth: number): void {
    const x = p.ext();
    if (depth > x.highWatermark) {
      if (x.highWatermark < MAILBOX_HIGH_WATERMARK && depth >= MAILBOX_HIGH_WATERMARK) this.m.aboveHighWatermark++;
      x.highWatermark = depth;
      if (depth > this.m.maxQueueLen) this.m.maxQueueLen = depth;
    }
  }

  /** Enqueue in the system lane (EXIT/DOWN messages, behaviour timeouts), ahead of user mail. */
  private deliverSystem(p: Process, msg: unknown): void {
    if ((p.flags & F_DEAD) !== 0) return;
    const w = p.waiter;
    if (w !== null && (w.match === undefined || w.match(msg))) {
      p.waiter = null;
      if (w.timer !== undefined) this.env.timers.clearTimer(w.timer);
      w.resolve(msg);
      return;
    }
    (p.sig ??= []).push(msg);
    if ((p.flags & (F_QUEUED | F_BUSY | F_RUNNING)) === 0) this.makeRunnable(p);
  }

  /** A system-lane message to any pid (local or not). */
  private sendSystem(to: Pid, msg: unknown): void {
    const p = this.local(to);
    if (p !== undefined) this.deliverSystem(p, msg);
    else if (!this.isLocalScheduler(to)) this.host.route(to.node, to.sched, [Kind.Msg, to, null, msg, 1, 0]);
  }

  // ---- the run loop ---------------------------------------------------------------------

  private makeRunnable(p: Process): void {
    p.flags |= F_QUEUED;
    this.rq[this.rqt++] = p;
    if (!this.loopScheduled && !this.running) {
      this.loopScheduled = true;
      this.env.timers.defer(this.loopFn);
    }
  }

  /** Run until the run queue is empty or the turn's budget is spent, then yield. */
  private loop(): void {
    this.loopScheduled = false;
    this.running = true;
    if (this.hb !== null) this.hb[2] = 1;
    let budget = MESSAGES_PER_TURN;
    const rq = this.rq;
    while (budget > 0 && this.rqh < this.rqt) {
      const h = this.rqh;
      const p = rq[h] as Process;
      rq[h] = undefined;
      if (h + 1 === this.rqt) {
        this.rqh = this.rqt = 0;
      } else {
        this.rqh = h + 1;
        if (h > 4096 && h * 2 > this.rqt) {
          rq.copyWithin(0, h + 1, this.rqt);
          this.rqt -= h + 1;
          this.rqh = 0;
          rq.length = this.rqt;
        }
      }
      p.flags &= ~F_QUEUED;
      budget -= this.runSlice(p);
    }
    this.running = false;
    if (this.hb !== null) this.hb[2] = 0;
    if (this.rqh < this.rqt && !this.loopScheduled) {
      this.loopScheduled = true;
      this.env.timers.defer(this.loopFn);
    }
  }

  /** Run one process for up to REDUCTIONS_PER_SLICE messages; returns how many it handled. */
  private runSlice(p: Process): number {
    if ((p.flags & (F_DEAD | F_BUSY)) !== 0) return 0;
    // Always on: one handler at a time per process, whatever path scheduled it.
    if ((p.flags & F_RUNNING) !== 0) throw new Error(`kernel invariant broken: ${p.self.toString()} scheduled while its handler runs`);
    if ((p.flags & F_STARTING) !== 0) {
      p.flags &= ~F_STARTING;
      this.start(p);
      return 1;
    }
    let n = 0;
    const hb = this.hb;
    p.flags |= F_RUNNING;
    while (n < REDUCTIONS_PER_SLICE) {
      let msg: unknown;
      const sig = p.sig;
      if (sig !== null && sig.length > 0) {
        msg = sig.shift();
        p.traceId = 0;
      } else {
        const h = p.qh;
        if (h === p.qt) break;
        const q = p.q as unknown[];
        msg = q[h];
        p.traceId = q[h + 1] as number;
        q[h] = undefined;
        if (h + 2 === p.qt) {
          p.qh = 0;
          p.qt = 0;
        } else {
          p.qh = h + 2;
          if (h > 1024) p.compact();
        }
      }
      n++;
      if (hb !== null) {
        hb[0]++;
        hb[1] = p.self.slot;
      }
      let r: void | Promise<void>;
      try {
        r = (p.handler as MessageHandler)(msg);
      } catch (err) {
        p.flags &= ~F_RUNNING;
        this.terminate(p, crashReason(err));
        return n;
      }
      p.handled++;
      if (r !== undefined && r !== null && typeof (r as Promise<void>).then === 'function') {
        p.flags = (p.flags & ~F_RUNNING) | F_BUSY;
        (r as Promise<void>).then(
          () => this.afterAsync(p),
          (err: unknown) => this.afterAsyncError(p, err),
        );
        this.m.messagesHandled += n;
        return n;
      }
      if ((p.flags & (F_DEAD | F_STOPPING)) !== 0 || p.waiter?.inHandler === true) break;
    }
    p.flags &= ~F_RUNNING;
    this.m.messagesHandled += n;
    if ((p.flags & F_DEAD) !== 0) return n;
    if (p.waiter?.inHandler === true) {
      this.cancelWaiter(p);
      this.terminate(p, { error: 'receive() called from a synchronous handler; make the handler async', name: 'bad_receive' });
      return n;
    }
    if ((p.flags & F_STOPPING) !== 0) {
      this.terminate(p, p.ext().stopReason ?? 'normal');
      return n;
    }
    if (p.queueLength() > 0) this.makeRunnable(p);
    return n;
  }

  private start(p: Process): void {
    const body = p.handler as ProcessBody;
    p.handler = null;
    let r: ReturnType<ProcessBody>;
    p.flags |= F_RUNNING;
    try {
      r = body(p);
    } catch (err) {
      p.flags &= ~F_RUNNING;
      this.terminate(p, crashReason(err));
      return;
    }
    p.flags &= ~F_RUNNING;
    if (typeof r === 'function') {
      p.handler = r;
      this.afterStart(p);
    } else if (r !== undefined && r !== null && typeof (r as Promise<unknown>).then === 'function') {
      p.flags |= F_BUSY;
      (r as Promise<MessageHandler | void>).then(
        (h) => {
          if ((p.flags & F_DEAD) !== 0) return;
          p.flags &= ~F_BUSY;
          if (typeof h === 'function') {
            p.handler = h;
            this.afterStart(p);
          } else if (p.handler !== null && (p.flags & F_STOPPING) === 0) {
            // The body installed a handler with setHandler and returned: keep running.
            this.afterStart(p);
          } else {
            this.terminate(p, p.extra?.stopReason ?? 'normal');
          }
        },
        (err: unknown) => this.afterAsyncError(p, err),
      );
    } else if (p.handler !== null && (p.flags & F_STOPPING) === 0) {
      this.afterStart(p);
    } else {
      this.terminate(p, p.extra?.stopReason ?? 'normal');
    }
  }

  private afterStart(p: Process): void {
    if ((p.flags & F_DEAD) !== 0) return;
    if ((p.flags & F_STOPPING) !== 0) {
      this.terminate(p, p.ext().stopReason ?? 'normal');
      return;
    }
    if (p.waiter !== null) {
      this.cancelWaiter(p);
      this.terminate(p, { error: 'receive() pending when the body returned a handler', name: 'bad_receive' });
      return;
    }
    if (p.queueLength() > 0 && (p.flags & F_QUEUED) === 0) this.makeRunnable(p);
  }

  private afterAsync(p: Process): void {
    if ((p.flags & F_DEAD) !== 0) return;
    p.flags &= ~F_BUSY;
    if ((p.flags & F_STOPPING) !== 0) {
      this.terminate(p, p.ext().stopReason ?? 'normal');
      return;
    }
    if (p.queueLength() > 0 && (p.flags & F_QUEUED) === 0) this.makeRunnable(p);
  }

  private afterAsyncError(p: Process, err: unknown): void {
    if ((p.flags & F_DEAD) !== 0) return;
    p.flags &= ~F_BUSY;
    this.terminate(p, crashReason(err));
  }

  // ---- selective receive ----------------------------------------------------------------

  receive(p: Process, match: ((m: unknown) => boolean) | undefined, timeoutMs?: number): Promise<unknown> {
    if ((p.flags & F_DEAD) !== 0) return Promise.reject(new ProcessExit(p.extra?.exitReason ?? 'noproc'));
    if (p.waiter !== null) return Promise.reject(new Error('receive() already pending in this process'));
    const sig = p.sig;
    if (sig !== null) {
      for (let i = 0; i < sig.length; i++) {
        if (match === undefined || match(sig[i])) {
          const m = sig[i];
          sig.splice(i, 1);
          return Promise.resolve(m);
        }
      }
    }
    const q = p.q;
    if (q !== null) {
      for (let i = p.qh; i < p.qt; i += 2) {
        if (match === undefined || match(q[i])) {
          const m = q[i];
          p.traceId = q[i + 1] as number;
          p.removeAt(i);
          return Promise.resolve(m);
        }
      }
    }
    if (timeoutMs === 0) return Promise.resolve(TIMEOUT);
    return new Promise((resolve, reject) => {
      const w: Waiter = { match, resolve, reject, timer: undefined, inHandler: (p.flags & F_RUNNING) !== 0 };
      if (timeoutMs !== undefined && timeoutMs !== Infinity) {
        w.timer = this.env.timers.setTimer(Math.max(0, timeoutMs), () => {
          if (p.waiter === w) {
            p.waiter = null;
            resolve(TIMEOUT);
          }
        });
      }
      p.waiter = w;
    });
  }

  private cancelWaiter(p: Process): Waiter | null {
    const w = p.waiter;
    if (w === null) return null;
    p.waiter = null;
    if (w.timer !== undefined) this.env.timers.clearTimer(w.timer);
    return w;
  }

  // ---- links, monitors, exits -----------------------------------------------------------

  link(p: Process, other: Pid): void {
    // A dead process's async code may still run; its links must not outlive it.
    if ((p.flags & F_DEAD) !== 0) return;
    if (pidEquals(other, p.self) || (p.links !== null && p.links.has(other.key))) return;
    const q = this.local(other);
    if (q !== undefined) {
      (p.links ??= new SmallMap()).set(other.key, other);
      (q.links ??= new SmallMap()).set(p.self.key, p.self);
      return;
    }
    if (this.isLocalScheduler(other)) {
      // Linking to a dead local process: the caller gets an exit signal `noproc`.
      this.exitSignal(p, other, 'noproc', false);
      return;
    }
    if (!this.reachable(other.node)) {
      // A node that is not up: the link breaks at once, as a lost connection would break it.
      this.exitSignal(p, other, 'noconnection', false);
      return;
    }
    (p.links ??= new SmallMap()).set(other.key, other);
    this.host.route(other.node, other.sched, [Kind.Link, other, p.self, null, null, p.traceId]);
  }

  unlink(p: Process, other: Pid): void {
    if (p.links === null || !p.links.delete(other.key)) return;
    const q = this.local(other);
    if (q !== undefined) q.links?.delete(p.self.key);
    else if (!this.isLocalScheduler(other)) this.host.route(other.node, other.sched, [Kind.Unlink, other, p.self, null, null, p.traceId]);
  }

  monitor(p: Process, target: Pid | string): Ref {
    const ref = this.makeRef();
    let pid: Pid | undefined;
    if (typeof target === 'string') {
      pid = this.whereis(target);
      if (pid === undefined) {
        this.deliverSystem(p, { type: 'DOWN', ref, pid: target, reason: 'noproc' });
        return ref;
      }
    } else pid = target;
    (p.monitors ??= new SmallMap()).set(ref.key, { ref, pid });
    const q = this.local(pid);
    if (q !== undefined) {
      (q.monitoredBy ??= new SmallMap()).set(ref.key, { ref, pid: p.self });
    } else if (this.isLocalScheduler(pid)) {
      p.monitors.delete(ref.key);
      this.deliverSystem(p, { type: 'DOWN', ref, pid, reason: 'noproc' });
    } else if (!this.reachable(pid.node)) {
      p.monitors.delete(ref.key);
      this.deliverSystem(p, { type: 'DOWN', ref, pid, reason: 'noconnection' });
    } else {
      this.host.route(pid.node, pid.sched, [Kind.Monitor, pid, p.self, ref, null, p.traceId]);
    }
    return ref;
  }

  demonitor(p: Process, ref: Ref, flush: boolean): boolean {
    const e = p.monitors?.get(ref.key);
    let active = false;
    if (e !== undefined) {
      active = true;
      p.monitors!.delete(ref.key);
      const q = this.local(e.pid);
      if (q !== undefined) q.monitoredBy?.delete(ref.key);
      else if (!this.isLocalScheduler(e.pid)) this.host.route(e.pid.node, e.pid.sched, [Kind.Demonitor, e.pid, p.self, ref, null, p.traceId]);
    }
    if (flush && p.sig !== null) {
      const key = ref.key;
      const before = p.sig.length;
      p.sig = p.sig.filter((m) => !(isDown(m) && m.ref.key === key));
      if (p.sig.length !== before) active = false;
    }
    return active;
  }

  /** erlang:exit/2 from process `from` (or from outside when null). */
  sendExit(from: Process | null, to: Pid, reason: ExitReason): void {
    const fromPid = from === null ? this.outsider : from.self;
    const q = this.local(to);
    if (q !== undefined) this.exitSignal(q, fromPid, reason, false);
    else if (!this.isLocalScheduler(to)) this.host.route(to.node, to.sched, [Kind.Exit, to, fromPid, reason, 0, from?.traceId ?? 0]);
  }

  requestStop(p: Process, reason: ExitReason): void {
    if ((p.flags & F_DEAD) !== 0) return;
    p.ext().stopReason = reason;
    p.flags |= F_STOPPING;
    if ((p.flags & (F_RUNNING | F_BUSY | F_STARTING)) === 0) this.terminate(p, reason);
  }

  /**
   * An exit signal arriving at `p` from `from`. Link signals are ignored when the link is
   * already gone. `kill` is untrappable; `normal` is ignored unless trapped (or self-sent).
   */
  private exitSignal(p: Process, from: Pid, reason: ExitReason, viaLink: boolean): void {
    if ((p.flags & F_DEAD) !== 0) return;
    if (viaLink) {
      if (p.links === null || !p.links.delete(from.key)) return;
    }
    if (reason === 'kill' && !viaLink) {
      this.terminate(p, 'killed');
      return;
    }
    if ((p.flags & F_TRAP) !== 0) {
      this.deliverSystem(p, { type: 'EXIT', from, reason });
      return;
    }
    if (reason === 'normal') {
      if (!viaLink && pidEquals(from, p.self)) this.terminate(p, 'normal');
      return;
    }
    this.terminate(p, reason);
  }

  /** The process is gone: notify links and monitors, free the slot, unwind pending code. */
  terminate(p: Process, reason: ExitReason): void {
    if ((p.flags & F_DEAD) !== 0) return;
    p.flags = (p.flags | F_DEAD) & ~(F_QUEUED | F_BUSY | F_RUNNING | F_STARTING);
    const pid = p.self;
    pid.$p = undefined;
    this.slots[pid.slot] = undefined;
    this.free.push(pid.slot);
    this.live--;
    this.m.exited++;
    const x = p.extra;
    if (x !== null) {
      x.exitReason = reason;
      if (x.name !== null && this.names.get(x.name) === p) this.names.delete(x.name);
    }
    if (p.timers !== null) {
      this.cancelTimersFor(p, p.timers);
      p.timers = null;
    }
    const w = this.cancelWaiter(p);
    p.q = null;
    p.qh = p.qt = 0;
    p.sig = null;
    if (this.nodeWatchers !== null) this.nodeWatchers.delete(p);
    if (!isNormalExit(reason) && reason !== 'killed' && reason !== 'noconnection' && reason !== 'noproc') {
      this.m.crashed++;
      if (this.onCrash !== null && !(typeof reason === 'object' && reason !== null && 'shutdown' in reason)) {
        try {
          this.onCrash(pid, reason, p.label);
        } catch {
          /* a reporter must not break termination */
        }
      }
    }
    const linkReason: ExitReason = reason === 'kill' ? 'killed' : reason;
    if (p.links !== null) {
      const links = p.links;
      p.links = null;
      for (const other of links.values()) {
        const q = this.local(other);
        if (q !== undefined) this.exitSignal(q, pid, linkReason, true);
        else if (!this.isLocalScheduler(other)) this.host.route(other.node, other.sched, [Kind.Exit, other, pid, linkReason, 1, p.traceId]);
      }
    }
    if (p.monitoredBy !== null) {
      const mb = p.monitoredBy;
      p.monitoredBy = null;
      for (const e of mb.values()) this.down(e.pid, pid, e.ref, linkReason);
    }
    if (p.monitors !== null) {
      const ms = p.monitors;
      p.monitors = null;
      for (const e of ms.values()) {
        const q = this.local(e.pid);
        if (q !== undefined) q.monitoredBy?.delete(e.ref.key);
        else if (!this.isLocalScheduler(e.pid)) this.host.route(e.pid.node, e.pid.sched, [Kind.Demonitor, e.pid, pid, e.ref, null, 0]);
      }
    }
    for (const ps of this.pendingSpawns.values()) {
      if (ps.requester === pid) ps.requesterReason = linkReason;
    }
    if (w !== null) w.reject(new ProcessExit(reason));
  }

  /** Send a DOWN for monitor `ref` held by `watcher` on `target`. */
  private down(watcher: Pid, target: Pid, ref: Ref, reason: ExitReason): void {
    const q = this.local(watcher);
    if (q !== undefined) {
      if (q.monitors !== null && q.monitors.delete(ref.key)) this.deliverSystem(q, { type: 'DOWN', ref, pid: target, reason });
    } else if (!this.isLocalScheduler(watcher)) {
      this.host.route(watcher.node, watcher.sched, [Kind.Down, watcher, target, ref, reason, 0]);
    }
  }

  /** Kill a process from outside (supervisor brutal_kill, scheduler shutdown, tests). */
  kill(pid: Pid, reason: ExitReason = 'kill'): void {
    this.sendExit(null, pid, reason);
  }

  // ---- envelopes from other schedulers and nodes ----------------------------------------

  /** Apply one envelope that arrived from another scheduler or node. */
  receiveEnvelope(e: Envelope): void {
    switch (e[0]) {
      case Kind.Msg: {
        const p = this.local(e[1] as Pid);
        if (p === undefined) return;
        if (e[4] === 1) this.deliverSystem(p, e[3]);
        else this.deliver(p, e[3], e[5], e[2]);
        return;
      }
      case Kind.Named: {
        const p = this.names.get(e[1] as string);
        if (p !== undefined) this.deliver(p, e[3], e[5], e[2]);
        return;
      }
      case Kind.Link: {
        const from = e[2] as Pid;
        const p = this.local(e[1] as Pid);
        if (p !== undefined) (p.links ??= new SmallMap()).set(from.key, from);
        else this.host.route(from.node, from.sched, [Kind.Exit, from, e[1] as Pid, 'noproc', 1, e[5]]);
        return;
      }
      case Kind.Unlink: {
        const p = this.local(e[1] as Pid);
        p?.links?.delete((e[2] as Pid).key);
        return;
      }
      case Kind.Exit: {
        const p = this.local(e[1] as Pid);
        if (p !== undefined) this.exitSignal(p, e[2] as Pid, e[3] as ExitReason, e[4] === 1);
        return;
      }
      case Kind.Monitor: {
        const target = e[1] as Pid;
        const watcher = e[2] as Pid;
        const ref = e[3] as Ref;
        const p = this.local(target);
        if (p !== undefined) (p.monitoredBy ??= new SmallMap()).set(ref.key, { ref, pid: watcher });
        else this.host.route(watcher.node, watcher.sched, [Kind.Down, watcher, target, ref, 'noproc', e[5]]);
        return;
      }
      case Kind.Demonitor: {
        const p = this.local(e[1] as Pid);
        p?.monitoredBy?.delete((e[3] as Ref).key);
        return;
      }
      case Kind.Down: {
        const p = this.local(e[1] as Pid);
        const ref = e[3] as Ref;
        if (p !== undefined && p.monitors !== null && p.monitors.delete(ref.key)) {
          this.deliverSystem(p, { type: 'DOWN', ref, pid: e[2] as Pid, reason: e[4] as ExitReason });
        }
        return;
      }
      case Kind.Spawn:
        this.remoteSpawn(e);
        return;
      case Kind.SpawnReply:
        this.spawnReply(e);
        return;
      case Kind.Relay:
        this.host.route(e[1] as string, e[3] as number, e[4] as Envelope);
        return;
      case Kind.NodeUp:
        this.nodeUp(e[3] as NodeMember);
        return;
      case Kind.NodeDown:
        this.nodeDown(e[3] as NodeMember, e[4] as NodeDownCause);
        return;
      default:
        if (e[0] >= RELAYED) {
          const to = e[1] as Pid;
          this.host.route(to.node, to.sched, [(e[0] - RELAYED) as Kind, to, e[2], e[3], e[4], e[5]]);
        }
        return;
    }
  }

  private remoteSpawn(e: Envelope): void {
    const requester = e[2] as Pid;
    const { spec, opts } = e[3] as { spec: ModuleSpec; opts: SpawnOptions & { monitorRef: Ref | null } };
    const reqRef = e[4] as Ref;
    const pid = this.spawn(this.moduleBody(spec), { ...opts, link: false, monitor: false });
    const p = this.local(pid);
    if (p !== undefined) {
      if (opts.link === true) (p.links ??= new SmallMap()).set(requester.key, requester);
      if (opts.monitorRef) (p.monitoredBy ??= new SmallMap()).set(opts.monitorRef.key, { ref: opts.monitorRef, pid: requester });
      this.host.route(requester.node, requester.sched, [Kind.SpawnReply, requester, pid, reqRef, null, e[5]]);
    } else {
      const reason: ExitReason = opts.name !== undefined ? { error: `name already registered: ${opts.name}`, name: 'already_registered' } : 'spawn_failed';
      this.host.route(requester.node, requester.sched, [Kind.SpawnReply, requester, null, reqRef, reason, e[5]]);
    }
  }

  private spawnReply(e: Envelope): void {
    const reqRef = e[3] as Ref;
    const ps = this.pendingSpawns.get(reqRef.key);
    if (ps === undefined) return;
    this.pendingSpawns.delete(reqRef.key);
    const child = e[2] as Pid | null;
    if (child === null) {
      ps.resolve({ ok: false, reason: e[4] as ExitReason });
      return;
    }
    const parent = this.local(ps.requester);
    if (parent === undefined) {
      // The requester died while the spawn was in flight: keep the link promise by
      // propagating its exit now, and drop the monitor.
      if (ps.link) this.host.route(child.node, child.sched, [Kind.Exit, child, ps.requester, ps.requesterReason ?? 'noproc', 1, 0]);
      if (ps.monitorRef) this.host.route(child.node, child.sched, [Kind.Demonitor, child, ps.requester, ps.monitorRef, null, 0]);
      ps.resolve({ ok: false, reason: 'noproc' });
      return;
    }
    if (ps.link) (parent.links ??= new SmallMap()).set(child.key, child);
    if (ps.monitorRef) (parent.monitors ??= new SmallMap()).set(ps.monitorRef.key, { ref: ps.monitorRef, pid: child });
    ps.resolve(ps.monitorRef ? { ok: true, pid: child, ref: ps.monitorRef } : { ok: true, pid: child });
  }

  /**
   * Another scheduler (incarnation `inc`) or a whole node is gone: links to its processes
   * fire with `reason`, monitors deliver DOWN, pending spawns there fail.
   */
  peerDown(node: string, sched: number | null, inc: number | null, reason: ExitReason): void {
    const hit = (pid: Pid) => pid.node === node && (sched === null || (pid.sched === sched && (inc === null || pid.inc === inc)));
    for (const p of this.slots) {
      if (p === undefined || (p.flags & F_DEAD) !== 0) continue;
      if (p.monitors !== null) {
        for (const e of p.monitors.values()) {
          if (hit(e.pid)) {
            p.monitors.delete(e.ref.key);
            this.deliverSystem(p, { type: 'DOWN', ref: e.ref, pid: e.pid, reason });
          }
        }
      }
      if (p.monitoredBy !== null) {
        for (const [k, e] of p.monitoredBy.entries()) if (hit(e.pid)) p.monitoredBy.delete(k);
      }
      if (p.links !== null) {
        for (const other of p.links.values()) {
          if (hit(other)) this.exitSignal(p, other, reason, true);
          if ((p.flags & F_DEAD) !== 0) break;
        }
      }
    }
    for (const [k, ps] of [...this.pendingSpawns]) {
      if (ps.node === node && (sched === null || ps.sched === sched)) {
        this.pendingSpawns.delete(k);
        ps.resolve({ ok: false, reason });
      }
    }
  }

  // ---- other nodes ----------------------------------------------------------------------

  /** Whether envelopes to `node` can arrive: this node, or another node that is up. */
  reachable(node: string): boolean {
    return node === this.node || this.peersUp.has(node);
  }

  /** The other nodes that are up (Erlang's `nodes()`), by name. */
  nodes(): NodeMember[] {
    return [...this.peersUp.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Start (or stop) sending NODE_UP/NODE_DOWN messages to `p` (net_kernel:monitor_nodes). */
  monitorNodes(p: Process, on: boolean): void {
    if ((p.flags & F_DEAD) !== 0) return;
    if (on) (this.nodeWatchers ??= new Set()).add(p);
    else this.nodeWatchers?.delete(p);
  }

  /** Node `member` is up (joined, or back after being down). */
  nodeUp(member: NodeMember): void {
    this.peersUp.set(member.name, member);
    if (this.nodeWatchers === null) return;
    const msg: NodeUpMessage = { type: 'NODE_UP', node: member.name, member };
    for (const p of this.nodeWatchers) this.deliver(p, msg, 0, null);
  }

  /** Node `member` is down: its links and monitors fire `noconnection`, then watchers hear of it. */
  nodeDown(member: NodeMember, cause: NodeDownCause): void {
    const known = this.peersUp.get(member.name);
    if (known !== undefined && known.incarnation === member.incarnation) this.peersUp.delete(member.name);
    this.peerDown(member.name, null, null, 'noconnection');
    if (this.nodeWatchers === null) return;
    const msg: NodeDownMessage = { type: 'NODE_DOWN', node: member.name, member, cause };
    for (const p of this.nodeWatchers) this.deliver(p, msg, 0, null);
  }

  // ---- timers ---------------------------------------------------------------------------

  /**
   * A timer for a local pid ends with that process (OTP: a timer to a pid is cancelled when the
   * process is not alive), and a pending timer never keeps a dead process reachable: it holds
   * the sender's pid, not its process.
   */
  sendAfter(ms: number, msg: unknown, to: Pid, system: boolean, from: Process | null): Ref {
    const ref = this.makeRef();
    const key = ref.key;
    const delay = Math.max(0, ms);
    // The timer's message belongs to the trace being handled when it was set, not when it fires.
    const trace = from === null ? 0 : from.traceId;
    const fromPid = from === null ? null : from.self;
    const target = this.local(to);
    const handle = this.env.timers.setTimer(delay, () => {
      const t = this.timers.get(key);
      this.timers.delete(key);
      if (t !== undefined) untrackTimer(t, key);
      if (system) this.sendSystem(to, msg);
      else this.send(to, msg, fromPid === null ? null : (this.local(fromPid) ?? null), trace);
    });
    if (target !== undefined) (target.timers ??= new SmallMap()).set(key, true);
    this.timers.set(key, { handle, deadline: this.env.clock.monotonicMs() + delay, target });
    return ref;
  }

  cancelTimer(ref: Ref): number | false {
    const t = this.timers.get(ref.key);
    if (t === undefined) return false;
    this.timers.delete(ref.key);
    untrackTimer(t, ref.key);
    this.env.timers.clearTimer(t.handle);
    return Math.max(0, Math.round(t.deadline - this.env.clock.monotonicMs()));
  }

  /** Cancel every pending timer whose message is for `p` (it exited). */
  private cancelTimersFor(p: Process, keys: SmallMap<true>): void {
    for (const [key] of keys.entries()) {
      const t = this.timers.get(key);
      if (t === undefined || t.target !== p) continue;
      this.timers.delete(key);
      this.env.timers.clearTimer(t.handle);
    }
  }

  makeRef(): Ref {
    return new Ref(this.node, this.id, this.inc, ++this.refCounter);
  }

  // ---- names and introspection ----------------------------------------------------------

  register(name: string, pid: Pid): boolean {
    const p = this.local(pid);
    if (p === undefined || this.names.has(name) || (p.extra !== null && p.extra.name !== null)) return false;
    this.names.set(name, p);
    p.ext().name = name;
    return true;
  }

  unregister(name: string): boolean {
    const p = this.names.get(name);
    if (p === undefined) return false;
    this.names.delete(name);
    if (p.extra !== null) p.extra.name = null;
    return true;
  }

  whereis(name: string): Pid | undefined {
    return this.names.get(name)?.self;
  }

  registered(): string[] {
    return [...this.names.keys()];
  }

  /** The live process for a pid on this scheduler, if any. */
  local(pid: Pid): Process | undefined {
    const direct = pid.$p as Process | undefined;
    if (direct !== undefined) return direct;
    if (pid.sched !== this.id || pid.inc !== this.inc || pid.node !== this.node) return undefined;
    const p = this.slots[pid.slot];
    return p !== undefined && p.self.gen === pid.gen ? p : undefined;
  }

  private isLocalScheduler(pid: Pid): boolean {
    return pid.node === this.node && pid.sched === this.id && pid.inc === this.inc;
  }

  isAlive(pid: Pid): boolean {
    return this.local(pid) !== undefined;
  }

  info(pid: Pid): ProcessInfo | undefined {
    const p = this.local(pid);
    if (p === undefined) return undefined;
    const f = p.flags;
    const status =
      (f & F_STARTING) !== 0 ? 'starting'
      : (f & F_RUNNING) !== 0 ? 'running'
      : (f & F_BUSY) !== 0 ? (p.waiter !== null ? 'waiting' : 'busy')
      : (f & F_QUEUED) !== 0 ? 'runnable'
      : 'waiting';
    const qlen = p.queueLength();
    const links = p.links === null ? [] : p.links.values();
    const monitors = p.monitors?.size ?? 0;
    const monitoredBy = p.monitoredBy?.size ?? 0;
    return {
      pid: p.self,
      status,
      name: p.extra?.name ?? null,
      behaviour: p.label,
      messageQueueLen: qlen,
      queueHighWatermark: Math.max(p.extra?.highWatermark ?? 0, qlen),
      messagesHandled: p.handled,
      memoryEstimate: estimateProcessBytes(p, qlen, links.length, monitors + monitoredBy),
      links,
      monitors,
      monitoredBy,
      trapExit: (f & F_TRAP) !== 0,
      traceId: p.traceId,
    };
  }

  /** Live pids on this scheduler. */
  processes(): Pid[] {
    const out: Pid[] = [];
    for (const p of this.slots) if (p !== undefined) out.push(p.self);
    return out;
  }

  metrics(): SchedulerMetrics {
    return { ...this.m, processes: this.live, runQueue: this.rqt - this.rqh, timers: this.timers.size };
  }

  /** Stop every process with `reason` (scheduler shutdown). */
  shutdown(reason: ExitReason = 'shutdown'): void {
    for (const p of this.slots) if (p !== undefined) this.terminate(p, reason === 'kill' ? 'killed' : reason);
    for (const t of this.timers.values()) this.env.timers.clearTimer(t.handle);
    this.timers.clear();
  }
}

function isDown(m: unknown): m is { type: 'DOWN'; ref: Ref } {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'DOWN';
}

/** Rough structural size: object headers and fields, queue slots, map entries. */
function estimateProcessBytes(p: Process, qlen: number, links: number, monitors: number): number {
  let bytes = 200; // Process + Pid objects
  if (p.extra !== null) bytes += 80;
  if (p.q !== null) bytes += 32 + p.q.length * 8;
  bytes += qlen * 16;
  bytes += (links + monitors) * 64;
  return bytes;
}
