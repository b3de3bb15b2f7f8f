import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { QuantizeStep } from '../../api/recipe.ts';
import { quantizeModel } from '../passes/quantize/quantize-model.ts';
import { fixture } from '../testing/fixtures.ts';
import { evaluate } from './evaluate.ts';
import { evaluateTfjs } from './tfjs-evaluate.ts';
import { mcnemarExact, pairedComparisons, readPredictions, type SamplePredictions } from './predictions.ts';

const dir = mkdtempSync(join(tmpdir(), 'whittle-predictions-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('mcnemarExact', () => {
  test('the exact binomial tail on the discordant samples, two-sided', () => {
    assert.equal(mcnemarExact(0, 0), 1);
    assert.equal(mcnemarExact(1, 4), 0.375); // 2 · (1 + 4) / 32
    assert.equal(mcnemarExact(4, 1), 0.375);
    assert.equal(mcnemarExact(0, 10), 2 / 1024);
    assert.equal(mcnemarExact(5, 5), 1);
    // thousands of discordant samples neither underflow nor lose the tail: 400 vs 500 (χ² ≈ 11.1, p ≈ 0.001)
    const p = mcnemarExact(400, 500);
    assert.ok(p > 5e-4 && p < 2e-3, String(p));
    assert.ok(mcnemarExact(5000, 5200) > 0 && mcnemarExact(5000, 5200) < 0.06);
  });
});

describe('pairedComparisons', () => {
  const base: SamplePredictions = { version: 1, data: { path: '/d', offset: 0, n: 4, preprocess: 'none' }, reference: null, labels: [0, 1, 2, 3], top1: [0, 1, 2, 0], referenceTop1: null };
  test('pairs on the same samples only, and agreement only against the same reference', () => {
    const other = { ...base, top1: [0, 1, 0, 3] };
    assert.deepEqual(pairedComparisons([base, other]), [{ metric: 'accuracy', run: 1, n: 4, both: 2, onlyBase: 1, onlyRun: 1, neither: 0, difference: 0, pValue: 1 }]);
    assert.deepEqual(pairedComparisons([base, { ...other, data: { ...base.data, preprocess: 'mnist' } }]), []);
    assert.deepEqual(pairedComparisons([base, { ...other, labels: [3, 2, 1, 0] }]), []);
    assert.deepEqual(pairedComparisons([base, null, other]).map((p) => p.run), [2]);
    const withRef = (r: string, top: number[]) => ({ ...base, labels: null, reference: r, referenceTop1: [0, 1, 2, 3], top1: top });
    assert.deepEqual(pairedComparisons([withRef('/a', [0, 1, 2, 3]), withRef('/a', [0, 0, 2, 3])]).map((p) => [p.metric, p.onlyBase]), [['agreement', 1]]);
    assert.deepEqual(pairedComparisons([withRef('/a', [0, 1, 2, 3]), withRef('/b', [0, 0, 2, 3])]), []);
  });
});

describe('readPredictions', () => {
  test('a file of another shape pairs with nothing instead of breaking the comparison', async () => {
    const { writeFileSync } = await import('node:fs');
    const good = { version: 1, data: { path: '/d', offset: 0, n: 2, preprocess: 'none' }, reference: null, labels: [0, 1], top1: [0, 1], referenceTop1: null };
    const at = (doc: unknown) => { const path = join(dir, 'p.json'); writeFileSync(path, typeof doc === 'string' ? doc : JSON.stringify(doc)); return readPredictions([{ name: 'predictions.json', path }]); };
    assert.deepEqual(at(good), good);
    for (const bad of ['{', '[1,2,3]', { ...good, data: undefined }, { ...good, labels: [0] }, { ...good, top1: [0, 'x'] }, { ...good, data: { ...good.data, n: 3 } }, { ...good, version: 2 }]) {
      assert.equal(at(bad), null, JSON.stringify(bad));
    }
    assert.equal(readPredictions([]), null);
  });
});

describe('evaluate keeps every sample\'s top-1 class', () => {
  test('the file reproduces the report\'s accuracy and agreement counts; a language model and synthetic data keep none', { timeout: 120_000 }, async () => {
    const fp32 = fixture('mnist', 'mnist.onnx');
    const int4 = join(dir, 'mnist-int4.onnx');
    await quantizeModel({ input: fp32, output: int4, step: QuantizeStep.parse({ method: 'int4' }), ep: 'cpu' });
    const file = join(dir, 'predictions.json');
    const data = fixture('mnist', 't10k-images-idx3-ubyte.gz');
    const r = await evaluate({ model: int4, data, preprocess: 'mnist', reference: fp32, offset: 100, limit: 3000, ep: 'cpu', runs: 1, warmup: 0, predictionsFile: file });
    const p = JSON.parse(readFileSync(file, 'utf8')) as SamplePredictions;
    assert.deepEqual(p.data, { path: r.data.path, offset: 100, n: 3000, preprocess: 'mnist' });
    assert.equal(p.reference, fp32);
    assert.equal(p.top1.length, 3000);
    const correct = p.top1.filter((c, s) => c === p.labels![s]).length;
    const agreed = p.top1.filter((c, s) => c === p.referenceTop1![s]).length;
    assert.equal(correct, r.accuracy!.correct1);
    assert.equal(agreed, r.agreement!.agreed);
    assert.ok(agreed < 3000, 'int4 MNIST disagrees with fp32 somewhere in 3,000 images: the pairing has something to count');

    const none = join(dir, 'none.json');
    await evaluate({ model: fp32, data: 'synthetic:4', ep: 'cpu', runs: 1, warmup: 0, predictionsFile: none });
    const lm = 'native-models/zoo/transformer/char-transformer.onnx';
    await evaluate({ model: lm, data: 'native-models/zoo/transformer/heldout.npy', limit: 4, ep: 'cpu', runs: 1, warmup: 0, predictionsFile: none });
    assert.ok(!existsSync(none));
  });

  test('a TF.js evaluation keeps them too; labels of another label set are left out', { timeout: 120_000 }, async () => {
    const model = fixture('tfjs-automl-flowers', 'model.json');
    const file = join(dir, 'tfjs-predictions.json');
    const r = await evaluateTfjs({ model, data: fixture('imagenet-100'), preprocess: 'tf-square', reference: model, limit: 6, runs: 1, warmup: 0, predictionsFile: file });
    const p = JSON.parse(readFileSync(file, 'utf8')) as SamplePredictions;
    assert.equal(p.top1.length, 6);
    assert.deepEqual(p.referenceTop1, p.top1);
    assert.equal(p.labels, null, 'ImageNet labels mean nothing to a 5-class model');
    assert.equal(r.agreement!.agreed, 6);
    assert.ok(p.top1.every((c) => c >= 0 && c < 5));
  });
});
