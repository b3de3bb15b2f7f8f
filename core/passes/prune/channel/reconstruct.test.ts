import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PruneStep } from '../../../../api/recipe.ts';
import { readOnnxFile } from '../../../../native-models/formats/onnx/index.ts';
import { seededRandom } from '../../../../native-models/ir/random.ts';
import { evaluate } from '../../../evaluate/evaluate.ts';
import { fixture } from '../../../testing/fixtures.ts';
import { createPassContext } from '../../pass.ts';
import { tempDir } from '../../quantize/test-models.ts';
import type { GroupStats } from '../layer-inputs.ts';
import { pruneModel } from '../prune-model.ts';
import { channelPrunePass, type ChannelPruneDetails } from './channel-prune.ts';
import { refit } from './reconstruct.ts';

/** Statistics of explicit rows, as collectLayerInputs streams them. */
function statsOf(rows: number[][]): GroupStats {
  const k = rows[0]!.length;
  const st: GroupStats = { k, sqNorm: new Float64Array(k), sum: new Float64Array(k), xtx: new Float64Array(k * k), rows: rows.length };
  for (const x of rows) for (let i = 0; i < k; i++) {
    st.sqNorm[i]! += x[i]! * x[i]!;
    st.sum[i]! += x[i]!;
    for (let j = 0; j < k; j++) st.xtx![i * k + j]! += x[i]! * x[j]!;
  }
  return st;
}

/** Σ over rows and outputs of (w·x + b − ŵ·x − b̂)². */
function outputError(rows: number[][], w: Float64Array, after: Float64Array, shift: Float64Array, outputs: number): number {
  const k = rows[0]!.length;
  let e = 0;
  for (const x of rows) for (let r = 0; r < outputs; r++) {
    let d = -shift[r]!;
    for (let j = 0; j < k; j++) d += (w[r * k + j]! - after[r * k + j]!) * x[j]!;
    e += d * d;
  }
  return e;
}

