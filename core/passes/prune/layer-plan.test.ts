/**
 * Per-layer sparsity plans (PruneStep.layerSparsity): each named layer pruned to its own target by
 * magnitude, Wanda and SparseGPT; plans from `whittle analyze --for prune` applied by `whittle prune
 * --plan`, whose artifact then measures what the analysis measured for the plan; and the refusals.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PruneStep, sparsityPlanOf } from '../../../api/recipe.ts';
import { useTempHome, whittle } from '../../../cli/testing.ts';
import { evaluate } from '../../evaluate/evaluate.ts';
import { fixture } from '../../testing/fixtures.ts';
import type { PruneSummary } from './magnitude.ts';
import { pruneModel } from './prune-model.ts';

const mnist = () => fixture('mnist', 'mnist.onnx');
const digits = () => fixture('mnist', 't10k-images-idx3-ubyte.gz');

describe('per-layer sparsity plans', () => {
  const dirs = useTempHome('layer-plan');
  const layerSparsities = (details: unknown) => Object.fromEntries((details as PruneSummary).layers.map((l) => [l.name, l.sparsity]));

  it('magnitude, Wanda and SparseGPT prune each named layer to its own target; unnamed layers take the step sparsity', async () => {
    const plan = { Convolution28: 0.2, Times212: 0.8 };
    for (const method of ['magnitude', 'wanda', 'sparsegpt'] as const) {
      const calib = method === 'magnitude' ? {} : { calib: { path: digits(), preprocess: 'mnist' as const }, samples: 32 };
      const r = await pruneModel({ input: mnist(), output: join(dirs.work(), `${method}.onnx`), step: PruneStep.parse({ method, sparsity: 0.5, layerSparsity: plan, ...calib }), seed: 0 });
      const got = layerSparsities(r.details);
      // achieved sparsity counts zeros afterwards: the 25-weight first Conv lands on 5 of 25 (0.2)
      assert.ok(Math.abs(got['Convolution28']! - 0.2) < 0.01 && Math.abs(got['Times212']! - 0.8) < 0.01 && Math.abs(got['Convolution110']! - 0.5) < 0.01, `${method}: ${JSON.stringify(got)}`);
      assert.deepEqual(r.details!['layerSparsity'], plan);
    }
  });

  it('refuses a plan it cannot apply: an unknown layer (named), global scope, N:M, channels, heads, a TF.js model', async () => {
    const run = (step: Record<string, unknown>, input = mnist()) => pruneModel({ input, output: join(dirs.work(), 'x.onnx'), step: PruneStep.parse(step), seed: 0 });
    await assert.rejects(run({ method: 'magnitude', layerSparsity: { Convolution28: 0.5, 'fire2/squeeze1x1': 0.3 } }), /plan names 1 layer\(s\) it cannot prune: fire2\/squeeze1x1 \(no prunable layer/);
    await assert.rejects(run({ method: 'magnitude', scope: 'global', layerSparsity: { Convolution28: 0.5 } }), /global/);
    await assert.rejects(run({ method: 'nm', pattern: '2:4', layerSparsity: { Convolution28: 0.5 } }), /applies to magnitude, wanda, sparsegpt pruning, not to nm/);
    await assert.rejects(run({ method: 'channel', layerSparsity: { Convolution28: 0.5 } }), /not to channel/);
    await assert.rejects(run({ method: 'sparsegpt', pattern: '2:4', calib: { path: 'synthetic:4' }, layerSparsity: { Convolution28: 0.5 } }), /N:M/);
    // an excluded layer is not prunable: the plan names why
    await assert.rejects(run({ method: 'magnitude', exclude: ['Times212'], layerSparsity: { Times212: 0.5 } }), /Times212 \(.*exclu/i);
    assert.equal(PruneStep.safeParse({ method: 'magnitude', layerSparsity: { a: 1 } }).success, false, 'a sparsity of 1 is refused by the schema');
  });

  it('sparsityPlanOf reads a plan, an analyze document, or a recorded analyze run', () => {
    const analysis = { for: 'prune', recommendation: { plan: [{ layer: 'a', sparsity: 0.3, parameters: 10, removed: 3 }, { layer: 'b', sparsity: 0, parameters: 5, removed: 0 }] } };
    assert.deepEqual(sparsityPlanOf({ a: 0.3, b: 0 }), { a: 0.3, b: 0 });
    assert.deepEqual(sparsityPlanOf(analysis), { a: 0.3, b: 0 });
    assert.deepEqual(sparsityPlanOf({ id: 'r1', kind: 'analyze', result: analysis }), { a: 0.3, b: 0 });
    for (const bad of [null, {}, [], { a: 'x' }, { a: 1.5 }, { for: 'quantize', recommendation: { exclude: ['a'] } }]) assert.equal(sparsityPlanOf(bad), null, JSON.stringify(bad));
  });

  it('whittle analyze --for prune, then whittle prune --plan: the artifact measures what the analysis measured for its plan, and the run keeps the plan', async () => {
    const planFile = join(dirs.work(), 'plan.json');
    const a = await whittle('analyze', mnist(), '--data', digits(), '--preprocess', 'mnist', '--limit', '64', '--for', 'prune', '--budget-ratio', '0.6', '--json', '--no-record');
    assert.equal(a.code, 0, a.err);
    writeFileSync(planFile, a.out);
    const analysis = JSON.parse(a.out);
    const out = join(dirs.work(), 'planned.onnx');
    const p = await whittle('prune', mnist(), '-o', out, '--method', 'magnitude', '--plan', planFile, '--json');
    assert.equal(p.code, 0, p.err);
    const doc = JSON.parse(p.out);
    for (const step of analysis.recommendation.plan) {
      const layer = doc.details.layers.find((l: { name: string }) => l.name === step.layer);
      assert.ok(Math.abs(layer.sparsity - step.sparsity) < 1 / layer.parameters + 1e-9, `${step.layer}: ${layer.sparsity} vs planned ${step.sparsity}`);
    }
    const e = await evaluate({ model: out, reference: mnist(), data: digits(), preprocess: 'mnist', limit: 64, ep: 'cpu', runs: 1, warmup: 0 });
    assert.ok(Math.abs(e.agreement!.sqnrDb! - analysis.recommendation.measured.sqnrDb) < 0.01, `${e.agreement!.sqnrDb} dB vs the analysis' ${analysis.recommendation.measured.sqnrDb} dB`);
    // the run keeps the step it read: the recipe that redoes it has the plan
    const shown = JSON.parse((await whittle('experiments', 'show', doc.runId, '--json')).out);
    assert.deepEqual(shown.recipe.steps[0].prune.layerSparsity, sparsityPlanOf(analysis));
    assert.ok(shown.inputs.some((i: { role: string }) => i.role === 'plan'));
    // a file with no plan in it is named
    writeFileSync(join(dirs.work(), 'nothing.json'), '{"for": "quantize"}');
    const bad = await whittle('prune', mnist(), '-o', join(dirs.work(), 'y.onnx'), '--method', 'magnitude', '--plan', join(dirs.work(), 'nothing.json'), '--no-record');
    assert.equal(bad.code, 2, bad.err);
    assert.match(bad.err, /nothing\.json: no per-layer sparsity plan/);
  });
});
