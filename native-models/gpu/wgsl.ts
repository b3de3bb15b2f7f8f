/**
 * WGSL sources of the compute kernels. Each has a CPU counterpart in kernels-cpu.mjs (or, for the
 * dense building blocks, a plain loop in the tests) that is its reference. Kernels use at most 7
 * storage buffers and 16 KiB of workgroup memory, f32 arithmetic, no optional features, so they
 * run on any WebGPU adapter (including compatibility mode).
 */

/**
 * C = alpha·op(A)·op(B) + beta·C on sub-matrices given by offsets and leading dimensions (row-major,
 * elements). 64×64 output tiles per workgroup of 16×16 threads, 4×4 per thread, K in steps of 16
 * through workgroup memory. `triangle`: 0 every element, 1 only c ≥ r (upper), 2 only c ≤ r (lower);
 * whole tiles outside the triangle are skipped. beta = 0 never reads C. The transposes are
 * compile-time constants (one pipeline per variant; override constants crashed Dawn's GL backend).
 */
export function matmulSource(transA: boolean, transB: boolean): string {
  return MATMUL.replace('override TRANS_A: bool = false;', `const TRANS_A: bool = ${transA};`).replace('override TRANS_B: bool = false;', `const TRANS_B: bool = ${transB};`);
}

const MATMUL = /* wgsl */ `
struct Params { M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldc: u32, offA: u32, offB: u32, offC: u32, alpha: f32, beta: f32, triangle: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
const TS: u32 = 64u;
const KT: u32 = 16u;
var<workgroup> As: array<f32, 1024>;
var<workgroup> Bs: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let row0 = wg.y * TS;
  let col0 = wg.x * TS;
  if (p.triangle == 1u && col0 + TS <= row0) { return; }
  if (p.triangle == 2u && row0 + TS <= col0) { return; }
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < p.K; k0 += KT) {
    for (var t = 0u; t < 4u; t++) {
      let e = tid + t * 256u;
      var m: u32; var k: u32;
      if (TRANS_A) { m = e % TS; k = e / TS; } else { k = e % KT; m = e / KT; }
      let gm = row0 + m;
      let gk = k0 + k;
      var v = 0.0;
      if (gm < p.M && gk < p.K) {
        if (TRANS_A) { v = A[p.offA + gk * p.lda + gm]; } else { v = A[p.offA + gm * p.lda + gk]; }
      }
      As[k * TS + m] = v;
      var n: u32; var kb: u32;
      if (TRANS_B) { kb = e % KT; n = e / KT; } else { n = e % TS; kb = e / TS; }
      let gn = col0 + n;
      let gkb = k0 + kb;
      var w = 0.0;
      if (gn < p.N && gkb < p.K) {
        if (TRANS_B) { w = B[p.offB + gn * p.ldb + gkb]; } else { w = B[p.offB + gkb * p.ldb + gn]; }
      }
      Bs[kb * TS + n] = w;
    }
    workgroupBarrier();
    for (var k = 0u; k < KT; k++) {
      let ar = k * TS + lid.y * 4u;
      let bc = k * TS + lid.x * 4u;
      let a = vec4f(As[ar], As[ar + 1u], As[ar + 2u], As[ar + 3u]);
      let b = vec4f(Bs[bc], Bs[bc + 1u], Bs[bc + 2u], Bs[bc + 3u]);
      for (var i = 0u; i < 4u; i++) {
        acc[i * 4u] += a[i] * b.x;
        acc[i * 4u + 1u] += a[i] * b.y;
        acc[i * 4u + 2u] += a[i] * b.z;
        acc[i * 4u + 3u] += a[i] * b.w;
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    if (r >= p.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + lid.x * 4u + j;
      if (c >= p.N) { continue; }
      if (p.triangle == 1u && c < r) { continue; }
      if (p.triangle == 2u && c > r) { continue; }
      let idx = p.offC + r * p.ldc + c;
      var v = p.alpha * acc[i * 4u + j];
      if (p.beta != 0.0) { v += p.beta * C[idx]; }
      C[idx] = v;
    }
  }
}`;

/** Cholesky block size: one workgroup factors a 32×32 diagonal block and inverts its factor. */
export const NB = 32;

/**
 * Factors the diagonal block at (j0, j0) of A in place (lower L; zeros above its diagonal) and
 * writes L⁻¹ of the block into Dinv's slot j0/32. A pivot that is not positive sets status[0] to
 * its index + 1 (the host retries with more dampening); the factorization continues with 1 there.
 * A short last block is padded with the identity.
 */
