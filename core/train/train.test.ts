import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { LayersModel } from '@tensorflow/tfjs';
import { WhittleError } from '../../api/errors.ts';
import { seededGaussian } from '../../native-models/ir/random.ts';
import type { TfModule } from '../../native-models/runtimes/tfjs.ts';
import { createPassContext } from '../passes/pass.ts';
import { countParameters, removeDeadUnits } from './dead-units.ts';
import { fineTuneMasked } from './finetune.ts';
import { fit, type TrainData } from './fit.ts';
import { gradualMagnitudePrune, polynomialSparsity, type PolynomialSchedule } from './gradual.ts';
import { iterativeMagnitudePrune } from './imp.ts';
import { initialiseSeeded } from './init.ts';
import { magnitudeMasks, maskCounts, prunableKernels, readValues, snapshotWeights, type Masks } from './masks.ts';
import { loadTrainingTf } from './runtime.ts';

let tf: TfModule;
let data: TrainData;

/** A small conv + dense classifier: 4×4×1 inputs, 3 classes (exercises Conv2D and Dense kernels). */
function tinyModel(seed: number): LayersModel {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [4, 4, 1], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: 'zeros' }));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: 'zeros' }));
  initialiseSeeded(tf, model, seed);
  model.compile({ optimizer: tf.train.adam(0.05), loss: 'categoricalCrossentropy' });
  return model;
}

before(async () => {
  tf = (await loadTrainingTf()).tf;
  const n = 96;
  const x = seededGaussian(n * 16, 11);
  // Labels from a fixed rule on the inputs, so there is something to learn.
  const labels = Array.from({ length: n }, (_, i) => {
    const row = x.subarray(i * 16, (i + 1) * 16);
    const a = row[0]! + row[5]! - row[10]!;
    return a > 0.5 ? 0 : a < -0.5 ? 1 : 2;
  });
  data = { x: tf.tensor4d(x, [n, 4, 4, 1]), y: tf.oneHot(tf.tensor1d(labels, 'int32'), 3).toFloat() };
});

describe('masks', () => {
  it('prunableKernels finds the Conv2D and Dense kernels, not biases', () => {
    const model = tinyModel(1);
    assert.deepEqual(prunableKernels(model).map((k) => k.shape), [[3, 3, 1, 4], [64, 3]]);
  });

  it('magnitude masks prune exactly round(s·n) per layer or globally, smallest first, nested', () => {
    const values = [Float32Array.from([0.5, -0.1, 0.3, -0.9]), Float32Array.from([2, 0.8, -7, 4, 0.6, 6])];
    const layer = magnitudeMasks(values, null, 0.5, 'layer');
    assert.deepEqual(layer.map((m) => [...m]), [[1, 0, 0, 1], [0, 0, 1, 1, 0, 1]]);
    const global = magnitudeMasks(values, null, 0.5, 'global');
    assert.deepEqual(global.map((m) => [...m]), [[0, 0, 0, 1], [1, 0, 1, 1, 0, 1]]);
    // A weight pruned before stays pruned even when it is no longer among the smallest.
    const previous: Masks = [Uint8Array.from([0, 1, 1, 1]), Uint8Array.from([1, 1, 1, 1, 1, 1])];
    const nested = magnitudeMasks(values, previous, 0.3, 'global');
    assert.equal(nested[0]![0], 0);
    assert.equal(maskCounts(nested).kept, 7);
  });
});

describe('fine-tuning with fixed masks', () => {
  it('leaves every pruned weight exactly +0 while the survivors train', async () => {
    const model = tinyModel(2);
    const before = prunableKernels(model).map(readValues);
    const masks = magnitudeMasks(before, null, 0.6, 'layer');
    const report = await fineTuneMasked(tf, model, masks, data, { epochs: 3, batchSize: 16 }, createPassContext({ seed: 5 }));
    assert.equal(report.maskViolations, 0);
    assert.equal(report.kept, maskCounts(masks).kept);
    let moved = 0;
    prunableKernels(model).forEach((k, l) => {
      const v = readValues(k);
      masks[l]!.forEach((keep, i) => {
        if (!keep) assert.ok(Object.is(v[i], 0), `layer ${l} weight ${i} is ${v[i]}`);
        else if (v[i] !== before[l]![i]) moved++;
      });
    });
    assert.ok(moved > maskCounts(masks).kept * 0.9, `most survivors changed (${moved})`);
  });
});

describe('gradual magnitude pruning (Zhu & Gupta)', () => {
  const schedule: PolynomialSchedule = { initialSparsity: 0, finalSparsity: 0.9, startStep: 10, pruningSteps: 4, interval: 5 };

  it('follows s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³ on the pruning steps, and holds between them', () => {
    const at = (t: number) => polynomialSparsity(t, schedule);
    assert.equal(at(0), 0);
    assert.equal(at(9), 0);
    assert.equal(at(10), 0);
    assert.equal(at(15), 0.9 - 0.9 * 0.75 ** 3);
    assert.equal(at(17), at(15));
    assert.equal(at(20), 0.9 - 0.9 * 0.5 ** 3);
    assert.equal(at(25), 0.9 - 0.9 * 0.25 ** 3);
    assert.equal(at(30), 0.9);
    assert.equal(at(1000), 0.9);
    const s2 = { initialSparsity: 0.5, finalSparsity: 0.8, startStep: 0, pruningSteps: 2, interval: 1 };
    assert.deepEqual([0, 1, 2].map((t) => polynomialSparsity(t, s2)), [0.5, 0.8 - 0.3 * 0.125, 0.8]);
  });

  it('reaches the schedule on every pruning step and ends at s_f with pruned weights at zero', async () => {
    const model = tinyModel(3);
    const report = await gradualMagnitudePrune(tf, model, data, { epochs: 6, batchSize: 16, schedule, scope: 'global' }, createPassContext({ seed: 1 }));
    assert.deepEqual(report.points.map((p) => p.step), [10, 15, 20, 25, 30]);
    for (const p of report.points) assert.equal(p.sparsity, Math.round(p.target * report.weights) / report.weights, `step ${p.step}`);
    assert.equal(report.kept, report.weights - Math.round(0.9 * report.weights));
    assert.equal(report.maskViolations, 0);
    const zeros = prunableKernels(model).reduce((n, k) => n + readValues(k).filter((v) => v === 0).length, 0);
    assert.ok(zeros >= report.weights - report.kept);
  });

  it('refuses a schedule that training does not cover', async () => {
    await assert.rejects(gradualMagnitudePrune(tf, tinyModel(3), data, { epochs: 1, batchSize: 16, schedule }, createPassContext()),
      (e: unknown) => e instanceof WhittleError && e.code === 'BAD_USAGE');
  });
});

