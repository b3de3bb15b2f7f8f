import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { WhittleError } from '../../api/errors.ts';
import { seededRandom } from '../../native-models/ir/random.ts';
import type { TfModule } from '../../native-models/runtimes/tfjs.ts';
import type { PassContext } from '../passes/pass.ts';
import type { MaskApplier } from './masks.ts';

/**
 * The training loop every workflow here shares: seeded shuffling (model.fit shuffles with
 * Math.random, so it cannot be reproduced), one optimizer step per batch through the model's own
 * compiled optimizer and loss, masks re-applied after every step, and cancellation checked
 * between batches.
 */

/** Training context: a pass's (progress, cancellation, seed); createPassContext() makes one. */
export type TrainContext = Pick<PassContext, 'signal' | 'progress' | 'seed' | 'checkpoint'>;

/** Samples along the first axis of both tensors. */
export interface TrainData {
  x: Tensor;
  y: Tensor;
}

export interface FitOptions {
  epochs: number;
  batchSize: number;
  /** Progress phase name (default 'train'). */
  phase?: string;
  /** Re-applied after every optimizer step (and once before the first). */
  masks?: MaskApplier | null;
  /** Called before each optimizer step with the step number, counted from 0 in this fit. */
  beforeStep?: (step: number) => void;
  /** Called after each optimizer step (and its masking) with the number of steps taken so far. */
  afterStep?: (stepsDone: number) => void;
  /** Called after each epoch with its mean loss; returning true stops training there. */
  afterEpoch?: (epoch: number, loss: number) => boolean | void | Promise<boolean | void>;
}

export interface FitReport {
  epochs: number;
  steps: number;
  /** Mean training loss of the last epoch. */
  loss: number;
  stoppedEarly: boolean;
}

export function sampleCount(data: TrainData): number {
  const n = data.x.shape[0] ?? 0;
  if (data.y.shape[0] !== n) throw new WhittleError('BAD_USAGE', `x holds ${n} samples but y holds ${data.y.shape[0]}`);
  return n;
}

/** Fisher–Yates over 0..n-1 with a seeded generator. */
export function shuffledOrder(n: number, random: () => number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** Trains a compiled model in place. Same model, data, options and ctx.seed → the same weights. */
export async function fit(tf: TfModule, model: LayersModel, data: TrainData, options: FitOptions, ctx: TrainContext): Promise<FitReport> {
  if (!model.optimizer) throw new WhittleError('BAD_USAGE', 'the model must be compiled (optimizer and loss) before training');
  if (!(options.epochs >= 0 && options.batchSize >= 1)) throw new WhittleError('BAD_USAGE', `epochs must be ≥ 0 and batchSize ≥ 1, got ${options.epochs} and ${options.batchSize}`);
  const n = sampleCount(data);
  const perEpoch = Math.ceil(n / options.batchSize);
  const phase = options.phase ?? 'train';
  const random = seededRandom(ctx.seed ^ 0x2545f491);
  options.masks?.apply();
  let step = 0;
  let loss = NaN;
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    const order = shuffledOrder(n, random);
    let sum = 0;
    for (let b = 0; b < perEpoch; b++) {
      ctx.checkpoint();
      options.beforeStep?.(step);
      const idx = tf.tensor1d(order.subarray(b * options.batchSize, Math.min(n, (b + 1) * options.batchSize)), 'int32');
      const xb = tf.gather(data.x, idx);
      const yb = tf.gather(data.y, idx);
      try {
        const out = await model.trainOnBatch(xb, yb);
        sum += Array.isArray(out) ? out[0]! : out;
      } finally {
        tf.dispose([idx, xb, yb]);
      }
      options.masks?.apply();
      step++;
      options.afterStep?.(step);
      ctx.progress(phase, step, options.epochs * perEpoch);
    }
    loss = sum / perEpoch;
    if (!Number.isFinite(loss)) throw new WhittleError('RUNTIME', `training diverged: the loss is ${loss} after epoch ${epoch + 1}`);
    if (await options.afterEpoch?.(epoch, loss)) return { epochs: epoch + 1, steps: step, loss, stoppedEarly: true };
  }
  return { epochs: options.epochs, steps: step, loss, stoppedEarly: false };
}