export const POTRF_BLOCK = /* wgsl */ `
struct Params { n: u32, j0: u32, ld: u32, slot: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<storage, read_write> Dinv: array<f32>;
@group(0) @binding(3) var<storage, read_write> status: array<atomic<u32>>;
const NB: u32 = ${NB}u;
var<workgroup> a: array<f32, ${NB * NB}>;
var<workgroup> x: array<f32, ${NB * NB}>;

@compute @workgroup_size(${NB})
fn main(@builtin(local_invocation_index) t: u32) {
  let bs = min(NB, p.n - p.j0);
  for (var c = 0u; c < NB; c++) {
    var v = select(0.0, 1.0, t == c);
    if (t < bs && c < bs) { v = A[(p.j0 + t) * p.ld + p.j0 + c]; }
    a[t * NB + c] = v;
  }
  workgroupBarrier();
  for (var j = 0u; j < NB; j++) {
    if (t == j) {
      var d = a[j * NB + j];
      if (!(d > 0.0) || d > 3.0e38) { atomicMax(&status[0], p.j0 + j + 1u); d = 1.0; }
      a[j * NB + j] = sqrt(d);
    }
    workgroupBarrier();
    let ljj = a[j * NB + j];
    if (t > j) { a[t * NB + j] = a[t * NB + j] / ljj; }
    workgroupBarrier();
    if (t > j) {
      let lij = a[t * NB + j];
      for (var k = j + 1u; k <= t; k++) { a[t * NB + k] -= lij * a[k * NB + j]; }
    }
    workgroupBarrier();
  }
  // column t of L⁻¹ by forward substitution (columns are independent)
  for (var i = 0u; i < NB; i++) {
    if (i < t) { x[i * NB + t] = 0.0; continue; }
    var s = select(0.0, 1.0, i == t);
    for (var k = t; k < i; k++) { s -= a[i * NB + k] * x[k * NB + t]; }
    x[i * NB + t] = s / a[i * NB + i];
  }
  workgroupBarrier();
  for (var c = 0u; c < NB; c++) {
    if (t < bs && c < bs) { A[(p.j0 + t) * p.ld + p.j0 + c] = select(0.0, a[t * NB + c], c <= t); }
    Dinv[p.slot * NB * NB + t * NB + c] = x[t * NB + c];
  }
}`;

/** dst[offD + r·ldd + c] = alpha·src[offS + r·lds + c] for r < M, c < N. */
export const COPY2D = /* wgsl */ `
struct Params { M: u32, N: u32, lds: u32, ldd: u32, offS: u32, offD: u32, alpha: f32, _p: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read_write> D: array<f32>;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.y >= p.M || g.x >= p.N) { return; }
  D[p.offD + g.y * p.ldd + g.x] = p.alpha * S[p.offS + g.y * p.lds + g.x];
}`;

/**
 * D[r][c] = S[rowIdx[r]][colIdx[c]] (+ add on the diagonal) for an R×C gather from S (leading
 * dimension lds); rowsIdentity = 1 reads row r itself. Permutations, order reversal, dampening.
 */
export const GATHER2D = /* wgsl */ `
struct Params { R: u32, C: u32, lds: u32, rowsIdentity: u32, add: f32, _a: u32, _b: u32, _c: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> S: array<f32>;
@group(0) @binding(2) var<storage, read> rowIdx: array<u32>;
@group(0) @binding(3) var<storage, read> colIdx: array<u32>;
@group(0) @binding(4) var<storage, read_write> D: array<f32>;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let r = g.y; let c = g.x;
  if (r >= p.R || c >= p.C) { return; }
  var sr = r;
  if (p.rowsIdentity == 0u) { sr = rowIdx[r]; }
  var v = S[sr * p.lds + colIdx[c]];
  if (r == c) { v += p.add; }
  D[r * p.C + c] = v;
}`;

/**
 * The Hessian's finishing touches for n×n H = scale·(XᵀX), upper triangle accumulated: mirrors it,
 * scales it, and for inputs never active (H_jj = 0) sets H_jj = 1 and zeroes column j of W
 * [rows × n] (GPTQ's dead-input rule). Also writes the diagonal.
 */