describe('iterative magnitude pruning with rewinding', () => {
  for (const rewindStep of [0, 4]) {
    it(`rewinds the survivors to their values after ${rewindStep} steps, pruned weights to zero, p of the rest per round`, async () => {
      const fitOptions = { epochs: 2, batchSize: 16 };
      // What the weights were after k steps of the same dense run (same build seed and data order), computed independently.
      const reference = tinyModel(7);
      let expected = snapshotWeights(reference);
      await fit(tf, reference, data, { ...fitOptions, afterStep: (n) => { if (n === rewindStep) expected = snapshotWeights(reference); } }, createPassContext({ seed: 7 }));
      if (rewindStep > 0) assert.notDeepEqual(expected, snapshotWeights(tinyModel(7)), 'rewinding to k > 0 is not rewinding to the initialisation');
      const seen: number[] = [];
      const report = await iterativeMagnitudePrune(tf, {
        build: tinyModel, data, fit: fitOptions, rounds: 2, pruneFraction: 0.5, rewindStep, scope: 'layer',
        evaluate: () => 0,
        onRewind: (round, model, masks, rewoundTo) => {
          seen.push(round);
          const kernels = new Set(prunableKernels(model));
          model.weights.forEach((w, i) => {
            const v = readValues(w);
            assert.deepEqual(rewoundTo[i], expected[i], 'the snapshot is the dense run after k steps');
            const mask = kernels.has(w) ? masks[prunableKernels(model).indexOf(w)]! : null;
            v.forEach((x, j) => assert.equal(x, mask && !mask[j] ? 0 : expected[i]![j], `round ${round} weight ${w.name}[${j}]`));
          });
        },
      }, createPassContext({ seed: 7 }));
      assert.deepEqual(seen, [1, 2]);
      // Per layer: 36 and 192 kernel weights, half of the remaining pruned each round.
      assert.deepEqual(report.rounds.map((r) => r.kept), [18 + 96, 9 + 48]);
      assert.ok(report.rounds.every((r) => r.maskViolations === 0 && r.random !== null));
    });
  }
});

describe('determinism and cancellation', () => {
  it('the same seed gives bit-identical weights; another seed does not', async () => {
    const train = async (seed: number) => {
      const model = tinyModel(seed);
      await fit(tf, model, data, { epochs: 2, batchSize: 16 }, createPassContext({ seed }));
      return snapshotWeights(model);
    };
    const a = await train(9);
    assert.deepEqual(await train(9), a);
    assert.notDeepEqual(await train(10), a);
  });

  it('an aborted signal stops training between batches with CANCELLED', async () => {
    const controller = new AbortController();
    let steps = 0;
    const run = fit(tf, tinyModel(1), data, { epochs: 5, batchSize: 16, afterStep: (n) => { steps = n; if (n === 3) controller.abort(); } }, createPassContext({ signal: controller.signal }));
    await assert.rejects(run, (e: unknown) => e instanceof WhittleError && e.code === 'CANCELLED');
    assert.equal(steps, 3);
  });
});

describe('dead units', () => {
  it('removes units without inputs or outputs and leaves the outputs unchanged', () => {
    const model = tf.sequential();
    model.add(tf.layers.dense({ inputShape: [3], units: 4, activation: 'relu' }));
    model.add(tf.layers.dense({ units: 2, activation: 'sigmoid' }));
    // Unit 0: normal. Unit 1: no outgoing weights (dead). Unit 2: no incoming weights (constant relu(0.7)). Unit 3: normal.
    model.layers[0]!.setWeights([tf.tensor2d([[1, 2, 0, -1], [0.5, 1, 0, 2], [-1, 3, 0, 1]]), tf.tensor1d([0.1, 0.2, 0.7, -0.3])]);
    model.layers[1]!.setWeights([tf.tensor2d([[1, -1], [0, 0], [2, 0.5], [-0.5, 1]]), tf.tensor1d([0.05, -0.2])]);
    const x = tf.tensor2d(seededGaussian(30, 4), [10, 3]);
    const before = (model.predict(x) as ReturnType<typeof tf.tensor>).dataSync().slice();
    assert.equal(removeDeadUnits(tf, model), 2);
    const after = (model.predict(x) as ReturnType<typeof tf.tensor>).dataSync();
    before.forEach((v, i) => assert.ok(Math.abs(v - after[i]!) < 1e-6, `output ${i}: ${v} vs ${after[i]}`));
    // 26 elements, 21 non-zero before; unit 1 loses its 3 inputs and bias, unit 2 its bias and 2 outputs.
    assert.deepEqual(countParameters(model), { parameters: 26, nonzero: 21 - 4 - 3 });
  });
});
