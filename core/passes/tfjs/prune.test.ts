import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { io } from '@tensorflow/tfjs';
import { PruneStep } from '../../../api/recipe.ts';
import { WhittleError } from '../../../api/errors.ts';
import { readTfjsModel } from '../../../native-models/formats/tfjs/index.ts';
import { loadTf } from '../../../native-models/runtimes/tfjs.ts';
import { readWeightsIndependently, type IndependentWeight } from '../../../native-models/formats/tfjs/testing.ts';
import { evaluateTfjs } from '../../evaluate/tfjs-evaluate.ts';
import { fixture } from '../../testing/fixtures.ts';
import { createPassContext } from '../pass.ts';
import { tfjsMagnitudePrunePass } from './prune.ts';
import { pruneTfjsModel } from './run-on-file.ts';

const work = mkdtempSync(join(tmpdir(), 'whittle-tfjs-prune-'));
after(() => rmSync(work, { recursive: true, force: true }));

const FLOWERS = fixture('tfjs-automl-flowers', 'model.json');
const NSFWJS = fixture('tfjs-nsfwjs-mobilenet-v2', 'model.json');

interface KernelFacts {
  /** Input (reduction) axis of each N:M-able kernel; depthwise kernels are listed apart. */
  inputAxis: Map<string, number>;
  depthwise: Set<string>;
}

/**
 * The kernels, found here without the topology code: Keras names kernels `<layer>/kernel`
 * ([kh, kw, in, out] or Dense [in, out]) and `<layer>/depthwise_kernel`; a graph model's Conv2D and
 * MatMul read theirs as input 1 (HWIO, and [in, out] without transpose_b), DepthwiseConv2dNative too.
 */
function kernelFacts(modelJson: string): KernelFacts {
  const doc = JSON.parse(readFileSync(modelJson, 'utf8'));
  const facts: KernelFacts = { inputAxis: new Map(), depthwise: new Set() };
  if (Array.isArray(doc.modelTopology.node)) {
    for (const node of doc.modelTopology.node as { op: string; input?: string[]; attr?: { transpose_b?: { b?: boolean } } }[]) {
      const filter = node.input?.[1];
      if (!filter) continue;
      if (node.op === 'Conv2D') facts.inputAxis.set(filter, 2);
      if (node.op === 'MatMul') facts.inputAxis.set(filter, node.attr?.transpose_b?.b ? 1 : 0);
      if (node.op === 'DepthwiseConv2dNative') facts.depthwise.add(filter);
    }
    return facts;
  }
  for (const group of doc.weightsManifest) {
    for (const w of group.weights as { name: string; shape: number[] }[]) {
      if (w.name.endsWith('/depthwise_kernel')) facts.depthwise.add(w.name);
      else if (w.name.endsWith('/kernel')) facts.inputAxis.set(w.name, w.shape.length === 4 ? 2 : 0);
    }
  }
  return facts;
}

const zerosOf = (v: Float32Array) => v.reduce((n, x) => n + (x === 0 ? 1 : 0), 0);

/** Every group of `m` consecutive weights along `axis` (the last one padded) keeps at most `n` non-zeros. */
function assertNm(w: IndependentWeight, axis: number, n: number, m: number): number {
  const shape = w.shape;
  const len = shape[axis]!;
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  let groups = 0;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      for (let g = 0; g < len; g += m) {
        let nonzero = 0;
        for (let t = g; t < Math.min(len, g + m); t++) if (w.values![(o * len + t) * inner + j] !== 0) nonzero++;
        assert.ok(nonzero <= n, `${w.name}: group at out ${o}/${j}, input ${g} keeps ${nonzero} of ${m}`);
        groups++;
      }
    }
  }
  return groups;
}

const step = (raw: Record<string, unknown>) => PruneStep.parse(raw);

