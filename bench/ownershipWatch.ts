/**
 * The cluster bench's view of ownership changes from outside the nodes: a plain NATS client
 * subscribed to the cluster's ownership notices (`iris.<c>.ctl-notice`, published by a node
 * after each control-stream append), each kept with the wall time it arrived. It only listens;
 * it never publishes or touches a stream.
 */
import { clusterNames } from '../core/cluster/ClusterNames.js';
import { decodeNotice, type OwnershipRecord } from '../core/cluster/OwnershipTable.js';
import { connectNats, type NatsTransport } from '../runtime/node/NatsTransport.js';

export interface SeenRecord {
  /** Wall time (ms since the epoch) the notice arrived here. */
  at: number;
  seq: number;
  record: OwnershipRecord;
}

export class OwnershipWatch {
  readonly seen: SeenRecord[] = [];

  private constructor(private readonly transport: NatsTransport) {}

  static async start(servers: readonly string[], cluster: string): Promise<OwnershipWatch> {
    const r = await connectNats({ servers, name: 'cluster-bench-watch' });
    if (!r.ok) throw new Error(`ownership watch: ${r.message}`);
    const w = new OwnershipWatch(r.transport);
    r.transport.subscribe(clusterNames(cluster).ctlNotice, (data) => {
      const n = decodeNotice(data);
      if (n !== null && n.t === 'group') w.seen.push({ at: Date.now(), seq: n.seq, record: n.record });
    });
    await r.transport.flush();
    return w;
  }

  /** The first record of `group` seen at or after `since` whose owner is not `notOwner`. */
  firstNewOwner(group: number, notOwner: string, since: number): SeenRecord | undefined {
    return this.seen.find((s) => s.at >= since && s.record.group === group && s.record.owner !== notOwner);
  }

  async close(): Promise<void> {
    await this.transport.close();
  }
}
