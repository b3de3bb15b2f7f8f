import { WhittleError } from '../../../api/errors.ts';
import { openDataRef, type Dataset } from '../../evaluate/data/index.ts';
import { batchSizeFor, inputSpecs } from '../../evaluate/evaluate.ts';
import { sparseGptPrunePass } from './sparsegpt.ts';
import { wandaPrunePass } from './wanda.ts';
import { channelPrunePass } from './channel/channel-prune.ts';
import type { PruneStep } from '../../../api/recipe.ts';
import type { Model } from '../../../native-models/ir/model.ts';
import type { EpChoice } from '../../../native-models/runtimes/onnxruntime.ts';
import type { PassContext, PassReport } from '../pass.ts';

/** Methods beyond magnitude and N:M: channel pruning and the calibrated ones (Wanda, SparseGPT). */
export type PruneMethod = (model: Model, step: PruneStep, ctx: PassContext, opts: { ep: EpChoice; baseDir: string }) => Promise<PassReport>;

export const extraPruneMethods: Partial<Record<PruneStep['method'], PruneMethod>> = {};

extraPruneMethods.channel = (model, step, ctx) =>
  channelPrunePass.run(model, { sparsity: step.sparsity, roundTo: step.roundTo, importance: step.importance, exclude: step.exclude, scope: step.scope === 'global' ? 'global' : 'group' }, ctx);

/** Opens the calibration data a data-aware method (Wanda, SparseGPT) needs. */
export async function openCalibration(model: Model, step: PruneStep, baseDir: string, seed: number): Promise<Dataset> {
  if (!step.calib) throw new WhittleError('BAD_USAGE', `${step.method} pruning needs calibration data (--calib DATA)`);
  return openDataRef(step.calib, inputSpecs(model), { baseDir, limit: step.samples ?? step.calib.limit ?? 128, seed });
}

extraPruneMethods.wanda = async (model, step, ctx, opts) => {
  const data = await openCalibration(model, step, opts.baseDir, ctx.seed);
  return wandaPrunePass.run(model, { ...calibratedOptions(model, step, data), ep: opts.ep, comparison: step.comparison }, ctx);
};

extraPruneMethods.sparsegpt = async (model, step, ctx, opts) => {
  const data = await openCalibration(model, step, opts.baseDir, ctx.seed);
  return sparseGptPrunePass.run(model, { ...calibratedOptions(model, step, data), ep: opts.ep }, ctx);
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
  };
}
