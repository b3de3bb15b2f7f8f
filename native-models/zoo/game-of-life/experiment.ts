import type { LayersModel } from '@tensorflow/tfjs';
import { WhittleError } from '../../../api/errors.ts';
import type { TfModule } from '../../runtimes/tfjs.ts';
import { countParameters, removeDeadUnits } from '../../../core/train/dead-units.ts';
import { fit, type TrainContext } from '../../../core/train/fit.ts';
import { fineTuneMasked } from '../../../core/train/finetune.ts';
import { iterativeMagnitudePrune } from '../../../core/train/imp.ts';
import { magnitudeMasks, prunableKernels, readValues, restoreWeights, snapshotWeights, type Masks, type WeightSnapshot } from '../../../core/train/masks.ts';
import { allNeighbourhoods, lifeStep, lifeSteps, neighbourhoodsSeen, randomBoards, type Boards } from './life.ts';
import { boardTensor, buildLifeNet, crossEntropy, lifeNetParameters, scoreCells, type CellScore } from './model.ts';

/**
 * The Game-of-Life experiment: for n = 1, 2, … Life steps, train the minimal network (m = 1) and
 * an overcomplete one (m × the filters) from many seeds and count how often each learns the rule
 * exactly (every cell of every held-out board right); then prune an overcomplete one-step
 * network to ≤ 10 % of its parameters and check it is still exactly right.
 */
export interface GameOfLifeOptions {
  /** Seeds (network initialisations) per architecture and step count. */
  seeds: number;
  /** Step counts n to train for. */
  steps: number[];
  /** m of the overcomplete network. */
  multiplier: number;
  /** Side of the training and validation boards. */
  size: number;
  /** Fresh random boards each epoch (so the networks never see the same board twice). */
  boardsPerEpoch: number;
  batchSize: number;
  learningRate: number;
  /** Epochs before a run that has not solved the validation boards counts as failed. */
  maxEpochs: number;
  /**
   * A run also fails when its validation loss has not improved by 1 % for this many epochs (the
   * loss, not the count of wrong cells: a network stuck predicting "all dead" for a while can still
   * be learning, while one whose ReLUs all died is flat for good).
   */
  patience: number;
  /** Boards the run stops on once every cell is right. */
  validationBoards: number;
  /** Held-out boards (drawn independently, and larger) that decide success. */
  testBoards: number;
  testSize: number;
  /** Seed of the validation and test boards (the same for every run). */
  dataSeed: number;
  /** Prune an overcomplete one-step network to this share of its parameters; null: skip. */
  prune: PruneOptions | null;
}

/**
 * Pruning is iterative magnitude pruning with rewinding to the initialisation (core/train/imp.ts),
 * each round retrained until every training and validation cell is right again (see
 * pruneLifeNet). It gets its own multiplier: ≤ 10 % of the m = 8 network is 30 parameters, hardly more than the 25 of the minimal
 * network, so that target asks pruning to find the minimal network itself (IMP keeps m = 8 exact
 * down to about 21 %); m = 16 has 865 parameters and leaves room for a few spare units.
 */
export interface PruneOptions {
  fraction: number;
  multiplier: number;
  seed: number;
  /** Fixed training boards for every round (128 boards of 12×12 hold all 512 neighbourhoods). */
  boards: number;
  /** Share of the remaining kernel weights pruned per round. */
  perRound: number;
  maxEpochs: number;
  /** Train a random re-initialisation under each round's mask too (doubles the time). */
  randomReinit: boolean;
}

export const GAME_OF_LIFE_DEFAULTS: GameOfLifeOptions = {
  seeds: 10,
  steps: [1, 2],
  multiplier: 8,
  size: 12,
  boardsPerEpoch: 128,
  batchSize: 16,
  learningRate: 0.02,
  maxEpochs: 40,
  patience: 10,
  validationBoards: 64,
  testBoards: 100,
  testSize: 24,
  dataSeed: 20200901,
  prune: { fraction: 0.1, multiplier: 16, seed: 0, boards: 128, perRound: 0.2, maxEpochs: 60, randomReinit: false },
};

