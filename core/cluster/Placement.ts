/**
 * Placement: where each shard group should live — one owner and up to two standbys among the
 * live core nodes — as a pure function of the live nodes and the current assignment. Every
 * node computes the same answer from the same ownership table and membership, so the control
 * planes agree without talking. It never looks at time, randomness or anything but its
 * arguments, and it never moves a group without a reason (a node joined, left or is over its
 * share).
 *
 * Owners. Each node owns floor(G/N) or ceil(G/N) groups (G groups, N live nodes): the
 * busiest owns at most one more than the idlest. A current owner that is live keeps its
 * groups up to its quota (the nodes holding the most keep the ceil slots); a node over quota
 * gives up the groups it ranks lowest for; groups without an owner go, in group order, to a
 * node under quota — a current standby of the group first (it holds the data), then by
 * rendezvous rank (highest `hash32(group, node)`). From a balanced assignment, adding one node
 * moves only the groups that node gains, and removing one moves only the groups it owned
 * (test/core/cluster/Placement.property.test.ts checks both, and the balance).
 *
 * Why not plain rendezvous hashing (the first owner by rank, as docs/cluster.md first said):
 * at 16–32 groups it is far from balanced — measured over random clusters here, the busiest
 * node owns on average 1.4× (3 nodes) to 2× (7 nodes) its fair share, up to 4× — and an
 * owner serves all of its groups' writes. Keeping the ranks as the tie-breaker keeps the
 * answer deterministic and spreads groups evenly when nothing is assigned yet.
 *
 * Standbys. `min(replicas - 1, N - 1)` per group, distinct, never the owner. Current standbys
 * that are live are kept (in their order), then the previous owner (it holds the data), then
 * the least loaded nodes by standby count and rank. A last pass moves standby slots from
 * nodes over their share to nodes under it where that is allowed (not the owner, not already
 * a standby of the group), so standby load is balanced too; a valid standby is never dropped
 * otherwise.
 */
import { hash32 } from '../HashRing.js';

/** Where one group lives. */
export interface GroupAssignment {
  readonly owner: string;
  /** In order of preference for a failover. */
  readonly standbys: readonly string[];
}

/** Copies of each group (owner + standbys) when the cluster has enough nodes. */
export const PLACEMENT_REPLICAS = 3;

const utf8 = new TextEncoder();

/** Node names whose scores are remembered before the memo starts over (names are few; this only bounds it). */
const SCORE_MEMO_NODES = 4_096;
/** Scores already computed: node → score by group (placement asks for the same ones on every evaluation). */
const scoreMemo = new Map<string, number[]>();

/** The rendezvous score of `node` for `group` (higher ranks first). */
export function rendezvousScore(group: number, node: string): number {
  let byGroup = scoreMemo.get(node);
  if (byGroup === undefined) {
    if (scoreMemo.size >= SCORE_MEMO_NODES) scoreMemo.clear();
    scoreMemo.set(node, (byGroup = []));
  }
  const known = byGroup[group];
  if (known !== undefined) return known;
  const score = hash32(utf8.encode(`${group}\u0000${node}`));
  if (Number.isInteger(group) && group >= 0 && group < 65_536) byGroup[group] = score;
  return score;
}

/** `nodes` ranked for `group`: highest score first, ties by name. */
export function rendezvousOrder(group: number, nodes: readonly string[]): string[] {
  return [...nodes].map((n) => [rendezvousScore(group, n), n] as const).sort(rankOrder).map(([, n]) => n);
}

