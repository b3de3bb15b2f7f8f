/**
 * Dense float32 kernels for the transformer test bed's training loop (model.ts). Plain loops with
 * the inner loop over contiguous memory; every product is summed in a fixed order, so training is
 * bit-for-bit deterministic on every machine. Measured on the 2-core development box these run
 * 2–5× faster than TF.js's cpu and wasm backends for the shapes used here (docs/gpu.md).
 */

/** C[M×N] (+)= A[M×K]·B[K×N]. */
export function mmNN(a: Float32Array, b: Float32Array, c: Float32Array, m: number, k: number, n: number, accumulate = false, aOff = 0, bOff = 0, cOff = 0): void {
  if (!accumulate) c.fill(0, cOff, cOff + m * n);
  for (let i = 0; i < m; i++) {
    const ci = cOff + i * n;
    const ai = aOff + i * k;
    let p = 0;
    // two rows of B per pass: half the loads and stores of C
    for (; p + 1 < k; p += 2) {
      const a0 = a[ai + p]!, a1 = a[ai + p + 1]!;
      if (a0 === 0 && a1 === 0) continue;
      const b0 = bOff + p * n, b1 = b0 + n;
      for (let j = 0; j < n; j++) c[ci + j] = c[ci + j]! + a0 * b[b0 + j]! + a1 * b[b1 + j]!;
    }
    if (p < k) {
      const a0 = a[ai + p]!;
      if (a0 !== 0) {
        const b0 = bOff + p * n;
        for (let j = 0; j < n; j++) c[ci + j] = c[ci + j]! + a0 * b[b0 + j]!;
      }
    }
  }
}

/** C[M×N] (+)= A[M×K]·B[N×K]ᵀ (row dot row). */
export function mmNT(a: Float32Array, b: Float32Array, c: Float32Array, m: number, k: number, n: number, accumulate = false, aOff = 0, bOff = 0, cOff = 0): void {
  for (let i = 0; i < m; i++) {
    const ai = aOff + i * k;
    const ci = cOff + i * n;
    for (let j = 0; j < n; j++) {
      const bj = bOff + j * k;
      let s0 = 0, s1 = 0;
      let p = 0;
      for (; p + 1 < k; p += 2) { s0 += a[ai + p]! * b[bj + p]!; s1 += a[ai + p + 1]! * b[bj + p + 1]!; }
      if (p < k) s0 += a[ai + p]! * b[bj + p]!;
      c[ci + j] = accumulate ? c[ci + j]! + s0 + s1 : s0 + s1;
    }
  }
}

/** C[K×N] (+)= A[M×K]ᵀ·B[M×N] (weight gradients: Xᵀ·dY). */
export function mmTN(a: Float32Array, b: Float32Array, c: Float32Array, m: number, k: number, n: number, accumulate = false, aOff = 0, bOff = 0, cOff = 0): void {
  if (!accumulate) c.fill(0, cOff, cOff + k * n);
  let i = 0;
  for (; i + 1 < m; i += 2) {
    const ai0 = aOff + i * k, ai1 = ai0 + k;
    const bi0 = bOff + i * n, bi1 = bi0 + n;
    for (let p = 0; p < k; p++) {
      const a0 = a[ai0 + p]!, a1 = a[ai1 + p]!;
      if (a0 === 0 && a1 === 0) continue;
      const cp = cOff + p * n;
      for (let j = 0; j < n; j++) c[cp + j] = c[cp + j]! + a0 * b[bi0 + j]! + a1 * b[bi1 + j]!;
    }
  }
  if (i < m) {
    const ai = aOff + i * k, bi = bOff + i * n;
    for (let p = 0; p < k; p++) {
      const a0 = a[ai + p]!;
      if (a0 === 0) continue;
      const cp = cOff + p * n;
      for (let j = 0; j < n; j++) c[cp + j] = c[cp + j]! + a0 * b[bi + j]!;
    }
  }
}

/** Adds bias[N] to every row of X[M×N]. */
export function addBias(x: Float32Array, bias: Float32Array, m: number, n: number): void {
  for (let i = 0; i < m; i++) {
    const o = i * n;
    for (let j = 0; j < n; j++) x[o + j] = x[o + j]! + bias[j]!;
  }
}

/** db[N] += column sums of dY[M×N]. */
export function biasGrad(dy: Float32Array, db: Float32Array, m: number, n: number): void {
  for (let i = 0; i < m; i++) {
    const o = i * n;
    for (let j = 0; j < n; j++) db[j] = db[j]! + dy[o + j]!;
  }
}
