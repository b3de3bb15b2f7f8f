import { seededRandom } from '../../ir/random.ts';
import { calibrationWindows, sampleBatch, windows, type Corpus } from './corpus.ts';
import { adamState, adamStep, backward, forward, initParams, parameterCount, Workspace, zerosLike, type Params, type TransformerSpec } from './model.ts';

/**
 * Training recipe of the test bed: AdamW (β 0.9/0.99, weight decay 0.01 on the matrices, gradient
 * norm clipped at 1), a linear warm-up then cosine decay to a tenth of the peak rate, batches of
 * windows at seeded random offsets of the training text. Everything is seeded: the same options
 * give the same weights, bit for bit.
 */
export interface TrainOptions {
  spec: Omit<TransformerSpec, 'vocab'>;
  steps: number;
  batch: number;
  learningRate: number;
  warmup: number;
  seed: number;
}

export const DEFAULT_TRAIN: TrainOptions = {
  spec: { context: 64, dModel: 128, heads: 4, layers: 2, ffn: 256 },
  steps: 500,
  batch: 16,
  learningRate: 3e-3,
  warmup: 50,
  seed: 1,
};

/** Learning rate at step s (0-based). */
export function learningRateAt(o: TrainOptions, s: number): number {
  if (s < o.warmup) return (o.learningRate * (s + 1)) / o.warmup;
  const t = (s - o.warmup) / Math.max(1, o.steps - o.warmup);
  return o.learningRate * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * t)));
}

export interface TrainResult {
  spec: TransformerSpec;
  params: Params;
  /** Training loss averaged over each logged stretch of steps: [step, loss]. */
  curve: [number, number][];
  seconds: number;
}

export function train(corpus: Corpus, o: TrainOptions, log: (line: string) => void = () => {}): TrainResult {
  const spec: TransformerSpec = { vocab: corpus.vocab.length, ...o.spec };
  const p = initParams(spec, o.seed);
  const g = zerosLike(spec);
  const state = adamState(p);
  const T = spec.context;
  const ws = new Workspace(spec, o.batch, T, true);
  const inputs = new Int32Array(o.batch * T);
  const targets = new Int32Array(o.batch * T);
  const random = seededRandom(o.seed + 1000);
  const curve: [number, number][] = [];
  const every = Math.max(1, Math.floor(o.steps / 20));
  let sum = 0, n = 0;
  const t0 = performance.now();
  log(`training ${parameterCount(spec).toLocaleString('en-US')} parameters: ${o.steps} steps of ${o.batch}×${T} tokens`);
  for (let s = 0; s < o.steps; s++) {
    sampleBatch(corpus.train, T, o.batch, random, inputs, targets);
    const f = forward(spec, p, ws, inputs, targets);
    backward(spec, p, ws, inputs, targets, g);
    adamStep(p, g, state, learningRateAt(o, s));
    sum += f.loss;
    n++;
    if ((s + 1) % every === 0 || s + 1 === o.steps) {
      curve.push([s + 1, sum / n]);
      log(`step ${s + 1}/${o.steps}  loss ${(sum / n).toFixed(4)}  ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      sum = 0;
      n = 0;
    }
  }
  return { spec, params: p, curve, seconds: (performance.now() - t0) / 1000 };
}

/** Perplexity of the model (the JavaScript forward pass) over windows of held-back tokens. */
export function jsPerplexity(spec: TransformerSpec, p: Params, tokens: Int32Array, batch = 16): { perplexity: number; nll: number; tokens: number } {
  const T = spec.context;
  const w = windows(tokens, T);
  let nll = 0, count = 0;
  for (let i = 0; i < w.count; i += batch) {
    const b = Math.min(batch, w.count - i);
    const ws = new Workspace(spec, b, T, false);
    const r = forward(spec, p, ws, w.inputs.subarray(i * T, (i + b) * T), w.targets.subarray(i * T, (i + b) * T));
    nll += r.nll;
    count += r.count;
  }
  return { perplexity: Math.exp(nll / count), nll: nll / count, tokens: count };
}

/** Calibration windows for GPTQ / Wanda / SparseGPT: from the training text, seeded. */
export function calibrationSet(corpus: Corpus, context: number, count = 128, seed = 7): Int32Array {
  return calibrationWindows(corpus.train, context, count, seed);
}
