/**
 * The white-box view of a cluster run's inboxes, shared by every cluster workload: each group's
 * inbox on each node is wrapped so that every append its owner issues goes to the history
 * (where, when, for whom, what payload, how long the owner had seen a minority, whether it
 * was in safe mode) with, once the core settles it, whether it was reported durable and what
 * the disks held at that instant; and every removal (a client's ACK) an owner was asked for, and
 * those it made durable.
 * It only records: what the inner inbox answers is passed through unchanged. Never reads real
 * time (the world's clock only).
 */
import type { Inbox } from '../core/Inbox.js';
import { userKey } from '../core/UserId.js';
import type { ClusterAppend, ClusterHistory } from './ClusterHistory.js';
import { inboxKeyText, minorityFor, userIndexOf } from './ClusterWorkload.js';
import { bytesHex } from './Payload.js';
import type { SimCluster } from './SimCluster.js';
import type { SimNode } from './SimNode.js';

/** `inner`, group `group`'s inbox on `node`, recording into `history`. */
export function watchGroupInbox(inner: Inbox, group: number, node: SimNode, cluster: SimCluster, history: ClusterHistory): Inbox {
  const world = cluster.world;
  const incName = `${node.name}#${node.incarnations}`;
  return {
    append(user, rec) {
      const r = inner.append(user, rec);
      if (!r.ok) return r;
      const id = r.id.slice();
      const payload = rec.k === 'direct' ? rec.body : rec.k === 'group' ? rec.ciphertext : new Uint8Array(0);
      const core = node.core;
      const a: ClusterAppend = {
        at: world.now,
        node: incName,
        nodeName: node.name,
        group,
        user: userIndexOf(user),
        msgId: bytesHex(id),
        payloadHex: bytesHex(payload),
        from: userIndexOf(userKey(rec.from)),
        settledAt: null,
        durable: null,
        onOwnerDisk: null,
        onStandbyDisk: null,
        standbyRequired: false,
        minorityForMs: core === null ? 0 : minorityFor(node, core, world.now),
        safeMode: core?.guard.safeMode() ?? false,
        distIncarnation: node.dist?.self.incarnation ?? 0,
        majorityNeeded: core?.guard.needed ?? 0,
      };
      history.appends.push(a);
      void r.durable.then((ok) => {
        a.settledAt = world.now;
        a.durable = ok;
        if (!ok) return;
        const k = inboxKeyText(user, id);
        a.onOwnerDisk = node.disk.table(`g${group}.inbox`).values.has(k);
        a.onStandbyDisk = cluster.nodes.some((n) => n !== node && n.disk.table(`g${group}.inbox`).values.has(k));
        a.standbyRequired = (node.core?.plane.table.get(group)?.standbys.length ?? 0) > 0;
      });
      return r;
    },
    storeNotice: (user, rec) => inner.storeNotice(user, rec),
    page: (user, limits) => inner.page(user, limits),
    takeNotices: (user, limit) => inner.takeNotices(user, limit),
    ack(user, id) {
      const p = inner.ack(user, id);
      const key = `${userIndexOf(user)}/${bytesHex(id)}`;
      history.removalsAsked.add(key);
      void p.then((ok) => {
        if (ok && !history.acked.has(key)) history.acked.set(key, world.now);
      });
      return p;
    },
  };
}
