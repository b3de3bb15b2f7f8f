import { WhittleError } from '../../api/errors.ts';
import { PRESETS } from '../../api/recipe.ts';
import { analyzePruneSensitivity, type PruneAnalysis } from '../../core/analyze/prune-sensitivity.ts';
import { analyzeQuantizeSensitivity, type QuantizeAnalysis } from '../../core/analyze/quantize-sensitivity.ts';
import type { PresetName } from '../../core/evaluate/data/index.ts';
import { loadRecipe } from '../../core/recipes/run-recipe.ts';
import type { LayerMetric } from '../../core/store/types.ts';
import { EP_CHOICES, type EpChoice } from '../../native-models/runtimes/onnxruntime.ts';
import { formatBytes, numberOption, parseCommand, requireOne, table, type CliIo } from '../io.ts';
import { ProgressBar } from '../progress.ts';
import { recordCommand } from '../record.ts';

export const summary = 'per-layer sensitivity: which layers to keep float, how sparse each layer can be';
export const usage = `
whittle analyze MODEL --data DATA --for quantize|prune [--preprocess PRESET] [--limit N] [--offset N]
        [--recipe FILE] [--target-agreement 0.99] [--target-sqnr DB] [--max-excluded 0.25] [--holdout N]
        [--budget-parameters N | --budget-ratio R] [--ep cpu|...] [--json] [--no-record]

--for quantize  each Conv/Gemm/MatMul, Add and Mul quantized alone (static int8 QDQ; MinMax
                per-tensor, or the recipe's first static/int4/int8-weight step: weight-only trials
                quantize each MatMul's weight alone), ranked by the model-output SQNR it costs;
                then the worst are left float until --target-agreement (and --target-sqnr) is met.
                A language model (token windows) also gets each trial's perplexity
--for prune     magnitude-pruning curves (10–90 %) per layer, and a per-layer sparsity plan that
                removes the budget (default half the prunable parameters) with the least loss
--limit N       samples per trial (default 32)
--offset N      skip the first N samples for the trials (calibration still starts at the first):
                rank and choose on samples the calibration never saw
--holdout N     measure the recommendation again on the N samples after the trials' — quantize: the
                all-int8 model and the exclusions (the search keeps what helps on its own samples,
                noise included); prune: the plan and the uniform spread (the plan is fitted to the
                trial samples' curves). On samples they never saw, a gain that was noise shows as none`;

const fmt = (v: number | null | undefined, d = 2) => (v === null || v === undefined ? '—' : v.toFixed(d));

/** A skipped node's reason, up to its first colon: the whole of it is among the warnings above the table. */
function brief(reason: string | null): string {
  if (!reason) return '';
  const colon = reason.indexOf(': ');
  return colon > 0 ? reason.slice(0, colon) : reason;
}

/** "static minmax, per-tensor", "int4 GPTQ, block 128, symmetric". */
function settingsLine(s: QuantizeAnalysis['settings']): string {
  if (s.weightOnly) return `${s.method} ${s.algorithm === 'gptq' ? 'GPTQ' : 'RTN'}, block ${s.weightOnly.blockSize}${s.weightOnly.symmetric ? ', symmetric' : ''}`;
  const rr = s.reduceRange;
  const bits = rr?.on ? `, int8 weights in 7 bits (reduce range${rr.auto ? ', auto' : ''})` : rr?.exactInt8 ? ', 8-bit weights measured unfused (this CPU\'s fused int8 kernels saturate them)' : '';
  return `static ${s.calibration}, ${s.perChannel ? 'per-channel' : 'per-tensor'}${s.algorithm === 'gptq' ? ', GPTQ weights' : ''}${bits}`;
}

