// Numeric kernels the worker pool runs (and the engine runs inline for small inputs). Plain
// JavaScript on purpose: worker threads start without a TypeScript loader (about 30 ms instead of
// a second), and the same code serves both sides. Types: pool-kernels.d.mts.

import { quantizeBlocksFromFile } from './quantize-kernels.mjs';

// ONNX TensorProto.DataType codes (native-models/ir/dtypes.ts)
const FLOAT = 1, UINT8 = 2, INT8 = 3, UINT16 = 4, INT16 = 5, INT32 = 6, INT64 = 7, BOOL = 9, FLOAT16 = 10,
  DOUBLE = 11, UINT32 = 12, UINT64 = 13, BFLOAT16 = 16, UINT4 = 21, INT4 = 22;

export const DECODABLE_TYPES = [FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, BOOL, FLOAT16, DOUBLE, UINT32, UINT64, BFLOAT16, UINT4, INT4];

const HALF_BITS = new Uint32Array(1);
const HALF_FLOAT = new Float32Array(HALF_BITS.buffer);

function halfToFloat(h) {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return (sign ? -1 : 1) * mant * 2 ** -24; // zero and subnormals
  if (exp === 31) HALF_BITS[0] = sign | 0x7f800000 | (mant << 13); // inf, NaN
  else HALF_BITS[0] = sign | ((exp + 112) << 23) | (mant << 13);
  return HALF_FLOAT[0];
}

/**
 * Little-endian tensor bytes as float32 values. `elements` bounds 4-bit data, whose last byte may
 * hold a padding nibble. The bytes must start on an element boundary (they are a fresh copy).
 */
export function decodeToFloat32(dataType, bytes, elements) {
  const buf = bytes.buffer, off = bytes.byteOffset;
  switch (dataType) {
    case FLOAT: return new Float32Array(buf, off, bytes.byteLength / 4);
    case DOUBLE: return Float32Array.from(new Float64Array(buf, off, bytes.byteLength / 8));
    case FLOAT16: {
      const h = new Uint16Array(buf, off, bytes.byteLength / 2);
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = halfToFloat(h[i]);
      return out;
    }
    case BFLOAT16: {
      const h = new Uint16Array(buf, off, bytes.byteLength / 2);
      const bits = new Uint32Array(h.length);
      for (let i = 0; i < h.length; i++) bits[i] = h[i] << 16;
      return new Float32Array(bits.buffer);
    }
    case INT8: return Float32Array.from(new Int8Array(buf, off, bytes.byteLength));
    case UINT8: case BOOL: return Float32Array.from(bytes);
    case INT16: return Float32Array.from(new Int16Array(buf, off, bytes.byteLength / 2));
    case UINT16: return Float32Array.from(new Uint16Array(buf, off, bytes.byteLength / 2));
    case INT32: return Float32Array.from(new Int32Array(buf, off, bytes.byteLength / 4));
    case UINT32: return Float32Array.from(new Uint32Array(buf, off, bytes.byteLength / 4));
    case INT64: return Float32Array.from(new BigInt64Array(buf, off, bytes.byteLength / 8), Number);
    case UINT64: return Float32Array.from(new BigUint64Array(buf, off, bytes.byteLength / 8), Number);
    case INT4: case UINT4: {
      const n = Math.min(elements ?? bytes.length * 2, bytes.length * 2);
      const out = new Float32Array(n);
      const signed = dataType === INT4;
      for (let i = 0; i < n; i++) {
        let v = (bytes[i >> 1] >> ((i & 1) * 4)) & 0xf;
        if (signed && v > 7) v -= 16;
        out[i] = v;
      }
      return out;
    }
    default: throw new Error(`cannot decode tensor data of type ${dataType}`);
  }
}

/** Smallest and largest finite value, zeros (+0 and −0) and non-finite values. */
export function rangeOf(values) {
  let min = Infinity, max = -Infinity, zeros = 0, nonFinite = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === 0) zeros++;
    if (v !== v || v === Infinity || v === -Infinity) { nonFinite++; continue; }
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max, zeros, nonFinite, count: values.length };
}

/** Counts of finite values in `bins` equal bins over [lo, hi]; hi itself falls in the last bin. */
export function histogramOf(values, lo, hi, bins) {
  const counts = new Float64Array(bins);
  const scale = hi > lo ? bins / (hi - lo) : 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(v >= lo && v <= hi)) continue; // NaN, ±Infinity and anything outside
    let b = Math.floor((v - lo) * scale);
    if (b >= bins) b = bins - 1;
    counts[b]++;
  }
  return counts;
}

/** Burns CPU for `ms` milliseconds: lets tests cancel a task that is really running. */
export function spin(ms) {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) x++;
  return x;
}

/** The tasks a pool worker runs, by name: each takes one plain input and returns one result. */
export const TASKS = {
  range: ({ dataType, bytes, elements }) => rangeOf(decodeToFloat32(dataType, bytes, elements)),
  histogram: ({ dataType, bytes, elements, lo, hi, bins }) => histogramOf(decodeToFloat32(dataType, bytes, elements), lo, hi, bins),
  spin: ({ ms }) => spin(ms),
  // weight-only int4/int8 of weights still in their files (core/passes/quantize/weight-only.ts)
  quantizeBlocks: ({ weights }) => weights.map(quantizeBlocksFromFile),
};
