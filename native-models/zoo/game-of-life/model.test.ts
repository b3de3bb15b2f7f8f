import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { createPassContext } from '../../../core/passes/pass.ts';
import { countParameters } from '../../../core/train/dead-units.ts';
import { loadTrainingTf } from '../../../core/train/runtime.ts';
import type { TfModule } from '../../runtimes/tfjs.ts';
import { GAME_OF_LIFE_DEFAULTS, heldOut, rightOnEveryNeighbourhood, trainLifeRun } from './experiment.ts';
import { allNeighbourhoods, lifeStep, lifeSteps, randomBoards } from './life.ts';
import { buildLifeNet, lifeNetParameters, scoreCells } from './model.ts';

let tf: TfModule;
before(async () => {
  tf = (await loadTrainingTf()).tf;
});

test('parameter counts of the minimal and overcomplete networks', () => {
  assert.equal(lifeNetParameters(1, 1), 25); // Springer & Kenyon's minimal one-step network
  for (const [steps, m] of [[1, 1], [1, 8], [2, 1], [2, 8], [3, 4]] as const) {
    const model = buildLifeNet(tf, { steps, multiplier: m, learningRate: 0.01 }, 0);
    assert.equal(countParameters(model).parameters, lifeNetParameters(steps, m), `n=${steps} m=${m}`);
    model.dispose();
  }
});

test('the minimal architecture can be exactly right: hand-set weights get every neighbourhood and board right', () => {
  const model = buildLifeNet(tf, { steps: 1, multiplier: 1, learningRate: 0.01 }, 0);
  // s = neighbours + centre/2; a = relu(s − 2), b = relu(neighbours − 3); z = relu(a − 4b − 1/4) > 0 exactly
  // when s ∈ {2.5, 3, 3.5}, i.e. 3 neighbours, or 2 and alive; the readout is sigmoid(20z − 1).
  const a = [1, 1, 1, 1, 0.5, 1, 1, 1, 1];
  const b = [1, 1, 1, 1, 0, 1, 1, 1, 1];
  const kernel = a.flatMap((w, i) => [w, b[i]!]); // [3, 3, 1, 2]: the two filters interleaved
  const [conv3, conv1, readout] = model.layers;
  conv3!.setWeights([tf.tensor4d(kernel, [3, 3, 1, 2]), tf.tensor1d([-2, -3])]);
  conv1!.setWeights([tf.tensor4d([1, -4], [1, 1, 2, 1]), tf.tensor1d([-0.25])]);
  readout!.setWeights([tf.tensor4d([20], [1, 1, 1, 1]), tf.tensor1d([-1])]);
  assert.equal(rightOnEveryNeighbourhood(tf, model), true);
  const boards = randomBoards({ count: 20, size: 24, seed: 3 });
  assert.equal(scoreCells(tf, model, boards, lifeStep(boards)).wrong, 0);
  // Off by one weight, it is no longer exact.
  conv1!.setWeights([tf.tensor4d([1, -1], [1, 1, 2, 1]), tf.tensor1d([-0.25])]);
  const all = allNeighbourhoods();
  assert.ok(scoreCells(tf, model, all, lifeStep(all)).wrong > 0);
  model.dispose();
});

test('a small overcomplete network learns one step exactly from a fixed seed (held-out boards and all 512 neighbourhoods)', async () => {
  const o = { ...GAME_OF_LIFE_DEFAULTS, multiplier: 8, size: 8, boardsPerEpoch: 64, validationBoards: 32, testBoards: 20, testSize: 16, maxEpochs: 40 };
  const data = heldOut(o, 1);
  const { model, run } = await trainLifeRun(tf, o, 1, o.multiplier, 0, data, createPassContext(), 'test');
  assert.equal(run.stopped, 'solved', JSON.stringify(run));
  assert.equal(run.success, true);
  assert.equal(run.test.wrong, 0);
  assert.equal(run.everyNeighbourhood, true);
  const again = await trainLifeRun(tf, o, 1, o.multiplier, 0, data, createPassContext(), 'test');
  assert.equal(again.run.epochs, run.epochs, 'the same seed trains the same way');
  assert.deepEqual(again.model.getWeights().map((w) => [...w.dataSync()]), model.getWeights().map((w) => [...w.dataSync()]));
  const next = lifeSteps(data.test, 1);
  assert.deepEqual(next.cells, data.testNext.cells);
  model.dispose();
  again.model.dispose();
});
