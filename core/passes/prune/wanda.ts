import { WhittleError } from '../../../api/errors.ts';
import type { Model } from '../../../native-models/ir/model.ts';
import type { Pass, PassContext, PassReport } from '../pass.ts';
import { smallestMask } from './magnitude.ts';
import type { GroupStats } from './layer-inputs.ts';
import { nmGroup, runCalibratedPrune, type CalibratedPruneOptions, type Target } from './layer-inputs-pass.ts';

/**
 * Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for LLMs"): a weight's score is
 * |W_ij|·‖X_j‖, the magnitude scaled by the norm of the input feature it multiplies over the
 * calibration rows; the lowest scores are zeroed within each output row (Wanda's comparison group),
 * or within each group of M consecutive inputs for N:M. No weight update. Ties go to the earlier
 * column, so results are deterministic.
 */
export interface WandaOptions extends CalibratedPruneOptions {
  /**
   * Which weights compete for pruning (unstructured only): 'row' (default, Wanda's choice for LLMs)
   * ranks within each output row; 'layer' ranks the whole layer (group) at once, which lets rows
   * differ — better on small CNNs whose rows are short (a 5×5 first Conv has K = 25).
   */
  comparison?: 'row' | 'layer' | undefined;
}

export const wandaPrunePass: Pass<WandaOptions> = {
  name: 'prune-wanda',
  async run(model: Model, options: WandaOptions, ctx: PassContext): Promise<PassReport> {
    const comparison = options.comparison ?? 'row';
    if (comparison !== 'row' && comparison !== 'layer') throw new WhittleError('BAD_USAGE', `${this.name}: comparison must be 'row' or 'layer', got ${String(comparison)}`);
    return runCalibratedPrune(this.name, 'wanda', model, options, ctx, false,
      (w, rows, k, segment, stats, target) => wandaPruneGroup(w, rows, k, segment, stats, target, comparison), { comparison });
  },
};

/** Prunes one group's W [rows × K] in place by Wanda's score. */
export function wandaPruneGroup(w: Float64Array, rows: number, k: number, segment: number, stats: GroupStats, target: Target, comparison: 'row' | 'layer' = 'row'): void {
  const norm = Float64Array.from(stats.sqNorm, Math.sqrt);
  if (target.kind === 'unstructured' && comparison === 'layer') {
    const all = Float64Array.from({ length: rows * k }, (_, i) => Math.abs(w[i]!) * norm[i % k]!);
    const chosen = smallestMask(all, Math.round(target.sparsity * rows * k));
    for (let i = 0; i < chosen.length; i++) if (chosen[i]) w[i] = 0;
    return;
  }
  const score = new Float64Array(k);
  const byScore = (a: number, b: number) => score[a]! - score[b]! || a - b;
  for (let r = 0; r < rows; r++) {
    const off = r * k;
    for (let j = 0; j < k; j++) score[j] = Math.abs(w[off + j]!) * norm[j]!;
    if (target.kind === 'unstructured') {
      // cumulative rounding: the layer as a whole lands on the target
      const count = Math.round(target.sparsity * k * (r + 1)) - Math.round(target.sparsity * k * r);
      if (count === 0) continue;
      const chosen = smallestMask(score, count);
      for (let j = 0; j < k; j++) if (chosen[j]) w[off + j] = 0;
    } else {
      for (let c = 0; c < k;) {
        const [start, end] = nmGroup(c, target.m, segment, k);
        const len = end - start;
        const prune = len - Math.min(target.n, len);
        if (prune > 0) {
          const idx = Array.from({ length: len }, (_, t) => start + t).sort(byScore);
          for (let t = 0; t < prune; t++) w[off + idx[t]!] = 0;
        }
        c = end;
      }
    }
  }
}
