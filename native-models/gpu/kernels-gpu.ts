import { groupParams, nmGroup } from './kernels-cpu.mjs';
import { params, type DispatchBatch, type GpuDevice } from './device.ts';
import { COPY2D, FINISH_HESSIAN, GATHER2D, GPTQ_BLOCK, GPTQ_MAX_BLOCK, HISTOGRAM, matmulSource, MAX_BINS, MINMAX, NB, POTRF_BLOCK, RADIX_EQUAL_COUNT, RADIX_HISTOGRAM, RADIX_PER, SPARSEGPT_BLOCK, SPARSEGPT_MAX_BLOCK, SPARSEGPT_SCORES } from './wgsl.ts';

/**
 * The GPU side of the compute kernels (wgsl.ts), with the same meaning as their CPU references in
 * kernels-cpu.mjs: X·Xᵀ accumulation, the factorization GPTQ needs (U with H⁻¹ = UᵀU, blocked
 * Cholesky and triangular inverse), GPTQ's column-block updates with lazy batch updates, and
 * min/max and histograms over large tensors. Arithmetic is f32 (the CPU path is f64): agreement is
 * checked by the tests and bench/gpu/device-check.ts, not assumed.
 */

const ceil = (a: number, b: number) => Math.ceil(a / b);
const f32 = (v: number) => ({ f32: v });
const BYTES = 4;

export interface MatmulArgs {
  M: number; N: number; K: number;
  A: GPUBuffer; B: GPUBuffer; C: GPUBuffer;
  lda: number; ldb: number; ldc: number;
  offA?: number; offB?: number; offC?: number;
  transA?: boolean; transB?: boolean;
  alpha?: number; beta?: number;
  triangle?: 'full' | 'upper' | 'lower';
}

export class GpuKernels {
  constructor(readonly gpu: GpuDevice) {}

  matmul(b: DispatchBatch, a: MatmulArgs): void {
    const ta = a.transA ?? false, tb = a.transB ?? false;
    const pipe = this.gpu.pipeline(`matmul-${ta}-${tb}`, matmulSource(ta, tb));
    const tri = a.triangle === 'upper' ? 1 : a.triangle === 'lower' ? 2 : 0;
    const p = params([a.M, a.N, a.K, a.lda, a.ldb, a.ldc, a.offA ?? 0, a.offB ?? 0, a.offC ?? 0, f32(a.alpha ?? 1), f32(a.beta ?? 0), tri]);
    b.dispatch(pipe, [a.A, a.B, a.C], p, [ceil(a.N, 64), ceil(a.M, 64)]);
  }

  copy2d(b: DispatchBatch, S: GPUBuffer, D: GPUBuffer, M: number, N: number, lds: number, ldd: number, offS = 0, offD = 0, alpha = 1): void {
    b.dispatch(this.gpu.pipeline('copy2d', COPY2D), [S, D], params([M, N, lds, ldd, offS, offD, f32(alpha), 0]), [ceil(N, 16), ceil(M, 16)]);
  }

  gather2d(b: DispatchBatch, S: GPUBuffer, D: GPUBuffer, R: number, C: number, lds: number, rowIdx: GPUBuffer | null, colIdx: GPUBuffer, add = 0): void {
    b.dispatch(this.gpu.pipeline('gather2d', GATHER2D), [S, rowIdx ?? colIdx, colIdx, D], params([R, C, lds, rowIdx ? 0 : 1, f32(add), 0, 0, 0]), [ceil(C, 16), ceil(R, 16)]);
  }

  indexBuffer(idx: ArrayLike<number>): GPUBuffer {
    return this.gpu.storage(idx.length * BYTES, Uint32Array.from(idx));
  }
}

// ---------------------------------------------------------------------------------------------
// X·Xᵀ accumulation
// ---------------------------------------------------------------------------------------------

/**
 * Streams row chunks of X [rows × k] into Σ xᵀx on the GPU (upper triangle, f32), like the CPU's
 * xtxAccumulate. `finish` mirrors and scales it into H = scale·XᵀX (GPTQ: scale = 2/rows).
 */
export class GpuHessian {
  readonly k: number;
  readonly h: GPUBuffer;
  rows = 0;
  #x: GPUBuffer | null = null;
  #xRows = 0;
  #kernels: GpuKernels;

  constructor(readonly gpu: GpuDevice, k: number) {
    this.k = k;
    this.h = gpu.storage(k * k * BYTES, undefined, 'hessian');
    this.#kernels = new GpuKernels(gpu);
  }

