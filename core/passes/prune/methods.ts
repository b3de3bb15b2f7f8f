import { WhittleError } from '../../../api/errors.ts';
import { type Dataset } from '../../evaluate/data/index.ts';
import { openCalibrationData } from '../../calibrate/provenance.ts';
import { batchSizeFor, inputSpecs } from '../../evaluate/evaluate.ts';
import { NameAllocator } from '../quantize/graph-edit.ts';
import { addToOutputBias, outputMeanShift } from './bias-correction.ts';
import { collectLayerInputs, layerMatrix, readMatrix, type LayerMatrix } from './layer-inputs.ts';
import type { PrunedLayer } from './magnitude.ts';
import { prunableWeights } from './prunable.ts';
import { sparseGptPrunePass } from './sparsegpt.ts';
import { wandaPrunePass } from './wanda.ts';
import { channelPrunePass } from './channel/channel-prune.ts';
import { headPrunePass } from './heads.ts';
import type { PruneStep } from '../../../api/recipe.ts';
import type { Model } from '../../../native-models/ir/model.ts';
import type { EpChoice } from '../../../native-models/runtimes/onnxruntime.ts';
import type { PassContext, PassReport } from '../pass.ts';
import { computeFor } from '../compute.ts';

/** Methods beyond magnitude and N:M: channel pruning and the calibrated ones (Wanda, SparseGPT). */
export type PruneMethod = (model: Model, step: PruneStep, ctx: PassContext, opts: { ep: EpChoice; baseDir: string }) => Promise<PassReport>;

export const extraPruneMethods: Partial<Record<PruneStep['method'], PruneMethod>> = {};

extraPruneMethods.channel = async (model, step, ctx, opts) => {
  if (step.biasCorrection) throw new WhittleError('BAD_USAGE', 'channel pruning takes no bias correction (it removes whole channels, not single weights; with --calib the layers after them are refitted, means included)');
  // with calibration data, the layers that read pruned channels are refitted (reconstruct.ts)
  const data = step.calib ? await openCalibration(model, step, opts.baseDir, ctx.seed) : null;
  const reconstruct = data ? { data, samples: data.n, batchSize: batchSizeFor(inputSpecs(model), 32), ep: opts.ep } : undefined;
  return channelPrunePass.run(model, { sparsity: step.sparsity, roundTo: step.roundTo, importance: step.importance, exclude: step.exclude, scope: step.scope === 'global' ? 'global' : 'group', ...(reconstruct ? { reconstruct } : {}) }, ctx);
};

extraPruneMethods.heads = async (model, step, ctx, opts) => {
  if (step.biasCorrection) throw new WhittleError('BAD_USAGE', 'head pruning takes no bias correction (it removes whole heads; the kept heads compute exactly what they did)');
  if (step.importance === 'l1') throw new WhittleError('BAD_USAGE', 'head pruning ranks heads by l2 (‖Wv,h‖·‖Wo,h‖) or activation (with --calib), not l1');
  // with calibration data the output projections are refitted (and activation importance measured)
  const data = step.calib ? await openCalibration(model, step, opts.baseDir, ctx.seed) : null;
  return headPrunePass.run(model, {
    sparsity: step.sparsity, importance: step.importance === 'activation' ? 'activation' : 'l2', exclude: step.exclude,
    scope: step.scope === 'global' ? 'global' : 'block',
    ...(data ? { data: { dataset: data, batchSize: batchSizeFor(inputSpecs(model), 32), ep: opts.ep } } : {}),
  }, ctx);
};

/** Opens the calibration data a data-aware method (Wanda, SparseGPT) needs. */
export async function openCalibration(model: Model, step: PruneStep, baseDir: string, seed: number): Promise<Dataset> {
  if (!step.calib) throw new WhittleError('BAD_USAGE', `${step.method} pruning needs calibration data (--calib DATA)`);
  return openCalibrationData(model, step.calib, inputSpecs(model), { baseDir, limit: step.samples ?? step.calib.limit ?? 128, seed });
}

