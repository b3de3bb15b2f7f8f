import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cholesky, choleskyUpper, inverseFromCholesky, inverseSpd, invertLower, quadraticFormSum, solveLower, solveUpper, transpose } from './linalg.ts';

/** Deterministic uniform(-1, 1) values (a small LCG; the tests need variety, not quality). */
function rand(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += a[i * n + k]! * b[k * n + j]!;
    c[i * n + j] = s;
  }
  return c;
}

/** A = BᵀB + n·I·eps: symmetric positive definite, condition controlled by eps. */
function randomSpd(n: number, seed: number, eps = 0.1): Float64Array {
  const r = rand(seed);
  const b = Float64Array.from({ length: n * n }, r);
  const a = matmul(transpose(b, n), b, n);
  for (let i = 0; i < n; i++) a[i * n + i] = a[i * n + i]! + eps * n;
  return a;
}

/** Gauss–Jordan with partial pivoting: the naive reference inverse. */
function naiveInverse(a: Float64Array, n: number): Float64Array {
  const m = a.slice();
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]!) > Math.abs(m[p * n + c]!)) p = r;
    for (let k = 0; k < n; k++) {
      [m[c * n + k], m[p * n + k]] = [m[p * n + k]!, m[c * n + k]!];
      [inv[c * n + k], inv[p * n + k]] = [inv[p * n + k]!, inv[c * n + k]!];
    }
    const d = m[c * n + c]!;
    for (let k = 0; k < n; k++) { m[c * n + k] = m[c * n + k]! / d; inv[c * n + k] = inv[c * n + k]! / d; }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * n + c]!;
      for (let k = 0; k < n; k++) { m[r * n + k] = m[r * n + k]! - f * m[c * n + k]!; inv[r * n + k] = inv[r * n + k]! - f * inv[c * n + k]!; }
    }
  }
  return inv;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const sizes = [1, 2, 5, 17, 64, 130];

describe('linalg', () => {
  it('Cholesky reproduces A = L·Lᵀ with L lower triangular', () => {
    for (const n of sizes) {
      const a = randomSpd(n, n);
      const l = cholesky(a, n)!;
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) assert.equal(l[i * n + j], 0);
      assert.ok(maxAbsDiff(matmul(l, transpose(l, n), n), a) < 1e-9 * n, `n=${n}`);
      const u = choleskyUpper(a, n)!;
      assert.ok(maxAbsDiff(matmul(transpose(u, n), u, n), a) < 1e-9 * n);
    }
  });

  it('Cholesky refuses matrices that are not positive definite', () => {
    assert.equal(cholesky(Float64Array.from([1, 2, 2, 1]), 2), null);
    assert.equal(cholesky(Float64Array.from([0, 0, 0, 1]), 2), null);
    assert.equal(cholesky(Float64Array.from([NaN, 0, 0, 1]), 2), null);
  });

  it('triangular solves match the definition', () => {
    const n = 33;
    const l = cholesky(randomSpd(n, 7), n)!;
    const r = rand(3);
    const b = Float64Array.from({ length: n }, r);
    const x = solveLower(l, b, n);
    const u = transpose(l, n);
    const y = solveUpper(u, b, n);
    for (let i = 0; i < n; i++) {
      let s = 0, t = 0;
      for (let k = 0; k < n; k++) { s += l[i * n + k]! * x[k]!; t += u[i * n + k]! * y[k]!; }
      assert.ok(Math.abs(s - b[i]!) < 1e-10);
      assert.ok(Math.abs(t - b[i]!) < 1e-10);
    }
    const li = invertLower(l, n);
    const eye = matmul(l, li, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.ok(Math.abs(eye[i * n + j]! - (i === j ? 1 : 0)) < 1e-10);
  });

  it('inverse via Cholesky agrees with Gauss–Jordan on random SPD matrices', () => {
    for (const n of sizes) {
      const a = randomSpd(n, 100 + n, 0.01);
      const inv = inverseSpd(a, n)!;
      const ref = naiveInverse(a, n);
      const scale = Math.max(...ref.map(Math.abs));
      assert.ok(maxAbsDiff(inv, ref) < 1e-9 * scale, `n=${n}`);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.equal(inv[i * n + j], inv[j * n + i]);
      assert.ok(maxAbsDiff(inverseFromCholesky(cholesky(a, n)!, n), inv) === 0);
    }
  });

  it('quadraticFormSum is Σ δᵀGδ', () => {
    const n = 9;
    const g = randomSpd(n, 5);
    const r = rand(11);
    const rows = Float64Array.from({ length: 3 * n }, r);
    let ref = 0;
    for (let k = 0; k < 3; k++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) ref += rows[k * n + i]! * g[i * n + j]! * rows[k * n + j]!;
    assert.ok(Math.abs(quadraticFormSum(rows, 3, g, n) - ref) < 1e-9 * Math.abs(ref));
  });
});
