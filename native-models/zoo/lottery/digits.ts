import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { badInput } from '../../../api/errors.ts';
import type { TfModule } from '../../runtimes/tfjs.ts';
import { seededRandom } from '../../ir/random.ts';
import { openDataset } from '../../../core/evaluate/data/index.ts';
import { shuffledOrder, type TrainContext } from '../../../core/train/fit.ts';
import { initialiseSeeded } from '../../../core/train/init.ts';
import { iterativeMagnitudePrune, type ImpReport } from '../../../core/train/imp.ts';

/**
 * The lottery-ticket experiment on scikit-learn's digits (1,797 8×8 images, the fixture
 * `digits/`): a dense MLP, then iterative magnitude pruning with rewinding (core/train/imp.ts),
 * and at every round the rewound ticket against a random re-initialisation with the same mask.
 */
export interface LotteryOptions {
  /** digits_X.npy (labels.npy beside it), or the folder holding both. */
  data: string;
  /** Hidden layer widths of the MLP (input 64, output 10). */
  hidden: number[];
  /** Samples held out for testing, drawn by a fixed seeded permutation. */
  testSamples: number;
  /** Seed of the train/test split (fixed: every run uses the same split). */
  splitSeed: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  rounds: number;
  /** Share of the remaining weights pruned per round (per layer). */
  pruneFraction: number;
  /** Rewind to the weights after this many optimizer steps (0: the initialisation). */
  rewindStep: number;
  /** Network seeds: each runs the whole experiment; the table shows their mean. */
  seeds: number[];
}

export const LOTTERY_DEFAULTS: Omit<LotteryOptions, 'data'> = {
  hidden: [128, 64],
  testSamples: 597,
  splitSeed: 1797,
  epochs: 20,
  batchSize: 32,
  learningRate: 0.002,
  rounds: 9,
  pruneFraction: 0.2,
  rewindStep: 0,
  seeds: [0, 1, 2],
};

export interface DigitsSplit {
  train: { x: Tensor; y: Tensor };
  test: { x: Tensor; labels: Int32Array };
  trainCount: number;
}

/** Reads the digits fixture as float pixels / 16 and splits it with a seeded permutation. */
export async function loadDigits(tf: TfModule, path: string, testSamples: number, splitSeed: number): Promise<DigitsSplit> {
  const ds = await openDataset(path, [{ name: 'x', dtype: 'float32', shape: [null, 64] }]);
  if (!ds.hasLabels) throw badInput(ds.path, 'has no labels.npy beside it; the lottery experiment needs labels');
  const pixels = new Float32Array(ds.n * 64);
  const labels = new Int32Array(ds.n);
  for await (const b of ds.batches(512)) {
    pixels.set(b.inputs.x!.data as Float32Array, b.index * 64);
    labels.set(b.labels!, b.index);
  }
  if (testSamples >= ds.n) throw badInput(ds.path, `holds ${ds.n} samples, not enough to hold out ${testSamples} for testing`);
  const order = shuffledOrder(ds.n, seededRandom(splitSeed));
  const take = (idx: Int32Array) => {
    const x = new Float32Array(idx.length * 64);
    const y = new Int32Array(idx.length);
    idx.forEach((s, i) => {
      for (let j = 0; j < 64; j++) x[i * 64 + j] = pixels[s * 64 + j]! / 16;
      y[i] = labels[s]!;
    });
    return { x, y };
  };
  const trainPart = take(order.subarray(testSamples));
  const testPart = take(order.subarray(0, testSamples));
  const trainCount = trainPart.y.length;
  return {
    train: { x: tf.tensor2d(trainPart.x, [trainCount, 64]), y: tf.tidy(() => tf.oneHot(tf.tensor1d(trainPart.y, 'int32'), 10).toFloat()) },
    test: { x: tf.tensor2d(testPart.x, [testSamples, 64]), labels: testPart.y },
    trainCount,
  };
}

export function buildDigitsMlp(tf: TfModule, hidden: number[], learningRate: number, seed: number): LayersModel {
  const model = tf.sequential();
  hidden.forEach((units, i) => model.add(tf.layers.dense({
    ...(i === 0 ? { inputShape: [64] } : {}), units, activation: 'relu', kernelInitializer: 'zeros', name: `hidden${i + 1}`,
  })));
  model.add(tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: 'zeros', name: 'output' }));
  initialiseSeeded(tf, model, seed);
  model.compile({ optimizer: tf.train.adam(learningRate), loss: 'categoricalCrossentropy' });
  return model;
}

export function accuracy(tf: TfModule, model: LayersModel, x: Tensor, labels: Int32Array): number {
  const predicted = tf.tidy(() => (model.predict(x) as Tensor).argMax(-1).dataSync());
  let right = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) right++;
  return right / labels.length;
}

export interface LotteryRow {
  round: number;
  /** Kernel weights kept, and as a share of the dense network's. */
  kept: number;
  remaining: number;
  /** Mean test accuracy over the seeds (the dense network's on round 0). */
  ticket: number;
  random: number | null;
  /** Per seed, in `seeds` order. */
  ticketBySeed: number[];
  randomBySeed: (number | null)[];
}

export interface LotteryReport {
  options: LotteryOptions;
  parameters: number;
  weights: number;
  train: number;
  test: number;
  rows: LotteryRow[];
  runs: ImpReport[];
  seconds: number;
}

export async function runLottery(tf: TfModule, options: Partial<LotteryOptions> & { data: string }, ctx: TrainContext): Promise<LotteryReport> {
  const o: LotteryOptions = { ...LOTTERY_DEFAULTS, ...options };
  const started = performance.now();
  const split = await loadDigits(tf, o.data, o.testSamples, o.splitSeed);
  try {
    const runs: ImpReport[] = [];
    for (const seed of o.seeds) {
      ctx.checkpoint();
      runs.push(await iterativeMagnitudePrune(tf, {
        build: (s) => buildDigitsMlp(tf, o.hidden, o.learningRate, s),
        data: split.train,
        fit: { epochs: o.epochs, batchSize: o.batchSize },
        evaluate: (model) => accuracy(tf, model, split.test.x, split.test.labels),
        rounds: o.rounds,
        pruneFraction: o.pruneFraction,
        rewindStep: o.rewindStep,
        scope: 'layer',
      }, { ...ctx, seed, progress: (phase, done, total) => ctx.progress(`seed ${seed}: ${phase}`, done, total) }));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = runs[0]!;
    const rows: LotteryRow[] = [{
      round: 0, kept: first.dense.weights, remaining: 1,
      ticket: mean(runs.map((r) => r.dense.score)), random: null,
      ticketBySeed: runs.map((r) => r.dense.score), randomBySeed: runs.map(() => null),
    }];
    first.rounds.forEach((round, i) => {
      const ticketBySeed = runs.map((r) => r.rounds[i]!.ticket.score);
      const randomBySeed = runs.map((r) => r.rounds[i]!.random?.score ?? null);
      const randoms = randomBySeed.filter((v): v is number => v !== null);
      rows.push({ round: round.round, kept: round.kept, remaining: round.remaining, ticket: mean(ticketBySeed), random: randoms.length ? mean(randoms) : null, ticketBySeed, randomBySeed });
    });
    const sizes = [64, ...o.hidden, 10];
    const parameters = sizes.slice(1).reduce((n, units, i) => n + sizes[i]! * units + units, 0);
    return { options: o, parameters, weights: first.dense.weights, train: split.trainCount, test: o.testSamples, rows, runs, seconds: (performance.now() - started) / 1000 };
  } finally {
    tf.dispose([split.train.x, split.train.y, split.test.x]);
  }
}
