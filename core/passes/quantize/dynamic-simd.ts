import { COLUMN_MINMAX } from '../../jobs/quantize-simd.mjs';
import { growMemory, lazyModule } from '../../jobs/wasm-assembler.mjs';

/**
 * Dynamic int8's two loops over a weight — its range (min, max, finite) and x / scale → round half to
 * even → + zero point → clip — as WebAssembly SIMD, for the whole tensor (per-tensor) or per column of a
 * [K, N] MatMul weight (per-channel). The arithmetic is dynamic.ts's: float64 division by the float32
 * scale, f64x2.nearest ties to even like its RNE trick, and clipping to [qmin − zp, qmax − zp] before
 * rounding, which equals clipping after it because the bounds are integers. dynamic-simd.test.ts checks
 * the bytes and ranges against the scalar loops. The scalar loops were 354 of the ~600 ms that
 * quantizing a 67 M-parameter MLP took (issue 3's bar: within 3× a plain read+write of its bytes).
 * Inputs are finite (the pass checks every weight before quantizing it).
 */

// A column pair's parameters for quantizeColumns, interleaved so one pointer reaches them all:
// scale[2] at +0, clip low[2] at +16, clip high[2] at +32, zero point + storage offset[2] at +48.
const PAIR_BYTES = 64;

/** Two values' storage bytes (lanes 0 and 1 of the result) from the floats at `src`. */
const pair = (src: string, scale: string, lo: string, hi: string, zp: string) => `
  (v128.xor (local.get $flip) (i8x16.narrow_i16x8_u
    (local.tee $q (i16x8.narrow_i32x4_s
      (i32x4.trunc_sat_f64x2_s_zero
        (f64x2.add
          (f64x2.nearest (f64x2.pmin ${hi} (f64x2.pmax ${lo} (f64x2.div (f64x2.promote_low_f32x4 (v128.load64_zero ${src})) ${scale}))))
          ${zp}))
      (local.get $zeros)))
    (local.get $q)))`;

export const DYNAMIC_KERNELS = `
(module
  (memory (export "memory") 1)

  ;; Minimum and maximum of $n floats at $src ($n a multiple of 8), as four lanes each (f32x4 at $out
  ;; and $out + 16); 0 when a value is NaN or ±Infinity (x − x is then not 0).
  (func (export "rangeAll") (param $src i32) (param $n i32) (param $out i32) (result i32)
    (local $end i32) (local $x v128) (local $y v128) (local $lo v128) (local $hi v128) (local $lo2 v128) (local $hi2 v128) (local $bad v128)
    (local.set $lo (f32x4.splat (f32.const inf)))
    (local.set $lo2 (local.get $lo))
    (local.set $hi (f32x4.splat (f32.const -inf)))
    (local.set $hi2 (local.get $hi))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done (loop $each
      (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
      (local.set $x (v128.load (local.get $src)))
      (local.set $y (v128.load offset=16 (local.get $src)))
      (local.set $lo (f32x4.pmin (local.get $lo) (local.get $x)))
      (local.set $hi (f32x4.pmax (local.get $hi) (local.get $x)))
      (local.set $lo2 (f32x4.pmin (local.get $lo2) (local.get $y)))
      (local.set $hi2 (f32x4.pmax (local.get $hi2) (local.get $y)))
      (local.set $bad (f32x4.add (local.get $bad) (f32x4.add (f32x4.sub (local.get $x) (local.get $x)) (f32x4.sub (local.get $y) (local.get $y)))))
      (local.set $src (i32.add (local.get $src) (i32.const 32)))
      (br $each)))
    (v128.store (local.get $out) (f32x4.pmin (local.get $lo) (local.get $lo2)))
    (v128.store offset=16 (local.get $out) (f32x4.pmax (local.get $hi) (local.get $hi2)))
    (i32x4.all_true (f32x4.eq (local.get $bad) (f32x4.splat (f32.const 0)))))

${COLUMN_MINMAX}

  ;; $n floats at $src ($n even) → storage bytes at $dst with one scale and zero point: clip x / scale
  ;; to [$lo, $hi] (qmin − zp, qmax − zp), round half to even, add $zp (+ 128 for int8, whose bytes
  ;; are then flipped back by $flipBits = 0x80808080: two's complement).
  (func (export "quantizeAll") (param $src i32) (param $n i32) (param $dst i32) (param $scale f64) (param $lo f64) (param $hi f64) (param $zp f64) (param $flipBits i32)
    (local $end i32) (local $s v128) (local $l v128) (local $h v128) (local $z v128) (local $flip v128) (local $zeros v128) (local $q v128)
    (local.set $s (f64x2.splat (local.get $scale)))
    (local.set $l (f64x2.splat (local.get $lo)))
    (local.set $h (f64x2.splat (local.get $hi)))
    (local.set $z (f64x2.splat (local.get $zp)))
    (local.set $flip (i32x4.splat (local.get $flipBits)))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done (loop $each
      (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
      (v128.store16_lane 0 (local.get $dst) ${pair('(local.get $src)', '(local.get $s)', '(local.get $l)', '(local.get $h)', '(local.get $z)')})
      (local.set $src (i32.add (local.get $src) (i32.const 8)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 2)))
      (br $each))))

  ;; $rows rows of $cols floats ($cols even) at $src → storage bytes at $dst, each column with its own
  ;; parameters: column pairs of PAIR_BYTES at $params (see quantizeAll for the arithmetic).
  (func (export "quantizeColumns") (param $src i32) (param $rows i32) (param $cols i32) (param $params i32) (param $dst i32) (param $flipBits i32)
    (local $pp i32) (local $end i32) (local $flip v128) (local $zeros v128) (local $q v128)
    (local.set $flip (i32x4.splat (local.get $flipBits)))
    (local.set $end (i32.add (local.get $params) (i32.mul (i32.shr_u (local.get $cols) (i32.const 1)) (i32.const ${PAIR_BYTES}))))
    (block $rows_done (loop $rows
      (br_if $rows_done (i32.eqz (local.get $rows)))
      (local.set $pp (local.get $params))
      (block $columns_done (loop $columns
        (br_if $columns_done (i32.ge_u (local.get $pp) (local.get $end)))
        (v128.store16_lane 0 (local.get $dst) ${pair('(local.get $src)', '(v128.load (local.get $pp))', '(v128.load offset=16 (local.get $pp))', '(v128.load offset=32 (local.get $pp))', '(v128.load offset=48 (local.get $pp))')})
        (local.set $src (i32.add (local.get $src) (i32.const 8)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 2)))
        (local.set $pp (i32.add (local.get $pp) (i32.const ${PAIR_BYTES})))
        (br $columns)))
      (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
      (br $rows))))
)`;

