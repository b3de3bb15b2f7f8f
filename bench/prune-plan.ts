/**
 * Per-layer sparsity plans against the uniform spread of the same budget: `whittle analyze --for
 * prune` plans on calibration data, then magnitude, Wanda and SparseGPT prune with the plan
 * (PruneStep.layerSparsity) and with one sparsity everywhere, and every model is measured on data the
 * plan never saw — the transformer test bed's held-back text (perplexity, lower is better) and the
 * MNIST test images after the 256 the plan and the calibrated methods used (top-1). All in this run.
 *
 *   node --import tsx bench/prune-plan.ts [--models transformer,mnist] [--budget 0.5] [--json OUT]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PruneStep, sparsityPlanOf } from '../api/recipe.ts';
import { analyzePruneSensitivity } from '../core/analyze/prune-sensitivity.ts';
import type { PresetName } from '../core/evaluate/data/index.ts';
import { evaluate } from '../core/evaluate/evaluate.ts';
import { pruneModel } from '../core/passes/prune/prune-model.ts';
import { fixture } from '../core/testing/fixtures.ts';
import { HELDOUT_FILE, loadTestBed } from '../native-models/zoo/transformer/testbed.ts';

interface Setup {
  model: string;
  /** What the plan and the calibrated methods see. */
  calib: { path: string; preprocess?: PresetName; limit: number };
  measure: (path: string) => Promise<number>;
  metric: string;
  lower: boolean;
}

const { values } = parseArgs({ options: { models: { type: 'string', default: 'transformer,mnist' }, budget: { type: 'string', default: '0.5' }, json: { type: 'string' } } });
const budget = Number(values.budget);
const bed = loadTestBed();
const mnistData = fixture('mnist', 't10k-images-idx3-ubyte.gz');
const SETUPS: Record<string, Setup> = {
  transformer: {
    model: bed.model, calib: { path: bed.calibPath, limit: 128 },
    measure: async (path) => (await evaluate({ model: path, data: join(bed.dir, HELDOUT_FILE), ep: 'cpu', runs: 1, warmup: 0 })).language!.perplexity,
    metric: 'held-back perplexity', lower: true,
  },
  mnist: {
    model: fixture('mnist', 'mnist.onnx'), calib: { path: mnistData, preprocess: 'mnist', limit: 256 },
    measure: async (path) => (await evaluate({ model: path, data: mnistData, preprocess: 'mnist', offset: 256, ep: 'cpu', runs: 1, warmup: 0 })).accuracy!.top1,
    metric: 'top-1 on the 9,744 after', lower: false,
  },
};

const dir = mkdtempSync(join(tmpdir(), 'whittle-bench-plan-'));
const out: Record<string, unknown> = {};
try {
  for (const name of values.models!.split(',')) {
    const setup = SETUPS[name];
    if (!setup) throw new Error(`unknown model ${name}: ${Object.keys(SETUPS).join(', ')}`);
    const t0 = performance.now();
    const analysis = await analyzePruneSensitivity({ model: setup.model, data: setup.calib.path, preprocess: setup.calib.preprocess, limit: 64, budgetRatio: budget });
    const plan = sparsityPlanOf(analysis)!;
    const baseline = await setup.measure(setup.model);
    console.log(`\n${name}: ${setup.metric}, ${(budget * 100).toFixed(0)} % of ${analysis.prunableParameters.toLocaleString('en')} prunable weights; unpruned ${baseline.toFixed(4)} (plan made in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    console.log(`  plan: ${Object.entries(plan).map(([l, s]) => `${l} ${(s * 100).toFixed(0)} %`).join(', ')}`);
    console.log('  method      uniform    plan       plan vs uniform');
    const rows: Record<string, { uniform: number; plan: number }> = {};
    for (const method of ['magnitude', 'wanda', 'sparsegpt'] as const) {
      const calib = method === 'magnitude' ? {} : { calib: { path: setup.calib.path, ...(setup.calib.preprocess ? { preprocess: setup.calib.preprocess } : {}) }, samples: setup.calib.limit };
      const result = async (layerSparsity?: Record<string, number>) => {
        const path = join(dir, `${name}-${method}-${layerSparsity ? 'plan' : 'uniform'}.onnx`);
        await pruneModel({ input: setup.model, output: path, step: PruneStep.parse({ method, sparsity: budget, ...calib, ...(layerSparsity ? { layerSparsity } : {}) }), seed: 0 });
        return setup.measure(path);
      };
      const row = { uniform: await result(), plan: await result(plan) };
      rows[method] = row;
      const better = setup.lower ? row.plan < row.uniform : row.plan > row.uniform;
      console.log(`  ${method.padEnd(10)}  ${row.uniform.toFixed(4).padEnd(9)}  ${row.plan.toFixed(4).padEnd(9)}  ${better ? 'better' : 'worse'} (${(row.plan - row.uniform >= 0 ? '+' : '') + (row.plan - row.uniform).toFixed(4)})`);
    }
    out[name] = { metric: setup.metric, budget, baseline, plan, rows };
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (values.json) writeFileSync(values.json, JSON.stringify(out, null, 2) + '\n');
