// The block quantizer's inner loops (quantize-kernels.mjs) as WebAssembly SIMD: per-column min/max,
// scale and zero point, and x / scale → clip → round half to even → + zero point, two float64 lanes
// at a time. The arithmetic is exactly the scalar kernel's (float64 division by the float32 scale,
// f64x2.nearest rounds ties to even like roundHalfEven, the same clipping order), so both give the
// same bytes — quantize-simd.test.ts checks that on ties, padding, odd widths and non-finite values.
// It exists because the scalar JavaScript spends about 13 ns a weight and this about 3 (issue 3's
// speed bar: weight-only quantization within 3× a plain read+write of the model's bytes).
// Plain JavaScript so worker threads load it without a TypeScript loader. Types: quantize-simd.d.mts.
import { growMemory, lazyModule } from './wasm-assembler.mjs';

// A column pair's parameters, interleaved so one pointer and constant offsets reach them all:
// scale[2] at +0, clip low[2] at +16, clip high[2] at +32, zero point + storage offset[2] at +48.
const PAIR_BYTES = 64;

/** Two columns' quantized values (i32 lanes 0 and 1) of the two floats at $src, params at $pp. */
const quantizePair = (src) => `
  (i32x4.trunc_sat_f64x2_s_zero
    (f64x2.add
      (f64x2.nearest
        (f64x2.pmin (v128.load offset=32 (local.get $pp))
          (f64x2.pmax (v128.load offset=16 (local.get $pp))
            (f64x2.div (f64x2.promote_low_f32x4 (v128.load64_zero ${src})) (v128.load (local.get $pp))))))
      (v128.load offset=48 (local.get $pp))))`;

/** A loop over column pairs: $src walks a row of floats, $pp the parameters; `body` runs per pair. */
const columnPairs = (row, body) => `
  (local.set $src ${row})
  (local.set $pp (local.get $params))
  (local.set $end (i32.add (local.get $params) (i32.mul (local.get $pairs) (i32.const ${PAIR_BYTES}))))
  (block $columns_done (loop $columns
    (br_if $columns_done (i32.ge_u (local.get $pp) (local.get $end)))
    ${body}
    (local.set $src (i32.add (local.get $src) (i32.const 8)))
    (local.set $pp (i32.add (local.get $pp) (i32.const ${PAIR_BYTES})))
    (br $columns)))`;

/**
 * Per-column minimum and maximum of $rows rows ($stride bytes apart) over $cols columns (a multiple of
 * 4) into f32 $lo and $hi; 0 when a value read is NaN or ±Infinity. Also in dynamic int8's kernels.
 */
export const COLUMN_MINMAX = `
  ;; Per-column minimum and maximum of $rows rows ($stride bytes apart) over $cols columns (a multiple
  ;; of 4) into f32 $lo and $hi; 0 when a value read is NaN or ±Infinity (x − x is then not 0).
  (func (export "minmax") (param $v i32) (param $rows i32) (param $cols i32) (param $stride i32) (param $lo i32) (param $hi i32) (result i32)
    (local $o i32) (local $bytes i32) (local $row i32) (local $j i32) (local $x v128) (local $bad v128)
    (local.set $bytes (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $o (i32.const 0))
    (block $init_done (loop $init
      (br_if $init_done (i32.ge_u (local.get $o) (local.get $bytes)))
      (v128.store (i32.add (local.get $lo) (local.get $o)) (f32x4.splat (f32.const inf)))
      (v128.store (i32.add (local.get $hi) (local.get $o)) (f32x4.splat (f32.const -inf)))
      (local.set $o (i32.add (local.get $o) (i32.const 16)))
      (br $init)))
    (local.set $row (local.get $v))
    (local.set $j (i32.const 0))
    (block $rows_done (loop $rows
      (br_if $rows_done (i32.ge_u (local.get $j) (local.get $rows)))
      (local.set $o (i32.const 0))
      (block $columns_done (loop $columns
        (br_if $columns_done (i32.ge_u (local.get $o) (local.get $bytes)))
        (local.set $x (v128.load (i32.add (local.get $row) (local.get $o))))
        (v128.store (i32.add (local.get $lo) (local.get $o)) (f32x4.pmin (v128.load (i32.add (local.get $lo) (local.get $o))) (local.get $x)))
        (v128.store (i32.add (local.get $hi) (local.get $o)) (f32x4.pmax (v128.load (i32.add (local.get $hi) (local.get $o))) (local.get $x)))
        (local.set $bad (f32x4.add (local.get $bad) (f32x4.sub (local.get $x) (local.get $x))))
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (br $columns)))
      (local.set $row (i32.add (local.get $row) (local.get $stride)))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $rows)))
    (i32x4.all_true (f32x4.eq (local.get $bad) (f32x4.splat (f32.const 0)))))`;

