import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { QuantizeStep } from '../../../api/recipe.ts';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { AttrType, Node, type Model } from '../../../native-models/ir/model.ts';
import { seededRandom } from '../../../native-models/ir/random.ts';
import { Tensor } from '../../../native-models/ir/tensor.ts';
import { evaluate } from '../../evaluate/evaluate.ts';
import { fixture } from '../../testing/fixtures.ts';
import { createPassContext } from '../pass.ts';
import { foldBatchNorms } from './fold-batch-norm.ts';
import { NameAllocator } from './graph-edit.ts';
import { applyQuantizeStep } from './quantize-model.ts';
import { assertMnistFullyFused } from './static-qdq-testing.ts';
import { tempDir } from './test-models.ts';

const tmp = tempDir('fold-batch-norm');
after(tmp.cleanup);
const MNIST = fixture('mnist', 'mnist.onnx');
const MNIST_DATA = fixture('mnist', 't10k-images-idx3-ubyte.gz');

/**
 * MNIST with a BatchNormalization after each Conv that computes the same function: each output
 * channel's stored weights are divided by a random k = γ/√(σ²+ε) in [0.3, 3], and the Conv gets the
 * bias μ − β/k that the normalisation's random μ and β cancel. Folding must give back MNIST's weights.
 */
function mnistWithBatchNorms(): { model: Model; original: Map<string, Float32Array> } {
  const model = readOnnxFile(MNIST);
  const g = model.graph;
  const rand = seededRandom(11);
  const original = new Map<string, Float32Array>();
  for (const conv of g.nodes.filter((n) => n.opType === 'Conv')) {
    const wt = g.initializers.get(conv.inputs[1]!)!;
    const w = wt.toFloat32();
    original.set(conv.label, Float32Array.from(w));
    const channels = wt.dims[0]!;
    const per = w.length / channels;
    const eps = 1e-5;
    const [gamma, beta, mean, variance, bias] = Array.from({ length: 5 }, () => new Float32Array(channels));
    for (let c = 0; c < channels; c++) {
      variance![c] = 0.5 + rand() * 1.5;
      const k = 0.3 + rand() * 2.7;
      gamma![c] = k * Math.sqrt(variance![c]! + eps);
      mean![c] = rand() * 2 - 1;
      beta![c] = rand() * 2 - 1;
      bias![c] = mean![c]! - beta![c]! / k;
      for (let i = c * per; i < (c + 1) * per; i++) w[i] = w[i]! / k;
    }
    wt.setData(w);
    const add = (name: string, v: Float32Array) => g.initializers.set(name, Tensor.fromTypedArray(name, DataType.FLOAT, [channels], v));
    const p = `${conv.outputs[0]}_bn`;
    [['gamma', gamma], ['beta', beta], ['mean', mean], ['var', variance], ['bias', bias]].forEach(([n, v]) => add(`${p}_${n as string}`, v as Float32Array));
    conv.inputs = [conv.inputs[0]!, conv.inputs[1]!, `${p}_bias`];
    const y = conv.outputs[0]!;
    conv.outputs[0] = `${p}_in`;
    const bn = new Node({ name: `${p}_BatchNormalization`, opType: 'BatchNormalization', domain: '', inputs: [`${p}_in`, `${p}_gamma`, `${p}_beta`, `${p}_mean`, `${p}_var`], outputs: [y], attributes: [{ name: 'epsilon', type: AttrType.FLOAT, value: eps, extra: {} }] });
    g.nodes.splice(g.nodes.indexOf(conv) + 1, 0, bn);
  }
  return { model, original };
}

const heldOut = (model: string, reference: string) => evaluate({ model, data: MNIST_DATA, preprocess: 'mnist', reference, ep: 'cpu', offset: 256, runs: 1, warmup: 0 });

