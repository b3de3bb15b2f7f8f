import type { LayersModel, LayerVariable, Tensor } from '@tensorflow/tfjs';
import { WhittleError } from '../../api/errors.ts';
import type { TfModule } from '../../native-models/runtimes/tfjs.ts';
import { smallestMask } from '../passes/prune/magnitude.ts';

/**
 * Pruning masks over a TF.js layers model's kernels (the weight matrices and convolution filters;
 * biases are never pruned, as in Zhu & Gupta and in the lottery-ticket papers). A mask is 1 where
 * the weight is kept and 0 where it is pruned; a model's masks are listed in the order of
 * prunableKernels(model), so they carry over between two models built the same way (the random
 * re-initialisation control of a lottery ticket is a different model object).
 */
export type Masks = Uint8Array[];

export type PruneScope = 'layer' | 'global';

/** The trainable kernels of Dense, Conv2D and similar layers, in layer order. */
export function prunableKernels(model: LayersModel): LayerVariable[] {
  return model.trainableWeights.filter((w) => /(^|\/|_)kernel(_\d+)?$/.test(w.originalName));
}

/** A copy of a variable's values (the cpu backend's dataSync hands out its own storage). */
export function readValues(v: LayerVariable): Float32Array {
  return Float32Array.from(v.read().dataSync());
}

export function denseMasks(model: LayersModel): Masks {
  return prunableKernels(model).map((k) => new Uint8Array(sizeOf(k.shape)).fill(1));
}

function sizeOf(shape: readonly (number | null)[]): number {
  return shape.reduce<number>((n, d) => n * (d ?? 1), 1);
}

/** Kept and total kernel weights over a set of masks. */
export function maskCounts(masks: Masks): { kept: number; total: number; sparsity: number } {
  let kept = 0;
  let total = 0;
  for (const m of masks) {
    total += m.length;
    for (let i = 0; i < m.length; i++) kept += m[i]!;
  }
  return { kept, total, sparsity: total === 0 ? 0 : 1 - kept / total };
}

/**
 * Masks that prune the smallest-magnitude kernel weights until `sparsity` of them (per layer, or of
 * all layers together with one threshold) are pruned. Weights already pruned by `previous` count
 * first and stay pruned, so a schedule of growing sparsities gives nested masks. Ties are broken
 * by position (core/passes/prune/magnitude.ts), so the same weights always give the same masks.
 */
export function magnitudeMasks(values: Float32Array[], previous: Masks | null, sparsity: number, scope: PruneScope): Masks {
  if (!(sparsity >= 0 && sparsity < 1)) throw new WhittleError('BAD_USAGE', `sparsity must be in [0, 1), got ${sparsity}`);
  // Already-pruned weights get magnitude −1: below every real |w|, so they are chosen first.
  const ranked = values.map((v, l) => v.map((w, i) => (previous && previous[l]![i] === 0 ? -1 : Math.abs(w))));
  const keepFrom = (pruned: Uint8Array) => pruned.map((p) => 1 - p);
  if (scope === 'layer') return ranked.map((r) => keepFrom(smallestMask(r, Math.round(sparsity * r.length))));
  const total = ranked.reduce((n, r) => n + r.length, 0);
  const all = new Float32Array(total);
  let at = 0;
  for (const r of ranked) { all.set(r, at); at += r.length; }
  const pruned = smallestMask(all, Math.round(sparsity * total));
  at = 0;
  return ranked.map((r) => { const m = keepFrom(pruned.subarray(at, at + r.length)); at += r.length; return m; });
}

/**
 * Holds masks as tensors and writes them into a model's kernels: pruned weights become exactly 0
 * (+0, not −0, so saved weights are byte-clean). Training calls apply() after every optimizer step,
 * which keeps pruned weights at zero whatever the optimizer's momentum does.
 */
export class MaskApplier {
  private readonly kernels: LayerVariable[];
  private keep: Tensor[] = [];
  private current: Masks = [];

  constructor(private readonly tf: TfModule, model: LayersModel, masks: Masks) {
    this.kernels = prunableKernels(model);
    this.set(masks);
  }

  get masks(): Masks {
    return this.current;
  }

  set(masks: Masks): void {
    if (masks.length !== this.kernels.length || masks.some((m, i) => m.length !== sizeOf(this.kernels[i]!.shape))) {
      throw new WhittleError('BAD_USAGE', `masks do not fit the model: ${masks.length} masks for ${this.kernels.length} kernels`);
    }
    this.tf.dispose(this.keep);
    this.current = masks.map((m) => m.slice());
    this.keep = masks.map((m, i) => this.tf.tensor(m, this.kernels[i]!.shape as number[], 'bool'));
  }

  apply(): void {
    const tf = this.tf;
    tf.tidy(() => {
      this.kernels.forEach((k, i) => {
        const w = k.read();
        k.write(tf.where(this.keep[i]!, w, tf.zerosLike(w)));
      });
    });
  }

  dispose(): void {
    this.tf.dispose(this.keep);
    this.keep = [];
  }
}

/** Writes masks into a model's kernels once (pruning it), without keeping the mask tensors. */
export function applyMasks(tf: TfModule, model: LayersModel, masks: Masks): void {
  const applier = new MaskApplier(tf, model, masks);
  try {
    applier.apply();
  } finally {
    applier.dispose();
  }
}

/** Pruned positions whose weight is not exactly zero (0 after any masked training). */
export function maskViolations(model: LayersModel, masks: Masks): number {
  let bad = 0;
  prunableKernels(model).forEach((k, l) => {
    const v = k.read().dataSync();
    const m = masks[l]!;
    for (let i = 0; i < m.length; i++) if (m[i] === 0 && v[i] !== 0) bad++;
  });
  return bad;
}

/** Every weight (kernels and biases), in model.weights order: what rewinding restores. */
export type WeightSnapshot = Float32Array[];

export function snapshotWeights(model: LayersModel): WeightSnapshot {
  return model.weights.map(readValues);
}

export function restoreWeights(tf: TfModule, model: LayersModel, snapshot: WeightSnapshot): void {
  const weights = model.weights;
  if (weights.length !== snapshot.length) throw new WhittleError('INTERNAL', `snapshot has ${snapshot.length} weights, the model ${weights.length}`);
  tf.tidy(() => weights.forEach((w, i) => w.write(tf.tensor(snapshot[i]!, w.shape as number[]))));
}
