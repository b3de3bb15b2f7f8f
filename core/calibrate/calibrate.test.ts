import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openDataset } from '../evaluate/data/index.ts';
import { inputSpecs } from '../evaluate/evaluate.ts';
import { fixture } from '../testing/fixtures.ts';
import { readOnnxFile } from '../../native-models/formats/onnx/index.ts';
import { loadTestBed } from '../../native-models/zoo/transformer/testbed.ts';
import type { HostTensor } from '../../native-models/runtimes/host-tensor.ts';
import { activationNames, calibrate } from './index.ts';
import { MinMaxCollector } from './collectors.ts';
import { TappedModel } from './tap.ts';

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

  it('runs a batch in parts that keep its tapped tensors under the budget, with the same statistics', async () => {
    // the transformer test bed: a free batch axis, [batch, 64] tokens
    const bed = loadTestBed();
    const model = readOnnxFile(bed.model);
    const data = await openDataset(bed.calibPath, inputSpecs(model), { limit: 24 });
    const whole = await calibrate(model, data, { method: 'minmax', batchSize: 8 });
    assert.equal(whole.samplesPerRun, 8, 'its taps fit the default budget 8 at a time');
    for (const method of ['minmax', 'percentile'] as const) {
      const [a, b] = [await calibrate(model, data, { method, batchSize: 8 }), await calibrate(model, data, { method, batchSize: 8, maxBytesPerRun: 1 })];
      assert.equal(b.samplesPerRun, 1);
      assert.equal(b.samples, 24);
      assert.deepEqual([...b.ranges], [...a.ranges], `${method}: the same ranges however the samples are grouped`);
    }

    const names = activationNames(model);
    const tapped = await TappedModel.create(model, names);
    try {
      const sizes: number[] = [];
      let perSample = 0;
      for await (const { batch, values } of tapped.batches(data, { batchSize: 8, maxBytesPerRun: Infinity })) {
        if (!perSample) perSample = Object.values(values).reduce((n, t) => n + t.data.byteLength, 0);
        sizes.push(batch.count);
      }
      assert.deepEqual(sizes, [1, 7, 8, 8], 'one sample is measured first, then runs of the batch size');
      const parts: { count: number; index: number; tokens: HostTensor }[] = [];
      for await (const { batch } of tapped.batches(data, { batchSize: 8, maxBytesPerRun: 2.5 * perSample })) parts.push({ count: batch.count, index: batch.index, tokens: Object.values(batch.inputs)[0] as HostTensor });
      assert.equal(tapped.samplesPerRun, 2);
      assert.deepEqual(parts.map((p) => p.count), [1, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 2, 2], 'runs of 2 within each batch of 8');
      let next = 0;
      const all = [];
      for await (const b of data.batches(24)) all.push(Object.values(b.inputs)[0] as HostTensor);
      const per = all[0]!.data.length / 24;
      for (const p of parts) {
        assert.equal(p.index, next, 'parts cover every sample once, in order');
        assert.deepEqual(p.tokens.dims, [p.count, ...all[0]!.dims.slice(1)]);
        assert.deepEqual([...p.tokens.data], [...all[0]!.data.subarray(next * per, (next + p.count) * per)]);
        next += p.count;
      }
      assert.equal(next, 24);
    } finally {
      await tapped.close();
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
