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
import { mcnemarExact, pairedComparisons, pairedPerplexities, readPredictions, type SamplePredictions, type WindowLosses } from './predictions.ts';

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

describe('pairedPerplexities', () => {
  const windows = (nll: number[]): WindowLosses => ({ version: 1, kind: 'next-token', data: { path: '/t.npy', offset: 0, n: nll.length, preprocess: 'none' }, nll, tokens: nll.map(() => 63) });
  test('the ratio of perplexities over the same windows, its bootstrap interval and the sign test', () => {
    // run B: every window 0.63 nats worse, i.e. 0.01 nats per token: ratio e^0.01 whatever the resampling
    const a = windows(Array.from({ length: 50 }, (_, w) => 100 + (w % 7) * 3));
    const b = windows(a.nll.map((v) => v + 0.63));
    const [p] = pairedPerplexities([a, b]);
    assert.equal(p!.run, 1);
    assert.equal(p!.windows, 50);
    assert.equal(p!.tokens, 50 * 63);
    assert.ok(Math.abs(p!.ratio - Math.exp(0.01)) < 1e-12);
    assert.ok(Math.abs(p!.low - p!.ratio) < 1e-12 && Math.abs(p!.high - p!.ratio) < 1e-12, 'a constant difference has no spread');
    assert.ok(Math.abs(p!.runPerplexity / p!.basePerplexity - p!.ratio) < 1e-12);
    assert.deepEqual([p!.worse, p!.better], [50, 0]);
    assert.equal(p!.pValue, mcnemarExact(50, 0));
    // noise both ways around no change: the interval holds 1 and the sign test sees chance
    const c = windows(a.nll.map((v, w) => v + (w % 2 === 0 ? 2 : -2)));
    const [q] = pairedPerplexities([a, c]);
    assert.ok(q!.low < 1 && q!.high > 1, `${q!.low}–${q!.high}`);
    assert.deepEqual([q!.worse, q!.better, q!.pValue], [25, 25, 1]);
    // other windows, another file, a classifier's predictions: nothing to pair
    assert.deepEqual(pairedPerplexities([a, windows(a.nll.slice(1))]), []);
    assert.deepEqual(pairedPerplexities([a, { ...b, data: { ...b.data, path: '/other.npy' } }]), []);
    const classes: SamplePredictions = { version: 1, data: a.data, reference: null, labels: null, top1: a.nll.map(() => 0), referenceTop1: null };
    assert.deepEqual(pairedPerplexities([a, classes]), []);
    assert.deepEqual(pairedComparisons([a, classes]), [], 'classifier pairing ignores window losses');
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
    const lm = { version: 1, kind: 'next-token', data: { path: '/t', offset: 0, n: 2, preprocess: 'none' }, nll: [120.5, 98.25], tokens: [63, 63] };
    assert.deepEqual(at(lm), lm);
    for (const bad of [{ ...lm, tokens: [63] }, { ...lm, nll: [1, -2] }, { ...lm, nll: [1, null] }, { ...lm, kind: 'other' }, { ...lm, data: { ...lm.data, n: 3 } }]) {
      assert.equal(at(bad), null, JSON.stringify(bad));
    }
  });
});

describe('evaluate keeps every sample\'s top-1 class', () => {
  test('the file reproduces the report\'s accuracy and agreement counts; synthetic data keeps none', { timeout: 120_000 }, async () => {
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
    assert.ok(!existsSync(none));
  });

  test('a language model keeps each window\'s NLL: they sum to the report\'s perplexity, and int4 pairs against fp32', { timeout: 120_000 }, async () => {
    const fp32 = 'native-models/zoo/transformer/char-transformer.onnx';
    const int4 = join(dir, 'lm-int4.onnx');
    await quantizeModel({ input: fp32, output: int4, step: QuantizeStep.parse({ method: 'int4', blockSize: 128 }), ep: 'cpu' });
    const heldout = 'native-models/zoo/transformer/heldout.npy';
    const run = async (model: string, name: string) => {
      const file = join(dir, name);
      const r = await evaluate({ model, data: heldout, limit: 40, ep: 'cpu', runs: 1, warmup: 0, predictionsFile: file });
      return { report: r, losses: JSON.parse(readFileSync(file, 'utf8')) as WindowLosses };
    };
    const base = await run(fp32, 'lm-fp32.json');
    const other = await run(int4, 'lm-int4.json');
    assert.equal(base.losses.kind, 'next-token');
    assert.equal(base.losses.nll.length, 40);
    const tokens = base.losses.tokens.reduce((s, t) => s + t, 0);
    assert.equal(tokens, base.report.language!.tokens);
    const perplexity = Math.exp(base.losses.nll.reduce((s, v) => s + v, 0) / tokens);
    assert.ok(Math.abs(perplexity - base.report.language!.perplexity) < 1e-9 * perplexity);
    const [p] = pairedPerplexities([base.losses, other.losses]);
    assert.ok(Math.abs(p!.ratio - other.report.language!.perplexity / base.report.language!.perplexity) < 1e-9);
    assert.ok(p!.low <= p!.ratio && p!.ratio <= p!.high);
    assert.equal(p!.worse + p!.better, 40, 'int4 changes every window\'s loss');
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