interface Kernels {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  rangeAll(src: number, n: number, out: number): number;
  minmax(src: number, rows: number, cols: number, stride: number, lo: number, hi: number): number;
  quantizeAll(src: number, n: number, dst: number, scale: number, lo: number, hi: number, zp: number, flipBits: number): void;
  quantizeColumns(src: number, rows: number, cols: number, params: number, dst: number, flipBits: number): void;
}

const instance = lazyModule<Kernels>(DYNAMIC_KERNELS); // per thread, on first use; null where SIMD is missing

/** Whether the kernels run on this engine. */
export function dynamicSimdAvailable(): boolean {
  return instance() !== null;
}

const align16 = (n: number) => Math.ceil(n / 16) * 16;

/** Memory laid out as [scratch: 64 B][params][lo][hi][input floats][output bytes], grown to fit. */
function layout(k: Kernels, paramsBytes: number, columnBytes: number, floats: number): { params: number; lo: number; hi: number; input: number; output: number; buffer: ArrayBuffer } {
  const params = 64;
  const lo = align16(params + paramsBytes);
  const hi = lo + columnBytes;
  const input = align16(hi + columnBytes);
  const output = align16(input + floats * 4 + 16);
  return { params, lo, hi, input, output, buffer: growMemory(k.memory, output + floats + 16) };
}

/**
 * Folds the minimum and maximum of values[0 … n) into lo[0]/hi[0] (as the scalar loop's `v < lo`,
 * `v > hi` would, up to which of −0 and 0 is kept, which no scale or zero point tells apart), n =
 * values.length rounded down to a multiple of 8 (the caller folds the rest). Returns n and whether
 * those values are finite, or null where SIMD is missing.
 */
export function rangeAllSimd(values: Float32Array, lo: Float64Array, hi: Float64Array): { n: number; finite: boolean } | null {
  const k = instance();
  if (!k) return null;
  const n = values.length & ~7;
  const at = layout(k, 0, 0, n);
  new Float32Array(at.buffer, at.input, n).set(values.subarray(0, n));
  const finite = k.rangeAll(at.input, n, 0) === 1;
  const lanes = new Float32Array(at.buffer, 0, 8);
  for (let i = 0; i < 4; i++) {
    if (lanes[i]! < lo[0]!) lo[0] = lanes[i]!;
    if (lanes[4 + i]! > hi[0]!) hi[0] = lanes[4 + i]!;
  }
  return { n, finite };
}