export const KERNELS = `
(module
  (memory (export "memory") 1)

${COLUMN_MINMAX}
  ;; quantParamsInto for every column (2·$pairs of them) from $lo/$hi, written as column pairs at
  ;; $params (PAIR_BYTES each). The block quantizer's types: symmetric ones have zero point 0.
  (func (export "params") (param $lo i32) (param $hi i32) (param $pairs i32) (param $qmin f64) (param $qmax f64) (param $symmetric i32) (param $offset f64) (param $params i32)
    (local $n i32) (local $cols i32) (local $l f64) (local $h f64) (local $m f64) (local $s64 f64) (local $scale f64) (local $zp f64) (local $dst i32)
    (local.set $cols (i32.shl (local.get $pairs) (i32.const 1)))
    (local.set $n (i32.const 0))
    (block $done (loop $each
      (br_if $done (i32.ge_u (local.get $n) (local.get $cols)))
      (local.set $l (f64.min (f64.promote_f32 (f32.load (i32.add (local.get $lo) (i32.shl (local.get $n) (i32.const 2))))) (f64.const 0)))
      (local.set $h (f64.max (f64.promote_f32 (f32.load (i32.add (local.get $hi) (i32.shl (local.get $n) (i32.const 2))))) (f64.const 0)))
      (if (local.get $symmetric) (then
        (local.set $m (f64.max (f64.abs (local.get $l)) (f64.abs (local.get $h))))
        (local.set $l (f64.neg (local.get $m)))
        (local.set $h (local.get $m))))
      (local.set $s64 (f64.div (f64.sub (local.get $h) (local.get $l)) (f64.sub (local.get $qmax) (local.get $qmin))))
      (if (i32.or
            (i32.or (f64.ne (f64.sub (local.get $s64) (local.get $s64)) (f64.const 0)) (f64.lt (local.get $s64) (f64.const 1e-30)))
            (f32.eq (f32.demote_f64 (local.get $s64)) (f32.const 0)))
        (then
          (local.set $scale (f64.const 1))
          (local.set $zp (f64.const 0)))
        (else
          (local.set $scale (f64.promote_f32 (f32.demote_f64 (local.get $s64))))
          (if (local.get $symmetric)
            (then (local.set $zp (f64.const 0)))
            (else (local.set $zp (f64.min (local.get $qmax) (f64.max (local.get $qmin)
              (f64.nearest (f64.sub (local.get $qmin) (f64.div (local.get $l) (local.get $s64)))))))))))
      (local.set $dst (i32.add (local.get $params)
        (i32.add (i32.mul (i32.shr_u (local.get $n) (i32.const 1)) (i32.const ${PAIR_BYTES})) (i32.shl (i32.and (local.get $n) (i32.const 1)) (i32.const 3)))))
      (f64.store (local.get $dst) (local.get $scale))
      (f64.store offset=16 (local.get $dst) (f64.sub (local.get $qmin) (local.get $zp)))
      (f64.store offset=32 (local.get $dst) (f64.sub (local.get $qmax) (local.get $zp)))
      (f64.store offset=48 (local.get $dst) (f64.add (local.get $zp) (local.get $offset)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $each))))

  ;; 8 bits into MatMulNBits' stage [columns, $blob]: row j of the block is byte j of each column's blob.
  (func (export "packed8") (param $v i32) (param $rows i32) (param $pairs i32) (param $stride i32) (param $params i32) (param $stage i32) (param $blob i32)
    (local $j i32) (local $src i32) (local $pp i32) (local $end i32) (local $dst i32) (local $q v128)
    (local.set $j (i32.const 0))
    (block $rows_done (loop $rows
      (br_if $rows_done (i32.ge_u (local.get $j) (local.get $rows)))
      (local.set $dst (i32.add (local.get $stage) (local.get $j)))
      ${columnPairs('(i32.add (local.get $v) (i32.mul (local.get $j) (local.get $stride)))', `
        (local.set $q ${quantizePair('(local.get $src)')})
        (v128.store8_lane 0 (local.get $dst) (local.get $q))
        (v128.store8_lane 4 (i32.add (local.get $dst) (local.get $blob)) (local.get $q))
        (local.set $dst (i32.add (local.get $dst) (i32.shl (local.get $blob) (i32.const 1))))`)}
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $rows))))

  ;; 4 bits into MatMulNBits' stage: rows j and j + 1 of the block share byte j/2 of each column's
  ;; blob, the first in the low nibble. $rows is even.
  (func (export "packed4") (param $v i32) (param $rows i32) (param $pairs i32) (param $stride i32) (param $params i32) (param $stage i32) (param $blob i32)
    (local $j i32) (local $src i32) (local $pp i32) (local $end i32) (local $dst i32) (local $q v128)
    (local.set $j (i32.const 0))
    (block $rows_done (loop $rows
      (br_if $rows_done (i32.ge_u (local.get $j) (local.get $rows)))
      (local.set $dst (i32.add (local.get $stage) (i32.shr_u (local.get $j) (i32.const 1))))
      ${columnPairs('(i32.add (local.get $v) (i32.mul (local.get $j) (local.get $stride)))', `
        (local.set $q (v128.or
          (v128.and ${quantizePair('(local.get $src)')} (i32x4.splat (i32.const 15)))
          (i32x4.shl (v128.and ${quantizePair('(i32.add (local.get $src) (local.get $stride))')} (i32x4.splat (i32.const 15))) (i32.const 4))))
        (v128.store8_lane 0 (local.get $dst) (local.get $q))
        (v128.store8_lane 4 (i32.add (local.get $dst) (local.get $blob)) (local.get $q))
        (local.set $dst (i32.add (local.get $dst) (i32.shl (local.get $blob) (i32.const 1))))`)}
      (local.set $j (i32.add (local.get $j) (i32.const 2)))
      (br $rows))))

  ;; One storage byte per value, rows of $width bytes at $out (the DQ form's [K, N]).
  (func (export "rowMajor") (param $v i32) (param $rows i32) (param $pairs i32) (param $stride i32) (param $params i32) (param $out i32) (param $width i32)
    (local $j i32) (local $src i32) (local $pp i32) (local $end i32) (local $dst i32) (local $q v128)
    (local.set $j (i32.const 0))
    (block $rows_done (loop $rows
      (br_if $rows_done (i32.ge_u (local.get $j) (local.get $rows)))
      (local.set $dst (i32.add (local.get $out) (i32.mul (local.get $j) (local.get $width))))
      ${columnPairs('(i32.add (local.get $v) (i32.mul (local.get $j) (local.get $stride)))', `
        (local.set $q ${quantizePair('(local.get $src)')})
        (local.set $q (i8x16.narrow_i16x8_u (i16x8.narrow_i32x4_s (local.get $q) (local.get $q)) (local.get $q)))
        (v128.store16_lane 0 (local.get $dst) (local.get $q))
        (local.set $dst (i32.add (local.get $dst) (i32.const 2)))`)}
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $rows))))
)`;