describe('TF.js magnitude pruning', () => {
  it('flowers, 50 % per layer: every kernel reads back (from the shard bytes) at 50 %, nothing else changes', async () => {
    const out = join(work, 'flowers-mag', 'model.json');
    const r = await pruneTfjsModel({ input: FLOWERS, output: out, step: step({ method: 'magnitude', sparsity: 0.5 }) });
    const before = new Map(readWeightsIndependently(FLOWERS).map((w) => [w.name, w]));
    const facts = kernelFacts(FLOWERS);
    let kernels = 0;
    for (const w of readWeightsIndependently(out)) {
      const orig = before.get(w.name)!;
      const isKernel = facts.inputAxis.has(w.name) || facts.depthwise.has(w.name);
      if (!isKernel) {
        assert.deepEqual(w.values, orig.values, `${w.name} is not a kernel and must not change`);
        continue;
      }
      kernels++;
      const n = w.values!.length;
      assert.equal(zerosOf(w.values!), Math.round(0.5 * n), `${w.name} sparsity`);
      // the survivors are untouched and none is smaller in magnitude than a pruned weight
      let smallestKept = Infinity;
      let largestPruned = 0;
      w.values!.forEach((v, i) => {
        if (v !== 0) { assert.equal(v, orig.values![i]); smallestKept = Math.min(smallestKept, Math.abs(v)); }
        else largestPruned = Math.max(largestPruned, Math.abs(orig.values![i]!));
      });
      assert.ok(largestPruned <= smallestKept, w.name);
    }
    assert.equal(kernels, 53);
    const details = r.details as { sparsity: number; layers: unknown[] };
    assert.equal(details.layers.length, 53);
    assert.ok(Math.abs(details.sparsity - 0.5) < 0.001);
    assert.ok(r.deflatedBytesAfter < r.deflatedBytesBefore, 'zeros compress');
    assert.match(r.warnings.join('\n'), /saves storage, not time/);
    // and TF.js still loads and runs it
    const run = await evaluateTfjs({ model: out, data: fixture('tfjs-automl-flowers', 'daisy.jpg'), preprocess: 'tf-square', warmup: 0, runs: 1 });
    assert.equal(run.predictions![0]!.length, 5);
  });

  it('nsfwjs (uint8), 50 % global: still uint8 with the same min/scale, pruned codes mean exactly 0, the rest untouched', async () => {
    const out = join(work, 'nsfwjs-mag', 'model.json');
    const r = await pruneTfjsModel({ input: NSFWJS, output: out, step: step({ method: 'magnitude', sparsity: 0.5, scope: 'global' }) });
    const before = new Map(readWeightsIndependently(NSFWJS).map((w) => [w.name, w]));
    let parameters = 0;
    let zeros = 0;
    for (const w of readWeightsIndependently(out)) {
      const orig = before.get(w.name)!;
      assert.deepEqual(w.quantization, orig.quantization, w.name);
      const kernel = w.name.endsWith('/kernel') || w.name.endsWith('/depthwise_kernel');
      w.codes!.forEach((c, i) => {
        if (c !== orig.codes![i]) {
          assert.ok(kernel, `${w.name} changed but is no kernel`);
          assert.equal(w.values![i], 0, `${w.name}[${i}] was pruned to a code that is not 0`);
        }
      });
      if (kernel) { parameters += w.values!.length; zeros += zerosOf(w.values!); }
    }
    assert.ok(Math.abs(zeros / parameters - 0.5) < 0.001, `global sparsity ${zeros / parameters}`);
    assert.equal(r.parametersAfter, r.parametersBefore);
  });

  it('no kernel to prune, or everything excluded, is a clear error', async () => {
    const model = readTfjsModel(FLOWERS);
    await assert.rejects(
      tfjsMagnitudePrunePass.run(model, { sparsity: 0.5, exclude: ['Conv2D', 'DepthwiseConv2dNative', 'MatMul'] }, createPassContext()),
      (err: unknown) => err instanceof WhittleError && err.code === 'BAD_USAGE' && /nothing to prune/.test(err.message),
    );
    await assert.rejects(tfjsMagnitudePrunePass.run(model, { sparsity: 1.2 }, createPassContext()), /sparsity must be a number in \[0, 1\)/);
  });
});

