import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fixture } from '../../../core/testing/fixtures.ts';
import { loadTf } from '../../runtimes/tfjs.ts';
import { completeShapesWithRuntime, describeTopology, inspectTfjsModel, readTfjsModel } from './index.ts';
import { readWeightsIndependently } from './testing.ts';

describe('inspect: nsfwjs (Keras layers model, every weight uint8-quantized)', () => {
  const path = fixture('tfjs-nsfwjs-mobilenet-v2', 'model.json');
  const model = readTfjsModel(path);
  const report = inspectTfjsModel(model);

  it('266 weights, all uint8 (quantized); parameters are the shard bytes (one byte per weight element)', () => {
    assert.equal(report.format, 'tfjs');
    assert.equal(report.kind, 'layers');
    assert.equal(report.weights, 266);
    assert.deepEqual(report.quantized, { uint8: 266 });
    assert.equal(report.layers.length, 266);
    assert.ok(report.layers.every((l) => l.dtype === 'uint8 (quantized)' && l.quantization?.dtype === 'uint8'));
    const shardBytes = statSync(fixture('tfjs-nsfwjs-mobilenet-v2', 'group1-shard1of1')).size;
    assert.equal(report.parameters, shardBytes);
    assert.equal(report.weightBytes, shardBytes);
    assert.equal(report.bytes, shardBytes + statSync(path).size);
    assert.equal(report.nodes, 162);
    assert.deepEqual({ Conv2D: report.opHistogram.Conv2D, DepthwiseConv2D: report.opHistogram.DepthwiseConv2D, BatchNormalization: report.opHistogram.BatchNormalization, Dense: report.opHistogram.Dense },
      { Conv2D: 35, DepthwiseConv2D: 17, BatchNormalization: 52, Dense: 3 });
    assert.deepEqual(report.inputs, [{ name: 'input_1', dtype: 'float32', shape: [null, 224, 224, 3] }]);
    assert.equal(report.producer, 'Keras 2.2.4');
  });

  it('rows follow the network and name each weight\'s layer and class', () => {
    const first = report.layers[0]!;
    assert.deepEqual([first.name, first.op, first.weight, first.shape], ['Conv1', 'Conv2D', 'Conv1/kernel', [3, 3, 3, 32]]);
    const dense = report.layers.find((l) => l.weight === 'dense_3/kernel')!;
    assert.deepEqual([dense.op, dense.shape], ['Dense', [128, 5]]);
    assert.ok(report.layers.every((l) => l.op !== '?'), 'every weight found its layer');
  });

  it('dequantized values are min + q·scale, computed independently from the raw shard bytes', () => {
    const independent = readWeightsIndependently(path);
    const raw = readFileSync(fixture('tfjs-nsfwjs-mobilenet-v2', 'group1-shard1of1'));
    let offset = 0;
    let checked = 0;
    for (const w of independent) {
      const mine = model.weights.find((m) => m.name === w.name)!;
      const values = mine.toFloat32();
      const { min, scale } = w.quantization as { min: number; scale: number };
      for (let i = 0; i < values.length; i++) {
        const q = raw[offset + i]!;
        assert.equal(values[i], Math.fround(min + q * scale));
        checked++;
      }
      assert.deepEqual([...mine.codes()], w.codes, w.name);
      offset += w.byteLength;
    }
    assert.equal(checked, raw.length);
    // and zeros are counted on those values: the table's zeros agree with a count over them
    const zeros = independent.reduce((n, w) => n + w.values!.filter((v) => v === 0).length, 0);
    assert.equal(report.parameters - report.nonzeroParameters, zeros);
  });

  it('TF.js itself decodes the same values from the same bytes', async () => {
    const { tf } = await loadTf();
    const bytes = readFileSync(fixture('tfjs-nsfwjs-mobilenet-v2', 'group1-shard1of1'));
    const specs = model.weights.map((w) => w.entry) as Parameters<typeof tf.io.decodeWeights>[1];
    const decoded = tf.io.decodeWeights(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), specs);
    for (const w of model.weights) {
      assert.deepEqual(decoded[w.name]!.dataSync(), w.toFloat32(), w.name);
    }
    tf.dispose(Object.values(decoded));
  });

  it('output shapes come from TF.js building the model', async () => {
    const full = await completeShapesWithRuntime(report, model);
    assert.deepEqual(full.outputs, [{ name: 'dense_3', dtype: 'float32', shape: [null, 5] }]);
    assert.deepEqual(full.warnings, []);
  });
});

describe('inspect: AutoML flowers (graph model)', () => {
  const path = fixture('tfjs-automl-flowers', 'model.json');
  const model = readTfjsModel(path);
  const report = inspectTfjsModel(model);

  it('parameters are the float32 weights; int32 constants are weights, not parameters', () => {
    assert.equal(report.kind, 'graph');
    assert.equal(report.modelFormat, 'graph-model');
    assert.equal(report.weights, 125);
    assert.deepEqual(report.quantized, {});
    const independent = readWeightsIndependently(path);
    const floats = independent.filter((w) => w.dtype === 'float32');
    assert.equal(floats.length, 123);
    assert.equal(report.layers.length, 123);
    assert.equal(report.parameters, floats.reduce((n, w) => n + w.values!.length, 0));
    assert.equal(report.parameters, 508949);
    assert.ok(report.layers.every((l) => l.dtype === 'float32'));
    assert.equal(report.producer, 'TensorFlow.js Converter v1.2.7, 1.14.0');
  });

  it('op histogram, inputs, outputs and the op that reads each weight', async () => {
    assert.equal(report.nodes, 299);
    assert.deepEqual({ Conv2D: report.opHistogram.Conv2D, DepthwiseConv2dNative: report.opHistogram.DepthwiseConv2dNative, MatMul: report.opHistogram.MatMul, Const: report.opHistogram.Const },
      { Conv2D: 35, DepthwiseConv2dNative: 17, MatMul: 1, Const: 125 });
    assert.deepEqual(report.inputs, [{ name: 'image', dtype: 'float32', shape: [1, 224, 224, 3] }]);
    assert.deepEqual(report.outputs, [{ name: 'scores', dtype: 'float32', shape: null }]);
    const ops = new Map<string, number>();
    for (const l of report.layers) ops.set(l.op, (ops.get(l.op) ?? 0) + 1);
    assert.equal(ops.get('Conv2D'), 35);
    assert.equal(ops.get('DepthwiseConv2dNative'), 17);
    assert.equal(ops.get('MatMul'), 1);
    const full = await completeShapesWithRuntime(report, model);
    assert.deepEqual(full.outputs, [{ name: 'scores', dtype: 'float32', shape: [1, 5] }]);
  });

  it('kernels carry the layouts pruning needs: HWIO Conv2D, depthwise without N:M, MatMul [in, out]', () => {
    const uses = describeTopology(model).uses;
    const conv = uses.find((u) => u.op === 'Conv2D')!;
    assert.deepEqual(conv.kernel, { inAxis: 2, outAxis: 3 });
    const depthwise = uses.find((u) => u.op === 'DepthwiseConv2dNative')!;
    assert.equal(depthwise.kernel?.inAxis, null);
    const matmul = uses.find((u) => u.op === 'MatMul')!;
    assert.deepEqual(matmul.kernel, { inAxis: 0, outAxis: 1 });
    assert.equal(uses.filter((u) => u.kernel).length, 53);
    assert.ok(uses.filter((u) => u.op === 'Mul' || u.op === 'Add').every((u) => u.kernel === null), 'folded batch-norm constants are not kernels');
  });
});
