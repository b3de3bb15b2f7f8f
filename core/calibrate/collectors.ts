/**
 * Streaming range collectors: one per observed tensor, fed every batch, memory independent of the
 * number of samples. Each gives the [min, max] the quantizer turns into scale and zero point.
 */
import { StreamingHistogram, type HistogramOptions } from './histogram.ts';

export interface TensorRange {
  min: number;
  max: number;
}

export interface RangeCollector {
  update(values: Float32Array | Float64Array): void;
  /** Merges another collector of the same kind (statistics from another worker or pass). */
  merge?(other: RangeCollector): void;
  range(): TensorRange;
}

/**
 * Plain min/max over everything seen, or — with `movingAverage` — onnxruntime's exponential
 * moving average of per-batch min/max (constant `averagingConstant`, default 0.01), which keeps
 * one outlier batch from stretching the range.
 */
export class MinMaxCollector implements RangeCollector {
  private lo = Infinity;
  private hi = -Infinity;
  private batches = 0;
  nonFinite = 0;
  /** Finite values seen (a tensor that only ever held NaN/Infinity has none, and no range). */
  finite = 0;

  constructor(private options: { movingAverage?: boolean; averagingConstant?: number } = {}) {}

  update(values: Float32Array | Float64Array): void {
    let lo = Infinity;
    let hi = -Infinity;
    let bad = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isFinite(v)) { bad++; continue; }
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    this.nonFinite += bad;
    this.finite += values.length - bad;
    if (lo > hi) return;
    if (this.options.movingAverage && this.batches > 0) {
      const c = this.options.averagingConstant ?? 0.01;
      this.lo = this.lo * (1 - c) + lo * c;
      this.hi = this.hi * (1 - c) + hi * c;
    } else {
      this.lo = Math.min(this.lo, lo);
      this.hi = Math.max(this.hi, hi);
    }
    this.batches++;
  }

  merge(other: RangeCollector): void {
    const o = other as MinMaxCollector;
    this.lo = Math.min(this.lo, o.lo);
    this.hi = Math.max(this.hi, o.hi);
    this.batches += o.batches;
    this.nonFinite += o.nonFinite;
    this.finite += o.finite;
  }

  range(): TensorRange {
    return this.lo <= this.hi ? { min: this.lo, max: this.hi } : { min: 0, max: 0 };
  }
}

/**
 * The base of the histogram methods (percentile, entropy, mse): streaming and merging are the
 * histogram's; each method only turns the finished histogram into a range.
 */
export abstract class HistogramCollector implements RangeCollector {
  readonly histogram: StreamingHistogram;

  constructor(options: HistogramOptions) {
    this.histogram = new StreamingHistogram(options);
  }

  /** NaN/Infinity values seen (excluded from the statistics, as MinMaxCollector does). */
  get nonFinite(): number {
    return this.histogram.nonFinite;
  }

  /** Finite values seen (binned). */
  get finite(): number {
    return this.histogram.total;
  }

  update(values: Float32Array | Float64Array): void {
    this.histogram.update(values);
  }

  merge(other: RangeCollector): void {
    if (!(other instanceof HistogramCollector)) throw new TypeError('a histogram collector merges only with another histogram collector');
    this.histogram.merge(other.histogram);
  }

  abstract range(): TensorRange;
}
