import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { seededRandom } from '../../native-models/ir/random.ts';
import { writeAtomically } from '../store/atomic.ts';
import { argmax, classifierShape, type NextTokenMetrics, type Scores } from './metrics.ts';

/**
 * Every sample's top-1 class, kept with an evaluation run (artifact `predictions.json`) so that two
 * runs evaluated on the same samples can be compared sample by sample. Two int8 models at 95 % and
 * 97 % agreement on 100 photos have overlapping intervals (93.0–99.4 % holds both), yet on the same
 * photos the question is only which photos they disagree on: McNemar's test on the discordant pairs
 * answers it, and it needs exactly this file.
 */
export const PREDICTIONS_ARTIFACT = 'predictions.json';

/** What was evaluated: two runs are paired only when all of it is equal. */
export interface EvaluatedSamples { path: string; offset: number; n: number; preprocess: string }

export interface SamplePredictions {
  version: 1;
  kind?: 'classes';
  data: EvaluatedSamples;
  /** The reference model agreement was measured against (absolute path), or null. */
  reference: string | null;
  labels: number[] | null;
  /** The model's top-1 class per sample (first index of the largest score). */
  top1: number[];
  /** The reference's top-1 class per sample, when there is a reference. */
  referenceTop1: number[] | null;
}

/** Collects top-1 classes batch by batch during an evaluation. */
export class PredictionsRecorder {
  private readonly top1: number[] = [];
  private readonly referenceTop1: number[] = [];
  private readonly labels: number[] = [];
  private usable = true;

  /** Scores [batch, classes] (trailing 1s allowed): anything else (a sequence model) is not kept. */
  add(scores: Scores, labels: Int32Array | null, reference: Scores | null): void {
    const shape = classifierShape(scores.dims);
    if (!shape || shape.batch * shape.classes !== scores.data.length) { this.usable = false; return; }
    const { batch, classes } = shape;
    for (let s = 0; s < batch; s++) {
      // −1 where every score is NaN: never a label, so never right
      this.top1.push(argmax(scores.data, s * classes, classes));
      if (reference) this.referenceTop1.push(argmax(reference.data, s * classes, classes));
      if (labels) this.labels.push(labels[s]!);
    }
  }

  /** null when the outputs were not one score vector per sample. */
  result(data: SamplePredictions['data'], reference: string | null): SamplePredictions | null {
    if (!this.usable || this.top1.length === 0) return null;
    return {
      version: 1,
      data: { ...data, path: resolve(data.path) },
      reference: reference ? resolve(reference) : null,
      labels: this.labels.length === this.top1.length ? this.labels : null,
      top1: this.top1,
      referenceTop1: this.referenceTop1.length === this.top1.length ? this.referenceTop1 : null,
    };
  }
}

/**
 * A language model's evaluation, window by window (same artifact, `kind: 'next-token'`): each
 * window's summed next-token NLL and the positions it scored. Perplexities a percent apart are
 * common between compression methods; on the same windows the ratio gets an interval, and the
 * question becomes whether the difference is more than the text's noise.
 */
export interface WindowLosses {
  version: 1;
  kind: 'next-token';
  data: EvaluatedSamples;
  /** Summed NLL (nats) of each window's predicted positions, in data order. */
  nll: number[];
  tokens: number[];
}

export type RecordedPredictions = SamplePredictions | WindowLosses;

/** The windows a language-model evaluation scored (null when it scored none). */
export function windowLosses(metrics: NextTokenMetrics, data: EvaluatedSamples): WindowLosses | null {
  if (metrics.windowNll.length === 0) return null;
  return { version: 1, kind: 'next-token', data: { ...data, path: resolve(data.path), n: metrics.windowNll.length }, nll: [...metrics.windowNll], tokens: [...metrics.windowTokens] };
}

export async function writePredictions(path: string, predictions: RecordedPredictions): Promise<void> {
  await writeAtomically(path, (tmp) => writeFile(tmp, JSON.stringify(predictions)));
}

/** A run's predictions from its artifacts, or null when it has none (or an unreadable one). */
export function readPredictions(artifacts: readonly { name: string; path: string }[]): RecordedPredictions | null {
  const file = artifacts.find((a) => a.name === PREDICTIONS_ARTIFACT);
  if (!file) return null;
  try {
    const p = JSON.parse(readFileSync(file.path, 'utf8')) as unknown;
    return isSamplePredictions(p) || isWindowLosses(p) ? p : null;
  } catch {
    return null;
  }
}

