// CPU implementations of the compute kernels of native-models/gpu (SPEC §7): the reference every
// WGSL kernel is tested against, and the path used when there is no usable GPU adapter. Plain
// JavaScript so worker threads (threads.ts) run them without a TypeScript loader. Types:
// kernels-cpu.d.mts. Each kernel works on a range of its output so threads can share the work.

// ---------------------------------------------------------------------------------------------
// X·Xᵀ accumulation (the Hessians of GPTQ and SparseGPT: H = 2/n·Σ x·xᵀ over the input rows x)
// ---------------------------------------------------------------------------------------------

/** Rows transposed at a time: each entry of the product is then a dot product of two contiguous runs. */
export const XTX_CHUNK = 128;

/**
 * acc[i·k + j] += Σ_r x[r·k + i]·x[r·k + j] for i in [i0, i1), j ≥ i (the upper triangle; mirror it
 * with mirrorUpper when done). `x` is [rows × k] row-major (float32 or float64), acc float64.
 * `scratch` (length ≥ k·XTX_CHUNK) holds the transposed chunk.
 */
export function xtxAccumulate(x, rows, k, acc, i0 = 0, i1 = k, scratch = new Float64Array(roundUp4(k) * XTX_CHUNK)) {
  for (let r0 = 0; r0 < rows; r0 += XTX_CHUNK) {
    const t = Math.min(XTX_CHUNK, rows - r0);
    for (let r = 0; r < t; r++) {
      const src = (r0 + r) * k;
      for (let j = 0; j < k; j++) scratch[j * XTX_CHUNK + r] = x[src + j];
    }
    gramChunk(scratch, XTX_CHUNK, t, k, acc, i0, i1);
  }
}

/** k rounded up to a multiple of 4: the rows a chunk for gramChunk needs (those past k zero). */
export function roundUp4(k) {
  return Math.ceil(k / 4) * 4;
}

/**
 * acc[i·k + j] += Σ_{r < t} b[i·C + r]·b[j·C + r] for i in [i0, i1), j ≥ i: the upper triangle of the
 * Gram matrix of a feature-major chunk (feature i's values at b[i·C …]). Rows k … roundUp4(k) − 1
 * of b must be zero. Entries go in 2×4 blocks, each value loaded once per block rather than once
 * per entry: the loop is load-bound, and this is about twice as fast as one dot product per entry.
 * Threads may share a triangle by disjoint [i0, i1) ranges (they write disjoint rows of acc).
 */
export function gramChunk(b, C, t, k, acc, i0 = 0, i1 = k) {
  for (let i = i0; i < i1; i += 2) {
    const oi0 = i * C;
    const pair = i + 1 < i1;
    const oi1 = oi0 + C;
    for (let j = i - (i % 4); j < k; j += 4) {
      const oj0 = j * C, oj1 = oj0 + C, oj2 = oj1 + C, oj3 = oj2 + C;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      if (pair) {
        for (let r = 0; r < t; r++) {
          const x0 = b[oi0 + r], x1 = b[oi1 + r];
          const y0 = b[oj0 + r], y1 = b[oj1 + r], y2 = b[oj2 + r], y3 = b[oj3 + r];
          s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
          s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
        }
      } else {
        for (let r = 0; r < t; r++) {
          const x0 = b[oi0 + r];
          s00 += x0 * b[oj0 + r]; s01 += x0 * b[oj1 + r]; s02 += x0 * b[oj2 + r]; s03 += x0 * b[oj3 + r];
        }
      }
      const row0 = i * k, row1 = row0 + k;
      if (j >= i) acc[row0 + j] += s00;
      if (j + 1 >= i && j + 1 < k) acc[row0 + j + 1] += s01;
      if (j + 2 >= i && j + 2 < k) acc[row0 + j + 2] += s02;
      if (j + 3 >= i && j + 3 < k) acc[row0 + j + 3] += s03;
      if (pair) {
        const ii = i + 1;
        if (j >= ii) acc[row1 + j] += s10;
        if (j + 1 >= ii && j + 1 < k) acc[row1 + j + 1] += s11;
        if (j + 2 >= ii && j + 2 < k) acc[row1 + j + 2] += s12;
        if (j + 3 >= ii && j + 3 < k) acc[row1 + j + 3] += s13;
      }
    }
  }
}

