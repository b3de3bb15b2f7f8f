import { WhittleError } from '../../../api/errors.ts';
import type { Model } from '../../../native-models/ir/model.ts';
import type { Pass, PassContext, PassReport } from '../pass.ts';
import type { GroupStats } from './layer-inputs.ts';
import { nmGroup, runCalibratedPrune, type CalibratedPruneOptions, type Target } from './layer-inputs-pass.ts';
import { evenRanges, factorParts, sharedArray, SPLIT_MIN_WORK, splitRun, toShared } from '../../../native-models/gpu/threads.ts';
import { dampedInverseFactor } from '../quantize/gptq.ts';
import { smallestMask } from './magnitude.ts';
import { openComputeDevice, type ComputeChoice } from '../compute.ts';
import type { GpuDevice } from '../../../native-models/gpu/device.ts';
import { sparseGptGpu } from '../../../native-models/gpu/kernels-gpu.ts';
import { SPARSEGPT_MAX_BLOCK } from '../../../native-models/gpu/wgsl.ts';

/**
 * SparseGPT (Frantar & Alistarh 2023, "Massive Language Models Can Be Accurately Pruned in
 * One-Shot"): with H = 2XᵀX/n from the calibration rows, dampened by λ = percdamp·mean(diag H),
 * columns are visited left to right in blocks; each block's mask is chosen by w²/[H⁻¹]_jj² (the
 * OBS saliency, with H⁻¹'s upper Cholesky factor U standing in for the sequentially updated
 * inverse), then each pruned weight's error is spread over the later columns of its row
 * (w_k −= err·U_jk), lazily for columns past the block. N:M masks are chosen per group of M
 * columns when the loop reaches it. Dead inputs (H_jj = 0) get H_jj = 1 and their weights zeroed,
 * as in the paper's code.
 */
export interface SparseGptOptions extends CalibratedPruneOptions {
  /** Dampening as a share of mean(diag H) (default 0.01). */
  percdamp?: number | undefined;
  /** Columns per block (default 128). */
  blockSize?: number | undefined;
  /**
   * Where the factorization and column updates run: 'cpu' (default; float64, byte-identical reruns),
   * 'gpu' (the WebGPU compute device, float32; an error when there is none) or 'auto' (the GPU when
   * usable, else the CPU with a warning) — as GPTQ's.
   */
  compute?: ComputeChoice | undefined;
}

export const sparseGptPrunePass: Pass<SparseGptOptions> = {
  name: 'prune-sparsegpt',
  async run(model: Model, options: SparseGptOptions, ctx: PassContext): Promise<PassReport> {
    const percdamp = options.percdamp ?? 0.01;
    const blockSize = options.blockSize ?? 128;
    if (!(percdamp >= 0) || !Number.isFinite(percdamp)) throw new WhittleError('BAD_USAGE', `${this.name}: percdamp must be ≥ 0, got ${String(percdamp)}`);
    if (!Number.isSafeInteger(blockSize) || blockSize < 1) throw new WhittleError('BAD_USAGE', `${this.name}: blockSize must be a whole number ≥ 1, got ${String(blockSize)}`);
    let gpu = await openComputeDevice('SparseGPT', options.compute, (m) => ctx.warn(m));
    if (gpu && blockSize > SPARSEGPT_MAX_BLOCK) {
      ctx.warn(`SparseGPT with blocks of ${blockSize} columns (over ${SPARSEGPT_MAX_BLOCK}) runs on the CPU`);
      gpu.destroy();
      gpu = null;
    }
    try {
      return await runCalibratedPrune(this.name, 'sparsegpt', model, options, ctx, true,
        (w, rows, k, segment, stats, target, warn) => sparseGptPruneGroup(w, rows, k, segment, stats, target, { percdamp, blockSize, gpu }, warn),
        { percdamp, blockSize, compute: gpu ? gpu.name : 'cpu' });
    } finally {
      gpu?.destroy();
    }
  },
};

/** Prunes one group's W [rows × K] in place with SparseGPT, updating the kept weights. */
export async function sparseGptPruneGroup(
  w: Float64Array, rows: number, k: number, segment: number, stats: GroupStats, target: Target,
  opts: { percdamp: number; blockSize: number; gpu?: GpuDevice | null }, warn: (m: string) => void,
): Promise<void> {
  if (!stats.xtx) throw new WhittleError('INTERNAL', 'SparseGPT needs XᵀX');
  const scale = stats.rows > 0 ? 2 / stats.rows : 0;
  const h = Float64Array.from(stats.xtx, (v) => v * scale);
  if (opts.gpu && !(target.kind === 'nm' && target.m > SPARSEGPT_MAX_BLOCK)) {
    // the same algorithm in float32 on the GPU (dead inputs and dampening applied there)
    const r = await sparseGptGpu(opts.gpu, w, rows, k, h, { target, segment, percdamp: opts.percdamp, blockSize: opts.blockSize }, warn);
    w.set(r.w);
    return;
  }
  for (let j = 0; j < k; j++) {
    if (h[j * k + j] !== 0) continue;
    h[j * k + j] = 1;
    for (let r = 0; r < rows; r++) w[r * k + j] = 0;
  }
  // GPTQ's factorization on every core: one Cholesky and one triangular inverse, 2k³/3 flops (k = 4,608
  // for a 3×3 conv of 512 channels), where forming H⁻¹ and factoring it again took 4k³/3
  const { u } = await dampedInverseFactor(h, k, opts.percdamp, warn, 'SparseGPT');
  const parts = factorParts();
  // worker threads write the weights and N:M masks in place
  const ws = parts > 1 ? toShared(w) : w;
  const us = parts > 1 ? toShared(u) : u;
  const mask = parts > 1 ? sharedArray(Uint8Array, rows * k) : new Uint8Array(rows * k);
  const nm = target.kind === 'nm' ? { n: target.n, m: target.m, segment } : null;
  const score = (r: number, j: number) => {
    const d = us[j * k + j]!;
    const v = ws[r * k + j]!;
    return (v * v) / (d * d);
  };
  let prunedSoFar = 0;
  for (let i1 = 0; i1 < k;) {
    let i2 = Math.min(i1 + opts.blockSize, k);
    if (target.kind === 'nm' && i2 < k) {
      // never split an N:M group across blocks: its columns must be current when it is chosen
      const [gs, ge] = nmGroup(i2, target.m, segment, k);
      if (gs < i2) i2 = gs > i1 ? gs : ge;
    }
    const count = i2 - i1;
    if (target.kind === 'unstructured') {
      // adaptive mask over the whole block, cumulative rounding so the layer lands on the target
      const want = Math.round(target.sparsity * rows * i2) - prunedSoFar;
      if (want > 0) {
        const s = new Float64Array(rows * count);
        for (let r = 0; r < rows; r++) for (let j = 0; j < count; j++) s[r * count + j] = score(r, i1 + j);
        // the `want` smallest scores, ties in row-major order
        const chosen = smallestMask(s, want);
        for (let t = 0; t < chosen.length; t++) if (chosen[t]) mask[Math.floor(t / count) * k + i1 + (t % count)] = 1;
        prunedSoFar += want;
      }
    }
    // rows are independent once the block's mask is chosen: split over every core (sparseGptRows)
    const ranges = parts > 1 && rows * count * (k - i1) >= SPLIT_MIN_WORK ? evenRanges(rows, parts) : [[0, rows] as [number, number]];
    await splitRun('sparseGptRows', ranges, ([r0, r1]) => ({ w: ws, u: us, mask, k, i1, i2, r0, r1, nm }));
    i1 = i2;
  }
  if (ws !== w) w.set(ws);
}