export const FINISH_HESSIAN = /* wgsl */ `
struct Params { n: u32, rows: u32, scale: f32, fixDead: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> H: array<f32>;
@group(0) @binding(2) var<storage, read_write> W: array<f32>;
@group(0) @binding(3) var<storage, read_write> diag: array<f32>;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.y; let j = g.x;
  if (i >= p.n || j >= p.n || j < i) { return; }
  let v = H[i * p.n + j] * p.scale;
  H[i * p.n + j] = v;
  if (j > i) { H[j * p.n + i] = v; return; }
  // the diagonal
  if (v == 0.0 && p.fixDead == 1u) {
    H[i * p.n + i] = 1.0;
    diag[i] = 0.0;
    for (var r = 0u; r < p.rows; r++) { W[r * p.n + i] = 0.0; }
  } else {
    diag[i] = v;
  }
}`;

/** Largest GPTQ block (columns per lazy batch update) the GPTQ_BLOCK kernel holds per thread. */
export const GPTQ_MAX_BLOCK = 128;

/**
 * One block [i1, i2) of GPTQ's column loop, one thread per output row (rows are independent):
 * the row's block of W is held by the thread; for each column, the group's parameters (static:
 * read; lazy: computed from the current weights when the loop reaches the group's first column),
 * the quantized value, the error e = (w − ŵ)/U_ii (written to E for the lazy update that follows,
 * a MATMUL), and the update of the block's later columns w_j −= e·U_ij. Q gets storage values at
 * the original column perm[i]; SZ holds (scale, zero point) per (row, group).
 */
export const GPTQ_BLOCK = /* wgsl */ `
struct Params { rows: u32, K: u32, i1: u32, i2: u32, groupSize: u32, groups: u32, symmetric: u32, staticGroups: u32, qmin: f32, qmax: f32, offset: f32, _p: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> U: array<f32>;
@group(0) @binding(3) var<storage, read> perm: array<u32>;
@group(0) @binding(4) var<storage, read_write> E: array<f32>;
@group(0) @binding(5) var<storage, read_write> Q: array<u32>;
@group(0) @binding(6) var<storage, read_write> SZ: array<f32>;
@group(0) @binding(7) var<storage, read_write> loss: array<f32>;
const BS: u32 = ${GPTQ_MAX_BLOCK}u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let r = g.x;
  if (r >= p.rows) { return; }
  var w: array<f32, BS>;
  let cnt = p.i2 - p.i1;
  for (var j = 0u; j < cnt; j++) { w[j] = W[r * p.K + p.i1 + j]; }
  var scale = 1.0;
  var zp = 0.0;
  var l = 0.0;
  for (var i = 0u; i < cnt; i++) {
    let pos = p.i1 + i;
    let col = perm[pos];
    let grp = col / p.groupSize;
    let at = (r * p.groups + grp) * 2u;
    if (p.staticGroups == 1u) {
      scale = SZ[at];
      zp = SZ[at + 1u];
    } else if (col % p.groupSize == 0u) {
      let end = min(i + p.groupSize, cnt);
      var lo = w[i];
      var hi = w[i];
      for (var j = i + 1u; j < end; j++) { lo = min(lo, w[j]); hi = max(hi, w[j]); }
      lo = min(lo, 0.0);
      hi = max(hi, 0.0);
      if (p.symmetric == 1u) { let m = max(-lo, hi); lo = -m; hi = m; }
      let s = (hi - lo) / (p.qmax - p.qmin);
      if (s >= 1.0e-30 && s <= 3.0e38) {
        scale = s;
        zp = select(clamp(round(p.qmin - lo / s), p.qmin, p.qmax), 0.0, p.symmetric == 1u);
      } else {
        scale = 1.0;
        zp = 0.0;
      }
      SZ[at] = scale;
      SZ[at + 1u] = zp;
    }
    let d = U[pos * p.K + pos];
    let y = clamp(w[i] / scale, p.qmin - zp, p.qmax - zp);
    let qi = round(y);
    Q[r * p.K + col] = u32(qi + zp + p.offset);
    let e = (w[i] - qi * scale) / d;
    l += e * e;
    E[r * BS + i] = e;
    let urow = pos * p.K + p.i1;
    for (var j = i + 1u; j < cnt; j++) { w[j] -= e * U[urow + j]; }
  }
  loss[r] += 0.5 * l;
}`;

/**
 * Partial min/max/non-finite counts: each workgroup of 256 threads reduces `per` consecutive
 * chunks of 256 values; out[3·wg..] = (min, max, bitcast nonFinite). The host folds the partials.
 */