function renderQuantize(r: QuantizeAnalysis): string {
  // a language model: each trial's perplexity beside the agreement (the float model's in the title)
  const lm = r.language !== null;
  const ppl = (v: number | null) => (lm ? [fmt(v, 3)] : []);
  const rows = [...r.layers].sort((a, b) => (a.rank ?? 1e9) - (b.rank ?? 1e9)).map((l) => [l.rank ?? '—', l.name, l.op, fmt(l.outputSqnrDb), fmt(l.top1, 3), ...ppl(l.perplexity), fmt(l.layerSqnrDb), brief(l.skipped)]);
  const all = `all ${r.settings.method === 'static' ? 'int8' : r.settings.method}`;
  const steps = r.steps.map((s) => [s.tried ?? `(${all})`, fmt(s.sqnrDb), fmt(s.top1, 3), ...ppl(s.perplexity), formatBytes(s.bytes), s.kept ? 'kept' : '']);
  const rec = r.recommendation;
  const pplHeader = lm ? ['perplexity'] : [];
  const summary = (x: QuantizeAnalysis['recommendation']['allInt8']) => `${fmt(x.sqnrDb)} dB (top-1 ${fmt(x.top1, 3)}${lm ? `, perplexity ${fmt(x.perplexity, 3)}` : ''}, ${formatBytes(x.bytes)})`;
  return [
    `${r.model}: quantization sensitivity on ${r.data.n} samples (${settingsLine(r.settings)})${lm ? `; float perplexity ${fmt(r.language!.floatPerplexity, 3)}` : ''}`,
    table(['rank', 'layer', 'op', 'output SQNR dB', 'top-1 agr.', ...pplHeader, 'layer SQNR dB', 'skipped'], rows),
    'exclusion search:',
    table(['left float', 'SQNR dB', 'top-1 agr.', ...pplHeader, 'size', ''], steps),
    `recommendation: --exclude ${rec.exclude.join(',') || '(none)'}`,
    `  ${all} ${summary(rec.allInt8)} → ${summary(rec.withExclusions)}`,
    `  ${rec.note}`,
  ].join('\n') + '\n';
}

function renderPrune(r: PruneAnalysis): string {
  const rows = r.layers.map((l) => [l.rank, l.name, l.op, l.parameters, ...l.curve.slice(1).map((c) => fmt(c.sqnrDb, 1)), (l.plannedSparsity * 100).toFixed(1) + ' %']);
  const rec = r.recommendation;
  return [
    `${r.model}: pruning sensitivity on ${r.data.n} samples (output SQNR dB with only that layer pruned)${r.language ? `; float perplexity ${fmt(r.language.floatPerplexity, 3)}` : ''}`,
    table(['rank', 'layer', 'op', 'params', ...(r.layers[0]?.curve.slice(1).map((c) => `${Math.round(c.sparsity * 100)}%`) ?? []), 'plan'], rows),
    `plan: ${rec.removedParameters} of ${r.prunableParameters} prunable parameters removed (budget ${rec.budgetParameters})`,
    `  predicted ${fmt(rec.predicted.sqnrDb)} dB, measured ${fmt(rec.measured.sqnrDb)} dB (top-1 agreement ${fmt(rec.measured.top1, 3)}${r.language ? `, perplexity ${fmt(rec.measured.perplexity, 3)}` : ''}); uniform ${(rec.uniform.sparsity * 100).toFixed(1)} %: ${fmt(rec.uniform.sqnrDb)} dB (top-1 ${fmt(rec.uniform.top1, 3)}${r.language ? `, perplexity ${fmt(rec.uniform.perplexity, 3)}` : ''})`,
    ...(rec.heldOut ? [`  on ${rec.heldOut.n} held-out samples: planned ${fmt(rec.heldOut.planned.sqnrDb)} dB (top-1 ${fmt(rec.heldOut.planned.top1, 3)}${r.language ? `, perplexity ${fmt(rec.heldOut.planned.perplexity, 3)}` : ''}), uniform ${fmt(rec.heldOut.uniform.sqnrDb)} dB (top-1 ${fmt(rec.heldOut.uniform.top1, 3)}${r.language ? `, perplexity ${fmt(rec.heldOut.uniform.perplexity, 3)}` : ''})`] : []),
  ].join('\n') + '\n';
}