const kernels = lazyModule(KERNELS); // per thread, on first use; null where WebAssembly SIMD is missing

function instance() {
  const exports = kernels();
  return exports && { exports, memory: exports.memory };
}

/** Whether this thread runs the SIMD kernels. */
export function simdAvailable() {
  return instance() !== null;
}

const align16 = (n) => Math.ceil(n / 16) * 16;

/**
 * Where everything lives in the wasm memory for a [·, N] weight with pieces of up to `rows` rows:
 * column pairs' parameters, lo, hi, the output stage (with one spare column: an odd N's last pair
 * writes one column past it), then the input rows and 16 spare bytes (min/max reads up to 3 floats,
 * a pair 1 float, past a row's end).
 */
function layoutFor(s, rows) {
  const cols4 = Math.ceil(s.N / 4) * 4;
  const params = 0;
  const lo = align16(params + (cols4 / 2) * PAIR_BYTES);
  const hi = lo + 4 * cols4;
  const stage = hi + 4 * cols4;
  const stageBytes = s.layout === 'kn' ? s.blockSize * s.N + 16 : (cols4 + 1) * s.blob;
  const input = align16(stage + stageBytes);
  const end = input + rows * s.N * 4 + 16;
  return { cols4, params, lo, hi, stage, input, end };
}

