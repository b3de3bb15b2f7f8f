import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PruneStep } from '../../../api/recipe.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { Node, type Model } from '../../../native-models/ir/model.ts';
import { TappedModel } from '../../calibrate/tap.ts';
import { createPassContext } from '../pass.ts';
import { npyBytes } from '../../evaluate/data/test-support.ts';
import { buildModel, floatTensor, gaussian, tempDir, valueInfo } from '../quantize/test-models.ts';
import { int, ints, memoryDataset, str } from './layer-inputs-testing.ts';
import type { LayerResult } from './layer-inputs-pass.ts';
import { applyPruneStep } from './prune-model.ts';
import { sparseGptPrunePass } from './sparsegpt.ts';
import { wandaPrunePass } from './wanda.ts';

const float = (name: string, v: number) => ({ name, type: 1, value: v, extra: {} });

/** Inputs well away from zero mean (as after a ReLU), so pruning shifts the output means. */
function samples(n: number, per: number, seed: number): Float32Array[] {
  return Array.from({ length: n }, (_, i) => gaussian(per, seed + i).map((v) => Math.abs(v) + 0.5));
}

/** Mean of every output channel (axis 1) of the graph's output over the data. */
async function channelMeans(model: Model, data: ReturnType<typeof memoryDataset>): Promise<Float64Array> {
  const tapped = await TappedModel.create(model, []);
  let sums: Float64Array | null = null;
  let count = 0;
  try {
    for await (const { values } of tapped.batches(data, { batchSize: 4 })) {
      const y = values[model.graph.outputs[0]!.name]!;
      const [b, c] = [y.dims[0]!, y.dims[1]!];
      const inner = y.data.length / (b * c);
      sums ??= new Float64Array(c);
      for (let i = 0; i < b; i++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < inner; p++) sums[ch] = sums[ch]! + Number(y.data[(i * c + ch) * inner + p]);
      count += b * inner;
    }
  } finally {
    await tapped.close();
  }
  return sums!.map((s) => s / count);
}

