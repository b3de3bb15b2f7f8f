/**
 * Dense float64 linear algebra for the calibrated pruning passes (SparseGPT's Hessian inverse).
 * Matrices are row-major `n×n` Float64Arrays. This is the CPU path of SPEC §7: plain loops, ordered
 * so the inner loop runs over contiguous memory, with results checked against naive references.
 */

/** Lower-triangular L with A = L·Lᵀ, or null when A is not (numerically) positive definite. */
export function cholesky(a: Float64Array, n: number): Float64Array | null {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const li = i * n;
    for (let j = 0; j <= i; j++) {
      const lj = j * n;
      let s = a[li + j]!;
      for (let k = 0; k < j; k++) s -= l[li + k]! * l[lj + k]!;
      if (i === j) {
        if (!(s > 0) || !Number.isFinite(s)) return null;
        l[li + i] = Math.sqrt(s);
      } else {
        l[li + j] = s / l[lj + j]!;
      }
    }
  }
  return l;
}

/** Solves L·x = b for lower-triangular L (forward substitution). */
export function solveLower(l: Float64Array, b: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i]!;
    const li = i * n;
    for (let k = 0; k < i; k++) s -= l[li + k]! * x[k]!;
    x[i] = s / l[li + i]!;
  }
  return x;
}

/** Solves U·x = b for upper-triangular U (back substitution). */
export function solveUpper(u: Float64Array, b: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = b[i]!;
    const ui = i * n;
    for (let k = i + 1; k < n; k++) s -= u[ui + k]! * x[k]!;
    x[i] = s / u[ui + i]!;
  }
  return x;
}

/** Inverse of a lower-triangular matrix (itself lower triangular). */
export function invertLower(l: Float64Array, n: number): Float64Array {
  const inv = new Float64Array(n * n);
  // column j of L⁻¹ solves L·x = e_j; x is zero above j, so the loop starts at j
  for (let j = 0; j < n; j++) {
    inv[j * n + j] = 1 / l[j * n + j]!;
    for (let i = j + 1; i < n; i++) {
      let s = 0;
      const li = i * n;
      for (let k = j; k < i; k++) s -= l[li + k]! * inv[k * n + j]!;
      inv[i * n + j] = s / l[li + i]!;
    }
  }
  return inv;
}

/** A⁻¹ = L⁻ᵀ·L⁻¹ from A's Cholesky factor L (symmetric result). */
export function inverseFromCholesky(l: Float64Array, n: number): Float64Array {
  const li = invertLower(l, n);
  const out = new Float64Array(n * n);
  // (L⁻ᵀL⁻¹)_ij = Σ_k≥max(i,j) Li[k,i]·Li[k,j]
  for (let k = 0; k < n; k++) {
    const row = k * n;
    for (let i = 0; i <= k; i++) {
      const v = li[row + i]!;
      if (v === 0) continue;
      const oi = i * n;
      for (let j = 0; j <= i; j++) out[oi + j] = out[oi + j]! + v * li[row + j]!;
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) out[j * n + i] = out[i * n + j]!;
  return out;
}

/** Inverse of a symmetric positive definite matrix, or null when it is not positive definite. */
export function inverseSpd(a: Float64Array, n: number): Float64Array | null {
  const l = cholesky(a, n);
  return l ? inverseFromCholesky(l, n) : null;
}

/** Upper-triangular U with A = Uᵀ·U (torch.linalg.cholesky(A, upper=True)), or null. */
export function choleskyUpper(a: Float64Array, n: number): Float64Array | null {
  const l = cholesky(a, n);
  return l ? transpose(l, n) : null;
}

export function transpose(a: Float64Array, n: number): Float64Array {
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = a[i * n + j]!;
  return t;
}

/** Σ_rows δᵀ·G·δ for the rows δ of a [rows×n] matrix: ‖ΔW·X‖² when G = XᵀX. */
export function quadraticFormSum(rows: Float64Array, count: number, g: Float64Array, n: number): number {
  let total = 0;
  const gd = new Float64Array(n);
  for (let r = 0; r < count; r++) {
    const off = r * n;
    gd.fill(0);
    for (let i = 0; i < n; i++) {
      const d = rows[off + i]!;
      if (d === 0) continue;
      const gi = i * n;
      for (let j = 0; j < n; j++) gd[j] = gd[j]! + d * g[gi + j]!;
    }
    for (let j = 0; j < n; j++) total += rows[off + j]! * gd[j]!;
  }
  return total;
}