export type Architecture = 'minimal' | 'overcomplete';

export interface SeedRun {
  seed: number;
  success: boolean;
  /** solved: every validation cell right; stalled: validation loss flat for `patience` epochs; budget: maxEpochs ran out. */
  stopped: 'solved' | 'stalled' | 'budget';
  epochs: number;
  loss: number;
  test: CellScore;
  /** n = 1 only: right on all 512 neighbourhoods, hence on every board of any size; null for n > 1. */
  everyNeighbourhood: boolean | null;
  seconds: number;
}

export interface ArchitectureResult {
  steps: number;
  architecture: Architecture;
  multiplier: number;
  parameters: number;
  runs: SeedRun[];
  successes: number;
  successRate: number;
}

export interface PruneRound {
  round: number;
  kernelWeightsKept: number;
  /** Held-out cell accuracy of the rewound, retrained ticket, and of the random re-initialisation control. */
  ticket: number;
  ticketEpochs: number;
  random: number | null;
}

export interface PruneResult {
  steps: 1;
  seed: number;
  multiplier: number;
  parametersBefore: number;
  /** Non-zero parameters (kernels and biases) after pruning and removing dead units. */
  parametersAfter: number;
  fraction: number;
  /** floor(fraction × parametersBefore): the most parameters allowed. */
  target: number;
  withinTarget: boolean;
  kernelWeights: number;
  dense: { test: number; epochs: number };
  rounds: PruneRound[];
  /** The last round whose ticket was exactly right (what is kept), or null if none was. */
  lastExactRound: number | null;
  /** The final magnitude step to the budget, fine-tuned with its mask fixed; null when not needed. */
  fineTune: { kernelWeightsKept: number; epochs: number } | null;
  unitsRemoved: number;
  test: CellScore;
  allRight: boolean;
  /** Right on all 512 neighbourhoods after pruning (so on every board). */
  everyNeighbourhood: boolean;
  seconds: number;
}

export interface GameOfLifeReport {
  options: GameOfLifeOptions;
  /** Of the 512 3×3 neighbourhoods, how many the validation boards contain (all 512: a one-step net right on them is right everywhere). */
  validationNeighbourhoods: number;
  results: ArchitectureResult[];
  prune: PruneResult | null;
  seconds: number;
}

/** Training boards of one epoch of one run: distinct for every (seed, epoch). */
export function epochBoards(o: GameOfLifeOptions, seed: number, epoch: number, count = o.boardsPerEpoch): Boards {
  return randomBoards({ count, size: o.size, seed: (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca77) ^ o.dataSeed) >>> 0 });
}

export interface HeldOut {
  validation: Boards;
  validationNext: Boards;
  test: Boards;
  testNext: Boards;
}

export function heldOut(o: GameOfLifeOptions, steps: number): HeldOut {
  const validation = randomBoards({ count: o.validationBoards, size: o.size, seed: o.dataSeed + 1 });
  const test = randomBoards({ count: o.testBoards, size: o.testSize, seed: o.dataSeed + 2 });
  return { validation, validationNext: lifeSteps(validation, steps), test, testNext: lifeSteps(test, steps) };
}

export function rightOnEveryNeighbourhood(tf: TfModule, model: LayersModel): boolean {
  const all = allNeighbourhoods();
  return scoreCells(tf, model, all, lifeStep(all), 512).wrong === 0;
}

