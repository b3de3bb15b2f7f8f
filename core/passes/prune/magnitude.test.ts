import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { WhittleError } from '../../../api/errors.ts';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { evaluate } from '../../evaluate/evaluate.ts';
import { fixture } from '../../testing/fixtures.ts';
import { createPassContext } from '../pass.ts';
import { tempDir } from '../quantize/test-models.ts';
import { kthSmallest, kthSmallestMagnitude, magnitudePrunePass, magnitudes, smallestMask, type MagnitudeOptions, type PruneSummary } from './magnitude.ts';
import { prunableWeights, type PrunableWeight } from './prunable.ts';
import { computeAdapterName, computeStatus } from '../../../native-models/gpu/device.ts';
import { artifactSize } from './sparsity-report.ts';

const MNIST = fixture('mnist', 'mnist.onnx');
const MNIST_DATA = fixture('mnist', 't10k-images-idx3-ubyte.gz');
const SQUEEZENET = fixture('squeezenet', 'squeezenet1.0_fp32.onnx');
const tmp = tempDir('prune-magnitude');
after(tmp.cleanup);

async function prune(path: string, options: MagnitudeOptions) {
  const model = readOnnxFile(path);
  const report = await magnitudePrunePass.run(model, options, createPassContext());
  return { model, report, summary: report.details as unknown as PruneSummary };
}

describe('magnitude pruning', () => {
  for (const [label, path] of [['MNIST', MNIST], ['SqueezeNet fp32', SQUEEZENET]] as const) {
    it(`${label}: layer scope gives every layer the target sparsity (± one weight)`, async () => {
      for (const sparsity of [0.3, 0.5, 0.9]) {
        const { summary } = await prune(path, { sparsity, scope: 'layer' });
        for (const l of summary.layers) assert.ok(Math.abs(l.zeros - sparsity * l.parameters) <= 1, `${l.name}: ${l.zeros} zeros of ${l.parameters} at ${sparsity}`);
      }
    });
    it(`${label}: global scope gives the target overall (± one weight) with unequal layers`, async () => {
      const { summary } = await prune(path, { sparsity: 0.7, scope: 'global' });
      assert.ok(Math.abs(summary.zeros - 0.7 * summary.parameters) <= 1, `${summary.zeros} of ${summary.parameters}`);
      const spread = summary.layers.map((l) => l.sparsity);
      assert.ok(Math.max(...spread) - Math.min(...spread) > 0.05, 'one threshold should prune layers unequally');
    });
  }

  it('fp16 SqueezeNet stays fp16, kept weights bit for bit', async () => {
    const path = fixture('squeezenet', 'squeezenet1.0_fp16.onnx');
    const before = readOnnxFile(path);
    const { model, summary } = await prune(path, { sparsity: 0.5 });
    for (const l of summary.layers) {
      const a = before.graph.initializers.get(l.weight)!;
      const b = model.graph.initializers.get(l.weight)!;
      assert.equal(b.dtype, 'float16');
      const x = a.typed() as Uint16Array;
      const y = b.typed() as Uint16Array;
      for (let i = 0; i < x.length; i++) assert.ok(y[i] === x[i] || y[i] === 0);
      assert.ok(Math.abs(l.zeros - 0.5 * l.parameters) <= 1);
    }
  });

  it('MNIST: top-1 on 2000 test images at 0/30/50/70/90 % (layer and global); ≥ 98 % at 50 %', async (t) => {
    const rows: string[] = [];
    for (const scope of ['layer', 'global'] as const) {
      for (const sparsity of [0, 0.3, 0.5, 0.7, 0.9]) {
        if (sparsity === 0 && scope === 'global') continue;
        const { model } = await prune(MNIST, { sparsity, scope });
        const out = join(tmp.dir, `mnist-${scope}-${sparsity}.onnx`);
        writeOnnxFile(model, out);
        const r = await evaluate({ model: out, data: MNIST_DATA, preprocess: 'mnist', ep: 'cpu', limit: 2000, runs: 1, warmup: 0 });
        const size = await artifactSize(out);
        rows.push(`${scope} ${sparsity}: top1 ${(r.accuracy!.top1 * 100).toFixed(2)} %, deflated ${size.deflatedBytes} B (${(size.ratio * 100).toFixed(1)} % of ${size.bytes})`);
        if (sparsity === 0.5) assert.ok(r.accuracy!.top1 >= 0.98, `${scope} 50 %: top1 ${r.accuracy!.top1}`);
      }
    }
    for (const row of rows) t.diagnostic(row);
  });

  it('bad options are BAD_USAGE naming the value', async () => {
    for (const sparsity of [1, -0.1, Number.NaN, 1.5]) {
      await assert.rejects(prune(MNIST, { sparsity }), (e: WhittleError) => e.code === 'BAD_USAGE' && e.message.includes(String(sparsity)));
    }
    await assert.rejects(prune(MNIST, { sparsity: 0.5, scope: 'model' as 'layer' }), (e: WhittleError) => e.code === 'BAD_USAGE');
  });

  it('is deterministic: two runs write byte-identical files', async () => {
    const files = [];
    for (const i of [1, 2]) {
      const { model } = await prune(MNIST, { sparsity: 0.6, scope: 'global' });
      const out = join(tmp.dir, `det-${i}.onnx`);
      writeOnnxFile(model, out);
      files.push(readFileSync(out));
    }
    assert.ok(files[0]!.equals(files[1]!));
  });

  it('reports exclusions and protection, and leaves those layers alone', async () => {
    const { report, summary } = await prune(MNIST, { sparsity: 0.5, protectFirstLast: true });
    assert.deepEqual(summary.layers.map((l) => l.name), ['Convolution110']);
    assert.deepEqual(report.excluded, ['Convolution28', 'Times212']);
    await assert.rejects(prune(MNIST, { sparsity: 0.5, exclude: ['Conv', 'MatMul'] }), (e: WhittleError) => e.code === 'BAD_USAGE');
  });
});

