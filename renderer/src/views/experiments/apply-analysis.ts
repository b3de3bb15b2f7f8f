import { PruneStep, QuantizeStep, sparsityPlanOf, type DataRef } from '../../../../api/recipe.ts';
import type { RunDetail } from '../../../../api/schemas.ts';
import type { CompressDraft } from '../../lib/compress-draft.ts';

/**
 * What an analysis run recommends, as steps for the Compress view: for a prune analysis its
 * per-layer sparsity plan on magnitude pruning (what the analysis measured the plan with), for a
 * quantize analysis its own method (static int8, or weight-only int4 / int8) and settings with its
 * layers to keep float — and for an int4 analysis also those layers at 8-bit weights (a second step
 * the exclusions do not apply to). Empty for other runs, and for an analysis that recommends nothing.
 */
export function draftsFromAnalysis(run: RunDetail): (CompressDraft & { label: string })[] {
  if (run.kind !== 'analyze' || run.status !== 'succeeded') return [];
  const draft = draftFromAnalysis(run);
  if (!draft) return [];
  const first = draft.steps[0]!;
  if (!('quantize' in first) || first.quantize.method !== 'int4') return [draft];
  // mixed precision: int4 everywhere but the sensitive layers, which a second step stores in 8 bits
  const eight = QuantizeStep.safeParse({ ...first.quantize, method: 'int8-weight' });
  if (!eight.success) return [draft];
  return [draft, {
    ...draft, label: 'Quantize, these at 8-bit weights', steps: [first, { quantize: eight.data }], skipExclusions: [1],
    name: draft.name.replace(/^int4, (\d+) float/, 'int4, $1 at int8'),
  }];
}

function draftFromAnalysis(run: RunDetail): (CompressDraft & { label: string }) | null {
  const model = run.inputs.find((i) => i.role === 'model')?.path;
  const result = run.result as { for?: unknown; settings?: Record<string, unknown>; recommendation?: { exclude?: unknown } } | null;
  if (!model || !result) return null;
  const data = run.inputs.find((i) => i.role === 'data')?.path;
  const flag = (name: string) => {
    const at = run.command.indexOf(name);
    return at >= 0 ? run.command[at + 1] : undefined;
  };
  const preprocess = flag('--preprocess');
  const calib = data ? ({ path: data, ...(preprocess ? { preprocess } : {}) } as DataRef) : null;
  if (result.for === 'prune') {
    const plan = sparsityPlanOf(result);
    if (!plan || Object.values(plan).every((s) => s === 0)) return null;
    const step = PruneStep.safeParse({ method: 'magnitude', layerSparsity: plan });
    return step.success ? { label: 'Prune with this plan', model, steps: [{ prune: step.data }], calib, exclude: [], name: `planned magnitude (analysis ${run.id})` } : null;
  }
  if (result.for === 'quantize') {
    const exclude = Array.isArray(result.recommendation?.exclude) ? result.recommendation.exclude.map(String) : [];
    const s = result.settings ?? {};
    const tuning = (s['tuning'] ?? {}) as { percentile?: number; movingAverage?: boolean; symmetric?: boolean; bins?: number };
    const weightOnly = s['weightOnly'] as { blockSize?: number; symmetric?: boolean; format?: string } | undefined;
    const reduceRange = s['reduceRange'] as { on?: unknown; auto?: unknown } | undefined;
    const method = s['method'] === 'int4' || s['method'] === 'int8-weight' ? s['method'] : 'static';
    const step = QuantizeStep.safeParse(method === 'static'
      ? {
        method, calibration: s['calibration'], perChannel: s['perChannel'], activationType: s['activationType'], algorithm: s['algorithm'],
        percentile: tuning.percentile, movingAverage: tuning.movingAverage, symmetricRanges: tuning.symmetric, bins: tuning.bins,
        biasCorrection: s['biasCorrection'] === true,
        // 7 or 8 bits as the analysed step chose them; chosen by the CPU (auto), the applying machine's CPU decides again
        ...(reduceRange && reduceRange.auto === false && typeof reduceRange.on === 'boolean' ? { reduceRange: reduceRange.on } : {}),
      }
      : { method, algorithm: s['algorithm'], blockSize: weightOnly?.blockSize, symmetric: weightOnly?.symmetric, format: weightOnly?.format });
    if (!step.success || exclude.length === 0) return null;
    const what = method === 'static' ? 'static int8' : method;
    return { label: 'Quantize, keeping these float', model, steps: [{ quantize: step.data }], calib, exclude, name: `${what}, ${exclude.length} float (analysis ${run.id})` };
  }
  return null;
}
