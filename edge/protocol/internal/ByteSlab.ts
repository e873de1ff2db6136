// Short-lived byte arrays cut from shared slabs: one allocation per slab instead of one per
// packet or frame. A fresh Uint8Array over 64 bytes lives off the JS heap, and each costs about
// a microsecond with its share of garbage collection, which on the message path is most of a
// packet's decoding. A slice keeps its whole slab alive, so only bytes that die soon may come
// from here (a packet on its way through the router, a frame on its way to the socket);
// anything kept longer must be copied out with `slice()`. Slabs are 8 KB, as Node's own Buffer
// pool (which `ws` frames, for one, are cut from): a slice stuck behind a client that does not
// read pins at most that much.

/** Bytes per slab; a request above SLAB_MAX_BYTES gets an exact allocation of its own. */
const SLAB_BYTES = 8 * 1024;
const SLAB_MAX_BYTES = SLAB_BYTES / 2;

let slab = new Uint8Array(0);
let slabAt = 0;

/** `n` zeroed-or-stale bytes for the caller to overwrite completely (a view into a slab). */
export function slabBytes(n: number): Uint8Array {
  if (n > SLAB_MAX_BYTES) return new Uint8Array(n);
  if (slabAt + n > slab.length) {
    slab = new Uint8Array(SLAB_BYTES);
    slabAt = 0;
  }
  const out = slab.subarray(slabAt, slabAt + n);
  slabAt += n;
  return out;
}

/** A short-lived copy of `src[start, start + size)` (see slabBytes). */
export function slabCopy(src: Uint8Array, start: number, size: number): Uint8Array {
  const out = slabBytes(size);
  out.set(src.subarray(start, start + size));
  return out;
}
