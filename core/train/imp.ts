import type { LayersModel } from '@tensorflow/tfjs';
import { WhittleError } from '../../api/errors.ts';
import type { TfModule } from '../../native-models/runtimes/tfjs.ts';
import { fit, type FitOptions, type TrainContext, type TrainData } from './fit.ts';
import {
  MaskApplier, applyMasks, denseMasks, magnitudeMasks, maskCounts, maskViolations, prunableKernels, readValues, restoreWeights, snapshotWeights,
  type Masks, type PruneScope, type WeightSnapshot,
} from './masks.ts';

/**
 * Iterative magnitude pruning with weight rewinding (Frankle & Carbin 2019, "The lottery ticket
 * hypothesis"; rewinding to iteration k from Frankle et al. 2020, "Linear mode connectivity and the
 * lottery ticket hypothesis"): train the dense network, then each round prune p of the remaining
 * kernel weights by magnitude, rewind the survivors (and every bias) to their values after k
 * optimizer steps of the dense run (k = 0: the original initialisation) and retrain with the mask
 * fixed. The control trains a fresh random initialisation under the same mask: if the ticket does
 * better, the initial values mattered, not just the sparse structure.
 */
export interface ImpOptions {
  /** A compiled model with seeded initialisers: build(seed) twice gives the same weights. */
  build: (seed: number) => LayersModel | Promise<LayersModel>;
  data: TrainData;
  fit: Omit<FitOptions, 'masks' | 'beforeStep' | 'afterStep' | 'afterEpoch' | 'phase'>;
  /** Checked after every epoch of every training run (dense, ticket, control): true stops that run. */
  stopWhen?: (model: LayersModel, epoch: number) => boolean | Promise<boolean>;
  /** The figure reported per round (e.g. held-out accuracy); higher is better. */
  evaluate: (model: LayersModel) => number | Promise<number>;
  /** Pruning rounds after the dense run (at most: onRoundEnd can end IMP sooner). */
  rounds: number;
  /** p: share of the remaining kernel weights pruned each round, in (0, 1). */
  pruneFraction: number;
  /** k: rewind to the weights after this many optimizer steps of the dense run (default 0). */
  rewindStep?: number;
  scope?: PruneScope;
  /** Train the random re-initialisation control each round (default true). */
  randomReinit?: boolean;
  /** Receives the last round's trained ticket, which the caller then owns (else it is disposed). */
  keep?: (model: LayersModel) => void;
  /** Called after each round with its result and trained ticket; returning false ends IMP there. */
  onRoundEnd?: (round: ImpRound, model: LayersModel, masks: Masks) => boolean | void;
  /** Called after each rewind, before retraining (inspection and tests). */
  onRewind?: (round: number, model: LayersModel, masks: Masks, rewoundTo: WeightSnapshot) => void;
}

export interface ImpTrained {
  score: number;
  loss: number;
  epochs: number;
}

export interface ImpRound {
  round: number;
  /** Kernel weights kept, of all kernel weights, and that as a share. */
  kept: number;
  weights: number;
  remaining: number;
  ticket: ImpTrained;
  /** The same mask on a fresh random initialisation; null when the control was not asked for. */
  random: ImpTrained | null;
  /** Pruned weights not exactly zero after retraining (always 0). */
  maskViolations: number;
}

export interface ImpReport {
  seed: number;
  rewindStep: number;
  pruneFraction: number;
  scope: PruneScope;
  dense: ImpTrained & { weights: number };
  rounds: ImpRound[];
}

/** A seed for round r's random re-initialisation, distinct from the ticket's and from other rounds'. */
export function reinitSeed(seed: number, round: number): number {
  return (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(round, 0xc2b2ae35)) >>> 0;
}

export async function iterativeMagnitudePrune(tf: TfModule, options: ImpOptions, ctx: TrainContext): Promise<ImpReport> {
  const { rounds, pruneFraction: p, rewindStep: k = 0, scope = 'layer', randomReinit = true } = options;
  if (!(Number.isInteger(rounds) && rounds >= 1 && p > 0 && p < 1 && Number.isInteger(k) && k >= 0)) {
    throw new WhittleError('BAD_USAGE', `IMP needs rounds ≥ 1, 0 < pruneFraction < 1 and an integer rewindStep ≥ 0; got ${rounds}, ${p}, ${k}`);
  }
  const stopper = (model: LayersModel) => (epoch: number) => options.stopWhen?.(model, epoch);
  const trainRun = async (model: LayersModel, masks: Masks | null, phase: string): Promise<ImpTrained> => {
    const applier = masks ? new MaskApplier(tf, model, masks) : null;
    try {
      const r = await fit(tf, model, options.data, { ...options.fit, phase, masks: applier, afterEpoch: stopper(model) }, ctx);
      return { score: await options.evaluate(model), loss: r.loss, epochs: r.epochs };
    } finally {
      applier?.dispose();
    }
  };

  const model = await options.build(ctx.seed);
  let kept = false;
  try {
    // The dense run, keeping the weights after k steps to rewind to.
    let rewindTo: WeightSnapshot | null = k === 0 ? snapshotWeights(model) : null;
    const denseFit = await fit(tf, model, options.data, {
      ...options.fit,
      phase: 'dense',
      afterEpoch: stopper(model),
      afterStep: (done) => { if (done === k) rewindTo = snapshotWeights(model); },
    }, ctx);
    if (!rewindTo) throw new WhittleError('BAD_USAGE', `rewindStep ${k} is past the end of training (${denseFit.steps} steps)`);
    const rewound: WeightSnapshot = rewindTo;
    const weights = maskCounts(denseMasks(model)).total;
    const dense = { score: await options.evaluate(model), loss: denseFit.loss, epochs: denseFit.epochs, weights };

    const out: ImpRound[] = [];
    let masks: Masks | null = null;
    for (let round = 1; round <= rounds; round++) {
      ctx.checkpoint();
      const target = 1 - (1 - p) ** round;
      masks = magnitudeMasks(prunableKernels(model).map(readValues), masks, target, scope);
      restoreWeights(tf, model, rewound);
      applyMasks(tf, model, masks);
      options.onRewind?.(round, model, masks, rewound);
      const ticket = await trainRun(model, masks, `round ${round} ticket`);
      const violations = maskViolations(model, masks);
      let random: ImpTrained | null = null;
      if (randomReinit) {
        const fresh = await options.build(reinitSeed(ctx.seed, round));
        try {
          random = await trainRun(fresh, masks, `round ${round} random re-init`);
        } finally {
          fresh.dispose();
        }
      }
      const { kept, total } = maskCounts(masks);
      const result: ImpRound = { round, kept, weights: total, remaining: kept / total, ticket, random, maskViolations: violations };
      out.push(result);
      if (options.onRoundEnd?.(result, model, masks) === false) break;
    }
    if (options.keep) {
      options.keep(model);
      kept = true;
    }
    return { seed: ctx.seed, rewindStep: k, pruneFraction: p, scope, dense, rounds: out };
  } finally {
    if (!kept) model.dispose();
  }
}
