import { growMemory, lazyModule } from '../../jobs/wasm-assembler.mjs';

/**
 * float32 → float16 with the fp16 pass's clamping (fp16.ts toHalfClampedInto), eight values at a
 * time in WebAssembly SIMD: the same bits as the scalar loop (fp16-simd.test.ts checks every class of
 * value and random bit patterns) at a fraction of its time — the scalar loop was 454 of the 640 ms
 * that converting a 67 M-parameter model took (issue 3's bar: within 3× a plain read+write).
 *
 * Per lane, on the float32 bits x (abs = x without its sign):
 *   normal half (abs ≥ 2^-14): rebias the exponent, round at bit 13 (+0xfff + the kept lsb), shift;
 *   subnormal half: nearest(|x|·2^24) — exact in float32 (a power-of-two scaling of a value < 2^-14),
 *     ties to even like the scalar RNE trick;
 *   0 < abs < lowBits: the smallest magnitude kept (lowHalf), counted; zero stays zero;
 *   abs > highBits: highHalf, counted; NaN (abs > 0x7f800000): 0x7e00 without the sign, counted apart.
 */
const lane = (x: string, h: string) => `
    (local.set $abs (v128.and ${x} (i32x4.splat (i32.const 0x7fffffff))))
    (local.set $zero (i32x4.eq (local.get $abs) (i32x4.splat (i32.const 0))))
    (local.set ${h} (v128.bitselect
      (i32x4.shr_u
        (i32x4.add
          (i32x4.add (local.get $abs) (i32x4.splat (i32.const 0xc8000fff)))
          (v128.and (i32x4.shr_u (local.get $abs) (i32.const 13)) (i32x4.splat (i32.const 1))))
        (i32.const 13))
      (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (local.get $abs) (f32x4.splat (f32.const 16777216)))))
      (i32x4.ge_u (local.get $abs) (i32x4.splat (i32.const 0x38800000)))))
    (local.set $m (i32x4.lt_u (local.get $abs) (local.get $lowBits)))
    (local.set ${h} (v128.bitselect (v128.andnot (local.get $lowHalf) (local.get $zero)) (local.get ${h}) (local.get $m)))
    (local.set $low (i32x4.sub (local.get $low) (v128.andnot (local.get $m) (local.get $zero))))
    (local.set $m (i32x4.gt_u (local.get $abs) (local.get $highBits)))
    (local.set ${h} (v128.bitselect (local.get $highHalf) (local.get ${h}) (local.get $m)))
    (local.set $high (i32x4.sub (local.get $high) (local.get $m)))
    (local.set ${h} (v128.or (local.get ${h}) (v128.and (i32x4.shr_u ${x} (i32.const 16)) (i32x4.splat (i32.const 0x8000)))))
    (local.set $m (i32x4.gt_u (local.get $abs) (i32x4.splat (i32.const 0x7f800000))))
    (local.set ${h} (v128.bitselect (i32x4.splat (i32.const 0x7e00)) (local.get ${h}) (local.get $m)))
    (local.set $nan (i32x4.sub (local.get $nan) (local.get $m)))`;

export const HALF_KERNEL = `
(module
  (memory (export "memory") 1)
  ;; $n (a multiple of 8) float32 values at $src → float16 bits at $dst; per-lane counts of the values
  ;; clamped up (low), clamped down or NaN (high) and NaN (nan) as three i32x4 at $counts
  (func (export "toHalf") (param $src i32) (param $n i32) (param $dst i32) (param $counts i32)
      (param $lowBitsScalar i32) (param $lowHalfScalar i32) (param $highBitsScalar i32) (param $highHalfScalar i32)
    (local $end i32) (local $abs v128) (local $zero v128) (local $m v128) (local $a v128) (local $b v128)
    (local $low v128) (local $high v128) (local $nan v128)
    (local $lowBits v128) (local $lowHalf v128) (local $highBits v128) (local $highHalf v128)
    (local.set $lowBits (i32x4.splat (local.get $lowBitsScalar)))
    (local.set $lowHalf (i32x4.splat (local.get $lowHalfScalar)))
    (local.set $highBits (i32x4.splat (local.get $highBitsScalar)))
    (local.set $highHalf (i32x4.splat (local.get $highHalfScalar)))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done (loop $each
      (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
      ${lane('(v128.load (local.get $src))', '$a')}
      ${lane('(v128.load offset=16 (local.get $src))', '$b')}
      (v128.store (local.get $dst) (i16x8.narrow_i32x4_u (local.get $a) (local.get $b)))
      (local.set $src (i32.add (local.get $src) (i32.const 32)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
      (br $each)))
    (v128.store (local.get $counts) (local.get $low))
    (v128.store offset=16 (local.get $counts) (local.get $high))
    (v128.store offset=32 (local.get $counts) (local.get $nan))))`;

interface HalfKernel { memory: { buffer: ArrayBuffer; grow(pages: number): number }; toHalf: (src: number, n: number, dst: number, counts: number, lowBits: number, lowHalf: number, highBits: number, highHalf: number) => void }

const instance = lazyModule<HalfKernel>(HALF_KERNEL); // per thread, on first use; null where SIMD is missing

/** The clamping bounds of toHalfClampedInto, as float32 and float16 bits. */
export interface HalfClamp { lowBits: number; lowHalf: number; highBits: number; highHalf: number }

/**
 * Converts values[0 … n8) with n8 = values.length rounded down to a multiple of 8 into out[at …] and
 * returns the counts, or null where SIMD is missing (the caller's scalar loop then does it all).
 * The caller converts the last values.length − n8 itself.
 */
export function toHalfClampedSimd(values: Float32Array, out: Uint16Array, at: number, clamp: HalfClamp): { n: number; low: number; high: number; nan: number } | null {
  const k = instance();
  if (!k) return null;
  const n = values.length & ~7;
  const counts = 0;
  const src = 64;
  const dst = src + n * 4;
  const buffer = growMemory(k.memory, dst + n * 2);
  new Float32Array(buffer, src, n).set(values.subarray(0, n));
  k.toHalf(src, n, dst, counts, clamp.lowBits, clamp.lowHalf, clamp.highBits, clamp.highHalf);
  out.set(new Uint16Array(buffer, dst, n), at);
  const c = new Int32Array(buffer, counts, 12);
  const sum = (from: number) => c[from]! + c[from + 1]! + c[from + 2]! + c[from + 3]!;
  const nan = sum(8);
  return { n, low: sum(0), high: sum(4) - nan, nan };
}
