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