function rankOrder(a: readonly [number, string], b: readonly [number, string]): number {
  return b[0] - a[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The target assignment of `groups` groups over the `live` nodes, starting from `current`
 * (indexed by group; missing entries are unassigned). Null when no node is live.
 */
export function placeGroups(groups: number, live: readonly string[], current: ReadonlyArray<GroupAssignment | undefined> = [], replicas = PLACEMENT_REPLICAS): GroupAssignment[] | null {
  const nodes = [...new Set(live)].sort(byName);
  if (nodes.length === 0 || groups < 1) return null;
  const alive = new Set(nodes);
  const owners = placeOwners(groups, nodes, alive, current);
  const standbys = placeStandbys(groups, nodes, alive, current, owners, Math.max(0, Math.min(replicas - 1, nodes.length - 1)));
  return owners.map((owner, g) => ({ owner, standbys: standbys[g]! }));
}

/**
 * Quota per node when `total` slots are spread over `nodes`: floor or ceil, the ceil slots to
 * the nodes that already hold the most (then by name), so nothing moves that need not.
 */
function quotas(total: number, nodes: readonly string[], held: ReadonlyMap<string, number>): Map<string, number> {
  const base = Math.floor(total / nodes.length);
  let extra = total % nodes.length;
  const order = [...nodes].sort((a, b) => (held.get(b) ?? 0) - (held.get(a) ?? 0) || byName(a, b));
  const out = new Map<string, number>();
  for (const n of order) out.set(n, base + (extra-- > 0 ? 1 : 0));
  return out;
}

function placeOwners(groups: number, nodes: readonly string[], alive: ReadonlySet<string>, current: ReadonlyArray<GroupAssignment | undefined>): string[] {
  const owner: Array<string | undefined> = [];
  const held = new Map<string, number[]>(nodes.map((n) => [n, []]));
  for (let g = 0; g < groups; g++) {
    const o = current[g]?.owner;
    if (o !== undefined && alive.has(o)) {
      owner[g] = o;
      held.get(o)!.push(g);
    } else owner[g] = undefined;
  }
  const quota = quotas(groups, nodes, new Map([...held].map(([n, gs]) => [n, gs.length])));
  // A node over quota gives up the groups it ranks lowest for.
  for (const n of nodes) {
    const mine = held.get(n)!;
    const excess = mine.length - quota.get(n)!;
    if (excess <= 0) continue;
    const shed = [...mine].sort((a, b) => rendezvousScore(a, n) - rendezvousScore(b, n) || a - b).slice(0, excess);
    for (const g of shed) owner[g] = undefined;
    held.set(n, mine.filter((g) => !shed.includes(g)));
  }
  const count = new Map([...held].map(([n, gs]) => [n, gs.length]));
  for (let g = 0; g < groups; g++) {
    if (owner[g] !== undefined) continue;
    const under = nodes.filter((n) => count.get(n)! < quota.get(n)!);
    const standbys = (current[g]?.standbys ?? []).filter((s) => under.includes(s));
    const pick = standbys[0] ?? rendezvousOrder(g, under)[0]!;
    owner[g] = pick;
    count.set(pick, count.get(pick)! + 1);
  }
  return owner as string[];
}

function placeStandbys(
  groups: number,
  nodes: readonly string[],
  alive: ReadonlySet<string>,
  current: ReadonlyArray<GroupAssignment | undefined>,
  owners: readonly string[],
  k: number,
): string[][] {
  const out: string[][] = [];
  const count = new Map<string, number>(nodes.map((n) => [n, 0]));
  for (let g = 0; g < groups; g++) {
    const list: string[] = [];
    const cur = current[g];
    const candidates = [...(cur?.standbys ?? []), ...(cur !== undefined ? [cur.owner] : [])];
    for (const s of candidates) {
      if (list.length >= k) break;
      if (alive.has(s) && s !== owners[g] && !list.includes(s)) list.push(s);
    }
    for (const s of list) count.set(s, count.get(s)! + 1);
    out.push(list);
  }
  // Fill missing slots with the least loaded eligible nodes (then by rank).
  for (let g = 0; g < groups; g++) {
    const list = out[g]!;
    while (list.length < k) {
      const eligible = rendezvousOrder(g, nodes.filter((n) => n !== owners[g] && !list.includes(n)));
      let best = eligible[0]!;
      for (const n of eligible) if (count.get(n)! < count.get(best)!) best = n;
      list.push(best);
      count.set(best, count.get(best)! + 1);
    }
  }
  // Move slots from nodes over their share to nodes under it, where allowed.
  const quota = quotas(groups * k, nodes, count);
  for (const over of nodes) {
    const slots = [];
    for (let g = 0; g < groups; g++) if (out[g]!.includes(over)) slots.push(g);
    slots.sort((a, b) => rendezvousScore(a, over) - rendezvousScore(b, over) || a - b);
    for (const g of slots) {
      if (count.get(over)! <= quota.get(over)!) break;
      const list = out[g]!;
      const to = rendezvousOrder(g, nodes.filter((n) => count.get(n)! < quota.get(n)! && n !== owners[g] && !list.includes(n)))[0];
      if (to === undefined) continue;
      list[list.indexOf(over)] = to;
      count.set(over, count.get(over)! - 1);
      count.set(to, count.get(to)! + 1);
    }
  }
  return out;
}