describe('the global threshold without a concatenated copy', () => {
  it('zeroes exactly what the quickselect over the concatenation chooses (SqueezeNet: fp16-born ties), and the k-th values agree', async () => {
    const model = readOnnxFile(SQUEEZENET);
    const layers = prunableWeights(model, {}).layers;
    const all = new Float32Array(layers.reduce((n, w) => n + w.parameters, 0));
    let at = 0;
    for (const w of layers) { all.set(magnitudes(w), at); at += w.parameters; }
    for (const k of [0, 1, 1000, 617748, all.length - 1, all.length]) {
      const want = kthSmallest(all, k), got = kthSmallestMagnitude(layers, k, createPassContext());
      if (Number.isNaN(want.value)) assert.ok(Number.isNaN(got.value), `k = ${k}`);
      else assert.deepEqual(got, want, `k = ${k}`);
    }
    for (const sparsity of [0.3, 0.7]) {
      const expected = smallestMask(all, Math.round(sparsity * all.length));
      const pruned = readOnnxFile(SQUEEZENET);
      await magnitudePrunePass.run(pruned, { sparsity, scope: 'global' }, createPassContext());
      const zeroed = new Uint8Array(all.length);
      at = 0;
      for (const w of prunableWeights(pruned, {}).layers) { const v = w.tensor.toFloat32(); for (let i = 0; i < v.length; i++) zeroed[at + i] = v[i] === 0 ? 1 : 0; at += w.parameters; }
      let differ = 0;
      for (let i = 0; i < all.length; i++) if (zeroed[i] !== (expected[i]! || (all[i] === 0 ? 1 : 0))) differ++;
      assert.equal(differ, 0, `${sparsity}: ${differ} weights differ`);
    }
  });

  it('NaN never counts as small; k past the finite values selects nothing', () => {
    const ctx = createPassContext();
    const layer = (values: number[]) => ({ tensor: { toFloat32: () => Float32Array.from(values) } }) as unknown as PrunableWeight;
    const layers = [layer([3, NaN, 1, 0]), layer([2, 2, NaN])];
    // sorted without the NaNs: 0 1 2 2 3
    assert.deepEqual([0, 1, 2, 3, 4].map((k) => kthSmallestMagnitude(layers, k, ctx)), [{ value: 0, below: 0 }, { value: 1, below: 1 }, { value: 2, below: 2 }, { value: 2, below: 2 }, { value: 3, below: 4 }]);
    assert.ok(Number.isNaN(kthSmallestMagnitude(layers, 5, ctx).value));
  });
});

describe('magnitude pruning on the GPU (compute gpu|auto)', () => {
  /** The model's weights after pruning, as bytes, with its report. */
  async function pruned(path: string, options: MagnitudeOptions) {
    const model = readOnnxFile(path);
    const ctx = createPassContext();
    const report = await magnitudePrunePass.run(model, options, ctx);
    const warnings = ctx.warnings;
    const weights = new Map<string, Buffer>();
    for (const t of model.graph.initializers.values()) weights.set(t.name, Buffer.from(t.toFloat32().buffer));
    return { report, warnings, weights };
  }

  it('without an adapter: auto prunes on the CPU with a warning saying why, gpu is UNSUPPORTED', async () => {
    const saved = process.env.WHITTLE_GPU;
    process.env.WHITTLE_GPU = 'off';
    try {
      const cpu = await pruned(MNIST, { sparsity: 0.5, scope: 'global' });
      const auto = await pruned(MNIST, { sparsity: 0.5, scope: 'global', compute: 'auto' });
      assert.deepEqual(auto.weights, cpu.weights);
      assert.ok(auto.warnings.some((w) => /^Magnitude pruning runs on the CPU: .*WHITTLE_GPU=off/.test(w)), auto.warnings.join('; '));
      assert.equal(auto.report.details?.['compute'], undefined);
      await assert.rejects(pruned(MNIST, { sparsity: 0.5, compute: 'gpu' }), (e: unknown) => e instanceof WhittleError && e.code === 'UNSUPPORTED' && /Magnitude pruning on the GPU: .*WHITTLE_GPU=off/.test(e.message));
    } finally {
      if (saved === undefined) delete process.env.WHITTLE_GPU;
      else process.env.WHITTLE_GPU = saved;
    }
  });

  it('on the GPU: the very weights the CPU zeroes, layer and global scope (SqueezeNet fp32, ties included)', async (t) => {
    const status = await computeStatus();
    if (!status.adapter) { t.skip(`no usable GPU adapter: ${status.reason}`); return; }
    for (const options of [{ sparsity: 0.5, scope: 'layer' }, { sparsity: 0.7, scope: 'global' }, { sparsity: 0.3, scope: 'global' }] as const) {
      const cpu = await pruned(SQUEEZENET, options);
      const gpu = await pruned(SQUEEZENET, { ...options, compute: 'gpu', gpuSelectMin: 0 });
      assert.equal(gpu.report.details?.['compute'], computeAdapterName(status.adapter));
      assert.deepEqual(gpu.weights, cpu.weights, JSON.stringify(options));
    }
  });
});
