import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import type { TfModule } from '../../runtimes/tfjs.ts';
import { initialiseSeeded } from '../../../core/train/init.ts';
import type { Boards } from './life.ts';

/**
 * The convolutional networks of Springer & Kenyon, "It's hard for neural networks to learn the
 * Game of Life" (2020). One step of Life is one block: a 3×3 convolution with 2m filters and ReLU
 * (it sees the cell and its 8 neighbours), then a 1×1 convolution with m filters and ReLU; n steps
 * stack n blocks; a 1×1 convolution and a sigmoid read out the final board. m = 1 is the minimal
 * network that can represent the rule (25 parameters for one step); m > 1 is overcomplete.
 */
export interface LifeNetSpec {
  /** n: Life steps the network predicts. */
  steps: number;
  /** m: how many times the minimal network's filters. */
  multiplier: number;
  /** Adam's learning rate. */
  learningRate: number;
}

/** A compiled network for boards of any size (NHWC, one channel), weights drawn from `seed`. */
export function buildLifeNet(tf: TfModule, spec: LifeNetSpec, seed: number): LayersModel {
  const { steps, multiplier: m } = spec;
  const model = tf.sequential();
  for (let s = 1; s <= steps; s++) {
    model.add(tf.layers.conv2d({
      ...(s === 1 ? { inputShape: [null, null, 1] as number[] } : {}),
      filters: 2 * m, kernelSize: 3, padding: 'same', activation: 'relu', name: `step${s}_conv3x3`,
      kernelInitializer: 'zeros',
    }));
    model.add(tf.layers.conv2d({ filters: m, kernelSize: 1, activation: 'relu', name: `step${s}_conv1x1`, kernelInitializer: 'zeros' }));
  }
  model.add(tf.layers.conv2d({ filters: 1, kernelSize: 1, activation: 'sigmoid', name: 'readout', kernelInitializer: 'zeros' }));
  initialiseSeeded(tf, model, seed);
  model.compile({ optimizer: tf.train.adam(spec.learningRate), loss: 'binaryCrossentropy' });
  return model;
}

/** Parameters of the network (kernels and biases), without building it. */
export function lifeNetParameters(steps: number, m: number): number {
  const block = (inChannels: number) => 9 * inChannels * 2 * m + 2 * m + 2 * m * m + m;
  let n = block(1);
  for (let s = 2; s <= steps; s++) n += block(m);
  return n + m + 1;
}

/** Boards as an NHWC float tensor of 0/1. */
export function boardTensor(tf: TfModule, boards: Boards): Tensor {
  return tf.tensor4d(Float32Array.from(boards.cells), [boards.count, boards.size, boards.size, 1]);
}

/** Mean binary cross-entropy of the network's predictions (the training loss, on fixed boards). */
export function crossEntropy(tf: TfModule, model: LayersModel, input: Boards, expected: Boards): number {
  return tf.tidy(() => {
    const loss = tf.metrics.binaryCrossentropy(boardTensor(tf, expected), model.predict(boardTensor(tf, input)) as Tensor);
    return loss.mean().dataSync()[0]!;
  });
}

export interface CellScore {
  cells: number;
  wrong: number;
  accuracy: number;
  /** Boards with every cell right. */
  boardsRight: number;
  boards: number;
}

/** Thresholds the network's output at 0.5 and compares it with the true next boards. */
export function scoreCells(tf: TfModule, model: LayersModel, input: Boards, expected: Boards, batch = 64): CellScore {
  const per = input.size * input.size;
  let wrong = 0;
  let boardsRight = 0;
  for (let start = 0; start < input.count; start += batch) {
    const count = Math.min(batch, input.count - start);
    const predicted = tf.tidy(() => {
      const x = tf.tensor4d(Float32Array.from(input.cells.subarray(start * per, (start + count) * per)), [count, input.size, input.size, 1]);
      return (model.predict(x) as Tensor).greater(0.5).dataSync();
    });
    for (let b = 0; b < count; b++) {
      let boardWrong = 0;
      for (let i = 0; i < per; i++) if (predicted[b * per + i] !== expected.cells[(start + b) * per + i]) boardWrong++;
      wrong += boardWrong;
      if (boardWrong === 0) boardsRight++;
    }
  }
  const cells = input.count * per;
  return { cells, wrong, accuracy: 1 - wrong / cells, boardsRight, boards: input.count };
}
