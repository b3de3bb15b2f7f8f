import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fixture } from '../../core/testing/fixtures.ts';
import { useTempHome, whittle } from '../testing.ts';

describe('whittle prune', () => {
  const dirs = useTempHome('prune');

  it('magnitude --json: the SPEC §3 document, deflated sizes, the storage note, a recorded run', async () => {
    const r = await whittle('prune', fixture('mnist', 'mnist.onnx'), '-o', join(dirs.work(), 'm.onnx'), '--method', 'magnitude', '--sparsity', '0.5', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    for (const key of ['input', 'output', 'method', 'bytesBefore', 'bytesAfter', 'parametersBefore', 'parametersAfter', 'sparsity', 'seconds', 'peakRssBytes', 'nodesChanged', 'excluded', 'warnings']) assert.ok(key in doc, key);
    assert.ok(Math.abs(doc.sparsity - 0.5) < 0.01, String(doc.sparsity));
    assert.ok(doc.deflatedBytesAfter < doc.deflatedBytesBefore * 0.7);
    assert.equal(typeof doc.deflateSeconds, 'number', 'the time spent measuring them, apart from the step\'s');
    assert.ok(doc.warnings.some((w: string) => /densif/.test(w)));
    const shown = JSON.parse((await whittle('experiments', 'show', doc.runId, '--json')).out);
    assert.equal(shown.kind, 'prune');
  });

  it('--bias-correction: magnitude with --calib keeps each output mean, reports where the correction went', async () => {
    const data = fixture('mnist', 't10k-images-idx3-ubyte.gz');
    const out = join(dirs.work(), 'mbc.onnx');
    const r = await whittle('prune', fixture('mnist', 'mnist.onnx'), '-o', out, '--method', 'magnitude', '--sparsity', '0.5', '--bias-correction',
      '--calib', data, '--preprocess', 'mnist', '--samples', '32', '--no-record', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.equal(doc.details.biasCorrection, true);
    // the MNIST Convs and the MatMul have no bias input; the per-channel Add after each takes the correction
    assert.deepEqual(doc.details.layers.map((l: { biasCorrection?: { target: string } }) => l.biasCorrection?.target), ['bias', 'bias', 'bias']);
    assert.equal(doc.parametersAfter, doc.parametersBefore);
    const e = JSON.parse((await whittle('eval', out, '--data', data, '--preprocess', 'mnist', '--limit', '200', '--runs', '1', '--no-record', '--json')).out);
    assert.ok(e.accuracy.top1 > 0.9, String(e.accuracy.top1));
    const bad = await whittle('prune', fixture('mnist', 'mnist.onnx'), '-o', join(dirs.work(), 'z.onnx'), '--method', 'magnitude', '--bias-correction', '--no-record');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /calibration data/);
  });

  it('channel pruning really shrinks SqueezeNet (≤ 75 % of the parameters)', async () => {
    const r = await whittle('prune', fixture('squeezenet', 'squeezenet1.0_fp32.onnx'), '-o', join(dirs.work(), 'sq.onnx'), '--method', 'channel', '--sparsity', '0.3', '--no-record', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.ok(doc.parametersAfter <= 0.75 * doc.parametersBefore, `${doc.parametersAfter} of ${doc.parametersBefore}`);
    assert.ok(doc.bytesAfter < doc.bytesBefore * 0.75);
    const e = JSON.parse((await whittle('eval', join(dirs.work(), 'sq.onnx'), '--runs', '1', '--no-record', '--json')).out);
    assert.equal(e.parameters, doc.parametersAfter, 'onnxruntime runs the pruned model');
  });

  it('heads on the transformer test bed: the heads line, each block\'s removed heads, no storage note (structured)', async () => {
    const zoo = join(import.meta.dirname, '..', '..', 'native-models', 'zoo', 'transformer');
    const r = await whittle('prune', join(zoo, 'char-transformer.onnx'), '-o', join(dirs.work(), 'lm.onnx'), '--method', 'heads', '--sparsity', '0.25', '--no-record');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /method {6}heads \(structured: weights removed, not zeroed\)/);
    assert.match(r.out, /heads {7}8 → 6 \(ranked by ‖Wv,h‖·‖Wo,h‖\)/);
    assert.match(r.out, /h0\.attn\.o_proj: removed 1 of 4\n/);
    assert.doesNotMatch(r.err, /densif/);
    const usage = await whittle('prune', join(zoo, 'char-transformer.onnx'), '-o', join(dirs.work(), 'lm2.onnx'), '--method', 'heads', '--importance', 'activation', '--no-record');
    assert.equal(usage.code, 2);
    assert.match(usage.err, /activation importance is measured on calibration data \(--calib DATA\)/);
  });

  it('bad input and usage: one line naming the problem, exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['--method', 'magnitude', '--sparsity', '1'], /sparsity/],
      [['--method', 'magnitude', '--sparsity', '-0.1'], /sparsity/],
      [['--method', 'magnitude', '--sparsity=-0.1'], /sparsity/],
      [['--method', 'nm', '--pattern', '4:2'], /N must be/],
      // magnitude would have pruned 50 % unstructured and said nothing of the pattern
      [['--method', 'magnitude', '--pattern', '2:4'], /--pattern 2:4 applies to nm, wanda, sparsegpt pruning, not to magnitude \(N:M by magnitude is --method nm --pattern 2:4\)/],
      [['--method', 'wanda', '--sparsity', '0.5'], /calibration data/],
      [['--method', 'pluck'], /method/],
    ];
    for (const [extra, expect] of cases) {
      const r = await whittle('prune', fixture('mnist', 'mnist.onnx'), '-o', join(dirs.work(), 'x.onnx'), ...extra, '--no-record');
      assert.equal(r.code, 2, `${extra.join(' ')}: ${r.err}`);
      assert.equal(r.err.trim().split('\n').length, 1, r.err);
      assert.match(r.err, expect);
    }
    const nothing = await whittle('prune', fixture('shufflenet-int8', 'shufflenet-v2-12-int8.onnx'), '-o', join(dirs.work(), 'y.onnx'), '--method', 'magnitude', '--no-record');
    assert.equal(nothing.code, 2);
    assert.match(nothing.err, /prun/i);
  });

  it('a recipe prunes (SparseGPT 50 %) then quantizes (static int8): smaller after deflate, accuracy kept', async () => {
    const data = fixture('mnist', 't10k-images-idx3-ubyte.gz');
    const recipe = join(dirs.work(), 'combo.json');
    writeFileSync(recipe, JSON.stringify({
      model: fixture('mnist', 'mnist.onnx'),
      steps: [
        { prune: { method: 'sparsegpt', sparsity: 0.5, calib: { path: data, preprocess: 'mnist' }, samples: 128 } },
        { quantize: { method: 'static', calib: { path: data, preprocess: 'mnist', limit: 256 }, perChannel: true } },
      ],
      eval: { data: { path: data, preprocess: 'mnist', offset: 256, limit: 3000 }, runs: 1 },
    }));
    const r = await whittle('run', recipe, '-o', join(dirs.work(), 'combo.onnx'), '--no-record', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.deepEqual(doc.steps.map((s: { step: string }) => s.step), ['prune sparsegpt', 'quantize static']);
    assert.ok(doc.bytesAfter < doc.bytesBefore / 2);
    assert.ok(doc.eval.agreement.top1 >= 0.99, `agreement ${doc.eval.agreement.top1}`);
  });
});
