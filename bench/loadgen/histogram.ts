/**
 * A log-linear latency histogram in the manner of HdrHistogram: values in microseconds, exact
 * below 256 µs, then 128 sub-buckets per power of two (relative error under 0.8%), so recording
 * is one array increment and percentiles are a walk over at most a few thousand counters.
 */

const SUB_BITS = 7;
const SUB = 1 << SUB_BITS; // sub-buckets per octave
const MAX_VALUE = 2 ** 31 - 1; // about 35 minutes in microseconds
const BUCKETS = (31 - SUB_BITS + 1) * SUB;

export interface LatencySummaryMs {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

function indexOf(v: number): number {
  if (v < 2 * SUB) return v;
  const msb = 31 - Math.clz32(v);
  const shift = msb - SUB_BITS;
  return shift * SUB + (v >>> shift);
}

/** The highest value that falls into bucket `i` (reported, like HdrHistogram, conservatively). */
function highestOf(i: number): number {
  if (i < 2 * SUB) return i;
  const shift = Math.floor(i / SUB) - 1;
  const top = i - shift * SUB;
  return ((top + 1) << shift) - 1;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  private total = 0;
  private sum = 0;
  private maxSeen = 0;

  /** Record one latency in microseconds (negative values count as 0, huge ones are capped). */
  record(us: number): void {
    const v = us <= 0 ? 0 : us >= MAX_VALUE ? MAX_VALUE : Math.round(us);
    this.counts[indexOf(v)]!++;
    this.total++;
    this.sum += v;
    if (v > this.maxSeen) this.maxSeen = v;
  }

  get count(): number {
    return this.total;
  }

  /** The value (µs) at percentile `p` (0..100): the smallest bucket holding at least p% of the values. */
  percentile(p: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(highestOf(i), this.maxSeen);
    }
    return this.maxSeen;
  }

  summaryMs(): LatencySummaryMs {
    const ms = (us: number) => Math.round(us) / 1000;
    return {
      count: this.total,
      mean: this.total === 0 ? 0 : ms(this.sum / this.total),
      p50: ms(this.percentile(50)),
      p90: ms(this.percentile(90)),
      p99: ms(this.percentile(99)),
      p999: ms(this.percentile(99.9)),
      max: ms(this.maxSeen),
    };
  }

  /** Sparse form `[[bucket, count], ...]`, so histograms from several processes can be merged. */
  toSparse(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]! > 0) out.push([i, this.counts[i]!]);
    return out;
  }

  /** Add a sparse histogram (from toSparse) into this one; the mean uses bucket tops for it. */
  addSparse(sparse: ReadonlyArray<readonly [number, number]>): void {
    for (const [i, n] of sparse) {
      if (i < 0 || i >= BUCKETS) continue;
      this.counts[i]! += n;
      this.total += n;
      const top = highestOf(i);
      this.sum += top * n;
      if (top > this.maxSeen) this.maxSeen = top;
    }
  }
}