function isEvaluatedSamples(d: unknown, n: number): d is EvaluatedSamples {
  if (typeof d !== 'object' || d === null) return false;
  const o = d as Record<string, unknown>;
  return typeof o['path'] === 'string' && typeof o['preprocess'] === 'string' && Number.isInteger(o['offset']) && o['n'] === n;
}

function isWindowLosses(p: unknown): p is WindowLosses {
  if (typeof p !== 'object' || p === null) return false;
  const o = p as Record<string, unknown>;
  const nll = o['nll'], tokens = o['tokens'];
  return o['version'] === 1 && o['kind'] === 'next-token' &&
    Array.isArray(nll) && nll.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0) &&
    Array.isArray(tokens) && tokens.length === nll.length && tokens.every((v) => Number.isInteger(v) && v >= 0) &&
    isEvaluatedSamples(o['data'], nll.length);
}

/** The file's shape checked field by field: an artifact edited by hand pairs with nothing rather than breaking a comparison. */
function isSamplePredictions(p: unknown): p is SamplePredictions {
  if (typeof p !== 'object' || p === null) return false;
  const o = p as Record<string, unknown>;
  const classes = (v: unknown): v is number[] => Array.isArray(v) && v.every((c) => Number.isInteger(c));
  if (o['version'] !== 1 || (o['kind'] !== undefined && o['kind'] !== 'classes') || !classes(o['top1'])) return false;
  const n = o['top1'].length;
  return isEvaluatedSamples(o['data'], n) &&
    (o['reference'] === null || typeof o['reference'] === 'string') &&
    (o['labels'] === null || (classes(o['labels']) && o['labels'].length === n)) &&
    (o['referenceTop1'] === null || (classes(o['referenceTop1']) && o['referenceTop1'].length === n));
}

export interface PairedResult {
  /** 'accuracy' (right against the labels) or 'agreement' (the reference's top-1). */
  metric: 'accuracy' | 'agreement';
  /** Index of the run compared with the first (0-based, into the compared runs). */
  run: number;
  n: number;
  /** Samples both get right, only the base run, only this run, neither. */
  both: number;
  onlyBase: number;
  onlyRun: number;
  neither: number;
  /** This run's share minus the base's (fraction). */
  difference: number;
  /** Exact two-sided McNemar test on the discordant samples (binomial, p = ½); 1 when there are none. */
  pValue: number;
}

/**
 * Each run against the first, sample by sample, wherever both were evaluated on the same samples
 * (same data file, offset, count and preprocessing; the same labels) — and, for agreement, against
 * the same reference with the same reference predictions. Runs without predictions are left out.
 */
export function pairedComparisons(runs: readonly (RecordedPredictions | null)[]): PairedResult[] {
  const base = classPredictions(runs[0]);
  if (!base) return [];
  const out: PairedResult[] = [];
  runs.forEach((run, i) => {
    const other = classPredictions(run);
    if (i === 0 || !other || !sameSamples(base, other)) return;
    if (base.labels && other.labels) out.push(paired('accuracy', i, base.top1.map((c, s) => c === base.labels![s]), other.top1.map((c, s) => c === other.labels![s])));
    if (base.referenceTop1 && other.referenceTop1 && base.reference === other.reference && sameArray(base.referenceTop1, other.referenceTop1)) {
      out.push(paired('agreement', i, base.top1.map((c, s) => c === base.referenceTop1![s]), other.top1.map((c, s) => c === other.referenceTop1![s])));
    }
  });
  return out;
}

function classPredictions(p: RecordedPredictions | null | undefined): SamplePredictions | null {
  return p && p.kind !== 'next-token' ? p : null;
}

export interface PairedPerplexity {
  /** Index of the run compared with the first (0-based, into the compared runs). */
  run: number;
  windows: number;
  tokens: number;
  basePerplexity: number;
  runPerplexity: number;
  /** runPerplexity / basePerplexity, and its 95 % interval from a bootstrap over windows. */
  ratio: number;
  low: number;
  high: number;
  /** Windows this run predicts worse (higher NLL) and better than the base. */
  worse: number;
  better: number;
  /** Exact two-sided sign test on the windows that differ. */
  pValue: number;
}

/** Resamples behind the perplexity ratio's interval: the 2.5 and 97.5 percentiles move by < 0.1 % of the ratio's spread at this count. */
export const BOOTSTRAP_RESAMPLES = 4000;

/**
 * Each language-model run against the first, window by window, where both scored the same windows
 * of the same token file: the perplexity ratio with a 95 % bootstrap interval over windows (windows,
 * not positions, are the independent-enough unit) and the sign test on which windows got worse.
 */
