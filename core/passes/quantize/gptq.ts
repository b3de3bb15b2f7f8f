import { WhittleError } from '../../../api/errors.ts';
import { groupParams as groupParamsInto } from '../../../native-models/gpu/kernels-cpu.mjs';
import type { GpuGptqOptions, GptqResult } from '../../../native-models/gpu/kernels-gpu.ts';
import { CpuThreads, gptqParallel, inverseCholeskyUpperParallel, sharedArray, toShared } from '../../../native-models/gpu/threads.ts';

/**
 * GPTQ (Frantar, Ashkboos, Hoefler & Alistarh 2022, "GPTQ: Accurate Post-Training Quantization for
 * Generative Pre-trained Transformers") for one weight, on the CPU in float64.
 *
 * The weight is seen as W [rows × K] with one row per output (MatMul's column n) and K inputs, and
 * H = 2·XᵀX/n over the calibration rows x of the layer's input. Columns are quantized one at a time;
 * each one's rounding error, divided by U_ii, is spread over the columns not yet quantized through
 * row i of U, the upper Cholesky factor of H⁻¹ (w_j −= e·U_ij): exactly the sequence of optimal
 * updates of Optimal Brain Quantization. Columns go in blocks of `blockSize` (128): inside a block
 * the updates are immediate, the block's errors reach the later columns in one batch ("lazy batch
 * updates"). Quantization is asymmetric or symmetric per group of `groupSize` consecutive inputs of
 * one output — MatMulNBits' blocks — with the SPEC §8 arithmetic of the RTN quantizer.
 *
 * - Dampening: λ = percdamp·mean(diag H) is added to the diagonal (raised tenfold, with a warning,
 *   until the Cholesky factorization exists). Inputs that were zero on every calibration row get
 *   H_jj = 1 and their weights zeroed (they multiply nothing), as in the paper's code.
 * - Group parameters: by default each group's scale and zero point come from the current (already
 *   updated) weights when the loop reaches its first column, as the reference implementation does.
 * - act-order: columns in order of decreasing H_jj (the most activated inputs first). MatMulNBits
 *   needs each group to be consecutive original inputs, so act-order uses static groups: every
 *   group's parameters are fixed beforehand from the unquantized weights, and a column is quantized
 *   with its own group's parameters whenever the permuted loop reaches it (the reference code's
 *   `static_groups`). `staticGroups` alone gives the same without the permutation.
 *
 * With H = I nothing is spread (U is diagonal) and the result is RTN's, bit for bit.
 */
export interface GptqOptions extends GpuGptqOptions {
  /**
   * Every (row, group)'s scale and storage zero point, fixed by the caller (static QDQ stores its
   * own per-channel or per-tensor weight scales); implies static groups.
   */
  fixedParams?: { scales: Float32Array; zeroPoints: Uint8Array } | undefined;
  /**
   * Zero the weights of inputs that were zero on every calibration row (default true, as the
   * paper's code does). false: they are only rounded — with H_jj = 1 and no coupling their error
   * reaches no other column — so an input the calibration never lit still works where it does light.
   */
  zeroDeadInputs?: boolean | undefined;
  /** Worker threads for the column updates (default: one inline thread; pass a CpuThreads to share one). */
  threads?: CpuThreads;
  /** Symmetric only: codes kept in [−qLimit, qLimit] (static int8 under reduce range: 64). */
  qLimit?: number | undefined;
}

export type { GptqResult } from '../../../native-models/gpu/kernels-gpu.ts';

/**
 * Adds λ·I and factors: U upper with (H + λI)⁻¹ = UᵀU, raising λ tenfold (with a warning) until it
 * exists. GPTQ and SparseGPT both: the factor runs on every core (inverseCholeskyUpperParallel).
 */
