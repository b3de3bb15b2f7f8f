import { formatBytes, formatDuration, formatMs, formatPercent, groupDigits } from '../../lib/format.ts';

/**
 * What the Experiments and Jobs views make of a run's numbers. The store keeps every numeric leaf
 * of a command's --json document under a flattened key (`accuracy.top1`, `agreement.sqnrDb`,
 * `latency.p50Ms`; a recipe's evaluation under `eval.`), so the few metrics a researcher scans
 * for are looked up by name here, in one place, and formatted by what their key says they are.
 */

export type Metrics = Record<string, number>;

/**
 * The columns run lists show, in order, with where each is found. `optional` columns appear only
 * when some listed run has the metric (a language model's perplexity: classifiers never do). A
 * language model's next-token top-1 is its Top-1: the next tokens are its labels.
 */
export const KEY_METRICS = [
  { id: 'size', label: 'Size', keys: ['bytesAfter', 'bytes', 'eval.bytes'], optional: false },
  { id: 'top1', label: 'Top-1', keys: ['accuracy.top1', 'eval.accuracy.top1', 'language.top1', 'eval.language.top1'], optional: false },
  { id: 'perplexity', label: 'Perplexity', keys: ['language.perplexity', 'eval.language.perplexity'], optional: true },
  { id: 'agreement', label: 'Agreement', keys: ['agreement.top1', 'eval.agreement.top1'], optional: false },
  { id: 'sqnr', label: 'SQNR', keys: ['agreement.sqnrDb', 'eval.agreement.sqnrDb'], optional: false },
  { id: 'latency', label: 'Latency p50', keys: ['latency.p50Ms', 'eval.latency.p50Ms', 'latency.meanMs', 'eval.latency.meanMs'], optional: false },
] as const;
export type KeyMetricId = (typeof KEY_METRICS)[number]['id'];

/** The first of a key metric's keys that the run has, with its value; null when it has none. */
export function keyMetric(metrics: Metrics, id: KeyMetricId): { key: string; value: number } | null {
  const def = KEY_METRICS.find((m) => m.id === id)!;
  for (const key of def.keys) {
    const value = metrics[key];
    if (typeof value === 'number' && Number.isFinite(value)) return { key, value };
  }
  return null;
}

/**
 * "95 % interval a–b %" for a top-1 accuracy or agreement key whose run recorded its bounds
 * (`accuracy.top1Low`/`High`, the engine's Wilson interval), else ''. With 100 images one image
 * is a point; two runs whose intervals overlap this much are not told apart by their data.
 */
export function intervalText(metrics: Metrics, key: string): string {
  const bounds = intervalOf(metrics, key);
  return bounds ? `95 % interval ${(bounds[0] * 100).toFixed(1)}–${(bounds[1] * 100).toFixed(1)} %` : '';
}

/** The recorded 95 % interval of a top-1 accuracy or agreement key (`…top1Low`/`…top1High`), or null. */
export function intervalOf(metrics: Metrics, key: string): [number, number] | null {
  const low = metrics[`${key}Low`];
  const high = metrics[`${key}High`];
  return typeof low === 'number' && typeof high === 'number' ? [low, high] : null;
}

export function keyValue(metrics: Metrics, id: KeyMetricId): number | null {
  return keyMetric(metrics, id)?.value ?? null;
}

/** The key metrics a list of runs shows: every fixed one, and the optional ones some run has. */
export function shownKeyMetrics(all: readonly { metrics: Metrics }[]): (typeof KEY_METRICS)[number][] {
  return KEY_METRICS.filter((m) => !m.optional || all.some((r) => keyMetric(r.metrics, m.id) !== null));
}

/** Whether a key metric is better when larger (accuracy, SQNR) rather than smaller (perplexity, size, latency). */
export function higherIsBetter(id: KeyMetricId): boolean {
  return id === 'top1' || id === 'agreement' || id === 'sqnr';
}

/**
 * Numeric leaves of a JSON document under dotted keys, booleans as 0/1: the same keys the store
 * gives a run's metrics, so a job's result reads like its recorded run.
 */
export function flattenNumbers(value: unknown, prefix = '', out: Metrics = {}, depth = 0): Metrics {
  if (depth > 6 || value === null || typeof value !== 'object' || Array.isArray(value)) return out;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'number' && Number.isFinite(v)) out[key] = v;
    else if (typeof v === 'boolean') out[key] = v ? 1 : 0;
    else if (v && typeof v === 'object' && !Array.isArray(v)) flattenNumbers(v, key, out, depth + 1);
  }
  return out;
}