export function pairedPerplexities(runs: readonly (RecordedPredictions | null)[]): PairedPerplexity[] {
  const base = runs[0];
  if (!base || base.kind !== 'next-token') return [];
  const out: PairedPerplexity[] = [];
  runs.forEach((other, i) => {
    if (i === 0 || !other || other.kind !== 'next-token' || !sameData(base.data, other.data) || !sameArray(base.tokens, other.tokens)) return;
    out.push(pairWindows(i, base, other));
  });
  return out;
}

function pairWindows(run: number, base: WindowLosses, other: WindowLosses): PairedPerplexity {
  const n = base.nll.length;
  const diff = new Float64Array(n);
  let tokens = 0, baseNll = 0, runNll = 0, worse = 0, better = 0;
  for (let w = 0; w < n; w++) {
    diff[w] = other.nll[w]! - base.nll[w]!;
    tokens += base.tokens[w]!;
    baseNll += base.nll[w]!;
    runNll += other.nll[w]!;
    if (diff[w]! > 0) worse++;
    else if (diff[w]! < 0) better++;
  }
  const ratios = new Float64Array(BOOTSTRAP_RESAMPLES);
  // a fixed seed: the same interval on every run of the comparison
  const random = seededRandom(0x5eed);
  for (let r = 0; r < BOOTSTRAP_RESAMPLES; r++) {
    let d = 0, t = 0;
    for (let k = 0; k < n; k++) {
      const w = Math.floor(random() * n);
      d += diff[w]!;
      t += base.tokens[w]!;
    }
    ratios[r] = t > 0 ? Math.exp(d / t) : 1;
  }
  ratios.sort();
  const at = (q: number) => ratios[Math.min(BOOTSTRAP_RESAMPLES - 1, Math.floor(q * BOOTSTRAP_RESAMPLES))]!;
  const perplexity = (nll: number) => (tokens > 0 ? Math.exp(nll / tokens) : NaN);
  return {
    run, windows: n, tokens, basePerplexity: perplexity(baseNll), runPerplexity: perplexity(runNll),
    ratio: tokens > 0 ? Math.exp((runNll - baseNll) / tokens) : 1, low: at(0.025), high: at(0.975),
    worse, better, pValue: mcnemarExact(worse, better),
  };
}

/** Both sample-by-sample comparisons over recorded runs, each read from its `predictions.json` artifact. */
export function pairRuns(runs: readonly { artifacts: readonly { name: string; path: string }[] }[]): { paired: PairedResult[]; pairedPerplexity: PairedPerplexity[] } {
  const recorded = runs.map((r) => readPredictions(r.artifacts));
  return { paired: pairedComparisons(recorded), pairedPerplexity: pairedPerplexities(recorded) };
}

function sameData(d: EvaluatedSamples, e: EvaluatedSamples): boolean {
  return d.path === e.path && d.offset === e.offset && d.n === e.n && d.preprocess === e.preprocess;
}

function sameSamples(a: SamplePredictions, b: SamplePredictions): boolean {
  return sameData(a.data, b.data) && a.top1.length === b.top1.length && (a.labels === null || b.labels === null || sameArray(a.labels, b.labels));
}

function sameArray(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function paired(metric: PairedResult['metric'], run: number, base: boolean[], other: boolean[]): PairedResult {
  let both = 0, onlyBase = 0, onlyRun = 0, neither = 0;
  for (let s = 0; s < base.length; s++) {
    if (base[s] && other[s]) both++;
    else if (base[s]) onlyBase++;
    else if (other[s]) onlyRun++;
    else neither++;
  }
  return { metric, run, n: base.length, both, onlyBase, onlyRun, neither, difference: (onlyRun - onlyBase) / base.length, pValue: mcnemarExact(onlyBase, onlyRun) };
}

/**
 * Two-sided exact McNemar p-value: twice the lower tail of Binomial(b + c, ½) at min(b, c), capped
 * at 1; terms summed in log space so that thousands of discordant samples do not underflow.
 */
export function mcnemarExact(b: number, c: number): number {
  const n = b + c;
  if (n === 0) return 1;
  const k = Math.min(b, c);
  let logTerm = -n * Math.LN2; // C(n, 0) / 2^n
  let tail = Math.exp(logTerm);
  for (let i = 0; i < k; i++) {
    logTerm += Math.log((n - i) / (i + 1));
    tail += Math.exp(logTerm);
  }
  return Math.min(1, 2 * tail);
}