  /** Adds rows of X (a Float32Array [rows × k]). */
  add(x: Float32Array, rows = x.length / this.k): void {
    if (!this.#x || this.#xRows < rows) {
      this.#x?.destroy();
      this.#x = this.gpu.storage(rows * this.k * BYTES, undefined, 'x-chunk');
      this.#xRows = rows;
    }
    this.gpu.write(this.#x, x.subarray(0, rows * this.k));
    const b = this.gpu.batch();
    this.#kernels.matmul(b, { M: this.k, N: this.k, K: rows, A: this.#x, B: this.#x, C: this.h, lda: this.k, ldb: this.k, ldc: this.k, transA: true, beta: this.rows === 0 ? 0 : 1, triangle: 'upper' });
    b.submit();
    this.rows += rows;
  }

  /**
   * Mirrors and scales H in place; with `w` ([rowsW × k] on the GPU), applies the dead-input rule
   * (H_jj = 0 → 1, column j of W zeroed). Returns the diagonal (before the dead fix: 0 for dead inputs).
   */
  async finish(scale: number, w?: { buffer: GPUBuffer; rows: number }): Promise<Float32Array> {
    return finishHessian(this.gpu, this.h, this.k, scale, w);
  }

  destroy(): void {
    this.#x?.destroy();
    this.h.destroy();
  }
}

async function finishHessian(gpu: GpuDevice, h: GPUBuffer, k: number, scale: number, w?: { buffer: GPUBuffer; rows: number }): Promise<Float32Array> {
  const diag = gpu.storage(k * BYTES);
  const dummy = w?.buffer ?? gpu.storage(16);
  const b = gpu.batch();
  b.dispatch(gpu.pipeline('finish-hessian', FINISH_HESSIAN), [h, dummy, diag], params([k, w?.rows ?? 0, f32(scale), w ? 1 : 0]), [ceil(k, 16), ceil(k, 16)]);
  b.submit();
  const out = new Float32Array(await gpu.read(diag, k * BYTES));
  diag.destroy();
  if (!w) dummy.destroy();
  return out;
}

// ---------------------------------------------------------------------------------------------
// U with H⁻¹ = UᵀU
// ---------------------------------------------------------------------------------------------

/**
 * Blocked right-looking Cholesky (lower, in place over A [n × n]) in 32-column steps: factor the
 * diagonal block (and invert its factor into Dinv), solve the panel below it by multiplying with
 * that inverse, update the trailing matrix (lower tiles only). Returns the first failing pivot
 * index + 1, or 0.
 */
export async function choleskyLowerGpu(k: GpuKernels, A: GPUBuffer, n: number, Dinv: GPUBuffer): Promise<number> {
  const gpu = k.gpu;
  const status = gpu.storage(16, new Uint32Array(4));
  const panel = gpu.storage(Math.max(1, n - NB) * NB * BYTES);
  const b = gpu.batch();
  for (let j0 = 0, slot = 0; j0 < n; j0 += NB, slot++) {
    const bs = Math.min(NB, n - j0);
    b.dispatch(gpu.pipeline('potrf', POTRF_BLOCK), [A, Dinv, status], params([n, j0, n, slot]), [1]);
    const rest = n - j0 - bs;
    if (rest <= 0) continue;
    // P = A[j0+bs:, j0:j0+bs] · L_jj⁻ᵀ
    k.matmul(b, { M: rest, N: bs, K: bs, A, B: Dinv, C: panel, lda: n, ldb: NB, ldc: bs, offA: (j0 + bs) * n + j0, offB: slot * NB * NB, transB: true });
    k.copy2d(b, panel, A, rest, bs, bs, n, 0, (j0 + bs) * n + j0);
    // A22 −= P·Pᵀ (lower)
    k.matmul(b, { M: rest, N: rest, K: bs, A: panel, B: panel, C: A, lda: bs, ldb: bs, ldc: n, offC: (j0 + bs) * (n + 1), transB: true, alpha: -1, beta: 1, triangle: 'lower' });
  }
  b.submit();
  const failed = new Uint32Array(await gpu.read(status, 4))[0]!;
  status.destroy();
  panel.destroy();
  return failed;
}

/**
 * X = L⁻¹ for the lower L in A (n × n), block row by block row: X_ii = Dinv_i,
 * X[i, :i] = −Dinv_i · (L[i, :i] · X[:i, :i]).
 */
export function invertLowerGpu(k: GpuKernels, b: DispatchBatch, A: GPUBuffer, n: number, Dinv: GPUBuffer, X: GPUBuffer, T: GPUBuffer): void {
  for (let i0 = 0, slot = 0; i0 < n; i0 += NB, slot++) {
    const bs = Math.min(NB, n - i0);
    k.copy2d(b, Dinv, X, bs, bs, NB, n, slot * NB * NB, i0 * n + i0);
    if (i0 === 0) continue;
    k.matmul(b, { M: bs, N: i0, K: i0, A, B: X, C: T, lda: n, ldb: n, ldc: i0, offA: i0 * n });
    k.matmul(b, { M: bs, N: i0, K: bs, A: Dinv, B: T, C: X, lda: NB, ldb: i0, ldc: n, offA: slot * NB * NB, offC: i0 * n, alpha: -1 });
  }
}

export interface InverseFactorResult {
  /** U [n × n] upper with (H_perm + λI)⁻¹ = UᵀU, in processing order. */
  u: GPUBuffer;
  damp: number;
  attempts: number;
}

/**
 * U for GPTQ from H on the GPU (n × n, symmetric): the order-reversal identity of
 * kernels-cpu.mjs's inverseCholeskyUpper (factor P·H·P, invert, reverse back), with the
 * processing order `perm` (act-order) and the dampening λ applied by the same gather. λ grows
 * tenfold while the factorization fails.
 */
export async function inverseFactorGpu(k: GpuKernels, H: GPUBuffer, n: number, perm: ArrayLike<number> | null, damp: number, warn: (m: string) => void): Promise<InverseFactorResult> {
  const gpu = k.gpu;
  const order = perm ? Array.from(perm) : Array.from({ length: n }, (_, i) => i);
  const rev = k.indexBuffer(order.slice().reverse());
  const ident = k.indexBuffer(Array.from({ length: n }, (_, i) => n - 1 - i));
  const A = gpu.storage(n * n * BYTES, undefined, 'cholesky');
  const Dinv = gpu.storage(ceil(n, NB) * NB * NB * BYTES);
  try {
    let lambda = damp;
    for (let attempt = 0; attempt < 8; attempt++, lambda *= 10) {
      const b = gpu.batch();
      k.gather2d(b, H, A, n, n, n, rev, rev, lambda);
      b.submit();
      const failed = await choleskyLowerGpu(k, A, n, Dinv);
      if (failed !== 0) continue;
      if (attempt > 0) warn(`Hessian not positive definite in f32 with the requested dampening; used λ = ${lambda.toExponential(2)}`);
      const X = gpu.storage(n * n * BYTES, undefined, 'inverse');
      const T = gpu.storage(Math.max(1, NB * n) * BYTES);
      const U = gpu.storage(n * n * BYTES, undefined, 'U');
      const b2 = gpu.batch();
      invertLowerGpu(k, b2, A, n, Dinv, X, T);
      k.gather2d(b2, X, U, n, n, n, ident, ident, 0);
      b2.submit();
      await gpu.finish();
      X.destroy();
      T.destroy();
      return { u: U, damp: lambda, attempts: attempt + 1 };
    }
    throw new Error('the calibration Hessian could not be factored on the GPU even with heavy dampening');
  } finally {
    A.destroy();
    Dinv.destroy();
    rev.destroy();
    ident.destroy();
  }
}

/**
 * H on the GPU, finished: a GpuHessian's own buffer (mirrored and scaled to 2XᵀX/rows) or an
 * uploaded H = 2XᵀX/n (added to `owned`), with the dead-input rule applied to it and to W's
 * columns. Returns the diagonal (0 for dead inputs), their count and mean(diag H) with dead ones
 * counted as 1 (the dampening's base).
 */
async function hessianOnGpu(gpu: GpuDevice, h: Float32Array | Float64Array | GpuHessian, K: number, W: GPUBuffer, rows: number, owned: GPUBuffer[], method: string): Promise<{ H: GPUBuffer; diag: Float32Array; dead: number; mean: number }> {
  let H: GPUBuffer;
  let diag: Float32Array;
  if (h instanceof GpuHessian) {
    H = h.h;
    diag = await h.finish(2 / Math.max(1, h.rows), { buffer: W, rows });
  } else {
    H = gpu.storage(K * K * BYTES, h instanceof Float32Array ? h : Float32Array.from(h), 'H');
    owned.push(H);
    diag = await finishHessian(gpu, H, K, 1, { buffer: W, rows });
  }
  let dead = 0, mean = 0;
  for (let j = 0; j < K; j++) { if (diag[j] === 0) dead++; mean += diag[j] === 0 ? 1 : diag[j]!; }
  mean /= K;
  if (!(mean > 0) || !Number.isFinite(mean)) throw new Error(`${method}: the calibration Hessian has no positive diagonal`);
  return { H, diag, dead, mean };
}

// ---------------------------------------------------------------------------------------------
// GPTQ
// ---------------------------------------------------------------------------------------------

/** GPTQ's options, on the GPU or the CPU (core/passes/quantize/gptq.ts adds its CPU-only ones). */
export interface GpuGptqOptions {
  bits: 4 | 8;
  /** Inputs per quantization group (MatMulNBits block_size). */
  groupSize: number;
  symmetric: boolean;
  /** Dampening as a share of mean(diag H) (default 0.01). */
  percdamp?: number;
  /** Columns per lazy batch update (default 128; raised to a multiple of groupSize). */
  blockSize?: number;
  actOrder?: boolean;
  staticGroups?: boolean;
}

/** What GPTQ gives, on the GPU or the CPU (core/passes/quantize/gptq.ts): one shape for both. */
export interface GptqResult {
  rows: number;
  K: number;
  groups: number;
  /** Storage values [rows × K], original column order (symmetric: signed + 2^(bits−1)). */
  q: Uint8Array;
  /** [rows × groups] float32 scales. */
  scales: Float32Array;
  /** [rows × groups] storage zero points (symmetric: the implied 8 or 128). */
  zeroPoints: Uint8Array;
  /** λ actually added to the diagonal. */
  damp: number;
  /** Dead inputs (H_jj = 0). */
  deadInputs: number;
  /** GPTQ's own estimate Σ (w − ŵ)²/U_ii² / 2 over the layer. */
  lossEstimate: number;
  /** Processing order when act-order was used. */
  perm: Int32Array | null;
  seconds: { factor: number; update: number };
}
export type GpuGptqResult = GptqResult;

/**
 * GPTQ of W [rows × K] on the GPU given H: either a Float32Array/Float64Array (already
 * H = 2XᵀX/n) or a GpuHessian whose rows were accumulated on the GPU (finished here). Same
 * options and result as gptq.ts's gptqQuantize (the CPU path).
 */
export async function gptqGpu(gpu: GpuDevice, w: Float32Array | Float64Array, rows: number, K: number, h: Float32Array | Float64Array | GpuHessian, o: GpuGptqOptions, warn: (m: string) => void = () => {}): Promise<GpuGptqResult> {
  const k = new GpuKernels(gpu);
  const percdamp = o.percdamp ?? 0.01;
  const groups = ceil(K, o.groupSize);
  let blockSize = o.blockSize ?? 128;
  if (blockSize % o.groupSize !== 0) blockSize = ceil(blockSize, o.groupSize) * o.groupSize;
  if (blockSize > GPTQ_MAX_BLOCK) {
    if (o.groupSize > GPTQ_MAX_BLOCK && !(o.actOrder || o.staticGroups)) throw new Error(`GPU GPTQ: group size ${o.groupSize} needs static groups (blocks hold at most ${GPTQ_MAX_BLOCK} columns)`);
    blockSize = GPTQ_MAX_BLOCK;
  }
  const actOrder = o.actOrder ?? false;
  const staticGroups = actOrder || (o.staticGroups ?? false) || blockSize % o.groupSize !== 0;
  const t0 = performance.now();
  const W = gpu.storage(rows * K * BYTES, w instanceof Float32Array ? w : Float32Array.from(w), 'W');
  const buffers: GPUBuffer[] = [W];
  try {
    const { H, diag, dead, mean } = await hessianOnGpu(gpu, h, K, W, rows, buffers, 'GPTQ');
    const perm = actOrder ? Int32Array.from({ length: K }, (_, i) => i).sort((a, b) => (diag[b] === 0 ? 1 : diag[b]!) - (diag[a] === 0 ? 1 : diag[a]!) || a - b) : null;
    const { u: U, damp } = await inverseFactorGpu(k, H, K, perm, Math.max(percdamp, 1e-8) * mean, warn);
    buffers.push(U);
    // static group parameters from the (dead-zeroed) unquantized weights, exactly as the CPU path
    const qmin = o.symmetric ? -((1 << (o.bits - 1)) - 1) : 0;
    const qmax = o.symmetric ? (1 << (o.bits - 1)) - 1 : (1 << o.bits) - 1;
    const offset = o.symmetric ? 1 << (o.bits - 1) : 0;
    const sz = new Float32Array(rows * groups * 2);
    if (staticGroups) {
      const wz = new Float32Array(await gpu.read(W, rows * K * BYTES));
      const out = new Float64Array(2);
      for (let r = 0; r < rows; r++) for (let g = 0; g < groups; g++) {
        let lo = Infinity, hi = -Infinity;
        for (let j = g * o.groupSize; j < Math.min(K, (g + 1) * o.groupSize); j++) { const v = wz[r * K + j]!; if (v < lo) lo = v; if (v > hi) hi = v; }
        groupParams(lo, hi, qmin, qmax, o.symmetric, out);
        sz[(r * groups + g) * 2] = out[0]!;
        sz[(r * groups + g) * 2 + 1] = out[1]!;
      }
    }
    const t1 = performance.now();
    const order = perm ?? Int32Array.from({ length: K }, (_, i) => i);
    const permBuf = k.indexBuffer(order);
    let Wp = W;
    const b = gpu.batch();
    if (perm) {
      Wp = gpu.storage(rows * K * BYTES, undefined, 'W-permuted');
      buffers.push(Wp);
      k.gather2d(b, W, Wp, rows, K, K, null, permBuf, 0);
    }
    const E = gpu.storage(rows * GPTQ_MAX_BLOCK * BYTES);
    const Q = gpu.storage(rows * K * BYTES, undefined, 'Q');
    const SZ = gpu.storage(sz.length * BYTES, sz);
    const loss = gpu.storage(rows * BYTES, new Float32Array(rows));
    buffers.push(permBuf, E, Q, SZ, loss);
    const block = gpu.pipeline('gptq-block', GPTQ_BLOCK);
    for (let i1 = 0; i1 < K; i1 += blockSize) {
      const i2 = Math.min(i1 + blockSize, K);
      b.dispatch(block, [Wp, U, permBuf, E, Q, SZ, loss], params([rows, K, i1, i2, o.groupSize, groups, o.symmetric ? 1 : 0, staticGroups ? 1 : 0, f32(qmin), f32(qmax), f32(offset), 0]), [ceil(rows, 64)]);
      if (i2 < K) k.matmul(b, { M: rows, N: K - i2, K: i2 - i1, A: E, B: U, C: Wp, lda: GPTQ_MAX_BLOCK, ldb: K, ldc: K, offB: i1 * K + i2, offC: i2, alpha: -1, beta: 1 });
    }
    b.submit();
    const q32 = new Uint32Array(await gpu.read(Q, rows * K * BYTES));
    const szOut = new Float32Array(await gpu.read(SZ, sz.length * BYTES));
    const lossOut = new Float32Array(await gpu.read(loss, rows * BYTES));
    const scales = new Float32Array(rows * groups);
    const zeroPoints = new Uint8Array(rows * groups);
    for (let i = 0; i < rows * groups; i++) { scales[i] = szOut[2 * i]!; zeroPoints[i] = szOut[2 * i + 1]! + offset; }
    return {
      rows, K, groups, q: Uint8Array.from(q32), scales, zeroPoints, damp, deadInputs: dead,
      lossEstimate: lossOut.reduce((a, v) => a + v, 0), perm,
      seconds: { factor: (t1 - t0) / 1000, update: (performance.now() - t1) / 1000 },
    };
  } finally {
    for (const x of buffers) x.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// SparseGPT
// ---------------------------------------------------------------------------------------------

export interface GpuSparseGptOptions {
  target: { kind: 'unstructured'; sparsity: number } | { kind: 'nm'; n: number; m: number };
  /** N:M groups restart every `segment` columns (a grouped conv's input channels); K when none. */
  segment?: number;
  /** Dampening as a share of mean(diag H) (default 0.01). */
  percdamp?: number;
  /** Columns per block (default 128, at most SPARSEGPT_MAX_BLOCK). */
  blockSize?: number;
}

export interface GpuSparseGptResult {
  /** The pruned and updated W [rows × K] (float32). */
  w: Float32Array;
  damp: number;
  deadInputs: number;
  seconds: { factor: number; update: number };
}

/**
 * SparseGPT of W [rows × K] on the GPU given H (H = 2XᵀX/n, or a GpuHessian finished here): the
 * CPU path's algorithm (core/passes/prune/sparsegpt.ts) in f32 — the same dead-input rule and
 * dampening, the same blocks (an N:M group is never split), the unstructured mask of each block
 * over all its rows with the same cumulative count (the exact k-th smallest score by radix select
 * on the GPU, ties in row-major order), N:M chosen per row at each group's first column.
 */
export async function sparseGptGpu(gpu: GpuDevice, w: Float32Array | Float64Array, rows: number, K: number, h: Float32Array | Float64Array | GpuHessian, o: GpuSparseGptOptions, warn: (m: string) => void = () => {}): Promise<GpuSparseGptResult> {
  const k = new GpuKernels(gpu);
  const percdamp = o.percdamp ?? 0.01;
  const blockSize = Math.min(o.blockSize ?? 128, SPARSEGPT_MAX_BLOCK);
  const segment = o.segment ?? K;
  const t0 = performance.now();
  const W = gpu.storage(rows * K * BYTES, w instanceof Float32Array ? w : Float32Array.from(w), 'W');
  const buffers: GPUBuffer[] = [W];
  try {
    const { H, dead, mean } = await hessianOnGpu(gpu, h, K, W, rows, buffers, 'SparseGPT');
    const { u: U, damp } = await inverseFactorGpu(k, H, K, null, Math.max(percdamp, 1e-8) * mean, warn);
    buffers.push(U);
    const t1 = performance.now();

    const nm = o.target.kind === 'nm' ? o.target : null;
    const groupEnd = new Int32Array(K).fill(-1);
    if (nm) {
      for (let c = 0; c < K; c++) {
        const [gs, ge] = nmGroup(c, nm.m, segment, K);
        if (gs === c && ge - gs > nm.n) groupEnd[c] = ge;
      }
    }
    const S = gpu.storage(rows * SPARSEGPT_MAX_BLOCK * BYTES, undefined, 'scores');
    const E = gpu.storage(rows * SPARSEGPT_MAX_BLOCK * BYTES, undefined, 'errors');
    const take = gpu.storage(rows * BYTES, new Uint32Array(rows).fill(0xffffffff));
    const ends = gpu.storage(K * BYTES, groupEnd);
    buffers.push(S, E, take, ends);
    const block = gpu.pipeline('sparsegpt-block', SPARSEGPT_BLOCK);
    const scores = gpu.pipeline('sparsegpt-scores', SPARSEGPT_SCORES);
    let prunedSoFar = 0;
    let b = gpu.batch();
    for (let i1 = 0; i1 < K;) {
      let i2 = Math.min(i1 + blockSize, K);
      if (nm && i2 < K) {
        const [gs, ge] = nmGroup(i2, nm.m, segment, K);
        if (gs < i2) i2 = gs > i1 ? gs : ge;
      }
      if (i2 - i1 > SPARSEGPT_MAX_BLOCK) throw new Error(`GPU SparseGPT: an N:M group of ${i2 - i1} columns is wider than a block (${SPARSEGPT_MAX_BLOCK})`);
      const cnt = i2 - i1;
      let threshold = 0;
      if (o.target.kind === 'unstructured') {
        const want = Math.round(o.target.sparsity * rows * i2) - prunedSoFar;
        if (want <= 0) { i1 = i2; continue; } // nothing pruned in this block: no error to spread
        prunedSoFar += want;
        b.dispatch(scores, [W, U, S], params([rows, K, i1, cnt, SPARSEGPT_MAX_BLOCK, 0, 0, 0]), [ceil(cnt, 16), ceil(rows, 16)]);
        b.submit();
        const sel = await kthSmallestKeyGpu(gpu, S, rows, cnt, SPARSEGPT_MAX_BLOCK, want);
        threshold = sel.key;
        gpu.write(take, sel.takeByRow ?? new Uint32Array(rows).fill(0xffffffff));
        b = gpu.batch();
      }
      b.dispatch(block, [W, U, S, take, ends, E], params([rows, K, i1, i2, nm ? 1 : 0, nm?.n ?? 0, threshold, 0]), [ceil(rows, 64)]);
      if (i2 < K) k.matmul(b, { M: rows, N: K - i2, K: cnt, A: E, B: U, C: W, lda: SPARSEGPT_MAX_BLOCK, ldb: K, ldc: K, offB: i1 * K + i2, offC: i2, alpha: -1, beta: 1 });
      i1 = i2;
    }
    b.submit();
    const out = new Float32Array(await gpu.read(W, rows * K * BYTES));
    return { w: out, damp, deadInputs: dead, seconds: { factor: (t1 - t0) / 1000, update: (performance.now() - t1) / 1000 } };
  } finally {
    for (const x of buffers) x.destroy();
  }
}

/** f32 of an order-preserving key (WGSL keyOf's inverse). */
export function floatOfKey(key: number): number {
  const bits = key & 0x80000000 ? (key ^ 0x80000000) >>> 0 : ~key >>> 0;
  return new Float32Array(Uint32Array.of(bits).buffer)[0]!;
}

export interface KthSmallest {
  /** keyOf the k-th smallest value (floatOfKey gives the value). */
  key: number;
  /** Values below it, and equal to it. */
  less: number;
  equal: number;
  /**
   * When only some of the values equal to it are among the k smallest: how many of each row's to
   * take (first columns first, rows in order); null when all are.
   */
  takeByRow: Uint32Array | null;
}

/**
 * The exact k-th smallest (1-based k ≤ rows·cnt) of the f32 values V[r·ld + j], r < rows, j < cnt,
 * by a radix select on the GPU: four 256-bin histograms of the keys' bytes, high byte first, each
 * restricted to the bytes already chosen (about rows·cnt·4 reads and four 1 KiB read-backs).
 * Magnitude pruning's threshold is the same question over |W|.
 */
export async function kthSmallestKeyGpu(gpu: GpuDevice, V: GPUBuffer, rows: number, cnt: number, ld: number, k: number): Promise<KthSmallest> {
  const n = rows * cnt;
  if (!(k >= 1 && k <= n)) throw new Error(`k-th smallest: k = ${k} of ${n} values`);
  const { key, rank, equal } = await radixSelect(gpu, [{ V, rows, cnt, ld }], k);
  const less = k - rank;
  let takeByRow: Uint32Array | null = null;
  if (rank < equal) {
    // ties at the threshold: the first `rank` of them in row-major order
    const perRow = gpu.storage(rows * BYTES);
    const b = gpu.batch();
    b.dispatch(gpu.pipeline('radix-equal', RADIX_EQUAL_COUNT), [V, perRow], params([rows, cnt, ld, key]), [ceil(rows, 64)]);
    b.submit();
    const eq = new Uint32Array(await gpu.read(perRow, rows * BYTES));
    perRow.destroy();
    takeByRow = new Uint32Array(rows);
    let left = rank;
    for (let r = 0; r < rows && left > 0; r++) { takeByRow[r] = Math.min(eq[r]!, left); left -= takeByRow[r]!; }
  }
  return { key, less, equal, takeByRow };
}

/** A strided region V[r·ld + j], r < rows, j < cnt, of one GPU buffer. */
interface RadixRegion { V: GPUBuffer; rows: number; cnt: number; ld: number }

/**
 * The radix select behind kthSmallestKeyGpu and kthSmallestGpu, over the union of some regions:
 * the k-th smallest key (1-based), how many keys equal it, and how many of those are among the k
 * smallest (`rank`).
 */
async function radixSelect(gpu: GpuDevice, regions: readonly RadixRegion[], k: number): Promise<{ key: number; rank: number; equal: number }> {
  const counts = gpu.storage(256 * BYTES);
  const pipe = gpu.pipeline('radix-histogram', RADIX_HISTOGRAM);
  try {
    let prefix = 0, mask = 0, rank = k, equal = 0;
    for (const shift of [24, 16, 8, 0]) {
      gpu.write(counts, new Uint32Array(256));
      const b = gpu.batch();
      for (const { V, rows, cnt, ld } of regions) {
        b.dispatch(pipe, [V, counts], params([rows, cnt, ld, shift, prefix >>> 0, mask >>> 0, 0, 0]), [Math.max(1, ceil(rows * cnt, 256 * RADIX_PER))]);
      }
      b.submit();
      const hist = new Uint32Array(await gpu.read(counts, 256 * BYTES));
      let bin = 0;
      for (; bin < 255 && rank > hist[bin]!; bin++) rank -= hist[bin]!;
      equal = hist[bin]!;
      prefix = (prefix | (bin << shift)) >>> 0;
      mask = (mask | (0xff << shift)) >>> 0;
    }
    return { key: prefix, rank, equal };
  } finally {
    counts.destroy();
  }
}

/** keyOf(+∞): keys above it are NaN. */
const KEY_OF_INFINITY = (0x7f800000 | 0x80000000) >>> 0;

/**
 * The k-th smallest (0-based) of the non-NaN values of some arrays taken as one, and how many values
 * are below it — kthSmallest (core/passes/prune/magnitude.ts) on the GPU, for magnitude pruning's
 * threshold over a layer or over a whole model: the arrays (any iterable: a generator may make them
 * one at a time) are uploaded in pieces of at most `pieceBytes` (a binding's limit, and 65,535
 * workgroups of the radix kernel) and never concatenated on the host. NaN (0 below) when fewer than k + 1 values are not NaN. -0 counts as below +0, as
 * keyOf orders them (magnitudes hold no -0).
 */
export async function kthSmallestGpu(gpu: GpuDevice, arrays: Iterable<Float32Array>, k: number, pieceBytes = 256 * 2 ** 20): Promise<{ value: number; below: number }> {
  if (!(Number.isSafeInteger(k) && k >= 0)) throw new Error(`k-th smallest: k = ${k}`);
  let total = 0;
  const limit = Math.min(pieceBytes, Number(gpu.limits.maxStorageBufferBindingSize), 65535 * 256 * RADIX_PER * BYTES);
  const piece = Math.max(1, Math.floor(limit / BYTES));
  const regions: RadixRegion[] = [];
  try {
    // each array is uploaded and let go: the caller may make them one at a time
    for (const a of arrays) {
      total += a.length;
      for (let at = 0; at < a.length; at += piece) {
        const part = a.subarray(at, Math.min(a.length, at + piece));
        regions.push({ V: gpu.storage(part.byteLength, part), rows: 1, cnt: part.length, ld: part.length });
      }
    }
    if (k >= total) return { value: NaN, below: 0 };
    const { key, rank } = await radixSelect(gpu, regions, k + 1);
    if (key > KEY_OF_INFINITY) return { value: NaN, below: 0 };
    return { value: floatOfKey(key), below: k + 1 - rank };
  } finally {
    for (const r of regions) r.V.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/** Values per workgroup of the statistics kernels: 256 threads × PER values each. */
const PER = 64;

function valuesBuffer(gpu: GpuDevice, values: Float32Array | GPUBuffer): GPUBuffer {
  return values instanceof Float32Array ? gpu.storage(values.byteLength, values) : values;
}

/** Min, max of the finite values and the count of non-finite ones (as kernels-cpu.mjs's minMax). */
export async function minMaxGpu(gpu: GpuDevice, values: Float32Array | GPUBuffer, n = values instanceof Float32Array ? values.length : 0): Promise<{ min: number; max: number; nonFinite: number }> {
  const V = valuesBuffer(gpu, values);
  const wgs = Math.max(1, ceil(n, 256 * PER));
  const out = gpu.storage(wgs * 3 * BYTES);
  const b = gpu.batch();
  b.dispatch(gpu.pipeline('minmax', MINMAX), [V, out], params([n, PER, 0, 0]), [wgs]);
  b.submit();
  const raw = await gpu.read(out, wgs * 3 * BYTES);
  out.destroy();
  if (V !== values) V.destroy();
  const f = new Float32Array(raw);
  const u = new Uint32Array(raw);
  let min = Infinity, max = -Infinity, nonFinite = 0;
  for (let i = 0; i < wgs; i++) {
    nonFinite += u[i * 3 + 2]!;
    if (f[i * 3]! <= f[i * 3 + 1]!) { min = Math.min(min, f[i * 3]!); max = Math.max(max, f[i * 3 + 1]!); }
  }
  return { min, max, nonFinite };
}

/** Counts in `bins` (≤ 4096) equal bins over [lo, hi] (as kernels-cpu.mjs's histogram). */
export async function histogramGpu(gpu: GpuDevice, values: Float32Array | GPUBuffer, lo: number, hi: number, bins: number, n = values instanceof Float32Array ? values.length : 0): Promise<Uint32Array> {
  if (bins < 1 || bins > MAX_BINS) throw new Error(`histogram: bins must be 1..${MAX_BINS}`);
  const V = valuesBuffer(gpu, values);
  const counts = gpu.storage(bins * BYTES, new Uint32Array(bins));
  const lo32 = Math.fround(lo), hi32 = Math.fround(hi);
  const scale = hi32 > lo32 ? Math.fround(bins / (hi32 - lo32)) : 0;
  const b = gpu.batch();
  b.dispatch(gpu.pipeline('histogram', HISTOGRAM), [V, counts], params([n, PER, bins, 0, f32(lo32), f32(hi32), f32(scale), 0]), [Math.max(1, ceil(n, 256 * PER))]);
  b.submit();
  const out = new Uint32Array(await gpu.read(counts, bins * BYTES));
  counts.destroy();
  if (V !== values) V.destroy();
  return out;
}
