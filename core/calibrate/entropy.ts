/**
 * Entropy (KL divergence) calibration, TensorRT's method: over a histogram of |x|, try every
 * threshold from `quantizedBins` bins up to the last occupied bin; for each, the reference P is the
 * histogram cut at the threshold with the clipped tail added to its last bin, Q is P's bins merged
 * into `quantizedBins` levels and spread back over the bins that held values; keep the threshold
 * whose KL(P‖Q) is smallest. The range is ±threshold clipped to the observed [min, max].
 *
 * Why 2048 histogram bins: the search needs many more bins than quantized levels. onnxruntime's
 * defaults (num_bins 128, num_quantized_bins 128) leave exactly one candidate, the full range, so
 * its Entropy method silently equals MinMax. TensorRT uses 2048 bins for 128 levels.
 */
import { HistogramCollector, type TensorRange } from './collectors.ts';
import type { StreamingHistogram } from './histogram.ts';

/** Smoothing mass given to empty bins (in counts) so that KL stays finite, as onnxruntime does. */
const SMOOTHING = 1e-4;

export interface EntropyOptions {
  bins?: number;
  /**
   * Levels between 0 and the threshold. Default: 256 for a one-sided tensor (ReLU outputs: an
   * asymmetric uint8/int8 range [0, t] has 256 levels), 128 when values have both signs or the
   * range is symmetric (±t leaves half the levels to each side).
   */
  quantizedBins?: number;
  symmetric?: boolean;
}

/** The threshold on |x| that minimises KL(P‖Q); `h` must be an absolute-value histogram. */
export function entropyThreshold(h: StreamingHistogram, quantizedBins: number): number {
  if (!h.absolute) throw new RangeError('entropy calibration needs an absolute-value histogram');
  const used = h.lastOccupied() + 1;
  if (used <= quantizedBins) return h.highest; // no threshold below the maximum to try
  // Exact zeros (half of a ReLU output) are represented exactly by every threshold: they are kept
  // out of the bins, else merging the zero spike with its neighbours would dominate KL and pin the
  // threshold to where bin 0 first shares a level with bin 1 — an artefact of the bin width.
  const counts = h.counts.slice(0, used);
  counts[0]! -= h.zeros;
  // Prefix sums make each candidate one pass with a log per occupied bin: mass and occupied bins
  // below j, and so Q's level means and both distributions' empty-bin counts, in O(1).
  const mass = new Float64Array(used + 1);
  const occupied = new Float64Array(used + 1);
  for (let j = 0; j < used; j++) {
    mass[j + 1] = mass[j]! + counts[j]!;
    occupied[j + 1] = occupied[j]! + (counts[j]! > 0 ? 1 : 0);
  }
  let best = Infinity;
  let bestEnd = used;
  for (let end = quantizedBins; end <= used; end++) {
    const kl = klForThreshold(counts, mass, occupied, h.zeros, end, quantizedBins);
    if (kl < best) {
      best = kl;
      bestEnd = end;
    }
  }
  return Math.min(h.edge(bestEnd), h.highest);
}

/**
 * KL(P‖Q) for the threshold at bin `end`, both smoothed (every empty bin gets SMOOTHING, taken
 * evenly from the others, as onnxruntime's smooth_distribution) and normalised as
 * scipy.stats.entropy does. Bins empty in both contribute nothing, so only occupied ones are
 * visited. Smoothing keeps each sum, so ΣP is all the mass and ΣQ the mass below the threshold;
 * the exact zeros are one more point, equal in P and Q, that only counts in those sums.
 */
function klForThreshold(counts: Float64Array, mass: Float64Array, occupied: Float64Array, zeros: number, end: number, levels: number): number {
  const clipped = mass[mass.length - 1]! - mass[end]!; // the tail folded into P's last bin
  const total = mass[mass.length - 1]! + zeros;
  const last = end - 1;
  const emptyQ = end - occupied[end]!;
  if (emptyQ === end) return Infinity;
  const emptyP = emptyQ - (counts[last] === 0 && clipped > 0 ? 1 : 0);
  const takeP = (SMOOTHING * emptyP) / (end - emptyP);
  const takeQ = (SMOOTHING * emptyQ) / (end - emptyQ);
  let sum = 0;
  for (let g = 0; g < levels; g++) {
    const from = Math.floor((g * end) / levels);
    const to = Math.floor(((g + 1) * end) / levels);
    const n = occupied[to]! - occupied[from]!;
    const mean = n > 0 ? (mass[to]! - mass[from]!) / n : 0;
    for (let j = from; j < to; j++) {
      const c = counts[j]!;
      const raw = j === last ? c + clipped : c;
      if (raw === 0) continue; // SMOOTHING in both: log 1
      const p = raw - takeP;
      const q = c > 0 ? mean - takeQ : SMOOTHING;
      sum += p * Math.log(p / q);
    }
  }
  return sum / total + Math.log((mass[end]! + zeros) / total);
}

export class EntropyCollector extends HistogramCollector {
  constructor(private options: EntropyOptions = {}) {
    super({ absolute: true, bins: options.bins });
  }

  range(): TensorRange {
    const h = this.histogram;
    if (h.total === 0) return { min: 0, max: 0 };
    const oneSided = h.min >= 0 || h.max <= 0;
    const levels = this.options.quantizedBins ?? (oneSided && !this.options.symmetric ? 256 : 128);
    const t = entropyThreshold(h, levels);
    return { min: Math.max(h.min, -t), max: Math.min(h.max, t) };
  }
}
