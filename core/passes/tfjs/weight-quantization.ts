import type { TfjsWeight, WeightQuantization } from '../../../native-models/formats/tfjs/index.ts';
import { minMax } from '../quantize/math.ts';

/**
 * TF.js weight quantization as the converter writes it (tensorflowjs `quantization.py`,
 * `quantize_weights`): per tensor, affine, with the range nudged so that 0 is exactly representable
 * whenever the weights span it (zero padding and pruned weights stay exactly zero):
 *
 *   scale = (max − min) / qmax                      float64, qmax = 255 (uint8) or 65535 (uint16)
 *   if min ≤ 0 ≤ max:  zp = round(−min / scale);  min' = −zp·scale;  max' = qmax·scale + min'
 *   q = round((clip(x, min', max') − min') / scale)
 *   stored metadata: {min: min', scale}; TF.js dequantizes q·scale + min' at load
 *
 * The converter runs this with numpy 1.x, whose value-based casting keeps the element-wise part in
 * float32 (the float64 scalars min', max', scale are rounded to float32 against the float32 array);
 * round() is numpy's half-to-even. All-equal weights: every code 0, scale 1, min the value.
 * float16 is numpy's astype(float16): round to nearest even.
 */

export type AffineDtype = 'uint8' | 'uint16';

export const QMAX: Record<AffineDtype, number> = { uint8: 255, uint16: 65535 };

/** Round half to even (numpy's round), not Math.round's half-up. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface AffineQuantized {
  codes: Uint8Array | Uint16Array;
  min: number;
  scale: number;
}

/** The converter's quantize_weights for uint8/uint16. `values` must be finite. */
export function quantizeAffine(values: Float32Array, dtype: AffineDtype): AffineQuantized {
  const codes = dtype === 'uint8' ? new Uint8Array(values.length) : new Uint16Array(values.length);
  const [lo, hi] = minMax(values);
  if (values.length === 0) return { codes, min: 0, scale: 1 };
  if (lo === hi) return { codes, min: lo, scale: 1 };
  const qmax = QMAX[dtype];
  const scale = (hi - lo) / qmax;
  let min = lo;
  let max = hi;
  if (lo <= 0 && 0 <= hi) {
    const zeroPoint = roundHalfEven((0 - lo) / scale);
    min = -zeroPoint * scale;
    max = qmax * scale + min;
  }
  const fmin = Math.fround(min);
  const fmax = Math.fround(max);
  const fscale = Math.fround(scale);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const clipped = v < fmin ? fmin : v > fmax ? fmax : v;
    codes[i] = roundHalfEven(Math.fround(Math.fround(clipped - fmin) / fscale));
  }
  return { codes, min, scale };
}

/** The code whose dequantized value is exactly 0 in TF.js (q·scale + min, as float32), or null. */
export function exactZeroCode(q: WeightQuantization): number | null {
  if (q.dtype === 'float16') return 0;
  const { min, scale } = q as Required<Pick<WeightQuantization, 'min' | 'scale'>>;
  const z = Math.round(-min / scale);
  return z >= 0 && z <= QMAX[q.dtype] && Math.fround(z * scale + min) === 0 ? z : null;
}

/** Stores `values` in `weight` quantized the converter's way (keeping the manifest's key order). */
export function storeQuantized(weight: TfjsWeight, values: Float32Array, dtype: AffineDtype | 'float16'): void {
  if (dtype === 'float16') {
    weight.setFloat16(values);
    return;
  }
  const { codes, min, scale } = quantizeAffine(values, dtype);
  weight.replace(new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength), { dtype, min, scale, original_dtype: 'float32' });
}