describe('BatchNormalization folded into the Conv before it', () => {
  const { model: bnModel, original } = mnistWithBatchNorms();
  const withBn = join(tmp.dir, 'mnist-bn.onnx');
  writeOnnxFile(bnModel, withBn);

  it('gives back the Conv weights the normalisation scaled, and the same outputs', async () => {
    const same = await heldOut(withBn, MNIST);
    assert.ok(same.agreement!.maxAbsDiff! < 1e-3, `the test model computes MNIST's function: max |Δ| ${same.agreement!.maxAbsDiff}`);

    const model = readOnnxFile(withBn);
    const folded = foldBatchNorms(model, new NameAllocator(model));
    assert.deepEqual(folded.map((f) => f.conv.opType), ['Conv', 'Conv']);
    assert.equal(model.graph.nodes.filter((n) => n.opType === 'BatchNormalization').length, 0);
    for (const conv of model.graph.nodes.filter((n) => n.opType === 'Conv')) {
      const w = model.graph.initializers.get(conv.inputs[1]!)!.toFloat32();
      const want = [...original.values()][model.graph.nodes.filter((n) => n.opType === 'Conv').indexOf(conv)]!;
      let worst = 0;
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(w[i]! - want[i]!) / (Math.abs(want[i]!) + 1e-6));
      assert.ok(worst < 1e-5, `${conv.label}: folded weights within ${worst} of MNIST's`);
    }
    // the statistics and scaled weights are gone from the file
    for (const name of model.graph.initializers.keys()) assert.doesNotMatch(name, /_bn_(gamma|beta|mean|var|bias)$/);
    const out = join(tmp.dir, 'mnist-folded.onnx');
    writeOnnxFile(model, out);
    const r = await heldOut(out, withBn);
    assert.ok(r.agreement!.maxAbsDiff! < 1e-3 && r.agreement!.top1 === 1, JSON.stringify(r.agreement));
  });

  it('left alone where folding would change what else reads the Conv, or in training mode', () => {
    const shared = readOnnxFile(withBn);
    const conv = shared.graph.nodes.find((n) => n.opType === 'Conv')!;
    shared.graph.outputs.push({ name: conv.outputs[0]!, type: null, extra: {} });
    assert.equal(foldBatchNorms(shared, new NameAllocator(shared)).length, 1, 'the Conv whose raw output is a graph output keeps its BatchNormalization');

    const training = readOnnxFile(withBn);
    for (const bn of training.graph.nodes.filter((n) => n.opType === 'BatchNormalization')) bn.setAttr('training_mode', AttrType.INT, 1n);
    assert.equal(foldBatchNorms(training, new NameAllocator(training)).length, 0);
  });

  it('static int8 of the model with BatchNormalizations: every Conv a QLinearConv, and the accuracy of MNIST\'s', async () => {
    const model = readOnnxFile(withBn);
    const step = QuantizeStep.parse({ method: 'static', calib: { path: MNIST_DATA, preprocess: 'mnist' }, samples: 256, biasCorrection: true });
    const report = await applyQuantizeStep(model, step, createPassContext());
    assert.equal((report.details!['foldedBatchNorms'] as string[]).length, 2);
    // the BatchNormalization left the Conv a bias; the CNTK bias Add after it folds into that bias
    assert.equal((report.details!['foldedBiasAdds'] as string[]).length, 3);
    assert.equal(report.biasCorrection!.layers.length, 3, 'bias correction finds every layer of the folded graph');
    const out = join(tmp.dir, 'mnist-bn-int8.onnx');
    writeOnnxFile(model, out);
    await assertMnistFullyFused(out);
    const r = await heldOut(out, withBn);
    console.log(`MNIST with BatchNormalizations, static int8 + bias correction, 9,744 held-out images: top-1 ${(r.accuracy!.top1 * 100).toFixed(2)} %, agreement ${(r.agreement!.top1! * 100).toFixed(2)} %, SQNR ${r.agreement!.sqnrDb!.toFixed(1)} dB`);
    assert.ok(r.accuracy!.top1 >= 0.9889 && r.agreement!.top1! >= 0.999, JSON.stringify(r.agreement));
  });

  it('GPTQ chooses the integers of the folded weights (none dropped for a weight the fold replaced)', async () => {
    const model = readOnnxFile(withBn);
    const step = QuantizeStep.parse({ method: 'static', calib: { path: MNIST_DATA, preprocess: 'mnist' }, samples: 128, algorithm: 'gptq', perChannel: true });
    const report = await applyQuantizeStep(model, step, createPassContext());
    assert.equal(report.details!['chosenWeights'], 3, JSON.stringify(report.warnings));
    assert.ok(!report.warnings.some((w) => w.includes('kept round-to-nearest')), report.warnings.join('\n'));
  });
});