export const MINMAX = /* wgsl */ `
struct Params { n: u32, per: u32, _a: u32, _b: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> V: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
var<workgroup> smin: array<f32, 256>;
var<workgroup> smax: array<f32, 256>;
var<workgroup> sbad: array<u32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  var lo = bitcast<f32>(0x7f7fffffu);
  var hi = -lo;
  var bad = 0u;
  let base = wg.x * p.per * 256u;
  for (var c = 0u; c < p.per; c++) {
    let i = base + c * 256u + t;
    if (i < p.n) {
      let v = V[i];
      if ((bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u) { bad += 1u; }
      else { lo = min(lo, v); hi = max(hi, v); }
    }
  }
  smin[t] = lo; smax[t] = hi; sbad[t] = bad;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (t < s) {
      smin[t] = min(smin[t], smin[t + s]);
      smax[t] = max(smax[t], smax[t + s]);
      sbad[t] += sbad[t + s];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    out[wg.x * 3u] = smin[0];
    out[wg.x * 3u + 1u] = smax[0];
    out[wg.x * 3u + 2u] = bitcast<f32>(sbad[0]);
  }
}`;

/** Largest histogram the HISTOGRAM kernel keeps in workgroup memory. */
export const MAX_BINS = 4096;

/**
 * Counts of the finite values in [lo, hi] in `bins` equal bins (hi in the last), computed in f32
 * exactly as kernels-cpu.mjs's histogram: b = floor((v − lo)·scale), scale = f32(bins/(hi − lo)).
 * Workgroup-local atomic counts, then one atomic add per bin into the output.
 */
export const HISTOGRAM = /* wgsl */ `
struct Params { n: u32, per: u32, bins: u32, _a: u32, lo: f32, hi: f32, scale: f32, _b: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> V: array<f32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;
var<workgroup> local: array<atomic<u32>, ${MAX_BINS}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  for (var b = t; b < p.bins; b += 256u) { atomicStore(&local[b], 0u); }
  workgroupBarrier();
  let base = wg.x * p.per * 256u;
  for (var c = 0u; c < p.per; c++) {
    let i = base + c * 256u + t;
    if (i < p.n) {
      let v = V[i];
      if (v >= p.lo && v <= p.hi) {
        var b = u32(floor((v - p.lo) * p.scale));
        if (b >= p.bins) { b = p.bins - 1u; }
        atomicAdd(&local[b], 1u);
      }
    }
  }
  workgroupBarrier();
  for (var b = t; b < p.bins; b += 256u) {
    let c = atomicLoad(&local[b]);
    if (c != 0u) { atomicAdd(&counts[b], c); }
  }
}`;

// ---------------------------------------------------------------------------------------------
// SparseGPT and exact k-th smallest values (radix select)
// ---------------------------------------------------------------------------------------------

/** Largest SparseGPT block (columns per lazy batch update) SPARSEGPT_BLOCK holds per thread. */
export const SPARSEGPT_MAX_BLOCK = 128;

/**
 * Order-preserving u32 key of an f32 (WGSL): positive floats get the sign bit set, negative ones
 * are inverted, so unsigned key order is float order (−0 just below +0; NaNs at the ends).
 */
const KEY_OF = /* wgsl */ `
fn keyOf(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}`;

/**
 * SparseGPT's saliency of one block: S[r·ld + j] = w²/U_jj² for column i1 + j of row r (one thread
 * per value). Written once, so the selection and the block kernel compare the very same f32 values.
 */
export const SPARSEGPT_SCORES = /* wgsl */ `
struct Params { rows: u32, K: u32, i1: u32, cnt: u32, ld: u32, _a: u32, _b: u32, _c: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> U: array<f32>;
@group(0) @binding(3) var<storage, read_write> S: array<f32>;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  let r = g.y;
  if (j >= p.cnt || r >= p.rows) { return; }
  let pos = p.i1 + j;
  let d = U[pos * p.K + pos];
  let v = W[r * p.K + pos];
  S[r * p.ld + j] = (v * v) / (d * d);
}`;

/** Values per thread of RADIX_HISTOGRAM (256 threads per workgroup). */
export const RADIX_PER = 16;

/**
 * One pass of a radix select over the region V[r·ld + j], r < rows, j < cnt: counts, in 256 bins, the
 * byte at `shift` of the keys (keyOf) whose bits under `prefixMask` equal `prefix` — the bytes above
 * already chosen. Four passes (shift 24, 16, 8, 0) find the exact k-th smallest key; the host picks
 * the bin holding rank k after each.
 */
