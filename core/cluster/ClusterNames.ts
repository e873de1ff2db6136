/**
 * The names a cluster uses on NATS, written once: its JetStream streams (the control stream and
 * one shard stream per group) and the core NATS subjects of the clustered service (ownership
 * notices, replication to standbys, presence). Nothing else may spell them. `<c>` is the
 * cluster name escaped as one subject token (runtime/Distribution.ts `subjectToken`), so these
 * never collide with the distribution's own `iris.<c>.hb|ctl.<n>|env.<n>` subjects or with
 * another cluster's.
 *
 * Streams (names may hold only letters, digits, `_` and `-`; anything else in the cluster name
 * becomes `_XX`, its hex code):
 * - `IRIS_<C>_CTL`, subjects `iris.<c>.js.ctl.>`: `…ctl.config` (shard_groups, written once),
 *   `…ctl.group.<g>` (ownership records of group g), `…ctl.drains` (nodes being drained);
 * - `IRIS_<C>_G<g>`, subject `iris.<c>.js.g.<g>`: the group's entries.
 *
 * Core NATS subjects:
 * - `iris.<c>.ctl-notice`: a record was appended to the control stream (the writer publishes it);
 * - `iris.<c>.grp.<g>.entry`: the owner's entries (and idle head beats) for standbys;
 * - `iris.<c>.grp.<g>.applied`: standbys report what they applied and fsync'd;
 * - `iris.<c>.grp.<g>.snapshot.<n>`: requests to node n's replica of group g for a snapshot of
 *   its copy (core/cluster/GroupSnapshot.ts);
 * - `iris.<c>.presence`: presence changes; `iris.<c>.presence.snapshot.<g>`: snapshot requests;
 * - `iris.<c>.status.<n>`: requests for node n's report of its replicas (`/cluster/status`).
 */
import { subjectToken } from '../../runtime/Distribution.js';

export interface ClusterNames {
  readonly cluster: string;
  readonly ctlStream: string;
  /** What the control stream captures. */
  readonly ctlSubjects: string;
  readonly configSubject: string;
  groupSubject(group: number): string;
  readonly drainsSubject: string;
  readonly ctlNotice: string;
  groupStream(group: number): string;
  groupStreamSubject(group: number): string;
  entrySubject(group: number): string;
  appliedSubject(group: number): string;
  /** Where node `node`'s replica of `group` answers snapshot requests. */
  snapshotRequest(group: number, node: string): string;
  readonly presence: string;
  presenceSnapshot(group: number): string;
  /** Matches every group's snapshot subject. */
  readonly presenceSnapshotAll: string;
  /** Where node `node` answers requests for its replicas' positions. */
  statusRequest(node: string): string;
}

/** A cluster name as the part of a stream name: letters, digits, `_`, `-`; others as `_XX`. */
export function streamToken(name: string): string {
  let out = '';
  for (const c of name) {
    out += /^[A-Za-z0-9-]$/.test(c) ? c : '_' + (c.codePointAt(0) as number).toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

export function clusterNames(cluster: string): ClusterNames {
  const base = `iris.${subjectToken(cluster)}`;
  const stream = `IRIS_${streamToken(cluster)}`;
  return {
    cluster,
    ctlStream: `${stream}_CTL`,
    ctlSubjects: `${base}.js.ctl.>`,
    configSubject: `${base}.js.ctl.config`,
    groupSubject: (g) => `${base}.js.ctl.group.${g}`,
    drainsSubject: `${base}.js.ctl.drains`,
    ctlNotice: `${base}.ctl-notice`,
    groupStream: (g) => `${stream}_G${g}`,
    groupStreamSubject: (g) => `${base}.js.g.${g}`,
    entrySubject: (g) => `${base}.grp.${g}.entry`,
    appliedSubject: (g) => `${base}.grp.${g}.applied`,
    snapshotRequest: (g, node) => `${base}.grp.${g}.snapshot.${subjectToken(node)}`,
    presence: `${base}.presence`,
    presenceSnapshot: (g) => `${base}.presence.snapshot.${g}`,
    presenceSnapshotAll: `${base}.presence.snapshot.*`,
    statusRequest: (node) => `${base}.status.${subjectToken(node)}`,
  };
}
