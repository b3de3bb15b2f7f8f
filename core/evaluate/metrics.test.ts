import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WhittleError } from '../../api/errors.ts';
import { Agreement, NextTokenMetrics, TopKAccuracy, classifierShape, wilsonInterval } from './metrics.ts';

const f32 = (rows: number[][], trailing: number[] = []) => ({ dims: [rows.length, rows[0]!.length, ...trailing], data: Float32Array.from(rows.flat()) });

describe('TopKAccuracy', () => {
  test('counts ties by class index, like a stable descending sort', () => {
    const acc = new TopKAccuracy();
    // Row 0: label 4 ties with classes 1 and 2 at 0.5; they come first, so rank 2: top-5 only.
    // Row 1: label 1 is the first of the tied maxima: top-1.
    acc.update(f32([[0.1, 0.5, 0.5, 0.2, 0.5, 0.0], [0.1, 0.5, 0.5, 0.2, 0.5, 0.0]]), Int32Array.from([4, 1]));
    // Six equal scores: label 4 has rank 4 (inside the top 5), label 5 rank 5 (outside).
    acc.update(f32([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]), Int32Array.from([4, 5]));
    const { top1Low, top1High, ...counts } = acc.result()!;
    assert.deepEqual(counts, { top1: 1 / 4, top5: 3 / 4, n: 4, correct1: 1, correct5: 3 });
    assert.deepEqual([top1Low, top1High].map((x) => +x.toFixed(4)), [0.0456, 0.6994]);
  });

  test('reads [batch, classes, 1, 1] outputs and logits as well as probabilities', () => {
    const acc = new TopKAccuracy();
    acc.update(f32([[-3, 2.5, -0.5], [4, -1, 3.9]], [1, 1]), Int32Array.from([1, 2]));
    const { top1Low, top1High, ...counts } = acc.result()!;
    assert.deepEqual(counts, { top1: 0.5, top5: 1, n: 2, correct1: 1, correct5: 2 });
    assert.deepEqual([top1Low, top1High].map((x) => +x.toFixed(4)), [0.0945, 0.9055]);
  });

  test('a NaN score for the label is a miss; nothing counted is null', () => {
    const acc = new TopKAccuracy();
    assert.equal(acc.result(), null);
    acc.update(f32([[NaN, 0, 0]]), Int32Array.from([0]));
    assert.equal(acc.result()!.correct5, 0);
  });

  test('labels outside the classes and shapes that are not classifiers are BAD_INPUT', () => {
    const acc = new TopKAccuracy();
    assert.throws(() => acc.update(f32([[0, 1]]), Int32Array.from([2])), (e: unknown) => e instanceof WhittleError && e.code === 'BAD_INPUT' && /label 2 is outside the model's 2 classes/.test(e.message));
    assert.throws(() => acc.update({ dims: [1, 2, 2], data: new Float32Array(4) }, Int32Array.from([0])), /\[batch, classes\]/);
    assert.throws(() => acc.update(f32([[0, 1]]), Int32Array.from([0, 1])), /1 score rows but 2 labels/);
  });

  test('wilsonInterval matches the published 95 % score intervals, including at 0 and n', () => {
    const at = (k: number, n: number) => wilsonInterval(k, n).map((x) => +x.toFixed(4));
    assert.deepEqual(at(0, 10), [0, 0.2775]);
    assert.deepEqual(at(10, 10), [0.7225, 1]);
    assert.deepEqual(at(98, 100), [0.93, 0.9945]);
    assert.deepEqual(at(50, 100), [0.4038, 0.5962]);
    assert.deepEqual(at(100, 100), [0.963, 1]);
    // narrows as 1/√n: 98 % of 10,000 is ±0.3 points
    const [lo, hi] = wilsonInterval(9800, 10000);
    assert.ok(hi - lo < 0.006 && lo < 0.98 && hi > 0.98, `${lo} ${hi}`);
  });

  test('classifierShape', () => {
    assert.deepEqual(classifierShape([8, 1000, 1, 1]), { batch: 8, classes: 1000 });
    assert.deepEqual(classifierShape([10]), { batch: 1, classes: 10 });
    assert.equal(classifierShape([1, 3, 224, 224]), null);
  });
});

describe('Agreement', () => {
  test('SQNR, cosine, top-1 and max diff accumulate over every sample', () => {
    const agree = new Agreement();
    agree.update(f32([[3, 4]]), f32([[3, 4.5]]));
    agree.update(f32([[6, 8], [1, 0]]), f32([[6, 8.5], [0, 1]]));
    const r = agree.result()!;
    // Σref² = 25 + 100 + 1 = 126; Σ(ref−x)² = 0.25 + 0.25 + 2 = 2.5 → 10·log10(50.4)
    assert.ok(Math.abs(r.sqnrDb! - 10 * Math.log10(126 / 2.5)) < 1e-9, String(r.sqnrDb));
    assert.ok(Math.abs(r.sqnrDb! - 17.0243) < 1e-4);
    // Σref·x = 27 + 104 + 0 = 131; Σx² = 29.25 + 108.25 + 1 = 138.5
    assert.ok(Math.abs(r.cosine - 131 / Math.sqrt(126 * 138.5)) < 1e-12);
    assert.equal(r.top1, 2 / 3);
    assert.equal(r.agreed, 2);
    assert.deepEqual([r.top1Low, r.top1High].map((x) => +x!.toFixed(4)), [0.2077, 0.9385]);
    assert.equal(r.maxAbsDiff, 1);
    assert.equal(r.identical, false);
    assert.deepEqual([r.n, r.values, r.nonFinite], [3, 6, 0]);
  });

  test('a known perturbation: x = ref·(1 + 0.01) gives 40 dB', () => {
    const ref = Float64Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 3);
    const agree = new Agreement();
    agree.update({ dims: [10, 100], data: ref }, { dims: [10, 100], data: ref.map((v) => v * 1.01) });
    const r = agree.result()!;
    assert.ok(Math.abs(r.sqnrDb! - 40) < 1e-9);
    assert.ok(Math.abs(r.cosine - 1) < 1e-12);
    assert.equal(r.top1, 1);
  });

  test('identical outputs: sqnrDb is null (JSON has no Infinity) and identical is true', () => {
    const agree = new Agreement();
    agree.update(f32([[1, 2, 3]]), f32([[1, 2, 3]]));
    const r = agree.result()!;
    assert.deepEqual({ sqnrDb: r.sqnrDb, identical: r.identical, cosine: r.cosine, maxAbsDiff: r.maxAbsDiff, top1: r.top1 }, { sqnrDb: null, identical: true, cosine: 1, maxAbsDiff: 0, top1: 1 });
    assert.equal(JSON.parse(JSON.stringify(r)).sqnrDb, null);
  });

  test('outputs that are not score vectors get no top-1; non-finite values are counted and left out', () => {
    const agree = new Agreement();
    const ref = { dims: [1, 2, 2, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, NaN]) };
    const x = { dims: [1, 2, 2, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) };
    agree.update(ref, x);
    const r = agree.result()!;
    assert.equal(r.top1, null);
    assert.equal(r.nonFinite, 1);
    assert.equal(r.identical, false);
    assert.equal(r.maxAbsDiff, 0);
  });

  test('different shapes are refused', () => {
    assert.throws(() => new Agreement().update(f32([[1, 2]]), f32([[1, 2, 3]])), /output shapes differ, reference \[1,2\] vs \[1,3\]/);
    assert.equal(new Agreement().result(), null);
  });
});