function memoryFor(s, rows) {
  const k = instance();
  const at = layoutFor(s, rows);
  growMemory(k.memory, at.end);
  return at;
}

/**
 * A view of the wasm memory where quantizeBlockRowsSimd reads its input, for `rows` rows of s's
 * weight: a reader can fill it directly (quantizeBlocksFromFile) and no copy is made. Valid until the
 * memory grows: ask again for every piece.
 */
export function simdInput(s, rows) {
  const at = memoryFor(s, Math.ceil(rows / s.blockSize) * s.blockSize);
  return new Float32Array(instance().memory.buffer, at.input, rows * s.N);
}

/** quantizeBlockRows (quantize-kernels.mjs) on the SIMD kernels: the same contract and bytes. */
export function quantizeBlockRowsSimd(s, values, firstRow) {
  const { N, K, blockSize, blocks, blob, scales, zeroPoints, data } = s;
  // a simdInput view kept across a growth of the memory is detached (length 0): never quantize nothing
  if (values.length === 0) throw new Error('quantizeBlockRowsSimd: no values (a simdInput view used after the wasm memory grew?)');
  const rows = values.length / N;
  // a short last block is padded with zeros, which quantize to the zero point: MatMulNBits' padding
  const padded = Math.ceil(rows / blockSize) * blockSize;
  const at = memoryFor(s, padded);
  const { exports, memory } = instance();
  const buffer = memory.buffer;
  const f32 = new Float32Array(buffer);
  if (values.buffer !== buffer || values.byteOffset !== at.input) f32.set(values, at.input / 4);
  f32.fill(0, at.input / 4 + rows * N, at.end / 4);
  const f64 = new Float64Array(buffer);
  const pairs = Math.ceil(N / 2);
  const stride = N * 4;
  const u8 = new Uint8Array(buffer);
  const stage32 = new Int32Array(buffer, at.stage, ((at.cols4 + 1) * blob) >> 2);
  const words = blob >> 2;
  for (let r0 = 0; r0 < rows; r0 += blockSize) {
    const k0 = firstRow + r0;
    const b = k0 / blockSize;
    const len = Math.min(blockSize, K - k0, rows - r0);
    const v = at.input + r0 * stride;
    if (!exports.minmax(v, len, at.cols4, stride, at.lo, at.hi)) return false;
    exports.params(at.lo, at.hi, pairs, s.qmin, s.qmax, s.symmetric ? 1 : 0, s.offset, at.params);
    for (let n = 0; n < N; n++) {
      const p = (at.params >> 3) + (n >> 1) * (PAIR_BYTES >> 3) + (n & 1);
      scales[n * blocks + b] = f64[p];
      zeroPoints[n * blocks + b] = f64[p + 6];
    }
    if (s.layout === 'kn') {
      exports.rowMajor(v, len, pairs, stride, at.params, at.stage, N);
      data.set(u8.subarray(at.stage, at.stage + len * N), k0 * N);
      continue;
    }
    if (s.bits === 8) exports.packed8(v, blockSize, pairs, stride, at.params, at.stage, blob);
    else exports.packed4(v, blockSize, pairs, stride, at.params, at.stage, blob);
    // this block-row's blob of every column to its place in B [N, blocks, blob] (blob: whole words)
    const data32 = s.data32;
    for (let n = 0; n < N; n++) {
      const from = n * words;
      const to = (n * blocks + b) * words;
      for (let w = 0; w < words; w++) data32[to + w] = stage32[from + w];
    }
  }
  return true;
}
