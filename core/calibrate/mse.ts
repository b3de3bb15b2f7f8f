/**
 * MSE calibration (onnxruntime has none): the clipping range [lo, hi] that minimises the expected
 * squared quantization error — rounding noise inside the range plus clipping error outside it —
 * computed from the histogram with the quantizer the range will actually get (scale and zero point
 * from quantParams for `quantType`, SPEC §8). The search: a scan of symmetric-shaped ranges ±t and a
 * grid of asymmetric ones, then a pattern search around the best.
 */
import { quantParams, quantRange, type QuantType } from '../passes/quantize/math.ts';
import { HistogramCollector, type TensorRange } from './collectors.ts';
import type { StreamingHistogram } from './histogram.ts';

export interface MseOptions {
  bins?: number;
  /** The type the activations will be quantized to (default uint8, onnxruntime's default). */
  quantType?: QuantType;
  /** The range will be quantized symmetrically (±max|x|): only the magnitude is searched. */
  symmetric?: boolean;
}

/**
 * E[(x − dequantize(quantize(x)))²] over the histogram's values, taking values as uniform inside
 * each bin (exact zeros as exact: 0 is always representable). The dequantized value is
 * clamp(round(x/scale), qmin − zp, qmax − zp)·scale, which is math.ts's quantizeValue followed by
 * dequantization everywhere except on rounding ties, a set of measure zero; the integral is taken
 * in closed form, cell by cell.
 */
export function expectedSquaredError(h: StreamingHistogram, range: TensorRange, type: QuantType, symmetric = false): number {
  if (h.absolute) throw new RangeError('MSE calibration needs a signed histogram');
  if (h.total === 0) return 0;
  const { scale, zeroPoint } = quantParams(range.min, range.max, type, symmetric);
  const [qmin, qmax] = quantRange(type, symmetric);
  const lowest = (qmin - zeroPoint) * scale;
  const highest = (qmax - zeroPoint) * scale;
  const w = h.width;
  let sum = 0;
  for (let j = 0; j < h.bins; j++) {
    let c = h.counts[j]!;
    if (c === 0) continue;
    const a = h.edge(j);
    if (a === 0) c -= h.zeros; // the lattice always has an edge at 0: exact zeros sit in this bin
    if (c === 0) continue;
    const b = a + w;
    let e = 0;
    if (a < lowest) e += cube(Math.min(b, lowest) - lowest) / 3 - cube(a - lowest) / 3;
    if (b > highest) e += cube(b - highest) / 3 - cube(Math.max(a, highest) - highest) / 3;
    const inLo = Math.max(a, lowest);
    const inHi = Math.min(b, highest);
    if (inHi > inLo) e += scale ** 3 * (roundingNoise(inHi / scale) - roundingNoise(inLo / scale));
    sum += (c / w) * e;
  }
  return sum / h.total;
}

/** ∫ from −½ to u of (t − round t)² dt: 1/12 per whole cell plus the part of the current one. */
function roundingNoise(u: number): number {
  const k = Math.floor(u + 0.5);
  return k / 12 + (cube(u - k) + 0.125) / 3;
}

function cube(x: number): number {
  return x * x * x;
}

export function mseRange(h: StreamingHistogram, type: QuantType = 'uint8', symmetric = false): TensorRange {
  if (h.total === 0) return { min: 0, max: 0 };
  const { min, max } = h;
  const clipLo = (lo: number) => Math.min(Math.max(lo, min), 0);
  const clipHi = (hi: number) => Math.max(Math.min(hi, max), 0);
  let best: TensorRange = { min, max };
  let bestError = expectedSquaredError(h, best, type, symmetric);
  const consider = (lo: number, hi: number): boolean => {
    // A bound on the far side of 0 changes nothing (the range always includes 0): keep the data's.
    const r = { min: min >= 0 ? min : clipLo(lo), max: max <= 0 ? max : clipHi(hi) };
    if (r.min === best.min && r.max === best.max) return false;
    const e = expectedSquaredError(h, r, type, symmetric);
    if (e >= bestError) return false;
    best = r;
    bestError = e;
    return true;
  };
  // Thresholds below one bin width are beyond what the histogram can tell apart.
  const magnitude = Math.max(Math.abs(min), Math.abs(max));
  for (let t = magnitude; t >= h.width; t *= 2 ** -0.125) consider(-t, t);
  if (!symmetric && min < 0 && max > 0) {
    for (let lo = min; -lo >= h.width; lo *= Math.SQRT1_2) {
      for (let hi = max; hi >= h.width; hi *= Math.SQRT1_2) consider(lo, hi);
    }
  }
  // Pattern search in log space: move either end by a factor, halve the step when nothing helps.
  for (let step = 2 ** 0.125, moves = 0; step > 1 + 1e-4 && moves < 1000; moves++) {
    const { min: lo, max: hi } = best;
    const moved = symmetric
      ? consider(-magnitudeOf(best) * step, magnitudeOf(best) * step) || consider(-magnitudeOf(best) / step, magnitudeOf(best) / step)
      : consider(lo * step, hi) || consider(lo / step, hi) || consider(lo, hi * step) || consider(lo, hi / step);
    if (!moved) step = Math.sqrt(step);
  }
  return best;
}

function magnitudeOf(r: TensorRange): number {
  return Math.max(Math.abs(r.min), Math.abs(r.max));
}

export class MseCollector extends HistogramCollector {
  constructor(private options: MseOptions = {}) {
    super({ bins: options.bins });
  }

  range(): TensorRange {
    return mseRange(this.histogram, this.options.quantType ?? 'uint8', this.options.symmetric ?? false);
  }
}
