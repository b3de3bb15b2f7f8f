import type { LayersModel } from '@tensorflow/tfjs';
import { seededRandom } from '../../native-models/ir/random.ts';
import type { TfModule } from '../../native-models/runtimes/tfjs.ts';
import { prunableKernels } from './masks.ts';

/**
 * Glorot-uniform kernels and zero biases from one seed, drawn in layer order from one generator
 * (other weights, such as batch-norm scales, keep the values their layers gave them).
 * TF.js's seeded initialisers give every layer of the same shape the same values when handed the
 * same seed, and its unseeded ones use Math.random; this gives a whole model from a single seed,
 * every layer different, the same on every run and backend.
 */
export function initialiseSeeded(tf: TfModule, model: LayersModel, seed: number): void {
  const random = seededRandom(seed);
  const kernels = new Set(prunableKernels(model));
  tf.tidy(() => {
    for (const w of model.weights) {
      if (!kernels.has(w) && !/bias(_\d+)?$/.test(w.originalName)) continue;
      const shape = w.shape as number[];
      const n = shape.reduce((a, b) => a * b, 1);
      const values = new Float32Array(n);
      if (kernels.has(w)) {
        // Keras's fans: the receptive field times input channels, and times output channels.
        const receptive = shape.slice(0, -2).reduce((a, b) => a * b, 1);
        const fanIn = receptive * shape[shape.length - 2]!;
        const fanOut = receptive * shape[shape.length - 1]!;
        const limit = Math.sqrt(6 / (fanIn + fanOut));
        for (let i = 0; i < n; i++) values[i] = (2 * random() - 1) * limit;
      }
      w.write(tf.tensor(values, shape));
    }
  });
}
