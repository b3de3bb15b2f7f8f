/**
 * Percentile calibration: the range that keeps a given share of the observed values. Asymmetric,
 * the lower and upper tails each lose (100 − p)/2 %; symmetric, ±t keeps p % of |x|. Ranges are
 * clipped to the observed [min, max], as onnxruntime does.
 */
import { HistogramCollector, type TensorRange } from './collectors.ts';
import type { StreamingHistogram } from './histogram.ts';

/**
 * The value below which a share `q` of the histogram's mass lies, interpolated linearly inside
 * its bin (values assumed uniform within a bin): within one bin width of the exact quantile.
 * Exact zeros are a point mass at the bin edge 0, so a ReLU output's lower quantile is 0, not a
 * sliver above it.
 */
export function histogramQuantile(h: StreamingHistogram, q: number): number {
  if (h.total === 0) return 0;
  const target = Math.min(Math.max(q, 0), 1) * h.total;
  let below = 0;
  for (let j = 0; j < h.bins; j++) {
    let c = h.counts[j]!;
    const edge = h.edge(j);
    if (edge === 0 && h.zeros > 0) {
      if (below + h.zeros >= target) return 0;
      below += h.zeros;
      c -= h.zeros;
    }
    if (c > 0 && below + c >= target) return clamp(edge + ((target - below) / c) * h.width, h.lowest, h.highest);
    below += c;
  }
  return h.highest;
}

export function percentileRange(h: StreamingHistogram, percentile: number): TensorRange {
  if (!(percentile > 0 && percentile <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${percentile}`);
  if (h.total === 0) return { min: 0, max: 0 };
  if (h.absolute) {
    const t = histogramQuantile(h, percentile / 100);
    return { min: Math.max(h.min, -t), max: Math.min(h.max, t) };
  }
  const tail = (100 - percentile) / 200;
  return { min: histogramQuantile(h, tail), max: histogramQuantile(h, 1 - tail) };
}

export class PercentileCollector extends HistogramCollector {
  constructor(private options: { percentile?: number; symmetric?: boolean; bins?: number } = {}) {
    super({ absolute: options.symmetric ?? false, bins: options.bins });
  }

  range(): TensorRange {
    return percentileRange(this.histogram, this.options.percentile ?? 99.999);
  }
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}
