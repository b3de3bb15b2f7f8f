/**
 * What an analysis run's buttons open in the Compress view (apply-analysis.ts): the steps, the
 * calibration data, the exclusions and the steps they skip, built from the run's recorded result.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RunDetail } from '../../../../api/schemas.ts';
import { draftsFromAnalysis } from './apply-analysis.ts';

function analysisRun(result: unknown, overrides: Partial<RunDetail> = {}): RunDetail {
  return {
    id: 'r1', kind: 'analyze', status: 'succeeded', experimentId: null, experimentName: null,
    command: ['analyze', '/m/model.onnx', '--data', '/d/digits.gz', '--preprocess', 'mnist', '--for', 'x'],
    createdAt: '', startedAt: null, finishedAt: null, error: null, model: '/m/model.onnx', metrics: {},
    errorCode: null, recipe: null, environment: { versions: {}, ep: 'cpu', device: null, seed: 0, host: '', platform: '' },
    pid: null, hostname: null, result,
    inputs: [{ role: 'model', path: '/m/model.onnx', sha256: null, bytes: null }, { role: 'data', path: '/d/digits.gz', sha256: null, bytes: null }],
    layerMetrics: [], artifacts: [],
    ...overrides,
  };
}

const pruneResult = { for: 'prune', recommendation: { plan: [{ layer: 'conv', sparsity: 0.2 }, { layer: 'fc', sparsity: 0.7 }] } };

test('a prune analysis: one magnitude step carrying its per-layer plan, calibrated on its data', () => {
  const drafts = draftsFromAnalysis(analysisRun(pruneResult));
  assert.deepEqual(drafts.map((d) => d.label), ['Prune with this plan']);
  const d = drafts[0]!;
  assert.equal(d.model, '/m/model.onnx');
  assert.deepEqual(d.calib, { path: '/d/digits.gz', preprocess: 'mnist' });
  assert.deepEqual(d.exclude, []);
  const step = d.steps[0]!;
  assert.ok('prune' in step);
  assert.equal(step.prune.method, 'magnitude');
  assert.deepEqual(step.prune.layerSparsity, { conv: 0.2, fc: 0.7 });
});

test('a static quantize analysis: its calibrator, granularity and tuning, and its layers to keep float', () => {
  const result = {
    for: 'quantize',
    settings: { method: 'static', calibration: 'entropy', perChannel: true, activationType: 'int8', algorithm: 'gptq', exclude: [], tuning: { symmetric: true, bins: 4096 } },
    recommendation: { exclude: ['Conv(a)', 'Relu(a)'] },
  };
  const drafts = draftsFromAnalysis(analysisRun(result));
  assert.deepEqual(drafts.map((d) => d.label), ['Quantize, keeping these float']);
  const step = drafts[0]!.steps[0]!;
  assert.ok('quantize' in step);
  const q = step.quantize;
  assert.deepEqual([q.method, q.calibration, q.perChannel, q.activationType, q.algorithm, q.symmetricRanges, q.bins], ['static', 'entropy', true, 'int8', 'gptq', true, 4096]);
  assert.deepEqual(drafts[0]!.exclude, ['Conv(a)', 'Relu(a)']);
  assert.equal(drafts[0]!.skipExclusions, undefined);
  assert.equal(q.biasCorrection, false);
  // an analysis made from a step with bias correction gives it back
  const corrected = draftsFromAnalysis(analysisRun({ ...result, settings: { ...result.settings, biasCorrection: true } }))[0]!.steps[0]!;
  assert.ok('quantize' in corrected && corrected.quantize.biasCorrection === true);
  // int8 weight bits: given back when the analysed step chose them, left to the CPU when it did (auto)
  assert.equal(q.reduceRange, undefined);
  const bitsOf = (reduceRange: object) => {
    const s = draftsFromAnalysis(analysisRun({ ...result, settings: { ...result.settings, reduceRange } }))[0]!.steps[0]!;
    return 'quantize' in s ? s.quantize.reduceRange : 'not a quantize step';
  };
  assert.equal(bitsOf({ on: false, auto: false, reason: 'asked for (--reduce-range off)', exactInt8: true }), false);
  assert.equal(bitsOf({ on: true, auto: false, reason: 'asked for (--reduce-range on)', exactInt8: false }), true);
  assert.equal(bitsOf({ on: true, auto: true, reason: 'this CPU saturates', exactInt8: false }), undefined);
});

test('an int4 analysis: the layers kept float, or at 8-bit weights by a second step the exclusions skip', () => {
  const result = {
    for: 'quantize',
    settings: { method: 'int4', calibration: 'minmax', perChannel: false, activationType: 'uint8', algorithm: 'rtn', exclude: [], tuning: {}, weightOnly: { blockSize: 128, symmetric: false, format: 'matmulnbits' } },
    recommendation: { exclude: ['lm_head'] },
  };
  const drafts = draftsFromAnalysis(analysisRun(result, { id: 'r9' }));
  assert.deepEqual(drafts.map((d) => d.label), ['Quantize, keeping these float', 'Quantize, these at 8-bit weights']);
  const [float, mixed] = drafts as [typeof drafts[number], typeof drafts[number]];
  assert.deepEqual(float.steps.map((s) => 'quantize' in s && [s.quantize.method, s.quantize.blockSize]), [['int4', 128]]);
  assert.deepEqual(mixed.steps.map((s) => 'quantize' in s && [s.quantize.method, s.quantize.blockSize]), [['int4', 128], ['int8-weight', 128]]);
  assert.deepEqual(mixed.skipExclusions, [1]);
  assert.deepEqual(mixed.exclude, ['lm_head']);
  assert.equal(mixed.name, 'int4, 1 at int8 (analysis r9)');
});

test('nothing to apply: other runs, unfinished analyses, an all-dense plan, no exclusions', () => {
  assert.deepEqual(draftsFromAnalysis(analysisRun(pruneResult, { kind: 'eval' })), []);
  assert.deepEqual(draftsFromAnalysis(analysisRun(pruneResult, { status: 'failed' })), []);
  assert.deepEqual(draftsFromAnalysis(analysisRun({ for: 'prune', recommendation: { plan: [{ layer: 'conv', sparsity: 0 }] } })), []);
  assert.deepEqual(draftsFromAnalysis(analysisRun({ for: 'quantize', settings: { method: 'static' }, recommendation: { exclude: [] } })), []);
  assert.deepEqual(draftsFromAnalysis(analysisRun(pruneResult, { inputs: [] })), [], 'no model recorded');
});
