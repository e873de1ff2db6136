/**
 * A string-keyed map that holds its first entry in two fields and becomes a real Map only
 * when a second entry arrives. Links and monitors use it: almost every process has zero or
 * one of each, and an empty Map with its hash table costs ~230 bytes against ~40 here, which
 * is most of an idle connection's runtime footprint.
 */
export class SmallMap<V> {
  private k: string | undefined = undefined;
  private v: V | undefined = undefined;
  private m: Map<string, V> | undefined = undefined;

  get size(): number {
    if (this.m !== undefined) return this.m.size;
    return this.k !== undefined ? 1 : 0;
  }

  has(key: string): boolean {
    return this.m !== undefined ? this.m.has(key) : this.k === key;
  }

  get(key: string): V | undefined {
    if (this.m !== undefined) return this.m.get(key);
    return this.k === key ? this.v : undefined;
  }

  set(key: string, value: V): this {
    if (this.m !== undefined) this.m.set(key, value);
    else if (this.k === undefined || this.k === key) {
      this.k = key;
      this.v = value;
    } else {
      this.m = new Map([
        [this.k, this.v as V],
        [key, value],
      ]);
      this.k = undefined;
      this.v = undefined;
    }
    return this;
  }

  delete(key: string): boolean {
    if (this.m !== undefined) return this.m.delete(key);
    if (this.k !== key) return false;
    this.k = undefined;
    this.v = undefined;
    return true;
  }

  /** A snapshot of the values in insertion order (safe to mutate the map while iterating it). */
  values(): V[] {
    if (this.m !== undefined) return [...this.m.values()];
    return this.k !== undefined ? [this.v as V] : [];
  }

  /** A snapshot of the entries in insertion order. */
  entries(): Array<[string, V]> {
    if (this.m !== undefined) return [...this.m];
    return this.k !== undefined ? [[this.k, this.v as V]] : [];
  }

  [Symbol.iterator](): Iterator<[string, V]> {
    return this.entries()[Symbol.iterator]();
  }
}
