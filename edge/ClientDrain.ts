/**
 * The client half of a node's drain: which connections are open, refusing new ones once the
 * node drains, and telling every open one to go. A connection told `node_draining` writes the
 * ERROR `node_draining` as its last frame, keeps handling what the client still sends until the
 * client closes (or `graceMs` passes, then it closes the link: WebSocket 1001 `node_draining`),
 * waits until every message and ACK it read is confirmed by its shard group's owner, ends its
 * link and exits (edge/v1/V1Connection.ts). `tellAll` waits for every one of them to exit.
 *
 * It never refuses anything before `refuseNew` and knows nothing of the cluster: the node's
 * drain (server/NodeDrain.ts) decides when, after its shard groups are handed off.
 */
import { isDownMessage, type DownMessage } from '../runtime/ExitReason.js';
import type { Pid } from '../runtime/Pid.js';
import { TIMEOUT } from '../runtime/ProcessContext.js';
import type { Scheduler } from '../runtime/Scheduler.js';
import type { ClientLink, LinkClose } from './ClientLink.js';
import { encodeErrorFrame } from './protocol/V1Encoder.js';

/** What a connection is sent when the node drains. */
export interface NodeDraining {
  readonly t: 'node_draining';
  /** How long the client has to close before the connection closes the link itself. */
  readonly graceMs: number;
}

/** The WebSocket close of a link the node closes because it drains. */
export const NODE_DRAINING_CLOSE: LinkClose = Object.freeze({ code: 1001, reason: 'node_draining' });

/** How `tellAll` ended: connections told, and how many had not exited by the deadline. */
export interface ClientDrainResult {
  readonly told: number;
  readonly remaining: number;
}

export class ClientDrain {
  /** Connection processes whose link is open (and, once told, until they exit), by pid key. */
  private readonly open = new Map<string, Pid>();
  private refusing = false;
  /** Connections told and not exited yet (while `tellAll` runs). */
  private waitingFor = 0;

  /** New links are refused (from `refuseNew` on). */
  get draining(): boolean {
    return this.refusing;
  }

  /** Open connections, and those told to go that have not exited yet. */
  get connections(): number {
    return Math.max(this.open.size, this.waitingFor);
  }

  /** From now on every new link gets ERROR node_draining and is closed. */
  refuseNew(): void {
    this.refusing = true;
  }

  /** The acceptor's check: false (and the link answered and closed) while the node drains. */
  admit(link: ClientLink): boolean {
    if (!this.refusing) return true;
    link.write(encodeErrorFrame('node_draining'));
    link.end(NODE_DRAINING_CLOSE);
    return false;
  }

  opened(pid: Pid): void {
    this.open.set(pid.key, pid);
  }

  closed(pid: Pid): void {
    this.open.delete(pid.key);
  }

  /**
   * Tell every open connection to go (they have `graceMs` to close themselves), then wait until
   * each has exited or `deadlineMs` has passed. Runs as a process on `s`, the connections'
   * scheduler, which monitors them.
   */
  tellAll(s: Scheduler, graceMs: number, deadlineMs: number): Promise<ClientDrainResult> {
    const targets = [...this.open.values()];
    return new Promise((resolve) => {
      s.spawn(
        async (ctx) => {
          const told: NodeDraining = { t: 'node_draining', graceMs };
          for (const pid of targets) {
            ctx.monitor(pid);
            ctx.send(pid, told);
          }
          let left = targets.length;
          this.waitingFor = left;
          const until = ctx.env.clock.monotonicMs() + deadlineMs;
          while (left > 0) {
            const m = await ctx.receive<DownMessage>(isDownMessage, Math.max(0, until - ctx.env.clock.monotonicMs()));
            if (m === TIMEOUT) break;
            this.open.delete(m.pid.key);
            left--;
            this.waitingFor = left;
          }
          this.waitingFor = 0;
          resolve({ told: targets.length, remaining: left });
        },
        { label: 'ClientDrain' },
      );
    });
  }
}
