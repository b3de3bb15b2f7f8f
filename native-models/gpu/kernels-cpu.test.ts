import assert from 'node:assert/strict';
import test from 'node:test';
import { histogramOf, rangeOf } from '../../core/jobs/pool-kernels.mjs';
import { cholesky, invertLower } from '../../core/passes/prune/linalg.ts';
import { seededGaussian, seededRandom } from '../ir/random.ts';
import { choleskyLower, gptqRows, histogram, quadraticFormRows, inverseCholeskyUpper, inverseColumnRanges, invertLowerRows, lowerTriangleRanges, minMax, mirrorUpper, thresholdFromHistogram, triangleRanges, xtxAccumulate, groupParams, type GptqRowParams } from './kernels-cpu.mjs';
import { reconstructionError } from '../../core/passes/prune/layer-inputs.ts';
import { CpuThreads, evenRanges, inverseCholeskyUpperParallel, sharedArray, toShared, xtxParallel } from './threads.ts';

/** The CPU kernels against the plainest possible implementations of the same definitions. */

function spd(n: number, seed: number): Float64Array {
  const x = seededGaussian(n * (n + 5), seed);
  const a = new Float64Array(n * n);
  for (let r = 0; r < n + 5; r++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = a[i * n + j]! + x[r * n + i]! * x[r * n + j]!;
  for (let i = 0; i < n; i++) a[i * n + i] = a[i * n + i]! + 0.1;
  return a;
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(a.length, b.length, what);
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol * Math.max(1, scale), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

test('xtxAccumulate: the upper triangle of Σ xᵀx over rows, in chunks; mirrored, it is the full product', () => {
  const [rows, k] = [300, 23]; // more rows than one chunk, a short last chunk
  const x = seededGaussian(rows * k, 1);
  const ref = new Float64Array(k * k);
  for (let r = 0; r < rows; r++) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) ref[i * k + j] = ref[i * k + j]! + x[r * k + i]! * x[r * k + j]!;
  const acc = new Float64Array(k * k);
  xtxAccumulate(x, 120, k, acc);
  xtxAccumulate(x.subarray(120 * k), rows - 120, k, acc);
  for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) assert.equal(acc[i * k + j], 0, 'lower triangle untouched');
  mirrorUpper(acc, k);
  close(acc, ref, 1e-12, 'xtx');
  // row ranges cover the triangle exactly once, with about equal work
  for (const parts of [1, 2, 3, 7]) {
    const ranges = triangleRanges(k, parts);
    assert.equal(ranges[0]![0], 0);
    assert.equal(ranges[ranges.length - 1]![1], k);
    for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i]![0], ranges[i - 1]![1]);
  }
  assert.deepEqual(evenRanges(100, 3, 16), [[0, 32], [32, 64], [64, 100]]);
});

test('Cholesky and triangular inverse: the blocked kernels equal the textbook ones', () => {
  for (const n of [45, 150]) { // one block; three blocks, the last one short
    const a = spd(n, 2);
    const l = choleskyLower(a, n)!;
    close(l, cholesky(a, n)!, 1e-12, `L, n = ${n}`);
    close(invertLowerRows(l, n), invertLower(l, n), 1e-10, `L⁻¹, n = ${n}`);
  }
  assert.equal(choleskyLower(Float64Array.of(1, 2, 2, 1), 2), null);
});

test('the inverse-Hessian factor on threads: the same bits as on one, for any split; null when not positive definite', async () => {
  const n = 600; // trailing updates past the split threshold for the first steps, not the last
  const h = spd(n, 7);
  const one = inverseCholeskyUpper(h, n)!;
  // Uᵀ·U = H⁻¹: (Uᵀ·U)·H = I, checked on a few columns
  for (const c of [0, 299, 599]) {
    for (let i = 0; i < n; i += 37) {
      let v = 0;
      for (let k = 0; k < n; k++) {
        let uu = 0;
        for (let p = 0; p <= Math.min(i, k); p++) uu += one[p * n + i]! * one[p * n + k]!;
        v += uu * h[k * n + c]!;
      }
      assert.ok(Math.abs(v - (i === c ? 1 : 0)) < 1e-8, `(UᵀU·H)[${i}][${c}] = ${v}`);
    }
  }
  for (const parts of [2, 3]) assert.deepEqual(await inverseCholeskyUpperParallel(h, n, parts), one, `${parts} threads`);
  const notPd = spd(n, 8);
  notPd[300 * n + 300] = -1;
  assert.equal(await inverseCholeskyUpperParallel(notPd, n, 2), null);
  // the splits cover every row / column once, in order
  for (const [ranges, total] of [[lowerTriangleRanges(537, 3), 537], [inverseColumnRanges(600, 3), 600]] as const) {
    assert.equal(ranges[0]![0], 0);
    assert.equal(ranges[ranges.length - 1]![1], total);
    for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i]![0], ranges[i - 1]![1]);
  }
});