describe('TF.js N:M pruning', () => {
  for (const [name, input] of [['flowers (float32 graph model)', FLOWERS], ['nsfwjs (uint8 layers model)', NSFWJS]] as const) {
    it(`${name}, 2:4: holds on every group of 4 along each kernel's input dimension, read back from the shard bytes`, async () => {
      const out = join(work, `nm-${input === FLOWERS ? 'flowers' : 'nsfwjs'}`, 'model.json');
      const r = await pruneTfjsModel({ input, output: out, step: step({ method: 'nm', pattern: '2:4' }) });
      const before = new Map(readWeightsIndependently(input).map((w) => [w.name, w]));
      const facts = kernelFacts(input);
      let groups = 0;
      let checked = 0;
      for (const w of readWeightsIndependently(out)) {
        const axis = facts.inputAxis.get(w.name);
        if (axis === undefined) {
          assert.deepEqual(w.values, before.get(w.name)!.values, `${w.name} (no N:M) is unchanged`);
          continue;
        }
        groups += assertNm(w, axis, 2, 4);
        checked++;
      }
      assert.equal(checked, input === FLOWERS ? 36 : 38); // flowers: 35 Conv2D + MatMul; nsfwjs: 35 Conv2D + 3 Dense
      assert.ok(groups > 10000);
      assert.match(r.warnings.join('\n'), /17 kernels left unpruned by 2:4 \((DepthwiseConv2dNative|DepthwiseConv2D): a depthwise convolution has no reduction over input channels\)/);
    });
  }

  it('the first conv (3 input channels) keeps up to 2 of its padded group of 3, and says so', async () => {
    const out = join(work, 'nm-first', 'model.json');
    const r = await pruneTfjsModel({ input: NSFWJS, output: out, step: step({ method: 'nm', pattern: '2:4' }) });
    assert.match(r.warnings.join('\n'), /Conv1\/kernel: input dimension 3 is not a multiple of M = 4; the last group of 3 is treated as zero-padded to 4 and keeps up to 2/);
  });
});

describe('a model saved by TF.js itself (tf.sequential → layers-model)', () => {
  it('prunes 2:4 along Dense [in, out], and TF.js loads the file with every group of 4 inputs holding 2 zeros', async () => {
    const { tf } = await loadTf();
    const source = tf.sequential({ layers: [tf.layers.dense({ units: 6, inputShape: [8], activation: 'relu' }), tf.layers.dense({ units: 3 })] });
    let saved: io.ModelArtifacts | null = null;
    await source.save(tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    const artifacts = saved! as io.ModelArtifacts;
    const dir = join(work, 'sequential');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'weights.bin'), Buffer.from(artifacts.weightData as ArrayBuffer));
    writeFileSync(join(dir, 'model.json'), JSON.stringify({
      modelTopology: artifacts.modelTopology, format: artifacts.format, generatedBy: artifacts.generatedBy, convertedBy: null,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
    }));
    const out = join(work, 'sequential-nm', 'model.json');
    const r = await pruneTfjsModel({ input: join(dir, 'model.json'), output: out, step: step({ method: 'nm', pattern: '2:4' }) });
    assert.equal((r.details as { layers: unknown[] }).layers.length, 2);
    const shard = readFileSync(join(work, 'sequential-nm', 'group1-shard1of1.bin'));
    const loaded = await tf.loadLayersModel(tf.io.fromMemory({ ...artifacts, weightData: shard.buffer.slice(shard.byteOffset, shard.byteOffset + shard.length) as ArrayBuffer }));
    const kernel = loaded.layers[0]!.getWeights()[0]!;
    assert.deepEqual(kernel.shape, [8, 6]);
    const k = kernel.arraySync() as number[][];
    for (let out = 0; out < 6; out++) {
      for (let g = 0; g < 8; g += 4) assert.equal([0, 1, 2, 3].filter((t) => k[g + t]![out] === 0).length, 2, `output ${out}, inputs ${g}..${g + 3}`);
    }
    const second = loaded.layers[1]!.getWeights()[0]!.arraySync() as number[][];
    // 6 inputs: one group of 4 and a padded group of 2 (kept whole: 2 ≤ N)
    for (let out = 0; out < 3; out++) assert.equal([0, 1, 2, 3].filter((t) => second[t]![out] === 0).length, 2);
    loaded.dispose();
    source.dispose();
  });
});

