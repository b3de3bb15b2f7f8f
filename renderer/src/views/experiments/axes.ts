import { formatBytes } from '../../lib/format.ts';

/**
 * Axis ranges and ticks for the Pareto plot, chosen here rather than by chart.js: runs of one
 * model often differ by a tenth of a percent in accuracy and a few KiB in size, where chart.js'
 * defaults repeat labels (a 0.05 % step printed with one decimal) or leave a log axis with one
 * label. Every tick lands on a round value and is printed with as many decimals as its step needs.
 */
export interface Axis {
  min: number;
  max: number;
  ticks: number[];
  /** Decimals that tell neighbouring ticks apart (linear axes; in the axis' display unit). */
  decimals: number;
}

const NICE_STEPS = [1, 2, 5, 10];

/** The smallest 1-2-5 × 10ⁿ step at least `raw`. */
function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of NICE_STEPS) if (m * p >= raw * (1 - 1e-9)) return m * p;
  return 10 * p;
}

/** Decimals a step needs to print exactly (0.05 → 2, 0.2 → 1, 2 → 0). */
function stepDecimals(step: number): number {
  for (let d = 0; d < 10; d++) if (Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) < 1e-6) return d;
  return 10;
}

/**
 * A linear axis over `values` with about `target` round ticks and some room around the points.
 * `scale` is the display factor (100 for fractions shown in %): steps are round in display units.
 * `bounds` clamps the range (a fraction never goes past 100 % or below 0).
 */
export function linearAxis(values: readonly number[], opts: { scale?: number; bounds?: [number, number]; minSpan?: number; target?: number } = {}): Axis {
  const scale = opts.scale ?? 1;
  const target = opts.target ?? 6;
  const finite = values.filter(Number.isFinite).map((v) => v * scale);
  let lo = finite.length ? Math.min(...finite) : 0;
  let hi = finite.length ? Math.max(...finite) : 1;
  // Room around the points (a tenth of their spread), and a readable span when they coincide.
  const minSpan = (opts.minSpan ?? 0) * scale || Math.max(Math.abs(hi) * 0.001, 1e-6);
  if (hi - lo < minSpan) {
    const mid = (lo + hi) / 2;
    lo = mid - minSpan / 2;
    hi = mid + minSpan / 2;
  }
  const pad = (hi - lo) * 0.1;
  lo -= pad;
  hi += pad;
  if (opts.bounds) {
    const [bl, bh] = [opts.bounds[0] * scale, opts.bounds[1] * scale];
    if (hi > bh) [lo, hi] = [Math.max(bl, lo - (hi - bh)), bh];
    if (lo < bl) [lo, hi] = [bl, Math.min(bh, hi + (bl - lo))];
  }
  const step = niceStep((hi - lo) / (target - 1));
  const min = Math.floor(lo / step + 1e-9) * step;
  const max = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let k = 0; min + k * step <= max + step * 1e-6; k++) ticks.push(Number(((min + k * step) / scale).toPrecision(12)));
  return { min: min / scale, max: max / scale, ticks, decimals: stepDecimals(step) };
}

/** Mantissa sets for a log axis, coarse to fine. */
const LOG_SETS: readonly (readonly number[])[] = [[1], [1, 3], [1, 2, 5], [1, 1.5, 2, 3, 5, 7], [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8]];

/**
 * Round byte counts: m × 10ⁿ of a binary unit (B, KiB, MiB, …), so that labels read `20 KiB`,
 * `1.5 MiB`, never `19.5 KiB`.
 */
function niceBytes(set: readonly number[], lo: number, hi: number): number[] {
  const out = new Set<number>();
  const uLo = Math.max(0, Math.floor(Math.log(Math.max(lo, 1)) / Math.log(1024)));
  const uHi = Math.max(uLo, Math.floor(Math.log(Math.max(hi, 1)) / Math.log(1024)) + 1);
  for (let u = uLo - 1; u <= uHi; u++) {
    if (u < 0) continue;
    const unit = 1024 ** u;
    for (let n = 0; n <= 3; n++) {
      for (const m of set) {
        const inUnit = m * 10 ** n;
        if (inUnit >= 1000) continue; // not 1000 KiB beside 1 MiB
        out.add(inUnit * unit);
      }
    }
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * A log axis for sizes: round ends just outside the points (a span of at least 2.5×, so close
 * points are not stretched over the whole plot), the ends labelled, and round values between.
 */
export function bytesLogAxis(values: readonly number[], opts: { minRatio?: number; maxTicks?: number } = {}): Axis {
  const minRatio = opts.minRatio ?? 2.5;
  const maxTicks = opts.maxTicks ?? 7;
  const pos = values.filter((v) => Number.isFinite(v) && v > 0);
  let lo = pos.length ? Math.min(...pos) : 1024;
  let hi = pos.length ? Math.max(...pos) : 10 * 1024;
  lo /= 1.12;
  hi *= 1.12;
  if (hi / lo < minRatio) {
    const c = Math.sqrt(lo * hi);
    lo = c / Math.sqrt(minRatio);
    hi = c * Math.sqrt(minRatio);
  }
  // Ends: the tightest round values around the points.
  const fine = niceBytes(LOG_SETS[LOG_SETS.length - 1]!, lo, hi);
  const min = [...fine].reverse().find((v) => v <= lo) ?? lo;
  const max = fine.find((v) => v >= hi) ?? hi;
  const span = Math.log(max / min);
  // Between them, the coarsest round values that give at least three labels in all, none within
  // 13 % of the axis of an end (a label is ~45 px of a ~400 px plot: closer ones overlap).
  let ticks = [min, max];
  for (const set of LOG_SETS) {
    const inner = niceBytes(set, min, max).filter((v) => v > min && v < max && Math.log(v / min) > span * 0.13 && Math.log(max / v) > span * 0.13);
    const all = [min, ...inner, max];
    if (all.length > maxTicks) break;
    ticks = all;
    if (all.length >= 4) break;
  }
  return { min, max, ticks, decimals: 0 };
}

/** A byte count as a tick label: `20 KiB`, `1.5 MiB` (no trailing `.0`). */
export function formatBytesTick(v: number): string {
  return formatBytes(v, 1).replace(/\.0 /, ' ');
}