function maxDiff(a: Float64Array, b: Float64Array): number {
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

interface Case { name: string; build: () => Model; sampleDims: number[]; where: string }

const cases: Case[] = [
  {
    name: 'Conv with a bias', where: 'bias', sampleDims: [3, 6, 6],
    build: () => buildModel({
      inputs: [valueInfo('x', DataType.FLOAT, ['n', 3, 6, 6])], outputs: [valueInfo('y', DataType.FLOAT, null as never)],
      initializers: [floatTensor('W', [4, 3, 3, 3], gaussian(108, 1)), floatTensor('B', [4], Float32Array.from([0.1, -0.2, 0.3, 0]))],
      nodes: [new Node({ name: 'conv', opType: 'Conv', inputs: ['x', 'W', 'B'], outputs: ['y'], attributes: [ints('pads', [1, 1, 1, 1])] })],
    }),
  },
  {
    name: 'grouped Conv without a bias', where: 'new-bias', sampleDims: [4, 5, 5],
    build: () => buildModel({
      inputs: [valueInfo('x', DataType.FLOAT, ['n', 4, 5, 5])], outputs: [valueInfo('y', DataType.FLOAT, null as never)],
      initializers: [floatTensor('W', [6, 2, 3, 3], gaussian(108, 2))],
      nodes: [new Node({ name: 'conv', opType: 'Conv', inputs: ['x', 'W'], outputs: ['y'], attributes: [int('group', 2), ints('strides', [2, 2])] })],
    }),
  },
  {
    name: 'Conv without a bias, followed by a per-channel Add (as CNTK writes it)', where: 'bias', sampleDims: [2, 5, 5],
    build: () => buildModel({
      inputs: [valueInfo('x', DataType.FLOAT, ['n', 2, 5, 5])], outputs: [valueInfo('y', DataType.FLOAT, null as never)],
      initializers: [floatTensor('W', [3, 2, 3, 3], gaussian(54, 6)), floatTensor('b', [3, 1, 1], Float32Array.from([0.5, -1, 2]))],
      nodes: [
        new Node({ name: 'conv', opType: 'Conv', inputs: ['x', 'W'], outputs: ['h'], attributes: [str('auto_pad', 'SAME_UPPER')] }),
        new Node({ name: 'bias', opType: 'Add', inputs: ['h', 'b'], outputs: ['y'] }),
      ],
    }),
  },
  {
    name: 'Gemm without C (a new C; beta no longer matters)', where: 'new-bias', sampleDims: [8],
    build: () => buildModel({
      inputs: [valueInfo('x', DataType.FLOAT, ['n', 8])], outputs: [valueInfo('y', DataType.FLOAT, ['n', 5])],
      initializers: [floatTensor('W', [8, 5], gaussian(40, 8))],
      nodes: [new Node({ name: 'fc', opType: 'Gemm', inputs: ['x', 'W'], outputs: ['y'], attributes: [float('alpha', 0.5), float('beta', 3)] })],
    }),
  },
  {
    name: 'Gemm with a scalar C, alpha and beta', where: 'bias', sampleDims: [8],
    build: () => buildModel({
      inputs: [valueInfo('x', DataType.FLOAT, ['n', 8])], outputs: [valueInfo('y', DataType.FLOAT, ['n', 5])],
      initializers: [floatTensor('W', [5, 8], gaussian(40, 3)), floatTensor('C', [1], Float32Array.from([0.25]))],
      nodes: [new Node({ name: 'fc', opType: 'Gemm', inputs: ['x', 'W', 'C'], outputs: ['y'], attributes: [int('transB', 1), float('alpha', 2), float('beta', 0.5)] })],
    }),
  },
  {
    name: 'MatMul followed by a bias Add', where: 'bias', sampleDims: [8],
    build: () => buildModel({
      inputs: [valueInfo('x', DataType.FLOAT, ['n', 8])], outputs: [valueInfo('y', DataType.FLOAT, ['n', 5])],
      initializers: [floatTensor('W', [8, 5], gaussian(40, 4)), floatTensor('b', [1, 5], Float32Array.from([1, 2, 3, 4, 5]))],
      nodes: [
        new Node({ name: 'fc', opType: 'MatMul', inputs: ['x', 'W'], outputs: ['h'] }),
        new Node({ name: 'bias', opType: 'Add', inputs: ['h', 'b'], outputs: ['y'] }),
      ],
    }),
  },
  {
    name: 'MatMul alone (a new Add)', where: 'add', sampleDims: [8],
    build: () => buildModel({
      inputs: [valueInfo('x', DataType.FLOAT, ['n', 8])], outputs: [valueInfo('y', DataType.FLOAT, ['n', 5])],
      initializers: [floatTensor('W', [8, 5], gaussian(40, 5))],
      nodes: [new Node({ name: 'fc', opType: 'MatMul', inputs: ['x', 'W'], outputs: ['y'] })],
    }),
  },
];

describe('bias correction', () => {
  for (const c of cases) {
    it(`keeps every output's mean over the calibration data: ${c.name}`, async () => {
      const per = c.sampleDims.reduce((a, b) => a * b, 1);
      const data = memoryDataset('x', c.sampleDims, samples(12, per, 40));
      const want = await channelMeans(c.build(), data);
      const plain = c.build();
      await wandaPrunePass.run(plain, { sparsity: 0.5, data, comparison: 'layer' }, createPassContext());
      const shifted = maxDiff(await channelMeans(plain, data), want);
      const model = c.build();
      const report = await wandaPrunePass.run(model, { sparsity: 0.5, data, comparison: 'layer', biasCorrection: true }, createPassContext());
      const layer = (report.details!['layers'] as LayerResult[])[0]!;
      assert.equal(layer.sparsity, 0.5);
      assert.equal(layer.biasCorrection?.target, c.where);
      assert.equal(report.details!['biasCorrection'], true);
      const got = await channelMeans(model, data);
      const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assert.ok(shifted > 1e-2 * scale, `pruning alone should move some mean (moved ${shifted})`);
      assert.ok(maxDiff(got, want) < 1e-5 * scale, `means ${[...got]} vs ${[...want]}`);
      // the graph still has one output of the same name, and the weight is as sparse as without correction
      assert.deepEqual(model.graph.outputs.map((o) => o.name), ['y']);
    });
  }

  it('lists a new bias among the graph inputs of an IR 3 model, as IR < 4 requires', async () => {
    const model = cases[1]!.build();
    model.irVersion = 3;
    model.graph.inputs.push(valueInfo('W', DataType.FLOAT, [6, 2, 3, 3]));
    const data = memoryDataset('x', [4, 5, 5], samples(6, 100, 3));
    const want = await channelMeans(cases[1]!.build(), data);
    await wandaPrunePass.run(model, { sparsity: 0.5, data, biasCorrection: true }, createPassContext());
    const bias = model.graph.nodes[0]!.inputs[2]!;
    assert.ok(model.graph.initializers.has(bias));
    assert.ok(model.graph.inputs.some((v) => v.name === bias));
    assert.ok(maxDiff(await channelMeans(model, data), want) < 1e-5 * want.reduce((m, v) => Math.max(m, Math.abs(v)), 0));
  });

  it('also corrects SparseGPT, whose kept weights move', async () => {
    const c = cases.find((x) => x.name.startsWith('MatMul followed'))!;
    const data = memoryDataset('x', [8], samples(16, 8, 7));
    const want = await channelMeans(c.build(), data);
    const model = c.build();
    await sparseGptPrunePass.run(model, { sparsity: 0.5, data, biasCorrection: true }, createPassContext());
    assert.ok(maxDiff(await channelMeans(model, data), want) < 1e-5 * want.reduce((m, v) => Math.max(m, Math.abs(v)), 0));
  });

  it('magnitude and N:M take it as a step option with calibration data, and say where it went', async () => {
    const { dir, cleanup } = tempDir('bias-correction');
    try {
      const c = cases[0]!;
      const all = samples(10, 3 * 6 * 6, 11);
      const path = join(dir, 'calib.npy');
      const flat = new Float32Array(all.length * all[0]!.length);
      all.forEach((x, i) => flat.set(x, i * x.length));
      writeFileSync(path, npyBytes('<f4', [all.length, ...c.sampleDims], flat));
      const data = memoryDataset('x', c.sampleDims, all);
      const want = await channelMeans(c.build(), data);
      const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      for (const extra of [{ method: 'magnitude', sparsity: 0.5 }, { method: 'nm', pattern: '2:4' }]) {
        const model = c.build();
        const step = PruneStep.parse({ ...extra, biasCorrection: true, calib: { path } });
        const report = await applyPruneStep(model, step, createPassContext());
        assert.equal(report.details!['biasCorrection'], true);
        assert.equal(report.details!['calibrationSamples'], 10);
        const layer = (report.details!['layers'] as { sparsity: number; biasCorrection?: { target: string } }[])[0]!;
        // 2:4 along 3 input channels per kernel position keeps 2 of 3
        assert.equal(layer.sparsity, extra.method === 'nm' ? 1 / 3 : 0.5);
        assert.equal(layer.biasCorrection?.target, 'bias');
        assert.ok(maxDiff(await channelMeans(model, data), want) < 1e-5 * scale, `${extra.method}`);
      }
    } finally {
      cleanup();
    }
  });

  it('refuses bias correction without calibration data, and for channel pruning', async () => {
    const step = PruneStep.parse({ method: 'magnitude', sparsity: 0.5, biasCorrection: true });
    await assert.rejects(applyPruneStep(cases[0]!.build(), step, createPassContext()), /calibration data/);
    const channel = PruneStep.parse({ method: 'channel', sparsity: 0.3, biasCorrection: true });
    await assert.rejects(applyPruneStep(cases[0]!.build(), channel, createPassContext()), /bias correction/);
  });
});
