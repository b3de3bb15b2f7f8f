import { quantParamsInto, roundHalfEven } from '../../jobs/quantize-kernels.mjs';

/**
 * Quantization arithmetic exactly as onnxruntime expects it (SPEC §8): ranges widened to include
 * zero, scale and zero point computed in float64, round half to even, clamping to the type's range.
 * roundHalfEven and quantParamsInto (quantParams into a reused object) live in
 * core/jobs/quantize-kernels.mjs, which worker threads run too: one implementation.
 */
export { quantParamsInto, roundHalfEven };

/**
 * 'int7' is onnxruntime's reduce_range for int8 weights: stored as int8 but kept in [-64, 64], so
 * that on x86 CPUs without VNNI the u8×s8 kernels (vpmaddubsw, which adds two products in a
 * saturating int16) cannot saturate: 2·255·64 = 32,640 < 32,767. uint8 weights need none: onnxruntime
 * multiplies u8×u8 in 16 bits.
 */
export type QuantType = 'uint8' | 'int8' | 'uint4' | 'int4' | 'int7';

/** [qmin, qmax] of a type; symmetric signed types drop the most negative value (int8: ±127). */
export function quantRange(type: QuantType, symmetric = false): [number, number] {
  switch (type) {
    case 'uint8': return [0, 255];
    case 'int8': return symmetric ? [-127, 127] : [-128, 127];
    case 'uint4': return [0, 15];
    case 'int4': return symmetric ? [-7, 7] : [-8, 7];
    case 'int7': return [-64, 64];
  }
}

export interface QuantParams {
  /** As stored (float32). */
  scale: number;
  zeroPoint: number;
}

/**
 * Scale and zero point for values in [rmin, rmax]. Symmetric uses ±max|x| (zero point 0 for signed
 * types, the middle of the range for unsigned ones). A range too small to divide (or not finite)
 * gives scale 1, zero point 0 — the tiny-range rule onnxruntime's quantizer follows.
 */
export function quantParams(rmin: number, rmax: number, type: QuantType, symmetric = false): QuantParams {
  return quantParamsInto(rmin, rmax, type, symmetric, { scale: 0, zeroPoint: 0 });
}

/** q = clip(round(x / scale) + zp): the division in float64 over the stored float32 scale. */
export function quantizeValue(x: number, scale: number, zeroPoint: number, qmin: number, qmax: number): number {
  const q = roundHalfEven(x / scale) + zeroPoint;
  return q < qmin ? qmin : q > qmax ? qmax : q;
}

export function quantizeArray(values: ArrayLike<number>, p: QuantParams, type: QuantType, symmetric = false, out?: Int32Array): Int32Array {
  const [qmin, qmax] = quantRange(type, symmetric);
  const result = out ?? new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) result[i] = quantizeValue(values[i]!, p.scale, p.zeroPoint, qmin, qmax);
  return result;
}

/** Min and max over a slice, ignoring nothing: NaN makes the caller's check fail loudly. */
export function minMax(values: ArrayLike<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/**
 * Per-channel parameters along `axis` of a tensor with `dims`: one (min, max) per index of that axis.
 * Returns the ranges; the caller turns each into QuantParams.
 */
export function channelRanges(values: Float32Array, dims: number[], axis: number): { min: Float64Array; max: Float64Array } {
  const channels = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const min = new Float64Array(channels).fill(Infinity);
  const max = new Float64Array(channels).fill(-Infinity);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      const base = (o * channels + c) * inner;
      let lo = min[c]!;
      let hi = max[c]!;
      for (let i = 0; i < inner; i++) {
        const v = values[base + i]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      min[c] = lo;
      max[c] = hi;
    }
  }
  return { min, max };
}

/** Packs 4-bit values two per byte, low nibble first (SPEC §8, and ONNX int4/uint4 raw_data). */
export function packNibbles(q: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(Math.ceil(q.length / 2));
  for (let i = 0; i < q.length; i++) out[i >> 1]! |= (q[i]! & 0xf) << ((i & 1) * 4);
  return out;
}
