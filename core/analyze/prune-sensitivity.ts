import { resolve } from 'node:path';
import { WhittleError } from '../../api/errors.ts';
import { readOnnxFile } from '../../native-models/formats/onnx/index.ts';
import type { EpChoice } from '../../native-models/runtimes/onnxruntime.ts';
import type { PresetName } from '../evaluate/data/index.ts';
import type { AgreementResult } from '../evaluate/metrics.ts';
import { magnitudes, smallestMask } from '../passes/prune/magnitude.ts';
import { prunableWeights, writeFloat32, type PrunableOptions, type PrunableWeight } from '../passes/prune/prunable.ts';
import { loadAnalysisData, loadHeldOutData, TrialRunner, trialFigures, type TrialFigures } from './trial.ts';

/**
 * Per-layer magnitude-pruning sensitivity curves and a per-layer sparsity plan for a parameter
 * budget (issue 4 item 6, the profile-then-plan workflow). Each layer is pruned alone at 0–90 %;
 * its output noise (1/SQNR, as a power ratio) is taken as additive across layers, so a plan's
 * predicted SQNR is −10·log10(Σ noise). The plan is greedy: the next 10 % step goes to the layer
 * whose noise grows least per parameter removed; the last step is fractional so the budget is
 * met exactly. The plan is then applied and measured.
 */
export interface PruneSensitivityOptions {
  model: string;
  data: string;
  preprocess?: PresetName | undefined;
  /** Samples per trial (default 32). */
  limit?: number | undefined;
  /** Samples skipped before the trials' (default 0). */
  offset?: number | undefined;
  /** Samples after the trials' on which the plan and the uniform spread are measured again (default 0: none). */
  holdout?: number | undefined;
  /** Sparsities of each curve (default 0.1 … 0.9; 0 is the float model). */
  sparsities?: number[] | undefined;
  /** Parameters to remove (zero), or a share of the prunable ones (default 0.5). */
  budgetParameters?: number | undefined;
  budgetRatio?: number | undefined;
  prunable?: PrunableOptions | undefined;
  ep?: EpChoice | undefined;
  signal?: AbortSignal | undefined;
  progress?: ((phase: string, done: number, total: number) => void) | undefined;
}

/** One point of a layer's curve; `perplexity` for a language model fed token windows, else null. */
export interface CurvePoint { sparsity: number; sqnrDb: number | null; top1: number | null; perplexity: number | null }

export interface PruneLayerSensitivity {
  name: string;
  op: string;
  weight: string;
  parameters: number;
  /** SPEC §3: ranked by output SQNR with only this layer pruned to 50 % (or the nearest curve point). */
  metric: string;
  value: number | null;
  rank: number;
  curve: CurvePoint[];
  plannedSparsity: number;
}

export interface PruneAnalysis {
  model: string;
  for: 'prune';
  /** The samples the trials ran on: n of them from `offset` (0: the first). */
  data: { path: string; n: number; offset: number };
  /** A language model fed token windows: the float model's perplexity on the analysis windows; else null. */
  language: { floatPerplexity: number } | null;
  prunableParameters: number;
  layers: PruneLayerSensitivity[];
  recommendation: {
    /** Layers the plan leaves dense. */
    exclude: string[];
    plan: { layer: string; sparsity: number; parameters: number; removed: number }[];
    budgetParameters: number;
    removedParameters: number;
    predicted: { sqnrDb: number | null };
    measured: { sqnrDb: number | null; top1: number | null; cosine: number; perplexity: number | null };
    /** The same budget spread evenly (every layer at the budget ratio), measured, for comparison. */
    uniform: { sparsity: number; sqnrDb: number | null; top1: number | null; perplexity: number | null };
    /**
     * The plan and the uniform spread on the held-out samples (`holdout`): the plan was fitted to
     * the trial samples' curves, so this says whether its gain over uniform holds beyond them.
     */
    heldOut: {
      n: number;
      offset: number;
      planned: TrialFigures;
      uniform: TrialFigures;
    } | null;
  };
  warnings: string[];
  seconds: number;
}

const DEFAULT_SPARSITIES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/** Noise-to-signal power ratio from a trial: 0 when identical. */
function noise(a: AgreementResult): number {
  if (a.identical) return 0;
  return a.sqnrDb === null ? Number.POSITIVE_INFINITY : 10 ** (-a.sqnrDb / 10);
}

