import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readOnnxFile, writeOnnxFile } from '../../../../native-models/formats/onnx/index.ts';
import { modelStats } from '../../../../native-models/ir/stats.ts';
import { evaluate } from '../../../evaluate/evaluate.ts';
import { fixture } from '../../../testing/fixtures.ts';
import { createPassContext } from '../../pass.ts';
import { DataType } from '../../../../native-models/ir/dtypes.ts';
import { Node } from '../../../../native-models/ir/model.ts';
import { buildModel, floatTensor, gaussian, runFloat, tempDir, valueInfo } from '../../quantize/test-models.ts';
import { channelPrunePass, type ChannelPruneDetails, type ChannelPruneOptions } from './channel-prune.ts';
import { channelMismatches, couplingModel, INPUT_SHAPE, zeroChannel } from './testing.ts';

const tmp = tempDir('prune-channel');
after(() => tmp.cleanup());

const input = { x: { data: gaussian(INPUT_SHAPE.reduce((a, b) => a * b, 1), 99), dims: INPUT_SHAPE } };

async function pruneAndWrite(model: ReturnType<typeof couplingModel>, options: ChannelPruneOptions, file: string) {
  const ctx = createPassContext();
  const report = await channelPrunePass.run(model, options, ctx);
  const path = join(tmp.dir, file);
  await writeOnnxFile(model, path);
  return { report, details: report.details as unknown as ChannelPruneDetails, path, ctx };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('channel pruning: coupling rules on a built model', () => {
  it('finds the groups: residual Add joins conv1 and conv2, depthwise follows them, Gemm (graph output) is pinned', async () => {
    const { details } = await pruneAndWrite(couplingModel(), { sparsity: 0.5, roundTo: 4 }, 'groups.onnx');
    const byProducers = new Map(details.groups.map((g) => [g.producers.join('+'), g]));
    assert.deepEqual([...byProducers.keys()].sort(), ['conv1+conv2', 'conv3', 'conv4', 'conv5']);
    const residual = byProducers.get('conv1+conv2')!;
    assert.ok(residual.members.includes('bn1') && residual.members.includes('dw') && residual.members.includes('residual'), residual.members.join(','));
    assert.deepEqual(details.groups.map((g) => [g.channelsBefore, g.channelsAfter]).sort(), [[16, 8], [16, 8], [16, 8], [24, 12]]);
    assert.deepEqual(details.pinned.map((p) => [p.producers.join('+'), p.reasons[0]]), [['fc', 'graph output y']]);
  });

  it('the pruned model is valid: consistent channels, fewer parameters, onnxruntime runs it, outputs shaped as before', async () => {
    const model = couplingModel();
    const before = join(tmp.dir, 'before.onnx');
    await writeOnnxFile(model, before);
    const ref = await runFloat(before, input);
    const { path, details } = await pruneAndWrite(model, { sparsity: 0.5, roundTo: 4, importance: 'l2' }, 'half.onnx');
    assert.deepEqual(channelMismatches(path, { x: 3 }, { h: 64 }), []);
    assert.ok(details.parametersAfter < details.parametersBefore * 0.6, `${details.parametersAfter} / ${details.parametersBefore}`);
    const written = readOnnxFile(path);
    assert.equal(written.graph.nodes.find((n) => n.name === 'dw')!.attrInt('group', 0), 8);
    assert.deepEqual(written.graph.initializers.get('wfc')!.dims, [10, 8 * 64]);
    assert.deepEqual(written.graph.initializers.get('mul3')!.dims, [12, 1, 1]);
    const out = await runFloat(path, input);
    assert.equal(out.length, ref.length);
  });

  it('removing a zero-importance channel of the residual group leaves the outputs unchanged (1e-5)', async () => {
    const model = couplingModel(7);
    const k = 5;
    // channel k of conv1 and conv2 (the residual pair): weights and biases 0; BN γ, β 0 so the BN output is 0; depthwise bias 0
    zeroChannel(model, k, ['w1', 'w1_b', 'bn1_scale', 'bn1_bias', 'w2', 'w2_b', 'wdw_b'].map((tensor) => ({ tensor, axis: 0 as const })));
    const before = join(tmp.dir, 'zero-before.onnx');
    await writeOnnxFile(model, before);
    const ref = await runFloat(before, input);
    const { path, details } = await pruneAndWrite(model, { sparsity: 0, roundTo: 1, groups: { conv1: 1 / 16 } }, 'zero-after.onnx');
    const g = details.groups.find((x) => x.producers.includes('conv1'))!;
    assert.equal(g.channelsAfter, 15);
    assert.deepEqual(channelMismatches(path, { x: 3 }, { h: 64 }), []);
    const written = readOnnxFile(path);
    assert.deepEqual(written.graph.initializers.get('w1')!.dims, [15, 3, 3, 3]);
    assert.deepEqual(written.graph.initializers.get('w3')!.dims, [24, 15, 1, 1]);
    assert.deepEqual(written.graph.initializers.get('wdw')!.dims, [15, 1, 3, 3]);
    const out = await runFloat(path, input);
    assert.ok(maxAbsDiff(ref, out) <= 1e-5, `max |Δ| ${maxAbsDiff(ref, out)}`);
  });

  it('a transformer MLP (MatMul on [batch, tokens, d], channels last): fc1 → bias Add → Relu → fc2 loses hidden units; the residual stream is pinned', async () => {
    const d = 4, hidden = 8, tokens = 3;
    const w1 = gaussian(d * hidden, 21), b1 = gaussian(hidden, 22), w2 = gaussian(hidden * d, 23);
    // hidden unit 6: no weight in, a bias of −1 (Relu gives 0 on every input), so it contributes nothing
    for (let i = 0; i < d; i++) w1[i * hidden + 6] = 0;
    b1[6] = -1;
    const build = () => buildModel({
      inputs: [valueInfo('x', DataType.FLOAT, ['batch', tokens, d])], outputs: [valueInfo('y', DataType.FLOAT, ['batch', tokens, d])],
      initializers: [floatTensor('w1', [d, hidden], w1), floatTensor('b1', [hidden], b1), floatTensor('w2', [hidden, d], w2), floatTensor('b2', [d], gaussian(d, 24))],
      nodes: [
        new Node({ name: 'fc1', opType: 'MatMul', inputs: ['x', 'w1'], outputs: ['h0'] }),
        new Node({ name: 'fc1_bias', opType: 'Add', inputs: ['h0', 'b1'], outputs: ['h1'] }),
        new Node({ name: 'act', opType: 'Relu', inputs: ['h1'], outputs: ['h2'] }),
        new Node({ name: 'fc2', opType: 'MatMul', inputs: ['h2', 'w2'], outputs: ['o0'] }),
        new Node({ name: 'fc2_bias', opType: 'Add', inputs: ['o0', 'b2'], outputs: ['o1'] }),
        new Node({ name: 'residual', opType: 'Add', inputs: ['x', 'o1'], outputs: ['y'] }),
      ],
    });
    const feeds = { x: { data: gaussian(2 * tokens * d, 25), dims: [2, tokens, d] } };
    const before = join(tmp.dir, 'mlp-before.onnx');
    await writeOnnxFile(build(), before);
    const ref = await runFloat(before, feeds);
    const { path, details, report } = await pruneAndWrite(build(), { sparsity: 1 / 8, roundTo: 1 }, 'mlp-after.onnx');
    assert.deepEqual(details.groups.map((g) => [g.producers.join('+'), g.channelsBefore, g.channelsAfter]), [['fc1', 8, 7]]);
    assert.deepEqual(details.pinned.map((p) => p.producers.join('+')), ['fc2']);
    assert.match(report.warnings.join('\n'), /group of fc2 not pruned: Add residual reads it/);
    const written = readOnnxFile(path);
    assert.deepEqual(['w1', 'b1', 'w2'].map((n) => written.graph.initializers.get(n)!.dims), [[d, 7], [7], [7, d]]);
    const out = await runFloat(path, feeds);
    assert.ok(maxAbsDiff(ref, out) <= 1e-5, `max |Δ| ${maxAbsDiff(ref, out)}`);
  });

  it('MNIST: a zero channel of conv2 also leaves the MatMul whose weight is a Reshape of [16,4,4,10] (its 16 rows, and the Reshape to [240, 10])', async () => {
    const src = fixture('mnist', 'mnist.onnx');
    const model = readOnnxFile(src);
    zeroChannel(model, 9, [{ tensor: 'Parameter87', axis: 0 }, { tensor: 'Parameter88', axis: 0 }]);
    const before = join(tmp.dir, 'mnist-zero-before.onnx');
    await writeOnnxFile(model, before);
    const feeds = { Input3: { data: gaussian(28 * 28, 31).map((v) => Math.abs(v)), dims: [1, 1, 28, 28] } };
    const ref = await runFloat(before, feeds);
    const { path, details } = await pruneAndWrite(model, { sparsity: 0, roundTo: 1, groups: { Convolution110: 1 / 16 } }, 'mnist-zero-after.onnx');
    assert.deepEqual(details.groups.map((g) => [g.producers.join('+'), g.channelsAfter]), [['Convolution28', 8], ['Convolution110', 15]]);
    const written = readOnnxFile(path);
    assert.deepEqual(written.graph.initializers.get('Parameter193')!.dims, [15, 4, 4, 10]);
    assert.deepEqual(Array.from(written.graph.initializers.get('Parameter193_reshape1_shape')!.typed() as BigInt64Array, Number), [240, 10]);
    const out = await runFloat(path, feeds);
    assert.ok(maxAbsDiff(ref, out) <= 1e-5, `max |Δ| ${maxAbsDiff(ref, out)}`);
  });

  it('a zero channel of a Concat input maps to its offset: conv4 channel 3 is Concat channel 24+3, Flatten rows (24+3)·64…', async () => {
    const model = couplingModel(3);
    zeroChannel(model, 3, ['w4', 'w4_b'].map((tensor) => ({ tensor, axis: 0 as const })));
    const before = join(tmp.dir, 'cat-before.onnx');
    await writeOnnxFile(model, before);
    const ref = await runFloat(before, input);
    const { path } = await pruneAndWrite(model, { sparsity: 0, roundTo: 1, groups: { conv4: 1 / 16 } }, 'cat-after.onnx');
    assert.deepEqual(readOnnxFile(path).graph.initializers.get('w5')!.dims, [16, 39, 1, 1]);
    const out = await runFloat(path, input);
    assert.ok(maxAbsDiff(ref, out) <= 1e-5, `max |Δ| ${maxAbsDiff(ref, out)}`);
  });

  it('a zero channel before Flatten→Gemm is removed as a block of H·W rows', async () => {
    const model = couplingModel(5);
    zeroChannel(model, 2, ['w5', 'w5_b'].map((tensor) => ({ tensor, axis: 0 as const })));
    const before = join(tmp.dir, 'fc-before.onnx');
    await writeOnnxFile(model, before);
    const ref = await runFloat(before, input);
    const { path } = await pruneAndWrite(model, { sparsity: 0, roundTo: 1, groups: { conv5: 1 / 16 } }, 'fc-after.onnx');
    assert.deepEqual(readOnnxFile(path).graph.initializers.get('wfc')!.dims, [10, 15 * 64]);
    const out = await runFloat(path, input);
    assert.ok(maxAbsDiff(ref, out) <= 1e-5, `max |Δ| ${maxAbsDiff(ref, out)}`);
  });

  it('excluded layers pin their group; bad options are clear errors', async () => {
    const { details, ctx } = await pruneAndWrite(couplingModel(), { sparsity: 0.5, roundTo: 4, exclude: ['conv2'] }, 'excl.onnx');
    const pinned = details.pinned.find((p) => p.producers.includes('conv1'))!;
    assert.match(pinned.reasons.join(';'), /excluded layer conv2/);
    assert.ok(ctx.warnings.some((w) => /conv1, conv2 not pruned/.test(w)), ctx.warnings.join('\n'));
    await assert.rejects(channelPrunePass.run(couplingModel(), { sparsity: 1 }, createPassContext()), /sparsity must be in \[0, 1\)/);
    await assert.rejects(channelPrunePass.run(couplingModel(), { sparsity: 0.2, groups: { nope: 0.5 } }, createPassContext()), /no layer named nope/);
  });
});

describe('channel pruning: SqueezeNet 1.0', () => {
  it('a zero channel of fire2/expand3x3 (inside the Concat) is removed with no change to the outputs', async () => {
    const model = readOnnxFile(fixture('squeezenet', 'squeezenet1.0_fp32.onnx'));
    zeroChannel(model, 9, ['fire2/expand3x3_w_0', 'fire2/expand3x3_b_0'].map((tensor) => ({ tensor, axis: 0 as const })));
    const before = join(tmp.dir, 'sq-zero-before.onnx');
    await writeOnnxFile(model, before);
    const image = { data_0: { data: Float32Array.from(gaussian(3 * 224 * 224, 4), (v) => 50 * v), dims: [1, 3, 224, 224] } };
    const ref = await runFloat(before, image);
    const { path } = await pruneAndWrite(model, { sparsity: 0, roundTo: 1, groups: { 'fire2/expand3x3_1': 1 / 64 } }, 'sq-zero-after.onnx');
    assert.deepEqual(readOnnxFile(path).graph.initializers.get('fire3/squeeze1x1_w_0')!.dims, [16, 127, 1, 1]);
    const out = await runFloat(path, image);
    assert.ok(maxAbsDiff(ref, out) <= 1e-5, `max |Δ| ${maxAbsDiff(ref, out)}`);
  });

  it('30 % of prunable channels: ≤ 75 % of the parameters, consistent, runs; agreement and latency reported', async () => {
    const src = fixture('squeezenet', 'squeezenet1.0_fp32.onnx');
    const model = readOnnxFile(src);
    const paramsBefore = modelStats(model).parameters;
    const { path, details, report } = await pruneAndWrite(model, { sparsity: 0.3 }, 'squeezenet-pruned.onnx');
    assert.deepEqual(channelMismatches(path, { data_0: 3 }), []);
    const paramsAfter = modelStats(readOnnxFile(path)).parameters;
    assert.ok(paramsAfter <= 0.75 * paramsBefore, `${paramsAfter} / ${paramsBefore}`);
    assert.deepEqual(details.pinned.map((p) => p.producers.join('+')), ['Conv(conv10_1)']);
    const data = fixture('imagenet-100');
    const fp32 = await evaluate({ model: src, data, preprocess: 'caffe', ep: 'cpu', warmup: 3, runs: 30 });
    const pruned = await evaluate({ model: path, data, preprocess: 'caffe', ep: 'cpu', reference: src, warmup: 3, runs: 30 });
    assert.equal(pruned.data.n, 100);
    console.log(JSON.stringify({
      achievedSparsity: details.achievedSparsity, prunableChannels: details.prunableChannels, removedChannels: details.removedChannels,
      parameters: [paramsBefore, paramsAfter, paramsAfter / paramsBefore], bytes: [report.bytesBefore, report.bytesAfter],
      top1: [fp32.accuracy?.top1, pruned.accuracy?.top1], agreement: pruned.agreement,
      latencyP50Ms: [fp32.latency.p50Ms, pruned.latency.p50Ms], latencyRatio: pruned.latency.p50Ms / fp32.latency.p50Ms,
    }));
  });
});
