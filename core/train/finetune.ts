import type { LayersModel } from '@tensorflow/tfjs';
import type { TfModule } from '../../native-models/runtimes/tfjs.ts';
import { fit, type FitOptions, type FitReport, type TrainContext, type TrainData } from './fit.ts';
import { MaskApplier, maskCounts, maskViolations, type Masks } from './masks.ts';

export interface FineTuneReport extends FitReport {
  /** Kernel weights under the masks, and how many of them are kept. */
  weights: number;
  kept: number;
  sparsity: number;
  /** Pruned weights that are not exactly zero afterwards: always 0 (checked, not assumed). */
  maskViolations: number;
}

/**
 * Fine-tunes a pruned model with its masks held fixed: the masks are written into the kernels
 * before training and again after every optimizer step, so pruned weights end exactly zero while
 * the survivors (and every bias) recover what pruning cost.
 */
export async function fineTuneMasked(
  tf: TfModule, model: LayersModel, masks: Masks, data: TrainData, options: Omit<FitOptions, 'masks'>, ctx: TrainContext,
): Promise<FineTuneReport> {
  const applier = new MaskApplier(tf, model, masks);
  try {
    const report = await fit(tf, model, data, { phase: 'fine-tune', ...options, masks: applier }, ctx);
    const { kept, total, sparsity } = maskCounts(masks);
    return { ...report, weights: total, kept, sparsity, maskViolations: maskViolations(model, masks) };
  } finally {
    applier.dispose();
  }
}
