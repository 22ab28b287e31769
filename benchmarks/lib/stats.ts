/** Small statistics for the benchmark: medians and a fixed-bucket latency histogram. */

/** The median of `xs` (NaN when empty). */
export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** Percentiles of a latency distribution, in microseconds. */
export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/**
 * Latencies in 1 µs buckets up to 100 ms (values above land in the last bucket and in
 * `max`). Recording is one array increment, so it can run for every message.
 */
export class Histogram {
  private readonly buckets = new Uint32Array(100_001);
  private n = 0;
  private sum = 0;
  private hi = 0;

  /** Records one latency in microseconds. */
  record(us: number): void {
    const b = us < 0 ? 0 : us >= 100_000 ? 100_000 : Math.floor(us);
    this.buckets[b]!++;
    this.n++;
    this.sum += us;
    if (us > this.hi) this.hi = us;
  }

  /** Merges another histogram into this one. */
  add(o: Histogram): void {
    for (let i = 0; i < this.buckets.length; i++) this.buckets[i]! += o.buckets[i]!;
    this.n += o.n;
    this.sum += o.sum;
    this.hi = Math.max(this.hi, o.hi);
  }

  get count(): number {
    return this.n;
  }

  /** The value below which fraction `q` of the recordings fall (bucket upper bound, µs). */
  quantile(q: number): number {
    if (this.n === 0) return NaN;
    const want = Math.ceil(q * this.n);
    let acc = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      acc += this.buckets[i]!;
      if (acc >= want) return i === 100_000 ? Math.round(this.hi) : i + 1;
    }
    return Math.round(this.hi);
  }

  summary(): LatencySummary {
    return {
      count: this.n,
      p50: this.quantile(0.5),
      p99: this.quantile(0.99),
      p999: this.quantile(0.999),
      max: Math.round(this.hi),
      mean: this.n === 0 ? NaN : Math.round((this.sum / this.n) * 10) / 10,
    };
  }
}
