/**
 * A streaming histogram of one tensor's values with a fixed number of bins, whose range grows as
 * batches arrive. Memory is `bins` float64 counts whatever the number of samples.
 *
 * Re-binning without smearing: bin widths are powers of two and the lower edge is a multiple of
 * the width, so when the range must grow the width doubles (as often as needed) and every old bin
 * lies inside exactly one new bin — its count moves whole, nothing is split. The bins are
 * therefore a function of the overall [min, max] alone: a histogram streamed over batches in any
 * order, or merged from several collectors, has exactly the counts of one pass over all values.
 * The approximation is resolution, not placement: the width is the smallest power of two that
 * fits, so [min, max] spans between (bins − 1)/2 and bins bins (at least 1023 of the default
 * 2048). onnxruntime instead appends bins of the old width (its bin count, hence its memory, grows
 * with the range), and PyTorch's HistogramObserver splits old counts proportionally over the new
 * bins, which smears them a little more with every growth.
 */

/** Bins never get narrower than 2^-40 of the largest magnitude: edges stay exact in float64. */
const RELATIVE_RESOLUTION_BITS = 40;
/** The width used while every value seen is 0. */
const SMALLEST_EXPONENT = -200;

export interface HistogramOptions {
  /** Number of bins (default 2048). */
  bins?: number;
  /** Bin |x| instead of x (for symmetric ranges); min/max stay those of the signed values. */
  absolute?: boolean;
}

export class StreamingHistogram {
  readonly bins: number;
  readonly absolute: boolean;
  /** counts[j] covers [start + j·width, start + (j+1)·width). */
  counts: Float64Array;
  start = 0;
  width = 0;
  /** Finite values seen, and how many of them were exactly 0. */
  total = 0;
  zeros = 0;
  /** Exact extremes of the finite signed values. */
  min = Infinity;
  max = -Infinity;
  /** NaN and ±Infinity: counted, never binned. */
  nonFinite = 0;

  constructor(options: HistogramOptions = {}) {
    const bins = options.bins ?? 2048;
    if (!Number.isInteger(bins) || bins < 8) throw new RangeError(`histogram bins must be an integer ≥ 8, got ${bins}`);
    this.bins = bins;
    this.absolute = options.absolute ?? false;
    this.counts = new Float64Array(bins);
  }

  /** The smallest and largest binned quantity (|x| in absolute mode, where it starts at 0). */
  get lowest(): number {
    return this.absolute ? 0 : this.min;
  }
  get highest(): number {
    return this.absolute ? Math.max(Math.abs(this.min), Math.abs(this.max)) : this.max;
  }

  update(values: ArrayLike<number>): void {
    let lo = Infinity;
    let hi = -Infinity;
    let bad = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v - v !== 0) { bad++; continue; } // NaN or ±Infinity
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    this.nonFinite += bad;
    if (lo > hi) return;
    this.include(lo, hi);
    const { counts, start } = this;
    const inverse = 1 / this.width; // a power of two: the product below is exact
    const abs = this.absolute;
    const top = this.bins - 1;
    let zeros = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v - v !== 0) continue;
      if (v === 0) zeros++;
      // Exact for float32 values; a float64 one may round onto the top edge, so clamp.
      const j = Math.floor(((abs && v < 0 ? -v : v) - start) * inverse);
      counts[j < top ? j : top]!++;
    }
    this.zeros += zeros;
    this.total += values.length - bad;
  }

  /** Adds another histogram's counts; both end on the lattice of the combined range. */
  merge(other: StreamingHistogram): void {
    if (other.bins !== this.bins || other.absolute !== this.absolute) throw new RangeError('only histograms with the same bins and mode can merge');
    this.nonFinite += other.nonFinite;
    if (other.total === 0) return;
    this.include(other.min, other.max);
    const into = this.regrid(other.counts, other.start, other.width, this.start, this.width);
    for (let j = 0; j < this.bins; j++) this.counts[j]! += into[j]!;
    this.total += other.total;
    this.zeros += other.zeros;
  }

  /** Lower edge of bin j. */
  edge(j: number): number {
    return this.start + j * this.width;
  }

  /** Index of the last bin holding any count (−1 when empty). */
  lastOccupied(): number {
    for (let j = this.bins - 1; j >= 0; j--) if (this.counts[j]! > 0) return j;
    return -1;
  }

  /** Widens min/max to include [lo, hi] and moves the counts onto the lattice that fits them. */
  private include(lo: number, hi: number): void {
    this.min = Math.min(this.min, lo);
    this.max = Math.max(this.max, hi);
    const { start, width } = latticeFor(this.lowest, this.highest, this.bins);
    if (start === this.start && width === this.width) return;
    if (this.total > 0) this.counts = this.regrid(this.counts, this.start, this.width, start, width);
    this.start = start;
    this.width = width;
  }

  /** Old bins nest in new ones (both lattices are aligned powers of two): each count moves whole. */
  private regrid(counts: Float64Array, fromStart: number, fromWidth: number, toStart: number, toWidth: number): Float64Array {
    const out = new Float64Array(this.bins);
    for (let j = 0; j < counts.length; j++) {
      const c = counts[j]!;
      if (c !== 0) out[Math.floor((fromStart + j * fromWidth - toStart) / toWidth)]! += c;
    }
    return out;
  }
}

/**
 * The canonical lattice for values in [lo, hi]: the smallest power-of-two width (not below 2^-40 of
 * the largest magnitude) whose `bins` bins, starting at the multiple of the width at or below lo,
 * cover hi. It only grows as [lo, hi] widens, which is what makes re-binning exact.
 */
export function latticeFor(lo: number, hi: number, bins: number): { start: number; width: number } {
  const magnitude = Math.max(Math.abs(lo), Math.abs(hi));
  let exponent = magnitude > 0 ? Math.floor(Math.log2(magnitude)) - RELATIVE_RESOLUTION_BITS : SMALLEST_EXPONENT;
  if (hi > lo) exponent = Math.max(exponent, Math.floor(Math.log2((hi - lo) / bins)));
  for (;; exponent++) {
    const width = 2 ** exponent;
    const start = Math.floor(lo / width) * width;
    if (hi - start < bins * width) return { start, width };
  }
}
