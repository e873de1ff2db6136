/**
 * One simulated Iris node: its schedulers as in-thread domains (envelopes between them are
 * encoded and decoded with the production codec and delivered as kernel events), a
 * simulated storage engine on the node's disk, and the unchanged messaging service
 * (edge/IrisService.ts) on scheduler 0. A crash drops every scheduler, the engine (and its
 * unflushed writes) and every client link; a restart boots a new incarnation on the same
 * disk, the way `iris start` after SIGKILL does.
 */
import type { IrisConfig } from '../server/NodeConfig.js';
import type { Inbox } from '../core/Inbox.js';
import { startIrisService, type IrisService } from '../server/IrisService.js';
import { describeReason } from '../runtime/ExitReason.js';
import { Scheduler } from '../runtime/Scheduler.js';
import { domainHost } from './DomainHost.js';
import type { SimOwner } from './EventQueue.js';
import { simEnv, SimLog, type NodeClock } from './SimEnv.js';
import { SimLink, type LinkClientSide, type LinkProfile } from './SimLink.js';
import { SimDisk, SimStorageEngine } from './SimStorage.js';
import type { SimWorld } from './SimWorld.js';

export type NodeStatus = 'down' | 'booting' | 'up';

export interface CrashReport {
  at: number;
  node: string;
  label: string | null;
  reason: string;
}

export interface SimNodeOptions {
  name: string;
  schedulers: number;
  config: IrisConfig;
  /** Watches the node's inbox (what the service reports durable and acknowledged). */
  wrapInbox?: (inner: Inbox) => Inbox;
  keepLogLines?: boolean;
}

export class SimNode {
  readonly name: string;
  readonly disk = new SimDisk();
  readonly clock: NodeClock = { skewMs: 0, wallJumpMs: 0 };
  readonly log: SimLog;
  status: NodeStatus = 'down';
  owner: SimOwner;
  schedulers: Scheduler[] = [];
  service: IrisService | null = null;
  storage: SimStorageEngine | null = null;
  readonly crashes: CrashReport[] = [];
  incarnations = 0;
  private links = new Set<SimLink>();
  private nextLinkId = 0;

  constructor(
    private readonly world: SimWorld,
    private readonly opts: SimNodeOptions,
    private readonly nextInc: () => number,
  ) {
    this.name = opts.name;
    this.owner = { name: opts.name, alive: false, pausedUntil: 0, backlog: [] };
    this.log = new SimLog(world, opts.name, opts.keepLogLines === true);
  }

  /** Start a new incarnation on the node's disk; the service is up once its processes are. */
  boot(): void {
    if (this.status !== 'down') return;
    this.incarnations++;
    const owner: SimOwner = { name: this.name, alive: true, pausedUntil: 0, backlog: [] };
    this.owner = owner;
    this.status = 'booting';
    const storage = new SimStorageEngine(this.world, owner, this.disk, this.world.random(`${this.name}/disk/${this.incarnations}`));
    this.storage = storage;
    const random = this.world.random(`${this.name}/env/${this.incarnations}`);
    const env = simEnv(this.world, owner, this.clock, random, this.log);
    const scheds: Scheduler[] = [];
    for (let i = 0; i < this.opts.schedulers; i++) {
      const s = new Scheduler({ node: this.name, id: i, inc: this.nextInc(), env, host: domainHost(this.world, owner, this.name, i, (d) => this.schedulers[d]) });
      s.onCrash = (pid, reason, label) => this.crashes.push({ at: this.world.now, node: this.name, label, reason: describeReason(reason) });
      scheds.push(s);
    }
    this.schedulers = scheds;
    void startIrisService(scheds[0]!, env, storage, this.opts.config, this.opts.wrapInbox !== undefined ? { wrapInbox: this.opts.wrapInbox } : {}).then((r) => {
      if (!owner.alive) return;
      if (!r.ok) {
        this.world.failures.push(`${this.name}: service failed to start: ${r.message}`);
        return;
      }
      this.service = r.service;
      this.status = 'up';
    });
  }

  /** Kill the node like SIGKILL: processes, unflushed writes and connections are gone. */
  crash(): void {
    if (this.status === 'down') return;
    this.owner.alive = false;
    this.status = 'down';
    this.service = null;
    this.storage = null;
    this.schedulers = [];
    const links = [...this.links];
    this.links.clear();
    for (const l of links) l.reset();
  }

  /** Stop the world for `ms`: the node's events wait (clients and disks keep going). */
  pause(ms: number): void {
    if (this.status === 'down') return;
    this.world.pause(this.owner, this.world.now + ms);
  }

  /** A client connects; null when the node is not accepting (down or booting). */
  connect(client: LinkClientSide, remoteAddress: string, profile: LinkProfile, clientName: string): SimLink | null {
    if (this.status !== 'up' || this.service === null) return null;
    const link = new SimLink(this.world, this.world.random(`link/${clientName}/${this.nextLinkId}`), profile, this.owner, remoteAddress, {
      onData: (b) => client.onData(b),
      onClose: () => {
        this.links.delete(link);
        client.onClose();
      },
    }, this.nextLinkId++);
    this.links.add(link);
    link.attach(this.service.accept);
    return link;
  }

  openLinks(): SimLink[] {
    return [...this.links];
  }
}