describe('NextTokenMetrics', () => {
  test('each position predicts the next token of its window: perplexity, nats per token and top-1 from logits', () => {
    const m = new NextTokenMetrics();
    // one window of 3 tokens [0, 2, 1], vocabulary 3; positions 0 and 1 are scored, position 2 is not
    const logits = [[0, 0, Math.log(2)], [1, 0, 0], [9, 9, 9]];
    m.update(BigInt64Array.of(0n, 2n, 1n), [1, 3], { dims: [1, 3, 3], data: Float64Array.from(logits.flat()) });
    const r = m.result()!;
    // p(2 | pos 0) = 2/4; p(1 | pos 1) = 1/(e + 2)
    const nll = (-Math.log(0.5) - Math.log(1 / (Math.E + 2))) / 2;
    assert.equal(r.tokens, 2);
    assert.ok(Math.abs(r.nllPerToken - nll) < 1e-12 && Math.abs(r.perplexity - Math.exp(nll)) < 1e-12, JSON.stringify(r));
    assert.equal(r.top1, 0.5); // position 0's best is token 2 (right), position 1's is token 0 (wrong)
  });

  test('probabilities (a Softmax output) are read as they are; a token outside the vocabulary is an error', () => {
    const m = new NextTokenMetrics(true);
    m.update(Int32Array.of(1, 0), [1, 2], { dims: [1, 2, 2], data: Float32Array.of(0.25, 0.75, 0.5, 0.5) });
    assert.ok(Math.abs(m.result()!.perplexity - 1 / 0.25) < 1e-6);
    assert.throws(() => m.update(Int32Array.of(0, 7), [1, 2], { dims: [1, 2, 2], data: Float32Array.of(1, 0, 1, 0) }), /token 7 is outside the model's vocabulary of 2/);
    assert.throws(() => m.update(Int32Array.of(0, 1), [1, 2], { dims: [2, 2], data: Float32Array.of(1, 0, 1, 0) }), /scores \[batch, positions, vocabulary\]/);
  });

  test('Agreement on [batch, positions, classes] compares every position and counts windows as samples', () => {
    const a = new Agreement();
    const ref = { dims: [1, 2, 3], data: Float32Array.of(0, 1, 0, 1, 0, 0) };
    a.update(ref, { dims: [1, 2, 3], data: Float32Array.of(0, 2, 0, 0, 0, 1) });
    const r = a.result()!;
    assert.equal(r.top1, 0.5);
    assert.equal(r.n, 1);
    assert.deepEqual([r.top1Low, r.top1High], [null, null], 'positions of one window are not independent trials');
    // [batch, classes, 1] is still one score vector per sample
    const c = new Agreement();
    c.update({ dims: [2, 3, 1], data: Float32Array.of(0, 1, 0, 1, 0, 0) }, { dims: [2, 3, 1], data: Float32Array.of(0, 2, 0, 0, 0, 1) });
    assert.deepEqual([c.result()!.top1, c.result()!.n], [0.5, 2]);
    assert.deepEqual([c.result()!.top1Low, c.result()!.top1High].map((x) => +x!.toFixed(4)), [0.0945, 0.9055]);
  });
});