/**
 * GPTQ as the paper's Algorithm 1 reads, without lazy batches or row tiles: for each column i, all
 * rows: quantize, err = (w − q)/U_ii, w[:, j>i] −= err·U_ij.
 */
function gptqReference(w: Float64Array, u: Float64Array, rows: number, k: number, bits: 4 | 8, g: number): { q: Uint8Array; scales: Float32Array; zeros: Uint8Array } {
  const groups = Math.ceil(k / g);
  const q = new Uint8Array(rows * k);
  const scales = new Float32Array(rows * groups);
  const zeros = new Uint8Array(rows * groups);
  const p = new Float64Array(2);
  for (let i = 0; i < k; i++) {
    for (let r = 0; r < rows; r++) {
      const at = r * groups + Math.floor(i / g);
      if (i % g === 0) {
        const slice = Array.from(w.subarray(r * k + i, r * k + Math.min(k, i + g)));
        groupParams(Math.min(...slice), Math.max(...slice), 0, (1 << bits) - 1, false, p);
        scales[at] = p[0]!;
        zeros[at] = p[1]!;
      }
      const scale = scales[at]!, zp = zeros[at]!;
      const x = Math.round(w[r * k + i]! / scale) + zp; // no exact halves with these random values
      const qi = Math.min((1 << bits) - 1, Math.max(0, x));
      q[r * k + i] = qi;
      const err = (w[r * k + i]! - (qi - zp) * scale) / u[i * k + i]!;
      for (let j = i + 1; j < k; j++) w[r * k + j] = w[r * k + j]! - err * u[i * k + j]!;
    }
  }
  return { q, scales, zeros };
}

test('gptqRows (blocked, lazy batch updates, row tiles) equals the column-by-column algorithm', () => {
  const [rows, k] = [37, 72]; // rows not a multiple of the row tile, K not of the block
  const h = spd(k, 3);
  // any upper-triangular U with a positive diagonal exercises the updates
  const l = choleskyLower(h, k)!;
  const u = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = i; j < k; j++) u[i * k + j] = l[j * k + i]! / l[i * k + i]! / 4;
  const w0 = seededGaussian(rows * k, 4);
  const ref = gptqReference(Float64Array.from(w0), u, rows, k, 4, 8);
  const p: GptqRowParams = { K: k, bits: 4, symmetric: false, groupSize: 8, blockSize: 16, perm: null, staticScales: null, staticZeros: null };
  const q = new Uint8Array(rows * k);
  const scales = new Float32Array(rows * Math.ceil(k / 8));
  const zeros = new Uint8Array(scales.length);
  const w = Float64Array.from(w0);
  gptqRows(w, u, p, 0, rows, q, scales, zeros);
  assert.deepEqual(scales, ref.scales);
  assert.deepEqual(zeros, ref.zeros);
  let differ = 0;
  for (let i = 0; i < q.length; i++) if (q[i] !== ref.q[i]) differ++;
  // the lazy updates sum in another order: a value landing within rounding of a .5 boundary may differ
  assert.ok(differ <= 2, `${differ} of ${q.length} codes differ`);
});

test('minMax and histogram: the pool kernels\' definitions (finite values only, hi in the last bin), binned in float32', () => {
  const v = seededGaussian(10_000, 5);
  v[3] = NaN; v[4] = Infinity; v[5] = -Infinity; v[6] = 0;
  const r = rangeOf(v);
  const m = minMax(v);
  assert.deepEqual([m.min, m.max, m.nonFinite], [r.min, r.max, r.nonFinite]);
  assert.deepEqual(minMax(Float32Array.of(NaN)), { min: Infinity, max: -Infinity, nonFinite: 1 });
  const counts = new Uint32Array(50);
  histogram(v, -2, 2.5, 50, counts);
  const ref = histogramOf(v, -2, 2.5, 50);
  let moved = 0;
  for (let b = 0; b < 50; b++) moved += Math.abs(counts[b]! - ref[b]!);
  assert.equal(counts.reduce((a, c) => a + c, 0), ref.reduce((a, c) => a + c, 0), 'same values counted');
  assert.ok(moved <= 4, `float32 binning moves at most a value or two across an edge (${moved})`);
  // the float32 definition, spelled out
  const lo = Math.fround(-2), hi = Math.fround(2.5), s = Math.fround(50 / (hi - lo));
  const plain = new Uint32Array(50);
  for (const x of v) if (x >= lo && x <= hi) plain[Math.min(49, Math.floor(Math.fround(Math.fround(x - lo) * s)))]!++;
  assert.deepEqual(counts, plain);
  // a magnitude threshold from a histogram of |x| keeps about `keep` values
  const abs = Float32Array.from(v.filter(Number.isFinite), Math.abs);
  const max = Math.max(...abs);
  const c = new Uint32Array(4096);
  histogram(abs, 0, max, 4096, c);
  const t = thresholdFromHistogram(c, max, 2000);
  const above = abs.filter((x) => x > t).length;
  assert.ok(above <= 2000 && above > 1990, `${above} values above the threshold`);
});

