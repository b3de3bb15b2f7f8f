import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fixture } from '../../core/testing/fixtures.ts';
import { useTempHome, whittle } from '../testing.ts';

const FLOWERS = fixture('tfjs-automl-flowers', 'model.json');
const NSFWJS = fixture('tfjs-nsfwjs-mobilenet-v2', 'model.json');

describe('whittle inspect / quantize / prune / eval on TF.js model.json', () => {
  const dirs = useTempHome('tfjs');

  it('inspect: the SPEC §3 document and a table with the stored type', async () => {
    const r = await whittle('inspect', NSFWJS, '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    for (const key of ['format', 'path', 'bytes', 'irVersion', 'opsets', 'producer', 'inputs', 'outputs', 'parameters', 'nodes', 'opHistogram', 'layers']) assert.ok(key in doc, key);
    assert.equal(doc.format, 'tfjs');
    assert.equal(doc.weights, 266);
    assert.deepEqual(doc.outputs[0].shape, [null, 5]);
    const human = await whittle('inspect', FLOWERS);
    assert.equal(human.code, 0, human.err);
    assert.match(human.out, /TF\.js graph model \(graph-model\)/);
    assert.match(human.out, /output    scores  float32 \[1, 5\]/);
    assert.match(human.out, /Conv2D ×35/);
  });

  it('quantize --method uint8 writes model.json + shard, records both as artifacts', async () => {
    const out = join(dirs.work(), 'flowers-u8');
    const r = await whittle('quantize', FLOWERS, '-o', out, '--method', 'uint8', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    for (const key of ['input', 'output', 'method', 'bytesBefore', 'bytesAfter', 'parametersBefore', 'parametersAfter', 'sparsity', 'seconds', 'peakRssBytes', 'nodesChanged', 'excluded', 'warnings']) assert.ok(key in doc, key);
    assert.equal(doc.output, join(out, 'model.json'));
    assert.equal(doc.format, 'tfjs');
    assert.ok(doc.weightBytesBefore / doc.weightBytesAfter > 3.99);
    assert.match(r.err, /TF\.js dequantizes quantized weights to float32 when it loads/);
    const shown = JSON.parse((await whittle('experiments', 'show', doc.runId, '--json')).out);
    assert.deepEqual(shown.artifacts.map((a: { name: string }) => a.name).sort(), ['group1-shard1of1.bin', 'model.json']);
    const back = JSON.parse((await whittle('inspect', doc.output, '--json')).out);
    assert.deepEqual(back.quantized, { uint8: 123 });
  });

  it('prune --method nm --pattern 2:4 and magnitude, with the deflated sizes', async () => {
    const nm = await whittle('prune', NSFWJS, '-o', join(dirs.work(), 'nsfwjs-nm', 'model.json'), '--method', 'nm', '--pattern', '2:4', '--json', '--no-record');
    assert.equal(nm.code, 0, nm.err);
    const doc = JSON.parse(nm.out);
    assert.equal(doc.method, 'nm');
    assert.ok(doc.sparsity > 0.4, `sparsity ${doc.sparsity}`);
    assert.ok(doc.deflatedBytesAfter < doc.deflatedBytesBefore);
    const mag = await whittle('prune', FLOWERS, '-o', join(dirs.work(), 'flowers-mag'), '--method', 'magnitude', '--sparsity', '0.3', '--scope', 'global', '--shard-bytes', '1000000', '--no-record');
    assert.equal(mag.code, 0, mag.err);
    assert.match(mag.out, /magnitude, \d+\.\d % of parameters zero/);
    const files = JSON.parse((await whittle('inspect', join(dirs.work(), 'flowers-mag', 'model.json'), '--json')).out).files;
    assert.equal(files.length, 4, 'model.json + 3 shards of ≤ 1 MB');
  });

  it('eval --json: the eval document with the TF.js runtime', async () => {
    const r = await whittle('eval', FLOWERS, '--data', fixture('tfjs-automl-flowers', 'daisy.jpg'), '--preprocess', 'tf-square', '--runs', '2', '--warmup', '0', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    for (const key of ['model', 'ep', 'device', 'data', 'accuracy', 'agreement', 'latency', 'bytes', 'parameters', 'nonzeroParameters', 'runtime']) assert.ok(key in doc, key);
    assert.deepEqual(Object.keys(doc.runtime).sort(), ['backend', 'notes', 'package']);
    assert.equal(doc.predictions[0][0].label, 'daisy');
  });

  it('run: a recipe on a TF.js model (prune, then uint8), evaluated in TensorFlow.js, recorded with every file', async () => {
    const recipe = join(dirs.work(), 'flowers-recipe.json');
    writeFileSync(recipe, JSON.stringify({
      name: 'flowers 2:4 + uint8',
      model: FLOWERS,
      steps: [{ prune: { method: 'nm', pattern: '2:4' } }, { quantize: { method: 'uint8' } }],
      eval: { data: { path: fixture('tfjs-automl-flowers', 'daisy.jpg'), preprocess: 'tf-square' }, reference: true, runs: 2 },
    }));
    const r = await whittle('run', recipe, '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.deepEqual(doc.steps.map((s: { step: string }) => s.step), ['prune nm', 'quantize uint8']);
    assert.match(doc.output, /model\.json$/);
    assert.equal(doc.eval.format, 'tfjs');
    assert.equal(doc.eval.agreement.n, 1);
    assert.ok(doc.bytesAfter < doc.bytesBefore / 3, `${doc.bytesAfter} vs ${doc.bytesBefore}`);
    const back = JSON.parse((await whittle('inspect', doc.output, '--json')).out);
    assert.deepEqual(back.quantized, { uint8: 123 });
    const shown = JSON.parse((await whittle('experiments', 'show', doc.runId, '--json')).out);
    assert.equal(shown.kind, 'recipe');
    assert.deepEqual(shown.artifacts.map((a: { name: string }) => a.name).sort(), ['group1-shard1of1.bin', 'model.json', 'predictions.json'], 'the model, its shard, and the per-sample predictions of its evaluation');
    assert.ok(shown.metrics['eval.agreement.top1'] !== undefined, Object.keys(shown.metrics).join(', '));
    // a step of the other format names the method and the formats it works on
    writeFileSync(recipe, JSON.stringify({ model: FLOWERS, steps: [{ quantize: { method: 'dynamic' } }] }));
    const bad = await whittle('run', recipe, '--no-record');
    assert.equal(bad.code, 2, bad.err);
    assert.match(bad.err, /TF\.js models quantize with uint8, uint16, fp16, not dynamic/);
  });

  it('methods and options of the other format are bad usage (exit 2, one line)', async () => {
    const out = join(dirs.work(), 'x');
    const cases: [string[], RegExp][] = [
      [['quantize', FLOWERS, '-o', out, '--method', 'static'], /--method static works on ONNX models; .* is a TF\.js model, which takes uint8, uint16, fp16/],
      [['quantize', FLOWERS, '-o', out, '--method', 'uint8', '--calib', fixture('tfjs-automl-flowers', 'daisy.jpg')], /--calib apply to ONNX models only/],
      [['quantize', fixture('mnist', 'mnist.onnx'), '-o', `${out}.onnx`, '--method', 'uint16'], /--method uint16 is TF\.js weight quantization .* ONNX model/],
      [['prune', NSFWJS, '-o', out, '--method', 'wanda'], /--method wanda works on ONNX models; .* takes magnitude, nm/],
      [['prune', fixture('mnist', 'mnist.onnx'), '-o', `${out}.onnx`, '--method', 'magnitude', '--shard-bytes', '10'], /--shard-bytes applies to TF\.js models only/],
      [['eval', FLOWERS, '--ep', 'cpu'], /use --tf-backend/],
      [['eval', fixture('mnist', 'mnist.onnx'), '--tf-backend', 'wasm'], /--tf-backend applies to TF\.js models/],
    ];
    for (const [argv, expect] of cases) {
      const r = await whittle(...argv, '--no-record');
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
      assert.equal(r.err.trim().split('\n').length, 1, r.err);
      assert.match(r.err, expect);
    }
  });
});