/** Trains one network from one seed on fresh boards each epoch until the validation boards are all right. */
export async function trainLifeRun(
  tf: TfModule, o: GameOfLifeOptions, steps: number, multiplier: number, seed: number, data: HeldOut, ctx: TrainContext, phase: string,
): Promise<{ model: LayersModel; run: SeedRun }> {
  const started = performance.now();
  const model = buildLifeNet(tf, { steps, multiplier, learningRate: o.learningRate }, seed);
  let best = Infinity;
  let bestEpoch = 0;
  let stopped: SeedRun['stopped'] = 'budget';
  let loss = NaN;
  let epoch = 0;
  try {
    while (epoch < o.maxEpochs) {
      const boards = epochBoards(o, seed, epoch);
      const x = boardTensor(tf, boards);
      const y = boardTensor(tf, lifeSteps(boards, steps));
      try {
        loss = (await fit(tf, model, { x, y }, { epochs: 1, batchSize: o.batchSize, phase }, { ...ctx, seed: seed * 1000 + epoch, progress: () => {} })).loss;
      } finally {
        tf.dispose([x, y]);
      }
      epoch++;
      ctx.progress(phase, epoch, o.maxEpochs);
      if (scoreCells(tf, model, data.validation, data.validationNext).wrong === 0) { stopped = 'solved'; break; }
      const validationLoss = crossEntropy(tf, model, data.validation, data.validationNext);
      if (validationLoss < best * 0.99) { best = validationLoss; bestEpoch = epoch; }
      else if (epoch - bestEpoch >= o.patience) { stopped = 'stalled'; break; }
    }
  } catch (err) {
    model.dispose(); // cancelled or failed: nobody else will
    throw err;
  }
  const test = scoreCells(tf, model, data.test, data.testNext);
  const everyNeighbourhood = steps === 1 ? rightOnEveryNeighbourhood(tf, model) : null;
  const run: SeedRun = { seed, success: test.wrong === 0, stopped, epochs: epoch, loss, test, everyNeighbourhood, seconds: (performance.now() - started) / 1000 };
  return { model, run };
}

/**
 * IMP on a one-step network of `p.multiplier`, for at most as many rounds as bring the kernels
 * within the budget (the target less the 4 biases a minimal network needs), ending early at a
 * ticket that is within the target once its dead units are removed, or at the first ticket that
 * no longer learns the rule exactly. The last exact ticket is kept; units left without inputs
 * or outputs are removed exactly and every non-zero parameter counted. If that is still over the
 * target, one more magnitude step prunes the kernels to the budget and the network is fine-tuned
 * with that mask fixed.
 */