export const RADIX_HISTOGRAM = /* wgsl */ `
struct Params { rows: u32, cnt: u32, ld: u32, shift: u32, prefix: u32, prefixMask: u32, _a: u32, _b: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> V: array<f32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>;
var<workgroup> local: array<atomic<u32>, 256>;
${KEY_OF}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  atomicStore(&local[t], 0u);
  workgroupBarrier();
  let n = p.rows * p.cnt;
  let base = wg.x * ${RADIX_PER}u * 256u;
  for (var c = 0u; c < ${RADIX_PER}u; c++) {
    let i = base + c * 256u + t;
    if (i < n) {
      let key = keyOf(V[(i / p.cnt) * p.ld + i % p.cnt]);
      if ((key & p.prefixMask) == p.prefix) { atomicAdd(&local[(key >> p.shift) & 0xffu], 1u); }
    }
  }
  workgroupBarrier();
  let c = atomicLoad(&local[t]);
  if (c != 0u) { atomicAdd(&counts[t], c); }
}`;

/** Per row of the region: how many keys equal `key` (ties at the k-th value are taken in row-major order). */
export const RADIX_EQUAL_COUNT = /* wgsl */ `
struct Params { rows: u32, cnt: u32, ld: u32, key: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> V: array<f32>;
@group(0) @binding(2) var<storage, read_write> equal: array<u32>;
${KEY_OF}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let r = g.x;
  if (r >= p.rows) { return; }
  var n = 0u;
  for (var j = 0u; j < p.cnt; j++) { if (keyOf(V[r * p.ld + j]) == p.key) { n += 1u; } }
  equal[r] = n;
}`;

/**
 * One block [i1, i2) of SparseGPT's column loop, one thread per output row (kernels-cpu.mjs's
 * sparseGptRows): the mask is the block's scores S below the threshold key (and, at the threshold,
 * the row's first take[r]) when `mode` is 0; N:M (mode 1) chooses per group, at the group's first
 * column, the group's len − n smallest current w²/U_jj² (ties to the lower column; groupEnd[pos] is
 * the group's end or −1). Each pruned weight is zeroed and its error e = w/U_ii spread over the
 * block's later columns; E keeps the errors for the lazy update (a MATMUL) and the row's block goes
 * back into W.
 */
export const SPARSEGPT_BLOCK = /* wgsl */ `
struct Params { rows: u32, K: u32, i1: u32, i2: u32, mode: u32, n: u32, threshold: u32, _a: u32 };
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> W: array<f32>;
@group(0) @binding(2) var<storage, read> U: array<f32>;
@group(0) @binding(3) var<storage, read> S: array<f32>;
@group(0) @binding(4) var<storage, read> take: array<u32>;
@group(0) @binding(5) var<storage, read> groupEnd: array<i32>;
@group(0) @binding(6) var<storage, read_write> E: array<f32>;
const BS: u32 = ${SPARSEGPT_MAX_BLOCK}u;
${KEY_OF}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let r = g.x;
  if (r >= p.rows) { return; }
  var w: array<f32, BS>;
  var mask: array<u32, ${SPARSEGPT_MAX_BLOCK / 32}>;
  let cnt = p.i2 - p.i1;
  for (var j = 0u; j < cnt; j++) { w[j] = W[r * p.K + p.i1 + j]; }
  if (p.mode == 0u) {
    var taken = 0u;
    for (var j = 0u; j < cnt; j++) {
      let key = keyOf(S[r * BS + j]);
      var prune = key < p.threshold;
      if (key == p.threshold && taken < take[r]) { prune = true; taken += 1u; }
      if (prune) { mask[j / 32u] |= 1u << (j % 32u); }
    }
  }
  for (var i = 0u; i < cnt; i++) {
    let pos = p.i1 + i;
    if (p.mode == 1u && groupEnd[pos] >= 0) {
      let end = u32(groupEnd[pos]) - p.i1;
      let drop = end - i - p.n;
      for (var t = i; t < end; t++) {
        let dt = U[(p.i1 + t) * p.K + p.i1 + t];
        let st = (w[t] * w[t]) / (dt * dt);
        var rank = 0u;
        for (var u = i; u < end; u++) {
          let du = U[(p.i1 + u) * p.K + p.i1 + u];
          let su = (w[u] * w[u]) / (du * du);
          if (su < st || (su == st && u < t)) { rank += 1u; }
        }
        if (rank < drop) { mask[t / 32u] |= 1u << (t % 32u); }
      }
    }
    var e = 0.0;
    if ((mask[i / 32u] & (1u << (i % 32u))) != 0u) {
      let urow = pos * p.K + p.i1;
      e = w[i] / U[urow + i];
      w[i] = 0.0;
      for (var j = i + 1u; j < cnt; j++) { w[j] -= e * U[urow + j]; }
    }
    E[r * BS + i] = e;
  }
  for (var j = 0u; j < cnt; j++) { W[r * p.K + p.i1 + j] = w[j]; }
}`;
