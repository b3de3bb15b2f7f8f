import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openDataset } from '../evaluate/data/index.ts';
import { inputSpecs } from '../evaluate/evaluate.ts';
import { fixture } from '../testing/fixtures.ts';
import { readOnnxFile } from '../../native-models/formats/onnx/index.ts';
import { activationNames, calibrate } from './index.ts';
import { MinMaxCollector } from './collectors.ts';

describe('calibration', () => {
  it('observes every float activation of MNIST in one pass per batch', async () => {
    const model = readOnnxFile(fixture('mnist', 'mnist.onnx'));
    const names = activationNames(model);
    assert.ok(names.includes('Input3'));
    assert.ok(names.includes('Plus214_Output_0'));
    const data = await openDataset(fixture('mnist', 't10k-images-idx3-ubyte.gz'), inputSpecs(model), { preprocess: 'mnist', limit: 64 });
    const r = await calibrate(model, data, { method: 'minmax' });
    assert.equal(r.samples, 64);
    assert.deepEqual(r.ranges.get('Input3'), { min: 0, max: 1 });
    for (const n of names) assert.ok(r.ranges.has(n), n);
    const relu = model.graph.nodes.find((n) => n.opType === 'Relu')!.outputs[0]!;
    assert.equal(r.ranges.get(relu)!.min, 0, 'Relu outputs are never negative');
    assert.equal(model.graph.outputs.length, 1, 'the model itself is left as it was');
  });

  it('passes the histogram options through, and refuses bad ones before running', async () => {
    const model = readOnnxFile(fixture('mnist', 'mnist.onnx'));
    const data = await openDataset(fixture('mnist', 't10k-images-idx3-ubyte.gz'), inputSpecs(model), { preprocess: 'mnist', limit: 16 });
    const minmax = await calibrate(model, data, { method: 'minmax' });
    const sym = await calibrate(model, data, { method: 'percentile', percentile: 99, symmetric: true, bins: 256 });
    const out = 'Plus214_Output_0'; // logits: both signs
    const [mm, r] = [minmax.ranges.get(out)!, sym.ranges.get(out)!];
    assert.ok(mm.min < 0 && mm.max > 0);
    assert.ok(r.max < mm.max && r.max > 0, JSON.stringify({ r, mm }));
    assert.equal(r.min, Math.max(mm.min, -r.max), 'symmetric: ±t, clipped to what was seen');
    for (const bad of [{ bins: 3 }, { percentile: 0 }, { percentile: 101 }, { quantizedBins: 4096 }]) {
      await assert.rejects(calibrate(model, data, { method: 'entropy', ...bad }), (e: Error & { code?: string }) => e.code === 'BAD_USAGE');
    }
  });

  it('min/max merge across batches equals one pass over everything', () => {
    const all = new MinMaxCollector();
    all.update(Float32Array.of(3, -1, 7, 2, -5, 4));
    const a = new MinMaxCollector();
    a.update(Float32Array.of(3, -1, 7));
    const b = new MinMaxCollector();
    b.update(Float32Array.of(2, -5, 4));
    a.merge(b);
    assert.deepEqual(a.range(), all.range());
    const streamed = new MinMaxCollector();
    streamed.update(Float32Array.of(3, -1, 7));
    streamed.update(Float32Array.of(2, -5, 4));
    assert.deepEqual(streamed.range(), { min: -5, max: 7 });
  });

  it('moving average damps one outlier batch', () => {
    const c = new MinMaxCollector({ movingAverage: true, averagingConstant: 0.1 });
    c.update(Float32Array.of(0, 1));
    c.update(Float32Array.of(0, 101));
    assert.ok(Math.abs(c.range().max - 11) < 1e-9, String(c.range().max)); // 0.9·1 + 0.1·101
  });

  it('NaN and Infinity are counted, not folded into the range', () => {
    const c = new MinMaxCollector();
    c.update(Float32Array.of(1, NaN, Infinity, -2));
    assert.deepEqual(c.range(), { min: -2, max: 1 });
    assert.equal(c.nonFinite, 2);
  });
});
