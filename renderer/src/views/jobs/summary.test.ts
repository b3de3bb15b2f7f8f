import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { summarizeResult } from './summary.ts';

describe('job and run summaries', () => {
  it('a static quantize says how it was calibrated and how many biases were corrected', () => {
    const items = summarizeResult({
      method: 'static', bytesBefore: 26454, bytesAfter: 11248, seconds: 0.8,
      calibration: { method: 'minmax + bias correction', samples: 256, seconds: 0.5 },
      biasCorrection: { layers: [{ node: 'a' }, { node: 'b' }, { node: 'c' }], withoutBias: ['d'], levels: 3, samples: 256, seconds: 0.1 },
    }, 'quantize');
    const byLabel = Object.fromEntries(items.map((i) => [i.label, i.value]));
    assert.equal(byLabel['Calibration'], 'minmax + bias correction · 256 samples');
    assert.equal(byLabel['Bias corrected'], '3 layers (1 without a bias left alone)');
  });

  it('a quantize analysis checked on held-out samples shows both models there beside the analysed samples', () => {
    const trial = (sqnrDb: number, top1: number) => ({ sqnrDb, top1, perplexity: null });
    const result = (exclude: string[]) => ({
      for: 'quantize', settings: { method: 'static' },
      recommendation: {
        exclude, allInt8: { ...trial(24.69, 0.94), bytes: 1336077 }, withExclusions: { ...trial(26.61, 0.96), bytes: 2883584 },
        heldOut: { n: 50, offset: 50, allInt8: trial(21.76, 0.98), withExclusions: trial(22.63, 0.98) },
      },
    });
    const byLabel = (r: object) => Object.fromEntries(summarizeResult(r, 'analyze').map((i) => [i.label, i.value]));
    const items = byLabel(result(['Conv(conv10_1)', 'Relu(conv10_2)']));
    assert.equal(items['With exclusions'], '26.6 dB · 96.0 % · 2.8 MiB');
    assert.equal(items['Held out (50)'], '21.8 dB · 98.0 % → 22.6 dB · 98.0 %');
    // nothing left float: one model to show
    assert.equal(byLabel(result([]))['Held out (50)'], '21.8 dB · 98.0 %');
    assert.equal(byLabel({ ...result([]), recommendation: { ...result([]).recommendation, heldOut: null } })['Held out (50)'], undefined);
  });

  it('a prune analysis checked on held-out samples shows the plan and the uniform spread there', () => {
    const items = Object.fromEntries(summarizeResult({
      for: 'prune',
      recommendation: {
        plan: [{ layer: 'a', sparsity: 0.4 }], measured: { sqnrDb: 15.0 }, uniform: { sparsity: 0.5, sqnrDb: 11.1 },
        heldOut: { n: 64, offset: 288, planned: { sqnrDb: 14.2, top1: 0.98, perplexity: null }, uniform: { sqnrDb: 10.9, top1: 0.97, perplexity: null } },
      },
    }, 'analyze').map((i) => [i.label, i.value]));
    assert.equal(items['Held out (64)'], 'planned 14.2 dB · uniform 10.9 dB');
  });

  it('a prune whose deflated sizes were not measured (a big model) says so, with why', () => {
    const why = '1.02 GiB is over the 256 MiB measured by default here (128 MiB a core); --deflate on measures it';
    const items = summarizeResult({ method: 'magnitude', bytesBefore: 1 << 30, bytesAfter: 1 << 30, sparsity: 0.5, deflatedBytesBefore: null, deflatedBytesAfter: null, deflateSkipped: why }, 'prune');
    assert.deepEqual(items.filter((i) => i.label === 'Deflated').map((i) => [i.value, i.note]), [['not measured', why]]);
  });

  it('a pass whose arithmetic ran on the GPU names the device; on the CPU nothing is added', () => {
    const device = 'NVIDIA H200 (vulkan)';
    const computeOf = (r: object, kind: 'prune' | 'quantize' | 'recipe') => summarizeResult(r, kind).filter((i) => i.label === 'Compute').map((i) => i.value);
    assert.deepEqual(computeOf({ method: 'magnitude', details: { compute: device, layers: [] } }, 'prune'), [device]);
    assert.deepEqual(computeOf({ method: 'int4', details: { layers: [{ compute: device }, { compute: device }] } }, 'quantize'), [device]);
    assert.deepEqual(computeOf({ steps: [{ details: { compute: 'cpu (every selection under 262,144 weights, where the CPU is quicker)' } }, { details: { layers: [{ compute: 'cpu (2 threads)' }] } }] }, 'recipe'), []);
    assert.deepEqual(computeOf({ method: 'sparsegpt', details: { compute: 'cpu' } }, 'prune'), []);
  });

  it('an evaluation in the model\'s own int8 arithmetic says so, as a job or a recipe\'s', () => {
    const arithmetic = (r: object, kind: 'eval' | 'recipe') => summarizeResult(r, kind).filter((i) => i.label === 'Arithmetic').map((i) => i.value);
    assert.deepEqual(arithmetic({ exactInt8: true, latency: { p50: 1 } }, 'eval'), ['int8 as the model defines it']);
    assert.deepEqual(arithmetic({ steps: [], eval: { exactInt8: true } }, 'recipe'), ['int8 as the model defines it']);
    assert.deepEqual(arithmetic({ steps: [], eval: { latency: { p50: 1 } } }, 'recipe'), []);
  });

  it('int8 weights kept in 7 bits say so, with the reason in the note; 8-bit ones add nothing', () => {
    const reason = 'this CPU (AMD EPYC: x86-64 with AVX2, no VNNI) saturates onnxruntime\'s u8×s8 products of 8-bit weights';
    const item = summarizeResult({ method: 'dynamic', calibration: null, reduceRange: { on: true, auto: true, reason } }, 'quantize').find((i) => i.label === 'Weights');
    assert.deepEqual(item, { label: 'Weights', value: 'int8 in 7 bits (reduce range, auto)', note: reason });
    assert.equal(summarizeResult({ method: 'static', reduceRange: { on: false, auto: true, reason: 'no' } }, 'quantize').some((i) => i.label === 'Weights'), false);
    const recipe = summarizeResult({ steps: [{ step: 'quantize static', calibration: { method: 'mse', samples: 8 }, reduceRange: { on: true, auto: false, reason: 'asked for' } }] }, 'recipe');
    assert.equal(recipe.find((i) => i.label === 'Weights')?.value, 'int8 in 7 bits (reduce range)');
  });

  it('what onnxruntime runs: the integer kernels, and the float ops between Q/DQ pairs flagged', () => {
    const items = summarizeResult({
      method: 'static',
      runtimeCheck: { integerKernels: { QLinearMatMul: 17, QLinearAdd: 18 }, floatBetweenQdq: [{ op: 'LayerNormalization', node: 'a' }, { op: 'LayerNormalization', node: 'b' }, { op: 'Softmax', node: 'c' }], seconds: 0.1 },
    }, 'quantize');
    const byLabel = Object.fromEntries(items.map((i) => [i.label, i]));
    assert.equal(byLabel['Int8 kernels']?.value, '18 QLinearAdd, 17 QLinearMatMul');
    assert.equal(byLabel['Float between Q/DQ']?.value, '2 LayerNormalization, 1 Softmax');
    assert.equal(byLabel['Float between Q/DQ']?.tone, 'worse');
    assert.equal(summarizeResult({ method: 'fp16', runtimeCheck: null }, 'quantize').some((i) => i.label === 'Int8 kernels'), false);
  });

  it('an evaluation that took its preprocessing from the model\'s calibration says so; one that was asked does not', () => {
    const data = (preprocessFrom: string) => ({ accuracy: { top1: 0.9892 }, data: { kind: 'mnist-idx', path: '/d', n: 9744, synthetic: false, preprocess: 'mnist', preprocessFrom } });
    const item = summarizeResult(data('calibration'), 'eval').find((i) => i.label === 'Preprocessing');
    assert.equal(item?.value, 'mnist (as calibrated)');
    assert.equal(summarizeResult(data('option'), 'eval').some((i) => i.label === 'Preprocessing'), false);
  });

  it('a recipe lists each calibrated step; an uncalibrated one (dynamic) adds nothing', () => {
    const items = summarizeResult({
      steps: [
        { step: 'quantize dynamic', calibration: null },
        { step: 'quantize static', calibration: { method: 'entropy + gptq', samples: 100 } },
      ],
    }, 'recipe');
    assert.deepEqual(items.filter((i) => i.label === 'Calibration').map((i) => i.value), ['entropy + gptq · 100 samples']);
    assert.equal(items.some((i) => i.label === 'Bias corrected'), false);
  });
});
