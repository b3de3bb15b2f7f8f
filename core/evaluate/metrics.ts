import { WhittleError } from '../../api/errors.ts';

/**
 * Streaming evaluation metrics: feed batches with `update`, read `result()` at any time. Memory does
 * not grow with the number of samples. Pure arithmetic (float64 accumulators), no runtime imports.
 *
 * Scores are float32/float64 only: float16 outputs arrive as raw bits, so decode them first
 * (`toFloatScores` in native-models/runtimes/host-tensor.ts); the types refuse a Uint16Array.
 */
export interface Scores {
  dims: readonly number[];
  data: Float32Array | Float64Array;
}

/**
 * [batch, classes] from dims like [batch, classes], [batch, classes, 1, 1] (Caffe-style heads) or
 * [classes] (one sample); null when the output is not one score vector per sample.
 */
export function classifierShape(dims: readonly number[]): { batch: number; classes: number } | null {
  if (dims.length === 1) return { batch: 1, classes: dims[0]! };
  if (dims.length < 2 || dims.slice(2).some((d) => d !== 1)) return null;
  return { batch: dims[0]!, classes: dims[1]! };
}

function requireClassifier(what: string, s: Scores): { batch: number; classes: number } {
  const shape = classifierShape(s.dims);
  if (!shape) throw new WhittleError('BAD_INPUT', `${what} needs scores shaped [batch, classes] (trailing 1s allowed), got [${s.dims.join(',')}]`);
  if (s.data.length !== shape.batch * shape.classes) throw new WhittleError('BAD_INPUT', `${what}: dims [${s.dims.join(',')}] do not match ${s.data.length} values`);
  return shape;
}

/** First index of the largest score; NaN never wins; -1 when every score is NaN. */
export function argmax(data: Float32Array | Float64Array, start: number, length: number): number {
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < length; i++) {
    const v = data[start + i]!;
    if (v > bestValue || (best === -1 && v === -Infinity)) { best = i; bestValue = v; }
  }
  return best;
}

/**
 * The label's 0-based rank: how many classes come before it in a stable descending sort (ties are
 * broken by class index, as numpy's argsort(-x, kind='stable') does). A NaN label score is never
 * counted as correct, even when there are fewer than k classes.
 */
function labelRank(data: Float32Array | Float64Array, start: number, classes: number, label: number): number {
  const target = data[start + label]!;
  if (Number.isNaN(target)) return Infinity;
  let rank = 0;
  for (let c = 0; c < classes; c++) {
    const v = data[start + c]!;
    if (v > target || (v === target && c < label)) rank++;
  }
  return rank;
}

export interface TopKResult {
  /** Fractions in [0, 1]. */
  top1: number;
  top5: number;
  n: number;
  correct1: number;
  correct5: number;
  /**
   * The 95 % Wilson interval of top1 (two numbers, not a pair, so a run's stored metrics keep
   * them): on 100 images one image is a point, and the interval says so.
   */
  top1Low: number;
  top1High: number;
}

function top1Bounds(successes: number, n: number): { top1Low: number; top1High: number } {
  const [top1Low, top1High] = wilsonInterval(successes, n);
  return { top1Low, top1High };
}

/**
 * The 95 % Wilson score interval of a proportion (successes of n independent trials). Unlike the
 * normal approximation it stays inside [0, 1] and is honest at 0 % and 100 %: 100 of 100 agreeing
 * is 96.3–100 %, not 100 ± 0.
 */
