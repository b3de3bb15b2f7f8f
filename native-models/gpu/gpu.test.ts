import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { dequantize, gptqQuantize } from '../../core/passes/quantize/gptq.ts';
import { quadraticFormSum } from '../../core/passes/prune/linalg.ts';
import { seededGaussian } from '../ir/random.ts';
import { computeStatus, GpuDevice } from './device.ts';
import { histogram, inverseCholeskyUpper, minMax, mirrorUpper, xtxAccumulate } from './kernels-cpu.mjs';
import { floatOfKey, GpuHessian, GpuKernels, gptqGpu, histogramGpu, inverseFactorGpu, kthSmallestGpu, kthSmallestKeyGpu, minMaxGpu, sparseGptGpu } from './kernels-gpu.ts';
import { kthSmallest } from '../../core/passes/prune/magnitude.ts';
import { sparseGptPruneGroup } from '../../core/passes/prune/sparsegpt.ts';

/**
 * The WGSL kernels against their CPU references, on whatever adapter computeStatus picks. Without
 * one the GPU tests are skipped with the reason; WHITTLE_GPU_SOFTWARE=1 lets them run on a software
 * adapter (Mesa llvmpipe through Dawn's GL backend: docs/gpu.md says how), which checks the WGSL
 * itself on a machine with no GPU.
 */

const status = await computeStatus();
const skip = status.adapter ? false : `no usable GPU adapter: ${status.reason}`;

describe('GPU device discovery', () => {
  it('says which adapter compute work uses, or why none, without crashing', async () => {
    if (status.adapter) assert.equal(status.reason, null);
    else assert.ok(status.reason && status.reason.length > 0 && !status.reason.includes('\n'), String(status.reason));
    const saved = process.env.WHITTLE_GPU;
    process.env.WHITTLE_GPU = 'off';
    try {
      const off = await GpuDevice.open({ allowSoftware: true, timeoutMs: 1 });
      assert.ok('reason' in off && /WHITTLE_GPU=off/.test(off.reason));
    } finally {
      if (saved === undefined) delete process.env.WHITTLE_GPU;
      else process.env.WHITTLE_GPU = saved;
    }
  });
});