extraPruneMethods.wanda = async (model, step, ctx, opts) => {
  const data = await openCalibration(model, step, opts.baseDir, ctx.seed);
  return wandaPrunePass.run(model, { ...calibratedOptions(model, step, data), ep: opts.ep, comparison: step.comparison }, ctx);
};

extraPruneMethods.sparsegpt = async (model, step, ctx, opts) => {
  const data = await openCalibration(model, step, opts.baseDir, ctx.seed);
  // the factorization and updates follow the execution provider asked for, as GPTQ's do
  return sparseGptPrunePass.run(model, { ...calibratedOptions(model, step, data), ep: opts.ep, compute: computeFor(opts.ep) }, ctx);
};

function calibratedOptions(model: Model, step: PruneStep, data: Dataset) {
  return {
    ...(step.pattern ? { pattern: step.pattern } : { sparsity: step.sparsity }),
    data,
    samples: data.n,
    batchSize: batchSizeFor(inputSpecs(model), 32),
    exclude: step.exclude,
    minParameters: step.minParameters,
    protectFirstLast: step.protectFirstLast,
    sequential: step.sequential,
    biasCorrection: step.biasCorrection,
    layerSparsity: step.layerSparsity,
  };
}

/**
 * Runs a data-free pruning pass (magnitude, N:M) with bias correction (bias-correction.ts): the
 * calibration data goes through the unpruned model once for each layer's input means, the pass
 * prunes, then each pruned layer's output bias takes back the mean it lost. Layers the calibrated
 * statistics cannot describe (ConvTranspose, batched MatMul, shared weights) stay uncorrected, with
 * a warning.
 */
export async function withBiasCorrection(model: Model, step: PruneStep, ctx: PassContext, opts: { ep: EpChoice; baseDir: string }, prune: () => Promise<PassReport>): Promise<PassReport> {
  if (!step.calib) throw new WhittleError('BAD_USAGE', `${step.method} pruning with bias correction needs calibration data (--calib DATA)`);
  const data = await openCalibration(model, step, opts.baseDir, ctx.seed);
  const warnings: string[] = [];
  const layers: LayerMatrix[] = [];
  for (const w of prunableWeights(model, { exclude: step.exclude, minParameters: step.minParameters, protectFirstLast: step.protectFirstLast }).layers) {
    const m = layerMatrix(w);
    const reason = typeof m === 'string' ? m : w.sharedWith.length > 0 ? `${w.node.label}: weight ${w.weightName} is shared, its inputs differ` : null;
    if (reason) warnings.push(`no bias correction for ${reason}`);
    else layers.push(m as LayerMatrix);
  }
  const { stats, samples } = await collectLayerInputs(model, layers, { data, samples: data.n, hessian: false, batchSize: batchSizeFor(inputSpecs(model), 32), ep: opts.ep }, ctx);
  const before = layers.map(readMatrix);
  const report = await prune();
  const names = new NameAllocator(model);
  const corrected = new Map<string, { target: string; maxShift: number }>();
  layers.forEach((layer, i) => {
    const shift = outputMeanShift(layer, stats[i]!.groups, before[i]!, readMatrix(layer));
    if (shift.every((v) => v === 0)) return;
    corrected.set(layer.weight.weightName, { target: addToOutputBias(model, layer, shift, names), maxShift: shift.reduce((m, v) => Math.max(m, Math.abs(v)), 0) });
  });
  for (const w of warnings) ctx.warn(w);
  const details = report.details ?? {};
  const prunedLayers = (details['layers'] as PrunedLayer[] | undefined)?.map((l) => {
    const c = corrected.get(l.weight);
    return c ? { ...l, biasCorrection: c } : l;
  });
  return {
    ...report,
    warnings: [...report.warnings, ...warnings],
    details: { ...details, ...(prunedLayers ? { layers: prunedLayers } : {}), biasCorrection: true, calibrationSamples: samples },
  };
}
