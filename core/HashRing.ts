/**
 * Consistent hashing with virtual nodes: maps a key (a user id) to one of a set of members
 * (router shards now, core nodes later). Each member owns `vnodes` points on a 32-bit ring;
 * a key belongs to the first point at or after its hash. Adding or removing one member moves
 * only the keys that member gains or loses (about 1/N of them). Pure and deterministic.
 */

/** Default virtual nodes per member: enough for a few percent of imbalance. */
export const DEFAULT_VNODES = 128;

/** FNV-1a 32-bit over bytes, then a murmur3 finaliser for avalanche. */
export function hash32(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return finalise(h);
}

/** hash32 of the bytes a one-char-per-byte string stands for (a UserKey), without converting it. */
export function hash32Latin1(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i) & 0xff;
    h = Math.imul(h, 0x01000193);
  }
  return finalise(h);
}

function finalise(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const encoder = new TextEncoder();

export class HashRing<M extends string | number> {
  private points = new Uint32Array(0);
  private owners: M[] = [];
  private readonly members = new Set<M>();

  constructor(
    members: Iterable<M> = [],
    private readonly vnodes = DEFAULT_VNODES,
  ) {
    for (const m of members) this.members.add(m);
    this.rebuild();
  }

  add(member: M): void {
    if (this.members.has(member)) return;
    this.members.add(member);
    this.rebuild();
  }

  remove(member: M): void {
    if (this.members.delete(member)) this.rebuild();
  }

  size(): number {
    return this.members.size;
  }

  /** The member owning `key`; undefined only when the ring is empty. */
  owner(key: Uint8Array): M | undefined {
    return this.ownerOfHash(hash32(key));
  }

  /** The owner of the bytes a one-char-per-byte string stands for (same answer as `owner`). */
  ownerOfLatin1(key: string): M | undefined {
    return this.ownerOfHash(hash32Latin1(key));
  }

  private ownerOfHash(h: number): M | undefined {
    const n = this.points.length;
    if (n === 0) return undefined;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === n ? 0 : lo];
  }

  private rebuild(): void {
    const pts: Array<[number, M]> = [];
    for (const m of this.members) {
      for (let v = 0; v < this.vnodes; v++) pts.push([hash32(encoder.encode(`${String(m)}#${v}`)), m]);
    }
    // Ties broken by member name so every node builds the identical ring.
    pts.sort((a, b) => a[0] - b[0] || (String(a[1]) < String(b[1]) ? -1 : 1));
    this.points = Uint32Array.from(pts.map((p) => p[0]));
    this.owners = pts.map((p) => p[1]);
  }
}