/** The last segment of a dotted key, without an `@…` parameter: `prune.sqnrDb@0.5` → `sqnrDb`. */
function leaf(key: string): string {
  const at = key.indexOf('@');
  const name = at >= 0 ? key.slice(0, at) : key;
  return name.slice(name.lastIndexOf('.') + 1);
}

const FRACTIONS = new Set(['top1', 'top5', 'top1Low', 'top1High', 'sparsity', 'plannedSparsity', 'targetAgreement', 'synthetic', 'identical']);
const BYTES = /bytes/i;

/** A metric value as a researcher reads it: sizes in KiB/MiB, fractions in %, SQNR in dB, times. */
export function formatMetric(key: string, value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  const name = leaf(key);
  if (BYTES.test(name)) return formatBytes(value);
  if (FRACTIONS.has(name)) return formatPercent(value, value > 0.99 && value < 1 ? 2 : 1);
  if (/Db$/.test(name)) return `${value.toFixed(1)} dB`;
  if (/Ms$/.test(name)) return formatMs(value);
  if (name === 'seconds' || name === 'etaS') return formatDuration(value);
  if (name === 'cosine') return value.toFixed(6);
  if (Number.isInteger(value)) return groupDigits(value);
  return Math.abs(value) >= 100 ? value.toFixed(1) : value.toPrecision(4);
}

/** A difference between two values of the same metric, signed, in the metric's own units. */
export function formatMetricDelta(key: string, delta: number | null | undefined): string {
  if (delta === null || delta === undefined || Number.isNaN(delta)) return '—';
  if (delta === 0) return '±0';
  const name = leaf(key);
  const sign = delta > 0 ? '+' : '−';
  const abs = Math.abs(delta);
  if (FRACTIONS.has(name)) return `${sign}${(abs * 100).toFixed(abs < 0.001 ? 3 : 2)} pt`;
  return sign + formatMetric(key, abs);
}

/**
 * Whether a bigger value of this metric is better (1), worse (−1), or neither (0: counts, settings).
 * Deltas are coloured by it.
 */
export function metricDirection(key: string): 1 | -1 | 0 {
  const name = leaf(key);
  if (/^(top1|top5|sqnrDb|outputSqnrDb|layerSqnrDb|cosine|identical|correct1|correct5)$/.test(name)) return 1;
  if (BYTES.test(name) || /Ms$/.test(name)) return -1;
  if (/^(seconds|maxAbsDiff|nonFinite|parametersAfter|nonzeroParameters|parameters)$/.test(name)) return -1;
  // a language model's next-token loss
  if (/^(perplexity|nllPerToken)$/.test(name)) return -1;
  return 0;
}

/** 'better' | 'worse' | '' for a delta of `key`, for colouring. Tiny float noise counts as no change. */
export function deltaClass(key: string, delta: number | null | undefined): 'better' | 'worse' | '' {
  if (delta === null || delta === undefined || !Number.isFinite(delta) || Math.abs(delta) < 1e-12) return '';
  const dir = metricDirection(key);
  if (dir === 0) return '';
  return delta * dir > 0 ? 'better' : 'worse';
}

/**
 * The Pareto front of points where smaller x and larger y are better (smaller y with
 * `lowerYIsBetter`: perplexity): the points no other point beats on both. Returned sorted by x,
 * ready to draw as a line.
 */
export function paretoFront<T extends { x: number; y: number }>(points: readonly T[], lowerYIsBetter = false): T[] {
  const sign = lowerYIsBetter ? -1 : 1;
  const sorted = [...points].sort((a, b) => a.x - b.x || sign * (b.y - a.y));
  const front: T[] = [];
  let best = -Infinity;
  for (const p of sorted) {
    if (sign * p.y > best) {
      front.push(p);
      best = sign * p.y;
    }
  }
  return front;
}

/**
 * A perceptually ordered colour scale (viridis, 6 stops, interpolated in RGB): readable on light
 * and dark backgrounds and for colour-blind readers. t in 0..1.
 */
const VIRIDIS = [
  [68, 1, 84],
  [65, 68, 135],
  [42, 120, 142],
  [34, 168, 132],
  [122, 209, 81],
  [253, 231, 37],
] as const;

export function viridis(t: number): string {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i]!;
  const b = VIRIDIS[i + 1]!;
  const c = (k: 0 | 1 | 2) => Math.round(a[k] + (b[k] - a[k]) * f);
  return `rgb(${c(0)}, ${c(1)}, ${c(2)})`;
}

/** CSS linear-gradient of the same scale, for the legend. */
export function viridisGradient(direction = 'to right'): string {
  return `linear-gradient(${direction}, ${VIRIDIS.map((_, i) => viridis(i / (VIRIDIS.length - 1))).join(', ')})`;
}