/** Per-layer rows for the store (they feed the app's plots). */
export function layerMetrics(r: QuantizeAnalysis | PruneAnalysis): LayerMetric[] {
  const rows: LayerMetric[] = [];
  const put = (layer: string, metric: string, v: number | null | undefined) => { if (typeof v === 'number') rows.push({ layer, metric, value: v }); };
  if (r.for === 'quantize') {
    for (const l of r.layers) {
      put(l.name, 'quantize.rank', l.rank);
      put(l.name, 'quantize.outputSqnrDb', l.outputSqnrDb);
      put(l.name, 'quantize.top1', l.top1);
      put(l.name, 'quantize.layerSqnrDb', l.layerSqnrDb);
      put(l.name, 'quantize.perplexity', l.perplexity);
      put(l.name, 'quantize.recommendExclude', r.recommendation.layers.includes(l.name) ? 1 : 0);
    }
  } else {
    for (const l of r.layers) {
      put(l.name, 'prune.rank', l.rank);
      put(l.name, 'prune.plannedSparsity', l.plannedSparsity);
      for (const c of l.curve.slice(1)) {
        put(l.name, `prune.sqnrDb@${c.sparsity}`, c.sqnrDb);
        put(l.name, `prune.top1@${c.sparsity}`, c.top1);
        put(l.name, `prune.perplexity@${c.sparsity}`, c.perplexity);
      }
    }
  }
  return rows;
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('analyze', argv, {
    data: { type: 'string' },
    for: { type: 'string' },
    preprocess: { type: 'string' },
    limit: { type: 'string' },
    offset: { type: 'string' },
    recipe: { type: 'string' },
    'target-agreement': { type: 'string' },
    'target-sqnr': { type: 'string' },
    'max-excluded': { type: 'string' },
    holdout: { type: 'string' },
    'budget-parameters': { type: 'string' },
    'budget-ratio': { type: 'string' },
    ep: { type: 'string', default: 'cpu' },
  });
  const model = requireOne('analyze', positionals, 'MODEL');
  if (!values.data) throw new WhittleError('BAD_USAGE', 'whittle analyze: --data DATA is required');
  if (values.for !== 'quantize' && values.for !== 'prune') throw new WhittleError('BAD_USAGE', 'whittle analyze: --for quantize|prune is required');
  if (values.preprocess && !(PRESETS as readonly string[]).includes(values.preprocess)) throw new WhittleError('BAD_USAGE', `whittle analyze: --preprocess must be one of ${PRESETS.join(', ')}`);
  const ep = values.ep as EpChoice;
  if (!EP_CHOICES.includes(ep)) throw new WhittleError('BAD_USAGE', `whittle analyze: --ep must be one of ${EP_CHOICES.join(', ')}`);
  if (values['budget-parameters'] && values['budget-ratio']) throw new WhittleError('BAD_USAGE', 'whittle analyze: give --budget-parameters or --budget-ratio, not both');
  const limit = numberOption('analyze', 'limit', values.limit, { min: 1, integer: true });
  const offset = numberOption('analyze', 'offset', values.offset, { min: 0, integer: true });
  const holdout = numberOption('analyze', 'holdout', values.holdout, { min: 1, integer: true });
  const recipe = values.recipe ? loadRecipe(values.recipe) : null;
  const preprocess = values.preprocess as PresetName | undefined;
  const common = { model, data: values.data, preprocess, limit, offset, holdout, ep };
  const bar = new ProgressBar(io, 'analyze');
  const progress = (phase: string, done: number, total: number) => bar.update(done, total, phase);
  const result = await recordCommand({
    kind: 'analyze',
    argv: ['analyze', ...argv],
    inputs: [{ role: 'model', path: model }, ...(values.data.startsWith('synthetic:') ? [] : [{ role: 'data', path: values.data }])],
    record: !values['no-record'],
    environment: { ep },
    work: async (handle) => {
      let r: QuantizeAnalysis | PruneAnalysis;
      if (values.for === 'quantize') {
        const step = recipe?.steps.map((s) => ('quantize' in s ? s.quantize : null)).find((s) => s?.method === 'static' || s?.method === 'int4' || s?.method === 'int8-weight') ?? null;
        r = await analyzeQuantizeSensitivity({
          ...common,
          // the step's settings (its own calibration data is not read: --data is)
          ...(step ? { settings: { ...step, method: step.method as 'static' | 'int4' | 'int8-weight' } } : {}),
          targetAgreement: numberOption('analyze', 'target-agreement', values['target-agreement'], { min: 0, max: 1 }),
          targetSqnrDb: numberOption('analyze', 'target-sqnr', values['target-sqnr']),
          maxExcludedShare: numberOption('analyze', 'max-excluded', values['max-excluded'], { min: 0, max: 1 }),
          progress,
        });
      } else {
        const step = recipe?.steps.map((s) => ('prune' in s ? s.prune : null)).find((s) => s) ?? null;
        r = await analyzePruneSensitivity({
          ...common,
          budgetParameters: numberOption('analyze', 'budget-parameters', values['budget-parameters'], { min: 0, integer: true }),
          budgetRatio: numberOption('analyze', 'budget-ratio', values['budget-ratio'], { min: 0, max: 1 }),
          ...(step ? { prunable: { exclude: step.exclude, minParameters: step.minParameters, protectFirstLast: step.protectFirstLast } } : {}),
          progress,
        });
      }
      bar.done();
      handle?.recordLayerMetrics(layerMetrics(r));
      return r;
    },
  });
  for (const w of result.warnings) io.stderr(`whittle: warning: ${w}\n`);
  if (values.json) io.stdout(JSON.stringify(result) + '\n');
  else io.stdout(result.for === 'quantize' ? renderQuantize(result as QuantizeAnalysis) : renderPrune(result as PruneAnalysis));
  return 0;
}