const dbOf = (nsr: number): number | null => (nsr > 0 && Number.isFinite(nsr) ? -10 * Math.log10(nsr) : null);

export async function analyzePruneSensitivity(o: PruneSensitivityOptions): Promise<PruneAnalysis> {
  const t0 = performance.now();
  const progress = o.progress ?? (() => {});
  const sparsities = [...new Set(o.sparsities ?? DEFAULT_SPARSITIES)].sort((a, b) => a - b);
  for (const s of sparsities) if (!(s > 0 && s < 1)) throw new WhittleError('BAD_USAGE', `curve sparsity ${s} must be in (0, 1)`);
  const modelPath = resolve(o.model);
  const model = readOnnxFile(modelPath);
  const set = prunableWeights(model, o.prunable ?? {});
  if (set.layers.length === 0) throw new WhittleError('BAD_INPUT', `${modelPath}: no prunable Conv, Gemm or MatMul weight`);
  const total = set.layers.reduce((n, w) => n + w.parameters, 0);
  if (o.budgetParameters !== undefined && o.budgetRatio !== undefined) throw new WhittleError('BAD_USAGE', 'give --budget-parameters or --budget-ratio, not both');
  const ratio = o.budgetRatio ?? (o.budgetParameters === undefined ? 0.5 : o.budgetParameters / total);
  const maxS = sparsities[sparsities.length - 1]!;
  if (!(ratio >= 0 && ratio <= maxS)) {
    throw new WhittleError('BAD_USAGE', `budget of ${Math.round(ratio * total)} parameters (${(ratio * 100).toFixed(1)} % of ${total} prunable) must be between 0 and ${maxS * 100} % (the curves' last point)`);
  }
  const budget = Math.round(ratio * total);
  const warnings: string[] = [];
  const data = await loadAnalysisData(model, o.data, { preprocess: o.preprocess, limit: o.limit ?? 32, offset: o.offset });
  warnings.push(...data.warnings);
  const heldOutData = await loadHeldOutData(model, o.data, data, o, warnings);
  const runner = await TrialRunner.create(model, data, { ep: o.ep ?? 'cpu', signal: o.signal });
  const originals = set.layers.map((w) => w.tensor.toFloat32());
  const pruned = (i: number, sparsity: number): Float32Array => {
    const w = set.layers[i]!;
    const mask = smallestMask(magnitudes(w), Math.round(sparsity * w.parameters));
    const v = originals[i]!.slice();
    for (let k = 0; k < v.length; k++) if (mask[k]) v[k] = 0;
    return v;
  };
  const restore = () => set.layers.forEach((w, i) => writeFloat32(w.tensor, originals[i]!));

  try {
    // curves: noise per (layer, sparsity), index 0 = dense
    const trials = set.layers.length * sparsities.length;
    const curves: CurvePoint[][] = [];
    const nsr: number[][] = [];
    let done = 0;
    for (let i = 0; i < set.layers.length; i++) {
      const curve: CurvePoint[] = [{ sparsity: 0, sqnrDb: null, top1: 1, perplexity: runner.language?.perplexity ?? null }];
      const n: number[] = [0];
      for (const s of sparsities) {
        progress('curves', done++, trials);
        writeFloat32(set.layers[i]!.tensor, pruned(i, s));
        const r = await runner.measure(model);
        writeFloat32(set.layers[i]!.tensor, originals[i]!);
        curve.push({ sparsity: s, ...trialFigures(r) });
        n.push(noise(r.output));
      }
      curves.push(curve);
      nsr.push(n);
    }
    progress('curves', trials, trials);

    // greedy plan over curve steps
    const grid = [0, ...sparsities];
    const level = set.layers.map(() => 0);
    const fraction = set.layers.map(() => 0); // sparsity actually planned (the last step may be partial)
    let removed = 0;
    while (removed < budget) {
      let bestI = -1;
      let bestCost = Number.POSITIVE_INFINITY;
      for (let i = 0; i < set.layers.length; i++) {
        const l = level[i]!;
        if (l + 1 >= grid.length) continue;
        const dp = (grid[l + 1]! - grid[l]!) * set.layers[i]!.parameters;
        if (dp <= 0) continue;
        const cost = (nsr[i]![l + 1]! - nsr[i]![l]!) / dp;
        if (cost < bestCost) { bestCost = cost; bestI = i; }
      }
      if (bestI < 0) break;
      const l = level[bestI]!;
      const w = set.layers[bestI]!;
      const step = (grid[l + 1]! - grid[l]!) * w.parameters;
      const need = budget - removed;
      if (step <= need) {
        level[bestI] = l + 1;
        fraction[bestI] = grid[l + 1]!;
        removed += step;
      } else {
        fraction[bestI] = grid[l]! + need / w.parameters;
        removed += need;
      }
    }
    let predictedNsr = 0;
    for (let i = 0; i < set.layers.length; i++) predictedNsr += interpolate(grid, nsr[i]!, fraction[i]!);

    // apply and measure the plan, then the uniform spread of the same budget
    progress('measure plan', 0, 2);
    const applyPlan = () => set.layers.forEach((w, i) => writeFloat32(w.tensor, pruned(i, fraction[i]!)));
    const applyUniform = () => set.layers.forEach((w, i) => writeFloat32(w.tensor, pruned(i, ratio)));
    applyPlan();
    const plannedTrial = await runner.measure(model);
    const planned = plannedTrial.output;
    const removedActual = set.layers.reduce((n, w, i) => n + Math.round(fraction[i]! * w.parameters), 0);
    restore();
    progress('measure plan', 1, 2);
    applyUniform();
    const uniformTrial = await runner.measure(model);
    const uniform = uniformTrial.output;
    restore();
    progress('measure plan', 2, 2);

    let heldOut: PruneAnalysis['recommendation']['heldOut'] = null;
    if (heldOutData) {
      const check = await TrialRunner.create(model, heldOutData, { ep: o.ep ?? 'cpu', signal: o.signal });
      try {
        const measure = async (apply: () => void) => {
          apply();
          const r = await check.measure(model);
          restore();
          return trialFigures(r);
        };
        heldOut = { n: heldOutData.n, offset: heldOutData.offset, planned: await measure(applyPlan), uniform: await measure(applyUniform) };
      } finally {
        check.close();
      }
    }

    const at = sparsities.reduce((b, s) => (Math.abs(s - 0.5) < Math.abs(b - 0.5) ? s : b), sparsities[0]!);
    const ai = grid.indexOf(at);
    const layers: PruneLayerSensitivity[] = set.layers.map((w: PrunableWeight, i) => ({
      name: w.node.label,
      op: w.node.opType,
      weight: w.weightName,
      parameters: w.parameters,
      metric: `outputSqnrDb@${at}`,
      value: curves[i]![ai]!.sqnrDb,
      rank: 0,
      curve: curves[i]!,
      plannedSparsity: fraction[i]!,
    }));
    const order = layers.map((l, i) => ({ l, n: nsr[i]![ai]! })).sort((a, b) => (b.n > a.n ? 1 : b.n < a.n ? -1 : 0));
    order.forEach(({ l }, i) => { l.rank = i + 1; });
    return {
      model: modelPath,
      for: 'prune',
      data: { path: data.path, n: data.n, offset: o.offset ?? 0 },
      language: runner.language ? { floatPerplexity: runner.language.perplexity } : null,
      prunableParameters: total,
      layers,
      recommendation: {
        exclude: layers.filter((l) => l.plannedSparsity === 0).map((l) => l.name),
        plan: layers.map((l) => ({ layer: l.name, sparsity: l.plannedSparsity, parameters: l.parameters, removed: Math.round(l.plannedSparsity * l.parameters) })),
        budgetParameters: budget,
        removedParameters: removedActual,
        predicted: { sqnrDb: dbOf(predictedNsr) },
        measured: { sqnrDb: planned.sqnrDb, top1: planned.top1, cosine: planned.cosine, perplexity: plannedTrial.language?.perplexity ?? null },
        uniform: { sparsity: ratio, sqnrDb: uniform.sqnrDb, top1: uniform.top1, perplexity: uniformTrial.language?.perplexity ?? null },
        heldOut,
      },
      warnings,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    runner.close();
  }
}

/** Linear interpolation of a curve sampled at `grid`. */
function interpolate(grid: number[], values: number[], x: number): number {
  for (let k = 1; k < grid.length; k++) {
    if (x <= grid[k]!) {
      const t = (x - grid[k - 1]!) / (grid[k]! - grid[k - 1]!);
      return values[k - 1]! + t * (values[k]! - values[k - 1]!);
    }
  }
  return values[values.length - 1]!;
}