export async function dampedInverseFactor(h: Float64Array, k: number, percdamp: number, warn: (m: string) => void, method = 'GPTQ'): Promise<{ u: Float64Array; damp: number }> {
  let mean = 0;
  for (let j = 0; j < k; j++) mean += h[j * k + j]!;
  mean /= k;
  if (!(mean > 0) || !Number.isFinite(mean)) throw new WhittleError('RUNTIME', `${method}: the calibration Hessian has no positive diagonal (are the activations finite and not all zero?)`);
  let damp = Math.max(percdamp, 1e-8) * mean;
  for (let attempt = 0; attempt < 8; attempt++, damp *= 10) {
    const a = h.slice();
    for (let j = 0; j < k; j++) a[j * k + j] = a[j * k + j]! + damp;
    const u = await inverseCholeskyUpperParallel(a, k);
    if (u) {
      if (attempt > 0) warn(`Hessian not positive definite with the requested dampening; used λ = ${damp.toExponential(2)} (${(damp / mean).toExponential(1)}·mean diag)`);
      return { u, damp };
    }
  }
  throw new WhittleError('RUNTIME', `${method}: the calibration Hessian could not be factored even with heavy dampening (are the activations finite?)`);
}

/** Static group parameters from the unquantized weights (SPEC §8 per group, as RTN computes them). */
function staticParams(w: Float64Array, rows: number, k: number, o: GptqOptions, groups: number): { scales: Float32Array; zeros: Uint8Array } {
  const scales = new Float32Array(rows * groups);
  const zeros = new Uint8Array(rows * groups);
  const qmin = o.symmetric ? -((1 << (o.bits - 1)) - 1) : 0;
  const qmax = o.symmetric ? (1 << (o.bits - 1)) - 1 : (1 << o.bits) - 1;
  const offset = o.symmetric ? 1 << (o.bits - 1) : 0;
  const out = new Float64Array(2);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      let lo = Infinity, hi = -Infinity;
      for (let j = g * o.groupSize; j < Math.min(k, (g + 1) * o.groupSize); j++) {
        const v = w[r * k + j]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      groupParamsInto(lo, hi, qmin, qmax, o.symmetric, out);
      scales[r * groups + g] = out[0]!;
      zeros[r * groups + g] = out[1]! + offset;
    }
  }
  return { scales, zeros };
}

/**
 * GPTQ-quantizes W [rows × K] (float64, row-major, one row per output; not modified) given
 * H = 2·XᵀX/n [K × K] (not modified).
 */
export async function gptqQuantize(w: Float64Array, rows: number, k: number, h: Float64Array, o: GptqOptions, warn: (m: string) => void = () => {}): Promise<GptqResult> {
  const percdamp = o.percdamp ?? 0.01;
  const groups = Math.ceil(k / o.groupSize);
  let blockSize = o.blockSize ?? 128;
  if (blockSize % o.groupSize !== 0) blockSize = Math.ceil(blockSize / o.groupSize) * o.groupSize;
  const actOrder = o.actOrder ?? false;
  const staticGroups = actOrder || (o.staticGroups ?? false) || o.fixedParams !== undefined;
  const t0 = performance.now();
  const hh = h.slice();
  const work = w.slice();
  let dead = 0;
  for (let j = 0; j < k; j++) {
    if (hh[j * k + j] !== 0) continue;
    dead++;
    hh[j * k + j] = 1;
    if (o.zeroDeadInputs ?? true) for (let r = 0; r < rows; r++) work[r * k + j] = 0;
  }
  if (o.fixedParams && (o.fixedParams.scales.length !== rows * groups || o.fixedParams.zeroPoints.length !== rows * groups)) {
    throw new Error(`GPTQ: fixedParams hold ${o.fixedParams.scales.length} scales, expected ${rows * groups}`);
  }
  const fixed = o.fixedParams ? { scales: o.fixedParams.scales, zeros: o.fixedParams.zeroPoints } : staticGroups ? staticParams(work, rows, k, o, groups) : null;
  let perm: Int32Array | null = null;
  let wp = work;
  let hp = hh;
  if (actOrder) {
    perm = Int32Array.from({ length: k }, (_, i) => i).sort((a, b) => hh[b * k + b]! - hh[a * k + a]! || a - b);
    wp = new Float64Array(rows * k);
    for (let r = 0; r < rows; r++) for (let i = 0; i < k; i++) wp[r * k + i] = work[r * k + perm[i]!]!;
    hp = new Float64Array(k * k);
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) hp[i * k + j] = hh[perm[i]! * k + perm[j]!]!;
  }
  const { u, damp } = await dampedInverseFactor(hp, k, percdamp, warn);
  const t1 = performance.now();
  const threads = o.threads ?? new CpuThreads(1);
  const parallel = threads.size > 1;
  const q = parallel ? sharedArray(Uint8Array, rows * k) : new Uint8Array(rows * k);
  const scales = fixed ? fixed.scales : parallel ? sharedArray(Float32Array, rows * groups) : new Float32Array(rows * groups);
  const zeroPoints = fixed ? fixed.zeros : parallel ? sharedArray(Uint8Array, rows * groups) : new Uint8Array(rows * groups);
  const p = { K: k, bits: o.bits, symmetric: o.symmetric, groupSize: o.groupSize, blockSize, perm, staticScales: fixed?.scales ?? null, staticZeros: fixed?.zeros ?? null, qLimit: o.qLimit };
  const loss = await gptqParallel(threads, parallel ? toShared(wp) : wp, parallel ? toShared(u) : u, p, rows, q, scales, zeroPoints);
  if (!o.threads) await threads.close();
  return {
    rows, K: k, groups, q: parallel ? q.slice() : q, scales: parallel && !fixed ? scales.slice() : scales, zeroPoints: parallel && !fixed ? zeroPoints.slice() : zeroPoints,
    damp, deadInputs: dead, lossEstimate: loss, perm,
    seconds: { factor: (t1 - t0) / 1000, update: (performance.now() - t1) / 1000 },
  };
}