describe('channel pruning: least-squares refit of the layers after', () => {
  const rnd = seededRandom(3);
  const g = () => rnd() * 2 - 1;
  // x2 = 2·x0 − x1 (redundant), x3 = 5 + tiny noise (a channel that is mostly its mean), x4 independent
  const rows = Array.from({ length: 400 }, () => { const a = g(), b = g(); return [a, b, 2 * a - b, 5 + 1e-3 * g(), g()]; });
  const w = Float64Array.from([0.5, -1, 0.25, 0.8, 0.3, -0.2, 0.4, 1.5, -0.6, 0.9]);
  const st = statsOf(rows);

  it('a removed column that is a combination of kept ones is absorbed exactly; its old weight is 0', () => {
    const { after, shift, errorCut, errorRefit } = refit(w, 2, 5, [0, 1, 3, 4], st, true);
    assert.equal(after[2], 0);
    assert.equal(after[7], 0);
    assert.ok(errorCut > 0.05, `cut ${errorCut}`);
    assert.ok(errorRefit < 1e-3, `refit ${errorRefit}`);
    assert.ok(outputError(rows, w, after, shift, 2) / rows.length < 1e-3, 'the refitted layer reproduces the outputs');
    // without the refit, the same rows lose w₂·x₂
    assert.ok(outputError(rows, w, Float64Array.from(w, (v, i) => (i % 5 === 2 ? 0 : v)), new Float64Array(2), 2) / rows.length > 0.01);
  });

  it('a removed near-constant column goes into the bias when there is one; without a bias the fit is made on the raw moments', () => {
    const withBias = refit(w, 2, 5, [0, 1, 2, 4], st, true);
    assert.ok(Math.abs(withBias.shift[0]! - 0.8 * 5) < 0.05 && Math.abs(withBias.shift[1]! + 0.6 * 5) < 0.05, `shift ${[...withBias.shift]}`);
    assert.ok(withBias.errorRefit < 1e-4, `refit ${withBias.errorRefit}`);
    const noBias = refit(w, 2, 5, [0, 1, 2, 4], st, false);
    assert.deepEqual([...noBias.shift], [0, 0]);
    // the constant cannot be rebuilt from zero-mean columns: most of its share stays lost, but no worse than cutting
    assert.ok(noBias.errorRefit <= noBias.errorCut + 1e-12, `${noBias.errorRefit} vs ${noBias.errorCut}`);
  });

  it('with inputs paired (now, unpruned), the refit undoes drift from the layers before: x̃ = x/2 with every column kept gives 2·w', () => {
    // z = [x̃ (5 columns), x (5 columns)]
    const paired = statsOf(rows.map((x) => [...x.map((v) => v / 2), ...x]));
    const cols = { tilde: Int32Array.from([0, 1, 2, 3, 4]), orig: Int32Array.from([5, 6, 7, 8, 9]) };
    const { after, shift, errorCut, errorRefit } = refit(w, 2, 5, [0, 1, 2, 3, 4], paired, true, cols);
    assert.ok(errorCut > 0.2, `cut ${errorCut}`); // nothing removed, yet the output is off by half
    assert.ok(errorRefit < 1e-3, `refit ${errorRefit}`);
    // what the layer computes from the halved inputs, plus its bias shift, is the unpruned output
    let worst = 0;
    for (const x of rows) for (let r = 0; r < 2; r++) {
      let want = 0, got = shift[r]!;
      for (let j = 0; j < 5; j++) { want += w[r * 5 + j]! * x[j]!; got += (after[r * 5 + j]! * x[j]!) / 2; }
      worst = Math.max(worst, Math.abs(want - got));
    }
    assert.ok(worst < 0.05, `largest output difference ${worst}`);
  });

  it('SqueezeNet (IR 3: initializers listed as inputs), 10 % of channels: the sequential refit keeps a third of the top-1 agreement the cut loses', async () => {
    const tmp = tempDir('reconstruct-sq');
    try {
      const model = fixture('squeezenet', 'squeezenet1.0_fp32.onnx');
      const data = fixture('imagenet-100');
      const agreement = async (calib: boolean) => {
        const output = `${tmp.dir}/${calib ? 'refit' : 'cut'}.onnx`;
        const step = PruneStep.parse({ method: 'channel', sparsity: 0.1, roundTo: 1, ...(calib ? { calib: { path: data, preprocess: 'caffe' }, samples: 16 } : {}) });
        const r = await pruneModel({ input: model, output, step, seed: 0 });
        const e = await evaluate({ model: output, data, preprocess: 'caffe', reference: model, ep: 'cpu', runs: 1, warmup: 0 });
        return { top1: e.agreement!.top1!, layers: (r.details as unknown as ChannelPruneDetails).reconstruction?.layers.length ?? 0 };
      };
      const cut = await agreement(false);
      const refitted = await agreement(true);
      assert.equal(refitted.layers, 25);
      assert.ok(cut.top1 <= 0.05 && refitted.top1 >= 0.25, `cut ${cut.top1}, refitted ${refitted.top1}`);
    } finally {
      tmp.cleanup();
    }
  });

  it('activation importance ranks channels by the output energy they give the next layers, and needs calibration data', async () => {
    const model = readOnnxFile(fixture('mnist', 'mnist.onnx'));
    await assert.rejects(channelPrunePass.run(model, { sparsity: 0.5, importance: 'activation' }, createPassContext()), /activation importance is measured on calibration data/);
  });

  it('MNIST, half of both conv groups removed: the refit keeps top-1 near fp32 where the plain cut loses it', async () => {
    const tmp = tempDir('reconstruct');
    try {
      const model = fixture('mnist', 'mnist.onnx');
      const data = fixture('mnist', 't10k-images-idx3-ubyte.gz');
      const top1 = async (calib: boolean) => {
        const output = `${tmp.dir}/${calib ? 'refit' : 'cut'}.onnx`;
        const step = PruneStep.parse({ method: 'channel', sparsity: 0.5, roundTo: 1, ...(calib ? { calib: { path: data, preprocess: 'mnist' }, samples: 256 } : {}) });
        const r = await pruneModel({ input: model, output, step, seed: 0 });
        const details = r.details as unknown as ChannelPruneDetails;
        const e = await evaluate({ model: output, data, preprocess: 'mnist', offset: 256, limit: 3000, ep: 'cpu', runs: 1, warmup: 0 });
        return { top1: e.accuracy!.top1, parameters: details.parametersAfter, reconstruction: details.reconstruction };
      };
      const cut = await top1(false);
      const refitted = await top1(true);
      assert.equal(cut.parameters, refitted.parameters);
      assert.equal(cut.reconstruction, undefined);
      // both groups: conv1's 8 channels into conv2, conv2's 16 (through the Reshape'd weight) into the MatMul
      assert.deepEqual(refitted.reconstruction!.layers.map((l) => [l.layer, l.kept, l.of, l.bias]), [['Convolution110', 4 * 25, 8 * 25, 'bias'], ['Times212', 8 * 16, 16 * 16, 'bias']]);
      for (const l of refitted.reconstruction!.layers) assert.ok(l.errorRefit < l.errorCut / 2, `${l.layer}: ${l.errorRefit} vs ${l.errorCut}`);
      assert.ok(refitted.top1 > cut.top1 + 0.1 && refitted.top1 > 0.95, `cut ${cut.top1}, refit ${refitted.top1}`);
    } finally {
      tmp.cleanup();
    }
  });
});
