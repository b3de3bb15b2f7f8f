import type { LayersModel } from '@tensorflow/tfjs';
import { WhittleError } from '../../api/errors.ts';
import type { TfModule } from '../../native-models/runtimes/tfjs.ts';
import { fit, sampleCount, type FitOptions, type FitReport, type TrainContext, type TrainData } from './fit.ts';
import { MaskApplier, denseMasks, magnitudeMasks, maskCounts, maskViolations, prunableKernels, readValues, type Masks, type PruneScope } from './masks.ts';

/**
 * Gradual magnitude pruning (Zhu & Gupta, "To prune, or not to prune", 2017): while training,
 * every Δt steps from step t0 the smallest-magnitude weights are pruned up to
 *   s_t = s_f + (s_i − s_f) · (1 − (t − t0) / (n·Δt))³,   t ∈ {t0, t0 + Δt, …, t0 + n·Δt},
 * which prunes fast while the network has redundant weights and slowly as it nears the target;
 * between pruning steps (and after the last) training goes on with the masks fixed.
 */
export interface PolynomialSchedule {
  /** s_i: sparsity at the first pruning step (often 0). */
  initialSparsity: number;
  /** s_f: sparsity at the last pruning step and after. */
  finalSparsity: number;
  /** t0: the first pruning step (optimizer steps, counted from 0). */
  startStep: number;
  /** n: pruning steps after the first. */
  pruningSteps: number;
  /** Δt: optimizer steps between pruning steps. */
  interval: number;
}

export function checkSchedule(s: PolynomialSchedule): void {
  const ok = s.initialSparsity >= 0 && s.finalSparsity >= s.initialSparsity && s.finalSparsity < 1 &&
    Number.isInteger(s.startStep) && s.startStep >= 0 && Number.isInteger(s.pruningSteps) && s.pruningSteps >= 1 &&
    Number.isInteger(s.interval) && s.interval >= 1;
  if (!ok) throw new WhittleError('BAD_USAGE', `bad pruning schedule ${JSON.stringify(s)}: need 0 ≤ s_i ≤ s_f < 1, integer t0 ≥ 0, n ≥ 1, Δt ≥ 1`);
}

/** The last pruning step at or before `step`, or null before t0. */
export function lastPruningStep(step: number, s: PolynomialSchedule): number | null {
  if (step < s.startStep) return null;
  const j = Math.min(s.pruningSteps, Math.floor((step - s.startStep) / s.interval));
  return s.startStep + j * s.interval;
}

/** s_t of the schedule in force at `step` (0 before t0, s_f from t0 + n·Δt on). */
export function polynomialSparsity(step: number, s: PolynomialSchedule): number {
  const t = lastPruningStep(step, s);
  if (t === null) return 0;
  const progress = (t - s.startStep) / (s.pruningSteps * s.interval);
  return s.finalSparsity + (s.initialSparsity - s.finalSparsity) * (1 - progress) ** 3;
}

/** Optimizer steps through the last pruning step. */
export function scheduleEnd(s: PolynomialSchedule): number {
  return s.startStep + s.pruningSteps * s.interval;
}

export interface GradualPruneOptions extends Omit<FitOptions, 'masks' | 'beforeStep'> {
  schedule: PolynomialSchedule;
  scope?: PruneScope;
}

export interface GradualPruneReport extends FitReport {
  scope: PruneScope;
  schedule: PolynomialSchedule;
  /** Every pruning step: the schedule's target and the sparsity the masks reached. */
  points: { step: number; target: number; sparsity: number }[];
  weights: number;
  kept: number;
  sparsity: number;
  maskViolations: number;
  /** The final masks (kept = 1), in prunableKernels order. */
  masks: Masks;
}

/**
 * Trains `model` (compiled) while pruning it on the schedule; `afterEpoch` may stop training early,
 * but only once the final sparsity is in force. The epochs must cover the whole schedule.
 */
export async function gradualMagnitudePrune(
  tf: TfModule, model: LayersModel, data: TrainData, options: GradualPruneOptions, ctx: TrainContext,
): Promise<GradualPruneReport> {
  const { schedule, scope = 'global', afterEpoch, ...fitOptions } = options;
  checkSchedule(schedule);
  const steps = options.epochs * Math.ceil(sampleCount(data) / options.batchSize);
  if (steps <= scheduleEnd(schedule)) {
    throw new WhittleError('BAD_USAGE', `${options.epochs} epochs are ${steps} steps, but the schedule's last pruning step is ${scheduleEnd(schedule)}: train longer or prune sooner`);
  }
  const applier = new MaskApplier(tf, model, denseMasks(model));
  const points: GradualPruneReport['points'] = [];
  const kernels = prunableKernels(model);
  try {
    const report = await fit(tf, model, data, {
      phase: 'gradual prune',
      ...fitOptions,
      masks: applier,
      beforeStep: (step) => {
        if (lastPruningStep(step, schedule) !== step) return;
        const target = polynomialSparsity(step, schedule);
        applier.set(magnitudeMasks(kernels.map(readValues), applier.masks, target, scope));
        applier.apply();
        points.push({ step, target, sparsity: maskCounts(applier.masks).sparsity });
      },
      afterEpoch: async (epoch, loss) => points.length > schedule.pruningSteps && Boolean(await afterEpoch?.(epoch, loss)),
    }, ctx);
    const masks = applier.masks;
    const { kept, total, sparsity } = maskCounts(masks);
    return { ...report, scope, schedule, points, weights: total, kept, sparsity, maskViolations: maskViolations(model, masks), masks };
  } finally {
    applier.dispose();
  }
}
