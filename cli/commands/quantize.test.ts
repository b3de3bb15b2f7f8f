import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fixture } from '../../core/testing/fixtures.ts';
import { readOnnxFile } from '../../native-models/formats/onnx/index.ts';
import { useTempHome, whittle } from '../testing.ts';

describe('whittle quantize and whittle run', () => {
  const dirs = useTempHome('q');

  it('--json prints the SPEC §3 quantize document and records the run with its artifact', async () => {
    const out = join(dirs.work(), 'mnist-static.onnx');
    const r = await whittle('quantize', fixture('mnist', 'mnist.onnx'), '-o', out, '--method', 'static', '--calib', fixture('mnist', 't10k-images-idx3-ubyte.gz'), '--preprocess', 'mnist', '--samples', '64', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    for (const key of ['input', 'output', 'method', 'bytesBefore', 'bytesAfter', 'parametersBefore', 'parametersAfter', 'sparsity', 'seconds', 'peakRssBytes', 'nodesChanged', 'excluded', 'warnings']) assert.ok(key in doc, key);
    assert.equal(doc.method, 'static');
    assert.equal(doc.calibration.samples, 64);
    assert.equal(doc.parametersAfter, doc.parametersBefore, 'quantized weights still count as parameters');
    assert.ok(doc.bytesAfter < doc.bytesBefore / 2);
    const shown = JSON.parse((await whittle('experiments', 'show', doc.runId, '--json')).out);
    assert.equal(shown.kind, 'quantize');
    assert.deepEqual(shown.artifacts.map((a: { name: string }) => a.name), ['mnist-static.onnx']);
    assert.ok(shown.inputs.some((i: { role: string }) => i.role === 'calib'));
  });

  it('the same inputs give a byte-identical artifact', async () => {
    const a = join(dirs.work(), 'a.onnx');
    const b = join(dirs.work(), 'b.onnx');
    for (const out of [a, b]) {
      const r = await whittle('quantize', fixture('mnist', 'mnist.onnx'), '-o', out, '--method', 'static', '--calib', fixture('mnist', 't10k-images-idx3-ubyte.gz'), '--preprocess', 'mnist', '--samples', '32', '--calibration', 'entropy', '--per-channel', '--no-record');
      assert.equal(r.code, 0, r.err);
    }
    assert.ok(readFileSync(a).equals(readFileSync(b)));
  });

  it('calibrator options: --symmetric-ranges, --bins, --moving-average change the ranges; one that does not apply is a warning', async () => {
    const scales = (file: string) => {
      const m = readOnnxFile(file);
      return m.graph.nodes.filter((n) => n.opType === 'QuantizeLinear').map((n) => m.graph.initializers.get(n.inputs[1]!)!.toFloat32()[0]!);
    };
    const run = async (name: string, ...flags: string[]) => {
      const out = join(dirs.work(), `${name}.onnx`);
      const r = await whittle('quantize', fixture('mnist', 'mnist.onnx'), '-o', out, '--method', 'static', '--calib', fixture('mnist', 't10k-images-idx3-ubyte.gz'), '--preprocess', 'mnist', '--samples', '64', '--no-record', ...flags);
      assert.equal(r.code, 0, r.err);
      return { file: out, err: r.err };
    };
    // the percentile of |x| gives other ranges than the one-sided default (every quantized tensor
    // here is a ReLU's, ≥ 0, and the calibrator keeps a range inside what it saw), and Entropy's
    // threshold search moves with the number of bins
    const oneSided = scales((await run('pct', '--calibration', 'percentile')).file);
    const symmetric = scales((await run('pct-sym', '--calibration', 'percentile', '--symmetric-ranges')).file);
    assert.notDeepEqual(symmetric, oneSided);
    const entropy = scales((await run('ent', '--calibration', 'entropy')).file);
    const finer = scales((await run('ent-bins', '--calibration', 'entropy', '--bins', '8192')).file);
    assert.notDeepEqual(finer, entropy);
    // the moving average of per-batch ranges is never wider than the overall range
    const [sa, sb] = [scales((await run('mm')).file), scales((await run('mm-avg', '--moving-average')).file)];
    assert.equal(sa.length, sb.length);
    assert.ok(sb.some((s, i) => s < sa[i]!), 'some range shrank');
    assert.ok(sb.every((s, i) => s <= sa[i]! * (1 + 1e-6)), 'no range grew');
    const misplaced = await run('ent-avg', '--calibration', 'entropy', '--moving-average');
    assert.match(misplaced.err, /--moving-average applies to --calibration minmax, not entropy; ignored/);
  });

  it('--bias-correction: the biases change, the weights do not, and the report says which layers moved', async () => {
    const args = (out: string) => ['quantize', fixture('mnist', 'mnist.onnx'), '-o', out, '--method', 'static', '--calib', fixture('mnist', 't10k-images-idx3-ubyte.gz'), '--preprocess', 'mnist', '--samples', '64', '--no-record'];
    const [plain, corrected] = [join(dirs.work(), 'plain.onnx'), join(dirs.work(), 'bc.onnx')];
    assert.equal((await whittle(...args(plain))).code, 0);
    const r = await whittle(...args(corrected), '--bias-correction');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /calibration minmax \+ bias correction on 64 samples/);
    assert.match(r.out, /bias {8}corrected 3 layer\(s\) in 3 pass\(es\) over 64 samples, [\d.]+ s, largest \S+: [\d.]+ % of its channel means/);
    const int32 = (file: string) => [...readOnnxFile(file).graph.initializers.values()].filter((t) => t.dtype === 'int32' && !t.name.endsWith('_zero_point'));
    const int8 = (file: string) => [...readOnnxFile(file).graph.initializers.values()].filter((t) => t.dtype === 'int8').map((t) => [...t.bytes()]);
    const [a, b] = [int32(plain), int32(corrected)];
    assert.equal(a.length, 3);
    assert.deepEqual(b.map((t) => t.name), a.map((t) => t.name));
    assert.ok(a.every((t, i) => !Buffer.from(t.bytes()).equals(Buffer.from(b[i]!.bytes()))), 'every bias moved');
    assert.deepEqual(int8(corrected), int8(plain), 'weights as they were');
    const json = JSON.parse((await whittle(...args(join(dirs.work(), 'bc2.onnx')), '--bias-correction', '--json')).out);
    assert.deepEqual(json.biasCorrection.layers.map((l: { level: number }) => l.level), [0, 1, 2]);
    const dynamic = await whittle('quantize', fixture('mnist', 'mnist.onnx'), '-o', join(dirs.work(), 'd.onnx'), '--method', 'dynamic', '--bias-correction', '--no-record');
    assert.match(dynamic.err, /--bias-correction applies to --method static, not dynamic; ignored/);
  });

  it('bad usage is exit 2 with one line', async () => {
    const cases: [string[], RegExp][] = [
      [['quantize', fixture('mnist', 'mnist.onnx'), '-o', join(dirs.work(), 'x.onnx')], /--method is required/],
      [['quantize', fixture('mnist', 'mnist.onnx'), '-o', join(dirs.work(), 'x.onnx'), '--method', 'int3'], /method/],
      [['quantize', fixture('mnist', 'mnist.onnx'), '-o', join(dirs.work(), 'x.onnx'), '--method', 'static'], /calibration data/],
      [['quantize', fixture('mnist', 'mnist.onnx'), '-o', join(dirs.work(), 'x.onnx'), '--method', 'int4', '--block-size', '24'], /power of two/],
      [['quantize', fixture('mnist', 'mnist.onnx'), '-o', join(dirs.work(), 'x.onnx'), '--method', 'static', '--calib', fixture('iris', 'iris_X.npy')], /iris_X\.npy/],
    ];
    for (const [argv, expect] of cases) {
      const r = await whittle(...argv, '--no-record');
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
      assert.equal(r.err.trim().split('\n').length, 1, r.err);
      assert.match(r.err, expect);
    }
  });

  it('a recipe runs its steps, evaluates against the input model and records it', async () => {
    const recipe = join(dirs.work(), 'recipe.json');
    writeFileSync(recipe, JSON.stringify({
      name: 'mnist dynamic',
      model: fixture('mnist', 'mnist.onnx'),
      steps: [{ quantize: { method: 'dynamic', perChannel: true } }],
      eval: { data: { path: fixture('mnist', 't10k-images-idx3-ubyte.gz'), preprocess: 'mnist', limit: 500 }, runs: 2 },
    }));
    const r = await whittle('run', recipe, '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.equal(doc.steps.length, 1);
    assert.equal(doc.eval.data.n, 500);
    assert.ok(doc.eval.agreement.top1 >= 0.99);
    const shown = JSON.parse((await whittle('experiments', 'show', doc.runId, '--json')).out);
    assert.equal(shown.kind, 'recipe');
    assert.ok(shown.metrics['eval.agreement.top1'] >= 0.99);
    assert.ok(shown.artifacts.some((a: { name: string }) => a.name === 'model.onnx'));
  });

  it('a recipe on an already-quantized model says so first', async () => {
    const recipe = join(dirs.work(), 'again.json');
    writeFileSync(recipe, JSON.stringify({ model: fixture('shufflenet-int8', 'shufflenet-v2-12-int8.onnx'), steps: [{ quantize: { method: 'dynamic' } }] }));
    const r = await whittle('run', recipe, '--json', '--no-record');
    assert.equal(r.code, 0, r.err);
    assert.match(JSON.parse(r.out).warnings[0], /^shufflenet-v2-12-int8\.onnx is already quantized \(56 QLinearConv, .*\): the recipe changes only its float parts/);
  });

  it('a recipe with a wrong field names the file and the field', async () => {
    const recipe = join(dirs.work(), 'bad-recipe.json');
    writeFileSync(recipe, JSON.stringify({ model: 'x.onnx', steps: [{ quantize: { method: 'static', blockSize: 3 } }] }));
    const r = await whittle('run', recipe);
    assert.equal(r.code, 2);
    assert.match(r.err, /bad-recipe\.json: steps\.0\.quantize\.blockSize/);
  });
});