test('worker threads: xtx split over threads equals one thread, bit for bit', async () => {
  const [rows, k] = [600, 96];
  const x = toShared(seededGaussian(rows * k, 6));
  const one = new Float64Array(k * k);
  xtxAccumulate(x, rows, k, one);
  const threads = new CpuThreads(2);
  try {
    const acc = sharedArray(Float64Array, k * k);
    await xtxParallel(threads, x, rows, k, acc);
    assert.deepEqual(acc, toShared(one));
  } finally {
    await threads.close();
  }
  assert.ok(seededRandom(1)() < 1);
});

test('quadraticFormRows: a·H·aᵀ and b·H·bᵀ summed over rows, as the full product gives; any row count; the threaded reconstruction error equals the single-threaded one', async () => {
  const pool = seededGaussian(1 << 16, 31);
  let at = 0;
  const gauss = () => pool[at++ % pool.length]!;
  for (const [k, rows] of [[1, 1], [5, 3], [37, 9], [64, 4], [130, 11]] as const) {
    // H = XᵀX of a random X: symmetric positive semi-definite
    const m = k + 7;
    const x = Float64Array.from({ length: m * k }, () => gauss());
    const h = new Float64Array(k * k);
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) { let s = 0; for (let t = 0; t < m; t++) s += x[t * k + i]! * x[t * k + j]!; h[i * k + j] = s; }
    const a = Float64Array.from({ length: rows * k }, () => gauss());
    const b = a.map((v, i) => (i % 3 === 0 ? v : 0)); // some rows of b are sparse, one may be all zero
    const full = (v: Float64Array, r: number) => { let s = 0; for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) s += v[r * k + i]! * h[i * k + j]! * v[r * k + j]!; return s; };
    for (const [r0, r1] of [[0, rows], [1, rows], [0, Math.max(1, rows - 2)]] as const) {
      let wantA = 0, wantB = 0;
      for (let r = r0; r < r1; r++) { wantA += full(a, r); wantB += full(b, r); }
      const sums = new Float64Array(4);
      quadraticFormRows(a, b, h, k, r0, r1, sums, 1);
      assert.ok(Math.abs(sums[2]! - wantA) <= 1e-9 * Math.abs(wantA), `k ${k} rows [${r0}, ${r1}): ${sums[2]} vs ${wantA}`);
      assert.ok(Math.abs(sums[3]! - wantB) <= 1e-9 * Math.abs(wantB) + 1e-12, `k ${k} rows [${r0}, ${r1}), b: ${sums[3]} vs ${wantB}`);
    }
  }
  // a layer big enough to split: 3 threads against 1
  const k = 200, rows = 96;
  const x = Float64Array.from({ length: 300 * k }, () => gauss());
  const h = new Float64Array(k * k);
  xtxAccumulate(Float32Array.from(x), 300, k, h, 0, k);
  mirrorUpper(h, k);
  const before = Float64Array.from({ length: rows * k }, () => gauss());
  const after = before.map((v) => (Math.abs(v) < 0.7 ? 0 : v));
  const layer = { k, rowsPerGroup: rows, groups: 1 } as Parameters<typeof reconstructionError>[0];
  const saved = process.env['WHITTLE_CPU_THREADS'];
  try {
    process.env['WHITTLE_CPU_THREADS'] = '1';
    const one = await reconstructionError(layer, [{ xtx: h } as Parameters<typeof reconstructionError>[1][0]], before, after);
    process.env['WHITTLE_CPU_THREADS'] = '3';
    const three = await reconstructionError(layer, [{ xtx: h } as Parameters<typeof reconstructionError>[1][0]], before, after);
    assert.ok(one > 0.05 && one < 1, String(one));
    assert.ok(Math.abs(one - three) <= 1e-12 * one, `${one} vs ${three}`);
  } finally {
    if (saved === undefined) delete process.env['WHITTLE_CPU_THREADS'];
    else process.env['WHITTLE_CPU_THREADS'] = saved;
  }
});