/**
 * Folds per-column minima and maxima of `rows` whole rows of a [·, N] weight into lo/hi (float64, one
 * per column). Returns whether every value is finite, or null where SIMD is missing.
 */
export function rangeColumnsSimd(values: Float32Array, rows: number, lo: Float64Array, hi: Float64Array): boolean | null {
  const k = instance();
  if (!k) return null;
  const N = lo.length;
  const cols4 = Math.ceil(N / 4) * 4;
  // a width not a multiple of 4 reads up to 3 floats past each row: the next row's (their lanes are
  // columns ≥ N, never read back), and past the last row 16 bytes of zeros
  const at = layout(k, 0, cols4 * 4, rows * N + 4);
  const input = new Float32Array(at.buffer, at.input, rows * N + 4);
  input.set(values.subarray(0, rows * N));
  input.fill(0, rows * N);
  const finite = k.minmax(at.input, rows, cols4, N * 4, at.lo, at.hi) === 1;
  const f32 = new Float32Array(at.buffer);
  for (let c = 0; c < N; c++) {
    const a = f32[at.lo / 4 + c]!;
    const b = f32[at.hi / 4 + c]!;
    if (a < lo[c]!) lo[c] = a;
    if (b > hi[c]!) hi[c] = b;
  }
  return finite;
}

/** int8: values are stored +128 and their bytes flipped back (two's complement); uint8 as they are. */
const storage = (signed: boolean) => ({ offset: signed ? 128 : 0, flip: signed ? 0x80808080 | 0 : 0 });

/**
 * quantizeRun (dynamic.ts) over values[0 … n) into out[outAt …] with one scale and zero point, n =
 * values.length rounded down to even (the caller quantizes the odd last value); -1 where SIMD is missing.
 */
export function quantizeAllSimd(values: Float32Array, out: Uint8Array, outAt: number, scale: number, zeroPoint: number, qmin: number, qmax: number): number {
  const k = instance();
  if (!k) return -1;
  const n = values.length & ~1;
  const at = layout(k, 0, 0, n);
  new Float32Array(at.buffer, at.input, n).set(values.subarray(0, n));
  const { offset, flip } = storage(qmin < 0);
  k.quantizeAll(at.input, n, at.output, scale, qmin - zeroPoint, qmax - zeroPoint, zeroPoint + offset, flip);
  out.set(new Uint8Array(at.buffer, at.output, n), outAt);
  return n;
}

/** Per-column parameters of a [K, N] weight laid out for quantizeColumns, made once per weight. */
export interface ColumnParams { N: number; bytes: Float64Array; flip: number }

export function columnParams(scales: Float64Array, zeroPoints: Float64Array, qmin: number, qmax: number): ColumnParams {
  const N = scales.length;
  const pairs = Math.ceil(N / 2);
  const bytes = new Float64Array(pairs * (PAIR_BYTES / 8));
  const { offset, flip } = storage(qmin < 0);
  for (let c = 0; c < pairs * 2; c++) {
    const real = c < N;
    const p = (c >> 1) * (PAIR_BYTES / 8) + (c & 1);
    const zp = real ? zeroPoints[c]! : 0;
    bytes[p] = real ? scales[c]! : 1;
    bytes[p + 2] = qmin - zp;
    bytes[p + 4] = qmax - zp;
    bytes[p + 6] = zp + offset;
  }
  return { N, bytes, flip };
}

/**
 * `rows` whole rows of a [K, N] weight into out[outAt …], each column with its own scale and zero
 * point (the per-column loop of dynamic.ts quantizeInto); false where SIMD is missing.
 */
export function quantizeColumnsSimd(values: Float32Array, rows: number, params: ColumnParams, out: Uint8Array, outAt: number): boolean {
  const k = instance();
  if (!k) return false;
  const { N } = params;
  const even = N + (N & 1);
  const at = layout(k, params.bytes.byteLength, 0, rows * even);
  new Float64Array(at.buffer, at.params, params.bytes.length).set(params.bytes);
  const input = new Float32Array(at.buffer, at.input, rows * even);
  if (even === N) input.set(values.subarray(0, rows * N));
  else for (let r = 0; r < rows; r++) input.set(values.subarray(r * N, r * N + N), r * even); // an odd width: one spare column per row
  k.quantizeColumns(at.input, rows, even, at.params, at.output, params.flip);
  const bytes = new Uint8Array(at.buffer, at.output, rows * even);
  if (even === N) out.set(bytes, outAt);
  else for (let r = 0; r < rows; r++) out.set(bytes.subarray(r * even, r * even + N), outAt + r * N);
  return true;
}