export async function pruneLifeNet(tf: TfModule, o: GameOfLifeOptions, p: PruneOptions, data: HeldOut, ctx: TrainContext): Promise<PruneResult> {
  const started = performance.now();
  const parametersBefore = lifeNetParameters(1, p.multiplier);
  const kernelWeights = parametersBefore - (3 * p.multiplier + 1);
  const target = Math.floor(p.fraction * parametersBefore);
  const kernelBudget = Math.max(1, target - 4);
  let rounds = 1;
  while (Math.round(kernelWeights * (1 - p.perRound) ** rounds) > kernelBudget) rounds++;
  const boards = epochBoards(o, p.seed, 1_000_000, p.boards);
  const next = lifeSteps(boards, 1);
  const x = boardTensor(tf, boards);
  const y = boardTensor(tf, next);
  let kept: LayersModel | null = null;
  let lastExact: { round: number; weights: WeightSnapshot } | null = null;
  const allRight = (model: LayersModel) => scoreCells(tf, model, boards, next).wrong === 0 && scoreCells(tf, model, data.validation, data.validationNext).wrong === 0;
  try {
    const report = await iterativeMagnitudePrune(tf, {
      build: (seed) => buildLifeNet(tf, { steps: 1, multiplier: p.multiplier, learningRate: o.learningRate }, seed),
      data: { x, y },
      fit: { epochs: p.maxEpochs, batchSize: o.batchSize },
      stopWhen: allRight,
      evaluate: (model) => scoreCells(tf, model, data.test, data.testNext).accuracy,
      rounds,
      pruneFraction: p.perRound,
      scope: 'global',
      randomReinit: p.randomReinit,
      keep: (model) => { kept = model; },
      onRoundEnd: (round, model) => {
        if (!allRight(model)) return false;
        const weights = snapshotWeights(model);
        lastExact = { round: round.round, weights };
        // Within the target once dead units are gone? Then this ticket is the answer.
        removeDeadUnits(tf, model);
        const within = countParameters(model).nonzero <= target;
        restoreWeights(tf, model, weights);
        return !within;
      },
    }, { ...ctx, seed: p.seed });
    const model = kept as LayersModel | null;
    if (!model) throw new WhittleError('INTERNAL', 'iterative magnitude pruning handed back no model');
    const exact = lastExact as { round: number; weights: WeightSnapshot } | null;
    if (exact) restoreWeights(tf, model, exact.weights);
    let unitsRemoved = removeDeadUnits(tf, model);
    let fineTune: PruneResult['fineTune'] = null;
    if (exact && countParameters(model).nonzero > target) {
      const values = prunableKernels(model).map(readValues);
      const zeros: Masks = values.map((v) => Uint8Array.from(v, (w) => (w === 0 ? 0 : 1)));
      const masks = magnitudeMasks(values, zeros, 1 - kernelBudget / kernelWeights, 'global');
      const tuned = await fineTuneMasked(tf, model, masks, { x, y }, { epochs: p.maxEpochs, batchSize: o.batchSize, afterEpoch: () => allRight(model) }, { ...ctx, seed: p.seed });
      fineTune = { kernelWeightsKept: tuned.kept, epochs: tuned.epochs };
      unitsRemoved += removeDeadUnits(tf, model);
    }
    const { nonzero } = countParameters(model);
    const test = scoreCells(tf, model, data.test, data.testNext);
    return {
      steps: 1, seed: p.seed, multiplier: p.multiplier, parametersBefore, parametersAfter: nonzero, fraction: nonzero / parametersBefore,
      target, withinTarget: nonzero <= target, kernelWeights,
      dense: { test: report.dense.score, epochs: report.dense.epochs },
      rounds: report.rounds.map((r) => ({ round: r.round, kernelWeightsKept: r.kept, ticket: r.ticket.score, ticketEpochs: r.ticket.epochs, random: r.random?.score ?? null })),
      lastExactRound: exact?.round ?? null, fineTune,
      unitsRemoved, test, allRight: test.wrong === 0, everyNeighbourhood: rightOnEveryNeighbourhood(tf, model),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    tf.dispose([x, y]);
    (kept as LayersModel | null)?.dispose();
  }
}

export async function runGameOfLife(tf: TfModule, options: Partial<GameOfLifeOptions>, ctx: TrainContext): Promise<GameOfLifeReport> {
  const o: GameOfLifeOptions = { ...GAME_OF_LIFE_DEFAULTS, ...options };
  const started = performance.now();
  const results: ArchitectureResult[] = [];
  for (const steps of o.steps) {
    const data = heldOut(o, steps);
    for (const [architecture, multiplier] of [['minimal', 1], ['overcomplete', o.multiplier]] as const) {
      const runs: SeedRun[] = [];
      for (let seed = 0; seed < o.seeds; seed++) {
        ctx.checkpoint();
        const phase = `n=${steps} ${architecture} seed ${seed + 1}/${o.seeds}`;
        const { model, run } = await trainLifeRun(tf, o, steps, multiplier, seed, data, ctx, phase);
        runs.push(run);
        model.dispose();
      }
      const successes = runs.filter((r) => r.success).length;
      results.push({ steps, architecture, multiplier, parameters: lifeNetParameters(steps, multiplier), runs, successes, successRate: successes / runs.length });
    }
  }
  const prune = o.prune ? await pruneLifeNet(tf, o, o.prune, heldOut(o, 1), ctx) : null;
  const validationNeighbourhoods = neighbourhoodsSeen(heldOut(o, 1).validation).size;
  return { options: o, validationNeighbourhoods, results, prune, seconds: (performance.now() - started) / 1000 };
}
