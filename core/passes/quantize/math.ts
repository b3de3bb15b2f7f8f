/**
 * Quantization arithmetic exactly as onnxruntime expects it (SPEC §8): ranges widened to include
 * zero, scale and zero point computed in float64, round half to even, clamping to the type's range.
 */
export type QuantType = 'uint8' | 'int8' | 'uint4' | 'int4';

/** Round half to even (numpy.rint / std::nearbyint); Math.round rounds halves up. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** [qmin, qmax] of a type; symmetric signed types drop the most negative value (int8: ±127). */
export function quantRange(type: QuantType, symmetric = false): [number, number] {
  switch (type) {
    case 'uint8': return [0, 255];
    case 'int8': return symmetric ? [-127, 127] : [-128, 127];
    case 'uint4': return [0, 15];
    case 'int4': return symmetric ? [-7, 7] : [-8, 7];
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

/** quantParams into an object the caller reuses (block quantizers call it once per block). */
export function quantParamsInto(rmin: number, rmax: number, type: QuantType, symmetric: boolean, out: QuantParams): QuantParams {
  let lo = Math.min(rmin, 0);
  let hi = Math.max(rmax, 0);
  // quantRange without its array (this runs once per block: hundreds of thousands of times)
  const qmin = type === 'uint8' || type === 'uint4' ? 0 : type === 'int8' ? (symmetric ? -127 : -128) : symmetric ? -7 : -8;
  const qmax = type === 'uint8' ? 255 : type === 'int8' ? 127 : type === 'uint4' ? 15 : 7;
  if (symmetric) {
    const m = Math.max(Math.abs(lo), Math.abs(hi));
    lo = -m;
    hi = m;
  }
  const scale64 = (hi - lo) / (qmax - qmin);
  if (!Number.isFinite(scale64) || scale64 < 1e-30 || Math.fround(scale64) === 0) {
    out.scale = 1;
    out.zeroPoint = type === 'uint8' && symmetric ? 128 : type === 'uint4' && symmetric ? 8 : 0;
    return out;
  }
  out.scale = Math.fround(scale64);
  if (symmetric) out.zeroPoint = type === 'uint8' ? 128 : type === 'uint4' ? 8 : 0;
  else out.zeroPoint = Math.min(qmax, Math.max(qmin, roundHalfEven(qmin - lo / scale64)));
  return out;
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