describe('GPU kernels agree with the CPU kernels', { skip }, () => {
  let gpu: GpuDevice;
  before(async () => {
    const g = await GpuDevice.open();
    if ('reason' in g) throw new Error(g.reason);
    gpu = g;
  });
  after(() => gpu?.destroy());

  const relMax = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let e = 0, s = 0;
    for (let i = 0; i < b.length; i++) { e = Math.max(e, Math.abs(a[i]! - b[i]!)); s = Math.max(s, Math.abs(b[i]!)); }
    return e / s;
  };

  it('matmul, all four transpose variants, offsets, alpha/beta and triangles', async () => {
    const k = new GpuKernels(gpu);
    const [M, N, K] = [70, 45, 33];
    const a = seededGaussian(M * K + 5, 1), b = seededGaussian(K * N + 3, 2), c0 = seededGaussian(M * N, 3);
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      for (const triangle of ['full', 'lower'] as const) {
        const A = gpu.storage(a.byteLength, a), B = gpu.storage(b.byteLength, b), C = gpu.storage(c0.byteLength, c0);
        const batch = gpu.batch();
        k.matmul(batch, { M, N, K, A, B, C, lda: ta ? M : K, ldb: tb ? K : N, ldc: N, offA: 5, offB: 3, transA: ta, transB: tb, alpha: -0.5, beta: 2, triangle });
        batch.submit();
        const c = new Float32Array(await gpu.read(C, M * N * 4));
        for (const x of [A, B, C]) x.destroy();
        const ref = new Float64Array(M * N);
        for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
          if (triangle === 'lower' && j > i) { ref[i * N + j] = c0[i * N + j]!; continue; }
          let s = 0;
          for (let p = 0; p < K; p++) s += (ta ? a[5 + p * M + i]! : a[5 + i * K + p]!) * (tb ? b[3 + j * K + p]! : b[3 + p * N + j]!);
          ref[i * N + j] = -0.5 * s + 2 * c0[i * N + j]!;
        }
        assert.ok(relMax(c, ref) < 1e-5, `${ta} ${tb} ${triangle}: ${relMax(c, ref)}`);
      }
    }
  });

  it('X·Xᵀ accumulated over chunks, the factor U of H⁻¹, and GPTQ match the CPU path', async () => {
    const [rows, K, N] = [700, 96, 64];
    // correlated inputs: a few factors plus noise
    const f = seededGaussian(rows * 5, 4), mix = seededGaussian(5 * K, 5), noise = seededGaussian(rows * K, 6);
    const x = new Float32Array(rows * K);
    for (let r = 0; r < rows; r++) for (let j = 0; j < K; j++) {
      let s = 0.3 * noise[r * K + j]!;
      for (let q = 0; q < 5; q++) s += f[r * 5 + q]! * mix[q * K + j]!;
      x[r * K + j] = s;
    }
    for (let r = 0; r < rows; r++) x[r * K + 7] = 0; // a dead input
    const acc = new Float64Array(K * K);
    xtxAccumulate(x, rows, K, acc);
    mirrorUpper(acc, K);
    const h = Float64Array.from(acc, (v) => (2 * v) / rows);

    const gh = new GpuHessian(gpu, K);
    gh.add(x.subarray(0, 300 * K), 300);
    gh.add(x.subarray(300 * K), 400);
    const w = Float64Array.from(seededGaussian(N * K, 7), (v) => Math.fround(0.1 * v)); // float32 weights, as stored
    const gq = await gptqGpu(gpu, w, N, K, gh, { bits: 4, groupSize: 32, symmetric: false });
    gh.destroy();
    const cq = await gptqQuantize(w, N, K, h, { bits: 4, groupSize: 32, symmetric: false });
    let same = 0;
    for (let i = 0; i < cq.q.length; i++) if (cq.q[i] === gq.q[i]) same++;
    assert.equal(gq.deadInputs, 1);
    assert.ok(same / cq.q.length >= 0.99, `codes equal: ${same} of ${cq.q.length}`);
    const err = (r: typeof cq) => quadraticFormSum(Float64Array.from(w, (v, i) => v - dequantize(r, 32)[i]!), N, h, K) / quadraticFormSum(w, N, h, K);
    assert.ok(Math.abs(err(gq) - err(cq)) / err(cq) < 0.02, `layer error GPU ${err(gq)} vs CPU ${err(cq)}`);

    // U alone, with act-order's permutation applied by the gather
    const k = new GpuKernels(gpu);
    const hd = h.slice();
    for (let j = 0; j < K; j++) if (hd[j * K + j] === 0) hd[j * K + j] = 1;
    const H = gpu.storage(K * K * 4, Float32Array.from(hd));
    const perm = Array.from({ length: K }, (_, i) => (i * 37) % K);
    const hp = new Float64Array(K * K);
    for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) hp[i * K + j] = hd[perm[i]! * K + perm[j]!]! + (i === j ? 0.05 : 0);
    const r = await inverseFactorGpu(k, H, K, perm, 0.05, () => {});
    const u = new Float32Array(await gpu.read(r.u, K * K * 4));
    r.u.destroy();
    H.destroy();
    assert.ok(relMax(u, inverseCholeskyUpper(hp, K)!) < 1e-4, `U: ${relMax(u, inverseCholeskyUpper(hp, K)!)}`);

    for (const actOrder of [true]) {
      const a = await gptqGpu(gpu, w, N, K, h, { bits: 4, groupSize: 32, symmetric: true, actOrder });
      const b = await gptqQuantize(w, N, K, h, { bits: 4, groupSize: 32, symmetric: true, actOrder });
      assert.deepEqual(a.perm, b.perm);
      assert.deepEqual(a.scales, b.scales, 'static groups: the same parameters');
      let eq = 0;
      for (let i = 0; i < a.q.length; i++) if (a.q[i] === b.q[i]) eq++;
      assert.ok(eq / a.q.length >= 0.99, `act-order codes equal: ${eq} of ${a.q.length}`);
    }
  });

  it('the k-th smallest value by radix select: exact, negative values and ties included', async () => {
    const [rows, cnt, ld] = [37, 50, 64];
    const v = seededGaussian(rows * ld, 9);
    for (let i = 0; i < v.length; i += 7) v[i] = 0.25; // ties
    v[3] = -0; v[4] = 0;
    const region: number[] = [];
    for (let r = 0; r < rows; r++) for (let j = 0; j < cnt; j++) region.push(v[r * ld + j]!);
    const sorted = region.slice().sort((a, b) => a - b);
    const V = gpu.storage(v.byteLength, v);
    for (const k of [1, 2, 100, 925, 926, rows * cnt]) {
      const r = await kthSmallestKeyGpu(gpu, V, rows, cnt, ld, k);
      const value = floatOfKey(r.key);
      assert.equal(value, sorted[k - 1], `k = ${k}`);
      assert.equal(r.less, region.filter((x) => x < value || Object.is(x, -0) && Object.is(value, 0)).length, `k = ${k}: values below`);
      if (r.takeByRow) assert.equal(r.takeByRow.reduce((a, t) => a + t, 0), k - r.less, 'ties taken up to k');
    }
    // 0.25 is tied many times: the rank of its first copy takes only some of them, row by row
    const first = sorted.indexOf(0.25) + 1;
    const tie = await kthSmallestKeyGpu(gpu, V, rows, cnt, ld, first + 2);
    assert.equal(floatOfKey(tie.key), 0.25);
    assert.deepEqual([...tie.takeByRow!].filter((t) => t > 0).length <= 3, true);
    assert.equal(tie.takeByRow!.reduce((a, t) => a + t, 0), 3);
    V.destroy();
  });

  it('the k-th smallest over several arrays, in pieces: what the CPU quickselect finds (ties, NaN, Inf)', async () => {
    // magnitudes of three "layers", with ties, a NaN and an Inf, taken as one as a global threshold takes them
    const layers = [seededGaussian(1000, 21), seededGaussian(37, 22), seededGaussian(5003, 23)].map((a) => a.map(Math.abs));
    for (let i = 0; i < layers[2]!.length; i += 5) layers[2]![i] = 0.5;
    layers[0]![10] = 0; layers[0]![11] = 0; layers[1]![3] = NaN; layers[2]![7] = Infinity;
    const whole = new Float32Array(layers.reduce((n, a) => n + a.length, 0));
    let at = 0;
    for (const a of layers) { whole.set(a, at); at += a.length; }
    const finite = whole.length - 1; // the NaN never counts
    for (const k of [0, 1, 2, 500, 1037, 3000, finite - 2, finite - 1, finite, whole.length]) {
      const cpu = kthSmallest(whole, k);
      // 4 KiB pieces: every array in several, the last piece of each short
      const got = await kthSmallestGpu(gpu, layers, k, 4096);
      if (Number.isNaN(cpu.value)) assert.ok(Number.isNaN(got.value), `k = ${k}: NaN expected, got ${got.value}`);
      else assert.deepEqual(got, cpu, `k = ${k}`);
    }
  });

  it('SparseGPT: unstructured 50 % and 2:4 match the CPU path (masks, layer error)', async () => {
    const [rows, K, N] = [900, 200, 48];
    const f = seededGaussian(rows * 6, 11), mix = seededGaussian(6 * K, 12), noise = seededGaussian(rows * K, 13);
    const x = new Float32Array(rows * K);
    for (let r = 0; r < rows; r++) for (let j = 0; j < K; j++) {
      let s = 0.3 * noise[r * K + j]!;
      for (let q = 0; q < 6; q++) s += f[r * 6 + q]! * mix[q * K + j]!;
      x[r * K + j] = s;
    }
    for (let r = 0; r < rows; r++) x[r * K + 5] = 0; // a dead input
    const xtx = new Float64Array(K * K);
    xtxAccumulate(x, rows, K, xtx);
    mirrorUpper(xtx, K);
    const h = Float64Array.from(xtx, (v) => (2 * v) / rows);
    const w0 = Float64Array.from(seededGaussian(N * K, 14), (v) => Math.fround(0.1 * v));
    const stats = { k: K, sqNorm: new Float64Array(K), sum: new Float64Array(K), xtx, rows };
    for (const target of [{ kind: 'unstructured', sparsity: 0.5 }, { kind: 'nm', n: 2, m: 4 }] as const) {
      const cpu = w0.slice();
      await sparseGptPruneGroup(cpu, N, K, K, stats, target, { percdamp: 0.01, blockSize: 128 }, () => {});
      const gh = new GpuHessian(gpu, K);
      gh.add(x, rows);
      const g = await sparseGptGpu(gpu, w0, N, K, gh, { target, percdamp: 0.01, blockSize: 128 });
      gh.destroy();
      assert.equal(g.deadInputs, 1);
      const zeros = (a: ArrayLike<number>) => Array.from(a).filter((v) => v === 0).length;
      let sameMask = 0;
      for (let i = 0; i < cpu.length; i++) if ((cpu[i] === 0) === (g.w[i] === 0)) sameMask++;
      if (target.kind === 'unstructured') assert.equal(zeros(g.w), zeros(cpu), 'the same number pruned');
      else for (let r = 0; r < N; r++) for (let c = 0; c < K; c += 4) assert.ok(Array.from(g.w.subarray(r * K + c, r * K + c + 4)).filter((v) => v === 0).length >= 2, `2:4 in row ${r} at ${c}`);
      assert.ok(sameMask / cpu.length >= 0.99, `${target.kind}: the same mask on ${sameMask} of ${cpu.length}`);
      const err = (w: ArrayLike<number>) => quadraticFormSum(Float64Array.from(w0, (v, i) => v - w[i]!), N, h, K) / quadraticFormSum(w0, N, h, K);
      assert.ok(Math.abs(err(g.w) - err(cpu)) / err(cpu) < 0.02, `${target.kind}: layer error GPU ${err(g.w)} vs CPU ${err(cpu)}`);
    }
  });

  it('min/max and histogram: the same answers as the CPU, count for count', async () => {
    const v = seededGaussian(300_001, 8);
    v[10] = NaN; v[20] = Infinity; v[30] = -Infinity;
    assert.deepEqual(await minMaxGpu(gpu, v), minMax(v));
    for (const bins of [1, 64, 4096]) {
      const c = new Uint32Array(bins);
      histogram(v, -3, 2.5, bins, c);
      assert.deepEqual(await histogramGpu(gpu, v, -3, 2.5, bins), c, `${bins} bins`);
    }
  });
});