/** Copies the upper triangle of a k×k matrix into the lower one. */
export function mirrorUpper(a, k) {
  for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) a[i * k + j] = a[j * k + i];
}

/** Splits [0, n) into at most `parts` contiguous ranges of about equal total `work(i)`. */
export function workRanges(n, parts, work) {
  let total = 0;
  for (let i = 0; i < n; i++) total += work(i);
  const out = [];
  let start = 0, done = 0;
  for (let p = 1; p <= parts && start < n; p++) {
    const target = (total * p) / parts;
    let end = start;
    while (end < n && (done < target || end === start)) { done += work(end); end++; }
    if (p === parts) end = n;
    out.push([start, end]);
    start = end;
  }
  return out;
}

/** Splits rows [0, k) of an upper triangle into `parts` ranges of about equal work (k − i per row). */
export function triangleRanges(k, parts) {
  return workRanges(k, parts, (i) => k - i);
}

// ---------------------------------------------------------------------------------------------
// Dense factorizations for GPTQ's inverse Hessian (float64)
// ---------------------------------------------------------------------------------------------

/** Columns per step of the blocked Cholesky: one panel row is 512 bytes, a step's panel ≤ n·512 bytes. */
export const CHOLESKY_BLOCK = 64;

/**
 * One step of the blocked right-looking Cholesky of the lower triangle of `l` (row-major n×n, in
 * place, the columns before kb already factored and subtracted): factors columns [kb, ke) in every
 * row from kb down, then packs rows [ke, n) of those columns into `panel` (contiguous, ke − kb wide)
 * for choleskyTrailing. Returns false when a pivot is not positive (H is not positive definite).
 */
export function choleskyPanel(l, n, kb, ke, panel) {
  const w = ke - kb;
  for (let i = kb; i < n; i++) {
    const li = i * n;
    const jEnd = Math.min(i + 1, ke);
    for (let j = kb; j < jEnd; j++) {
      const lj = j * n;
      let s = l[li + j];
      for (let p = kb; p < j; p++) s -= l[li + p] * l[lj + p];
      if (i === j) {
        if (!(s > 0) || !Number.isFinite(s)) return false;
        l[li + i] = Math.sqrt(s);
      } else {
        l[li + j] = s / l[lj + j];
      }
    }
  }
  for (let i = ke; i < n; i++) {
    const src = i * n + kb, dst = (i - ke) * w;
    for (let p = 0; p < w; p++) panel[dst + p] = l[src + p];
  }
  return true;
}

/**
 * The trailing update after a panel: l[ke + i][ke + j] −= panel_i · panel_j for i in [i0, i1),
 * j ≤ i. The j loop runs in chunks of 32 panel rows, which stay in L1 while the rows i pass; every
 * entry is updated by one caller in one order, so the result does not depend on how rows are split.
 */
export function choleskyTrailing(l, n, ke, w, panel, i0, i1) {
  const T = 32;
  for (let jb = 0; jb < i1; jb += T) {
    const je = Math.min(jb + T, i1);
    for (let i = Math.max(i0, jb); i < i1; i++) {
      const pi = i * w, li = (ke + i) * n + ke;
      const jEnd = Math.min(je, i + 1);
      for (let j = jb; j < jEnd; j++) {
        const pj = j * w;
        let s0 = 0, s1 = 0, p = 0;
        for (; p + 1 < w; p += 2) { s0 += panel[pi + p] * panel[pj + p]; s1 += panel[pi + p + 1] * panel[pj + p + 1]; }
        if (p < w) s0 += panel[pi + p] * panel[pj + p];
        l[li + j] -= s0 + s1;
      }
    }
  }
}

/** Rows [0, m) of a lower triangle (row i: i + 1 entries) in `parts` ranges of about equal work. */
export function lowerTriangleRanges(m, parts) {
  return workRanges(m, parts, (i) => i + 1);
}

/**
 * Lower Cholesky factor of the n×n SPD matrix `a` (row-major) as a new array, or null when a pivot is
 * not positive. Blocked (choleskyPanel, then choleskyTrailing) so the trailing updates read a packed
 * panel from cache instead of whole rows from memory; threads.ts splits the same steps over threads.
 */
