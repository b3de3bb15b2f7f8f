import type { LayersModel } from '@tensorflow/tfjs';
import type { TfModule } from '../../native-models/runtimes/tfjs.ts';
import { readValues } from './masks.ts';

/**
 * After unstructured pruning some units (filters, neurons) no longer matter, but their leftover
 * weights still count as parameters. This removes them without changing what the model computes:
 *  - a unit whose outgoing weights are all zero is dead: its incoming kernel and bias become zero;
 *  - a unit whose incoming kernel is all zero outputs the constant act(bias) everywhere: when the
 *    next layer is pointwise (Dense, 1×1 convolution) that constant is folded into the next layer's
 *    bias and the unit becomes dead (exact up to float rounding of the folded sum).
 * It works on consecutive layers that both have a kernel and a bias (Sequential Dense/Conv2D
 * stacks) and repeats until nothing changes. Returns how many units it removed.
 */
export function removeDeadUnits(tf: TfModule, model: LayersModel): number {
  const layers = model.layers.filter((l) => l.weights.length === 2 && /kernel/.test(l.weights[0]!.originalName) && /bias/.test(l.weights[1]!.originalName));
  let removed = 0;
  for (let changed = true; changed;) {
    changed = false;
    for (let i = 0; i + 1 < layers.length; i++) {
      const from = layers[i]!;
      const to = layers[i + 1]!;
      if (model.layers.indexOf(to) !== model.layers.indexOf(from) + 1) continue; // something in between
      const [kFrom, bFrom] = from.weights.map(readValues) as [Float32Array, Float32Array];
      const [kTo, bTo] = to.weights.map(readValues) as [Float32Array, Float32Array];
      const units = bFrom.length;
      const toShape = to.weights[0]!.shape as number[];
      if (toShape[toShape.length - 2] !== units) continue;
      const outs = toShape[toShape.length - 1]!;
      const spatial = kTo.length / (units * outs);
      const activation = String(from.getConfig().activation ?? 'linear');
      const constantOf = activation === 'relu' ? (b: number) => Math.max(0, b) : activation === 'linear' ? (b: number) => b : null;
      let touched = false;
      for (let j = 0; j < units; j++) {
        let outgoing = false;
        for (let s = 0; s < spatial && !outgoing; s++) for (let o = 0; o < outs; o++) if (kTo[(s * units + j) * outs + o] !== 0) { outgoing = true; break; }
        let incoming = false;
        for (let p = j; p < kFrom.length; p += units) if (kFrom[p] !== 0) { incoming = true; break; }
        if (!outgoing) {
          if (!incoming && bFrom[j] === 0) continue; // already gone
          for (let p = j; p < kFrom.length; p += units) kFrom[p] = 0;
          bFrom[j] = 0;
        } else if (!incoming && spatial === 1 && constantOf) {
          const c = constantOf(bFrom[j]!);
          for (let o = 0; o < outs; o++) {
            bTo[o]! += c * kTo[j * outs + o]!;
            kTo[j * outs + o] = 0;
          }
          bFrom[j] = 0;
        } else continue;
        removed++;
        touched = true;
      }
      if (touched) {
        changed = true;
        tf.tidy(() => {
          from.setWeights([tf.tensor(kFrom, from.weights[0]!.shape as number[]), tf.tensor(bFrom, [units])]);
          to.setWeights([tf.tensor(kTo, toShape), tf.tensor(bTo, [outs])]);
        });
      }
    }
  }
  return removed;
}

/** Elements of every weight, and how many of them are not zero. */
export function countParameters(model: LayersModel): { parameters: number; nonzero: number } {
  let parameters = 0;
  let nonzero = 0;
  for (const w of model.weights) {
    const v = w.read().dataSync();
    parameters += v.length;
    for (let i = 0; i < v.length; i++) if (v[i] !== 0) nonzero++;
  }
  return { parameters, nonzero };
}