export function wilsonInterval(successes: number, n: number): [number, number] {
  if (n <= 0) return [0, 1];
  const z = 1.959963984540054;
  const p = successes / n;
  const z2n = (z * z) / n;
  const centre = (p + z2n / 2) / (1 + z2n);
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / (1 + z2n);
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/**
 * Whether every label names one of the model's classes. When not, the labels belong to another label
 * set (ImageNet photos through a 10-class model): the evaluators then give predictions and agreement
 * only, with `foreignLabelsWarning`, instead of failing mid-run.
 */
export function labelsFit(labels: Int32Array, classes: number): boolean {
  return labels.every((l) => l >= 0 && l < classes);
}

export function foreignLabelsWarning(dataPath: string, classes: number): string {
  return `${dataPath}: its labels go beyond the model's ${classes} classes, so no accuracy is computed (predictions only)`;
}

/** Top-1/top-5 accuracy from logits or probabilities (either works: ranks are what count). */
export class TopKAccuracy {
  private n = 0;
  private correct1 = 0;
  private correct5 = 0;

  update(scores: Scores, labels: Int32Array): void {
    const { batch, classes } = requireClassifier('top-k accuracy', scores);
    if (labels.length !== batch) throw new WhittleError('BAD_INPUT', `top-k accuracy: ${batch} score rows but ${labels.length} labels`);
    for (let b = 0; b < batch; b++) {
      const label = labels[b]!;
      if (label < 0 || label >= classes) throw new WhittleError('BAD_INPUT', `label ${label} is outside the model's ${classes} classes`);
      const rank = labelRank(scores.data, b * classes, classes, label);
      if (rank < 1) this.correct1++;
      if (rank < 5) this.correct5++;
    }
    this.n += batch;
  }

  /** null before any sample (SPEC: `accuracy: null`). */
  result(): TopKResult | null {
    if (this.n === 0) return null;
    return { top1: this.correct1 / this.n, top5: this.correct5 / this.n, n: this.n, correct1: this.correct1, correct5: this.correct5, ...top1Bounds(this.correct1, this.n) };
  }
}

export interface NextTokenResult {
  /** exp of the mean cross-entropy: the held-out perplexity over every predicted position. */
  perplexity: number;
  /** Mean cross-entropy in nats per token. */
  nllPerToken: number;
  /** Share of positions whose highest-scoring token is the next one. */
  top1: number;
  /** Positions scored: (window length − 1) per window. */
  tokens: number;
}

/** Whether scores are a language model's [batch, positions, vocabulary] for these [batch, positions] tokens. */
export function isSequenceScores(tokens: { dims: readonly number[] } | undefined, scores: { dims: readonly number[] }): boolean {
  return tokens !== undefined && scores.dims.length === 3 && scores.dims[0] === tokens.dims[0] && scores.dims[1] === tokens.dims[1];
}

/**
 * Next-token metrics of a language model over windows of tokens: position t of a window predicts
 * token t + 1 of the same window (the last position has nothing to predict). Scores are logits
 * [batch, positions, vocabulary] (log-probabilities work the same), or probabilities when the
 * model's output comes out of a Softmax (`probabilities`).
 */
export class NextTokenMetrics {
  private nll = 0;
  private correct = 0;
  private tokens = 0;
  /** Each window's summed NLL (nats) and scored positions, in data order: what pairs two runs window by window. */
  readonly windowNll: number[] = [];
  readonly windowTokens: number[] = [];

  constructor(private readonly probabilities = false) {}

  update(tokens: ArrayLike<number | bigint>, tokenDims: readonly number[], scores: Scores): void {
    const [batch, positions, vocab] = scores.dims as [number, number, number];
    if (scores.dims.length !== 3 || tokenDims[0] !== batch || tokenDims[1] !== positions) {
      throw new WhittleError('BAD_INPUT', `next-token metrics need scores [batch, positions, vocabulary] for tokens [${tokenDims.join(',')}], got [${scores.dims.join(',')}]`);
    }
    const d = scores.data;
    for (let b = 0; b < batch; b++) {
      let windowNll = 0;
      for (let t = 0; t + 1 < positions; t++) {
        const next = Number(tokens[b * positions + t + 1]!);
        if (!(next >= 0 && next < vocab)) throw new WhittleError('BAD_INPUT', `token ${next} is outside the model's vocabulary of ${vocab}`);
        const off = (b * positions + t) * vocab;
        let logP: number;
        if (this.probabilities) logP = Math.log(d[off + next]!);
        else {
          let max = -Infinity;
          for (let v = 0; v < vocab; v++) if (d[off + v]! > max) max = d[off + v]!;
          let z = 0;
          for (let v = 0; v < vocab; v++) z += Math.exp(d[off + v]! - max);
          logP = d[off + next]! - max - Math.log(z);
        }
        windowNll -= logP;
        if (labelRank(d, off, vocab, next) < 1) this.correct++;
        this.tokens++;
      }
      this.nll += windowNll;
      this.windowNll.push(windowNll);
      this.windowTokens.push(Math.max(0, positions - 1));
    }
  }

  /** null before any position. */
  result(): NextTokenResult | null {
    if (this.tokens === 0) return null;
    const nll = this.nll / this.tokens;
    return { perplexity: Math.exp(nll), nllPerToken: nll, top1: this.correct / this.tokens, tokens: this.tokens };
  }
}

export interface AgreementResult {
  /** Share of samples (positions, for [batch, positions, classes]) whose argmax matches the reference's; null when outputs are not score vectors. */
  top1: number | null;
  /**
   * Output SQNR in dB, 10·log10(Σref² / Σ(ref−x)²) over every value of every sample. JSON has no
   * Infinity: when the outputs are identical (no noise) this is null and `identical` is true; it is
   * also null when the reference is all zeros and the outputs differ (the ratio is 0, i.e. −∞ dB).
   */
  sqnrDb: number | null;
  identical: boolean;
  /**
   * The 95 % Wilson interval of top1 and the count behind it, for one prediction per sample; null
   * for per-position agreement (a window's positions are not independent trials) or when top1 is null.
   */
  top1Low: number | null;
  top1High: number | null;
  agreed: number | null;
  /** Cosine similarity of the flattened outputs (1 when both are all zeros, 0 when only one is). */
  cosine: number;
  maxAbsDiff: number;
  /** Samples and values compared. */
  n: number;
  values: number;
  /** Value pairs where either side was NaN or ±Infinity; they are left out of the sums above. */
  nonFinite: number;
}

/** How far a model's outputs are from a reference model's outputs on the same inputs. */
export class Agreement {
  private samples = 0;
  private classified = 0;
  private agreed = 0;
  private perSampleTop1 = true;
  private perPosition = false;
  private values = 0;
  private nonFinite = 0;
  private signal = 0; // Σ ref²
  private noise = 0; // Σ (ref − x)²
  private candidateEnergy = 0; // Σ x²
  private dot = 0; // Σ ref·x
  private maxAbsDiff = 0;

  update(reference: Scores, candidate: Scores): void {
    if (reference.dims.join(',') !== candidate.dims.join(',') || reference.data.length !== candidate.data.length) {
      throw new WhittleError('BAD_INPUT', `agreement: output shapes differ, reference [${reference.dims.join(',')}] vs [${candidate.dims.join(',')}]`);
    }
    const r = reference.data;
    const x = candidate.data;
    for (let i = 0; i < r.length; i++) {
      const a = r[i]!;
      const b = x[i]!;
      if (!Number.isFinite(a) || !Number.isFinite(b)) { this.nonFinite++; continue; }
      const d = a - b;
      this.signal += a * a;
      this.noise += d * d;
      this.candidateEnergy += b * b;
      this.dot += a * b;
      if (Math.abs(d) > this.maxAbsDiff) this.maxAbsDiff = Math.abs(d);
    }
    this.values += r.length;

    // [batch, classes] (trailing 1s allowed), else a sequence model's [batch, positions, classes]: each position is one prediction
    const perPosition = classifierShape(reference.dims) === null && reference.dims.length === 3;
    if (perPosition) this.perPosition = true;
    const shape = perPosition ? { batch: reference.dims[0]! * reference.dims[1]!, classes: reference.dims[2]! } : classifierShape(reference.dims);
    if (!shape || shape.batch * shape.classes !== r.length) {
      this.perSampleTop1 = false;
      this.samples += reference.dims[0] ?? 1;
      return;
    }
    for (let s = 0; s < shape.batch; s++) {
      const want = argmax(r, s * shape.classes, shape.classes);
      if (want !== -1 && want === argmax(x, s * shape.classes, shape.classes)) this.agreed++;
    }
    this.classified += shape.batch;
    this.samples += perPosition ? reference.dims[0]! : shape.batch;
  }

  /** null before any values. */
  result(): AgreementResult | null {
    if (this.values === 0) return null;
    const identical = this.noise === 0 && this.nonFinite === 0;
    const sqnrDb = this.noise > 0 && this.signal > 0 ? 10 * Math.log10(this.signal / this.noise) : null;
    const norms = Math.sqrt(this.signal) * Math.sqrt(this.candidateEnergy);
    // Clamped: rounding can push the ratio of identical vectors a hair past 1.
    const cosine = norms > 0 ? Math.max(-1, Math.min(1, this.dot / norms)) : this.signal === 0 && this.candidateEnergy === 0 ? 1 : 0;
    return {
      top1: this.perSampleTop1 && this.classified > 0 ? this.agreed / this.classified : null,
      ...(this.perSampleTop1 && this.classified > 0 && !this.perPosition ? top1Bounds(this.agreed, this.classified) : { top1Low: null, top1High: null }),
      agreed: this.perSampleTop1 && this.classified > 0 ? this.agreed : null,
      sqnrDb,
      identical,
      cosine,
      maxAbsDiff: this.maxAbsDiff,
      n: this.samples,
      values: this.values,
      nonFinite: this.nonFinite,
    };
  }
}