export function choleskyLower(a, n, l = new Float64Array(n * n), panel = new Float64Array(n * CHOLESKY_BLOCK)) {
  for (let i = 0; i < n; i++) { const r = i * n; for (let j = 0; j <= i; j++) l[r + j] = a[r + j]; }
  for (let kb = 0; kb < n; kb += CHOLESKY_BLOCK) {
    const ke = Math.min(kb + CHOLESKY_BLOCK, n);
    if (!choleskyPanel(l, n, kb, ke, panel)) return null;
    if (ke < n) choleskyTrailing(l, n, ke, ke - kb, panel, 0, n - ke);
  }
  return l;
}

/**
 * Columns [j0, j1) of L⁻¹ for lower-triangular L, written into x (row-major, zero above the
 * diagonal): forward substitution row by row, each row an axpy of earlier rows restricted to the
 * columns. Columns are independent, so threads split them; each entry's operations are those of the
 * whole-matrix loop in the same order, so the result does not depend on the split.
 */
export function invertLowerColumns(l, n, x, j0, j1) {
  for (let i = j0; i < n; i++) {
    const xi = i * n, li = i * n;
    for (let k = j0; k < i; k++) {
      const c = l[li + k];
      if (c === 0) continue;
      const xk = k * n;
      const end = Math.min(j1, k + 1);
      for (let j = j0; j < end; j++) x[xi + j] -= c * x[xk + j];
    }
    const d = 1 / l[li + i];
    const end = Math.min(j1, i);
    for (let j = j0; j < end; j++) x[xi + j] *= d;
    if (i < j1) x[xi + i] = d;
  }
}

/** Columns [0, n) of a lower-triangular inverse (column j: about (n − j)² / 2 work) in `parts` ranges of equal work. */
export function inverseColumnRanges(n, parts) {
  return workRanges(n, parts, (j) => (n - j) * (n - j));
}

/** Inverse of a lower-triangular matrix (all columns of invertLowerColumns). */
export function invertLowerRows(l, n) {
  const x = new Float64Array(n * n);
  invertLowerColumns(l, n, x, 0, n);
  return x;
}

/**
 * U upper triangular with H⁻¹ = Uᵀ·U (GPTQ's `cholesky(inverse(H), upper=True)`), without forming
 * H⁻¹: with P the order reversal, P·H·P = L̃·L̃ᵀ gives H = R·Rᵀ for the upper R = P·L̃·P, so
 * H⁻¹ = R⁻ᵀ·R⁻¹ and U = R⁻¹ = P·L̃⁻¹·P. One Cholesky and one triangular inverse (2n³/3 flops
 * instead of 4n³/3). Returns null when H is not positive definite. threads.ts has the same on threads.
 */
export function inverseCholeskyUpper(h, n) {
  // reversing both axes of a row-major n×n matrix is reversing its n² entries
  const l = choleskyLower(h.slice().reverse(), n);
  if (!l) return null;
  return invertLowerRows(l, n).reverse();
}

// ---------------------------------------------------------------------------------------------
// SparseGPT column-block updates (Frantar & Alistarh 2023), for a range of output rows
// ---------------------------------------------------------------------------------------------

/** [start, end) of the N:M group holding column c (groups restart at every segment). */
export function nmGroup(c, m, segment, k) {
  const seg0 = Math.floor(c / segment) * segment;
  const start = seg0 + Math.floor((c - seg0) / m) * m;
  return [start, Math.min(start + m, seg0 + segment, k)];
}

/**
 * SparseGPT's updates of rows [r0, r1) of W [rows × k] (float64, in place) over the column block
 * [i1, i2), U the upper factor of H⁻¹: column by column, an N:M mask (`nm`: { n, m, segment }) is
 * chosen per row at each group's first column by w²/U_jj², every masked weight is zeroed and its error
 * spread over the block's later columns; then the block's errors reach the columns after it (the lazy
 * batch update). `mask` (rows × k, 1 = prune) holds the block's unstructured choice, made beforehand
 * over all rows; N:M choices are written into it. Rows are independent, so threads split them, and
 * each row's operations are those of the whole loop in the same order.
 */