/** Dequantized weights [rows × K] of a result ((q − zp)·scale), for error measurements. */
export function dequantize(r: Pick<GptqResult, 'rows' | 'K' | 'groups' | 'q' | 'scales' | 'zeroPoints'>, groupSize: number): Float64Array {
  const out = new Float64Array(r.rows * r.K);
  for (let n = 0; n < r.rows; n++) {
    for (let j = 0; j < r.K; j++) {
      const g = n * r.groups + Math.floor(j / groupSize);
      out[n * r.K + j] = (r.q[n * r.K + j]! - r.zeroPoints[g]!) * r.scales[g]!;
    }
  }
  return out;
}

/**
 * MatMulNBits' B [N, blocks, blockSize·bits/8] from storage values [N × K] (low nibble first; a
 * short last block padded with the block's zero point, as the RTN quantizer does).
 */
export function packMatMulNBits(r: Pick<GptqResult, 'rows' | 'K' | 'groups' | 'q' | 'zeroPoints'>, bits: 4 | 8, blockSize: number): Uint8Array {
  const blob = (blockSize * bits) / 8;
  const out = new Uint8Array(r.rows * r.groups * blob);
  const qs = new Uint8Array(blockSize);
  for (let n = 0; n < r.rows; n++) {
    for (let b = 0; b < r.groups; b++) {
      const k0 = b * blockSize;
      const len = Math.min(blockSize, r.K - k0);
      qs.set(r.q.subarray(n * r.K + k0, n * r.K + k0 + len));
      qs.fill(r.zeroPoints[n * r.groups + b]!, len);
      const o = (n * r.groups + b) * blob;
      if (bits === 8) out.set(qs, o);
      else for (let j = 0; j < blob; j++) out[o + j] = (qs[2 * j]! & 0xf) | ((qs[2 * j + 1]! & 0xf) << 4);
    }
  }
  return out;
}

/** Storage values as [K, N] (the DequantizeLinear form's layout). */
export function toKn(r: Pick<GptqResult, 'rows' | 'K' | 'q'>): Uint8Array {
  const out = new Uint8Array(r.rows * r.K);
  for (let n = 0; n < r.rows; n++) for (let k = 0; k < r.K; k++) out[k * r.rows + n] = r.q[n * r.K + k]!;
  return out;
}