export function sparseGptRows(w, u, mask, k, i1, i2, r0, r1, nm) {
  const count = i2 - i1;
  const err = new Float64Array(count);
  // N:M: the end of the group that starts at each column of the block (−1 where none starts)
  const groupEnd = new Int32Array(count).fill(-1);
  if (nm) {
    for (let i = 0; i < count; i++) {
      const [gs, ge] = nmGroup(i1 + i, nm.m, nm.segment, k);
      if (gs === i1 + i && ge - gs > nm.n) groupEnd[i] = ge;
    }
  }
  for (let r = r0; r < r1; r++) {
    const off = r * k;
    for (let i = 0; i < count; i++) {
      const col = i1 + i;
      const ge = groupEnd[i];
      if (ge >= 0) {
        const score = (j) => { const d = u[j * k + j], v = w[off + j]; return (v * v) / (d * d); };
        const idx = Array.from({ length: ge - col }, (_, t) => col + t);
        idx.sort((a, b) => score(a) - score(b) || a - b);
        for (let t = 0; t < ge - col - nm.n; t++) mask[off + idx[t]] = 1;
      }
      let e = 0;
      if (mask[off + col]) {
        const urow = col * k;
        e = w[off + col] / u[urow + col];
        w[off + col] = 0;
        if (e !== 0) for (let j = col + 1; j < i2; j++) w[off + j] -= e * u[urow + j];
      }
      err[i] = e;
    }
    if (i2 < k) {
      for (let i = 0; i < count; i++) {
        const e = err[i];
        if (e === 0) continue;
        const urow = (i1 + i) * k;
        for (let j = i2; j < k; j++) w[off + j] -= e * u[urow + j];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// GPTQ column-block updates (Frantar et al. 2022, Algorithm 1), for a range of output rows
// ---------------------------------------------------------------------------------------------

/** Adding and subtracting 1.5·2^52 rounds a double to an integer, ties to even (|x| < 2^51). */
const RNE = 6755399441055744;

/** Rows processed together: each row of U is read once per tile from cache instead of once per row. */
export const GPTQ_ROW_TILE = 16;

/**
 * quantParams of SPEC §8 for one group, inlined (min/max widened to include 0; float64 scale
 * stored as float32; tiny ranges: scale 1). Writes scale and the integer zero point into out.
 */
export function groupParams(lo, hi, qmin, qmax, symmetric, out) {
  lo = Math.min(lo, 0);
  hi = Math.max(hi, 0);
  if (symmetric) { const m = Math.max(-lo, hi); lo = -m; hi = m; }
  const scale64 = (hi - lo) / (qmax - qmin);
  if (!Number.isFinite(scale64) || scale64 < 1e-30 || Math.fround(scale64) === 0) { out[0] = 1; out[1] = 0; return; }
  out[0] = Math.fround(scale64);
  if (symmetric) { out[1] = 0; return; }
  let zp = qmin - lo / scale64;
  // round half to even
  const r = Math.round(zp);
  zp = r - zp === 0.5 && r % 2 !== 0 ? r - 1 : r;
  out[1] = Math.min(qmax, Math.max(qmin, zp));
}

/**
 * GPTQ for output rows [r0, r1) of W [rows × K] (row-major, columns in processing order), with
 * U [K × K] the upper Cholesky factor of H⁻¹ in the same order. W is updated in place.
 *
 * p: { K, bits, symmetric, groupSize, blockSize, qLimit (optional, symmetric: |code| ≤ qLimit),
 *      perm: Int32Array | null  (processing position → original column; null: identity),
 *      staticScales / staticZeros: per (row, group) params fixed beforehand, or null to compute each
 *        group's params from the current weights when the loop reaches its first column (groups are
 *        then whole within a block: blockSize is a multiple of groupSize) }
 * Outputs, indexed by ORIGINAL column: q [rows × K] storage values (signed + 2^(bits−1) when
 * symmetric), scales [rows × groups] float32, zeros [rows × groups] storage zero points.
 * Returns Σ over the rows of Σ_i (w_i − ŵ_i)²/U_ii² (GPTQ's loss estimate, ½ of its Losses sum).
 */
export function gptqRows(w, u, p, r0, r1, q, scales, zeros) {
  const { K, bits, symmetric, groupSize: g, blockSize: B, perm, staticScales, staticZeros, qLimit } = p;
  const groups = Math.ceil(K / g);
  // qLimit (symmetric only): codes kept in [−qLimit, qLimit], e.g. 64 for 7-bit weights stored in 8 (reduce range)
  const qmin = symmetric ? -(qLimit ?? (1 << (bits - 1)) - 1) : 0;
  const qmax = symmetric ? qLimit ?? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
  const offset = symmetric ? 1 << (bits - 1) : 0;
  const R = GPTQ_ROW_TILE;
  const err = new Float64Array(R * B);
  const params = new Float64Array(2);
  // current group params per tile row
  const gScale = new Float64Array(R), gZp = new Float64Array(R);
  let loss = 0;
  for (let t0 = r0; t0 < r1; t0 += R) {
    const tr = Math.min(R, r1 - t0);
    for (let i1 = 0; i1 < K; i1 += B) {
      const i2 = Math.min(i1 + B, K);
      const count = i2 - i1;
      for (let i = i1; i < i2; i++) {
        const col = perm ? perm[i] : i;
        const grp = (col / g) | 0;
        const ui = i * K;
        const d = u[ui + i];
        for (let rr = 0; rr < tr; rr++) {
          const r = t0 + rr;
          const wr = r * K;
          let scale, zp;
          if (staticScales) {
            scale = staticScales[r * groups + grp];
            zp = staticZeros[r * groups + grp] - offset;
          } else {
            if (col % g === 0) {
              const end = Math.min(i + g, K);
              let lo = Infinity, hi = -Infinity;
              for (let j = i; j < end; j++) { const v = w[wr + j]; if (v < lo) lo = v; if (v > hi) hi = v; }
              groupParams(lo, hi, qmin, qmax, symmetric, params);
              gScale[rr] = params[0];
              gZp[rr] = params[1];
              scales[r * groups + grp] = params[0];
              zeros[r * groups + grp] = params[1] + offset;
            }
            scale = gScale[rr];
            zp = gZp[rr];
          }
          const x = w[wr + i] / scale;
          const lo = qmin - zp, hi = qmax - zp;
          const y = x < lo ? lo : x > hi ? hi : x;
          const qi = y + RNE - RNE;
          q[wr + col] = qi + zp + offset;
          const deq = qi * scale;
          const e = (w[wr + i] - deq) / d;
          loss += e * e;
          err[rr * B + (i - i1)] = e;
          if (e !== 0) for (let j = i + 1; j < i2; j++) w[wr + j] -= e * u[ui + j];
        }
      }
      // lazy batch update: the block's errors reach the later columns in one pass
      if (i2 < K) {
        for (let i = 0; i < count; i++) {
          const ui = (i1 + i) * K;
          for (let rr = 0; rr < tr; rr++) {
            const e = err[rr * B + i];
            if (e === 0) continue;
            const wr = (t0 + rr) * K;
            for (let j = i2; j < K; j++) w[wr + j] -= e * u[ui + j];
          }
        }
      }
    }
  }
  return loss / 2;
}

// ---------------------------------------------------------------------------------------------
// Statistics over large tensors (calibration ranges, weight histograms, magnitude thresholds)
// ---------------------------------------------------------------------------------------------

/** Min and max of the finite values, and how many were not finite. Empty: [Infinity, −Infinity]. */
export function minMax(values, start = 0, end = values.length) {
  let lo = Infinity, hi = -Infinity, nonFinite = 0;
  for (let i = start; i < end; i++) {
    const v = values[i];
    if (v !== v || v === Infinity || v === -Infinity) { nonFinite++; continue; }
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return { min: lo, max: hi, nonFinite };
}

/**
 * Adds counts of the finite values in [lo, hi] to `counts` (Uint32Array of `bins`), hi falling in
 * the last bin; others are skipped. Bins are computed in float32 exactly as the WGSL kernel does
 * (b = floor(f32(f32(v − lo)·f32(bins / (hi − lo))))), so both give the same counts bit for bit.
 */
export function histogram(values, lo, hi, bins, counts, start = 0, end = values.length) {
  const lo32 = Math.fround(lo), hi32 = Math.fround(hi);
  const scale = hi32 > lo32 ? Math.fround(bins / (hi32 - lo32)) : 0;
  for (let i = start; i < end; i++) {
    const v = Math.fround(values[i]);
    if (!(v >= lo32 && v <= hi32)) continue;
    let b = Math.floor(Math.fround(Math.fround(v - lo32) * scale));
    if (b >= bins) b = bins - 1;
    counts[b]++;
  }
}

/**
 * The smallest threshold t with at most `keep` values of |x| above it, read from a histogram of
 * |x| over [0, max] (magnitude pruning's global threshold, to one bin's width).
 */
export function thresholdFromHistogram(counts, max, keep) {
  const bins = counts.length;
  let above = 0;
  for (let b = bins - 1; b >= 0; b--) {
    if (above + counts[b] > keep) return ((b + 1) / bins) * max;
    above += counts[b];
  }
  return 0;
}

/**
 * Σ_r a_r·H·a_rᵀ and Σ_r b_r·H·b_rᵀ over rows [r0, r1) of a and b ([rows, k] row-major, H k×k
 * symmetric), into sums[2·slot] and sums[2·slot + 1]: the two quadratic forms of a layer's
 * reconstruction error ‖ΔW·X‖²/‖W·X‖² from XᵀX (a = W, b = ΔW). H's symmetry halves the work
 * (x·H·xᵀ = Σ_i x_i·(H_ii·x_i + 2·Σ_{j>i} H_ij·x_j)), and four rows share each load of H, their eight
 * sums independent chains the CPU overlaps: 4× faster than a full product row by row on one thread.
 */
export function quadraticFormRows(a, b, h, k, r0, r1, sums, slot) {
  let sa = 0;
  let sb = 0;
  for (let rb = r0; rb < r1; rb += 4) {
    // rows past r1 read as row r1 − 1 and are not counted
    const o0 = rb * k;
    const o1 = Math.min(rb + 1, r1 - 1) * k;
    const o2 = Math.min(rb + 2, r1 - 1) * k;
    const o3 = Math.min(rb + 3, r1 - 1) * k;
    const n = Math.min(4, r1 - rb);
    for (let i = 0; i < k; i++) {
      const row = i * k;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
      for (let j = i + 1; j < k; j++) {
        const hij = h[row + j];
        a0 += hij * a[o0 + j]; b0 += hij * b[o0 + j];
        a1 += hij * a[o1 + j]; b1 += hij * b[o1 + j];
        a2 += hij * a[o2 + j]; b2 += hij * b[o2 + j];
        a3 += hij * a[o3 + j]; b3 += hij * b[o3 + j];
      }
      const hii = h[row + i];
      let x = a[o0 + i], y = b[o0 + i];
      sa += x * (hii * x + 2 * a0); sb += y * (hii * y + 2 * b0);
      if (n > 1) { x = a[o1 + i]; y = b[o1 + i]; sa += x * (hii * x + 2 * a1); sb += y * (hii * y + 2 * b1); }
      if (n > 2) { x = a[o2 + i]; y = b[o2 + i]; sa += x * (hii * x + 2 * a2); sb += y * (hii * y + 2 * b2); }
      if (n > 3) { x = a[o3 + i]; y = b[o3 + i]; sa += x * (hii * x + 2 * a3); sb += y * (hii * y + 2 * b3); }
    }
  }
  sums[2 * slot] = sa;
  sums[2 * slot + 1] = sb;
}

/** The tasks threads.ts runs in worker threads, by name. */
export const TASKS = {
  xtx: ({ x, rows, k, acc, i0, i1 }) => { xtxAccumulate(x, rows, k, acc, i0, i1); return null; },
  gram: ({ b, C, t, k, acc, i0, i1 }) => { gramChunk(b, C, t, k, acc, i0, i1); return null; },
  gptqRows: ({ w, u, p, r0, r1, q, scales, zeros }) => gptqRows(w, u, p, r0, r1, q, scales, zeros),
  choleskyTrailing: ({ l, n, ke, w, panel, i0, i1 }) => { choleskyTrailing(l, n, ke, w, panel, i0, i1); return null; },
  invertLowerColumns: ({ l, n, x, j0, j1 }) => { invertLowerColumns(l, n, x, j0, j1); return null; },
  sparseGptRows: ({ w, u, mask, k, i1, i2, r0, r1, nm }) => { sparseGptRows(w, u, mask, k, i1, i2, r0, r1, nm); return null; },
  quadraticFormRows: ({ a, b, h, k, r0, r1, sums, slot }) => { quadraticFormRows(a, b, h, k, r0, r1, sums, slot); return null; },
  minMax: ({ values, start, end }) => minMax(values, start, end),
  histogram: ({ values, lo, hi, bins, start, end }) => { const c = new Uint32Array(bins); histogram(values, lo, hi, bins, c, start, end); return c; },
};
