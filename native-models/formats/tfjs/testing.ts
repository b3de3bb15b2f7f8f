import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Tests check the reader, the passes and the writer against this second, deliberately naive
 * decoding of model.json + shards: its own JSON walk, its own offsets, its own dequantization
 * (q·scale + min rounded to float32, as tfjs-core io_utils does). It shares no code with read.ts.
 */
export interface IndependentWeight {
  name: string;
  shape: number[];
  dtype: string;
  quantization: { dtype: string; min?: number; scale?: number } | null;
  /** Stored codes for uint8/uint16, half bits for float16, else null. */
  codes: number[] | null;
  /** The values TF.js loads (float weights); null for other dtypes. */
  values: Float32Array | null;
  byteLength: number;
}

export function readWeightsIndependently(modelJson: string): IndependentWeight[] {
  const doc = JSON.parse(readFileSync(modelJson, 'utf8')) as { weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string; quantization?: { dtype: string; min?: number; scale?: number } }[] }[] };
  const out: IndependentWeight[] = [];
  for (const group of doc.weightsManifest) {
    const bytes = Buffer.concat(group.paths.map((p) => readFileSync(join(dirname(modelJson), p))));
    let offset = 0;
    for (const w of group.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      const q = w.quantization ?? null;
      if (q && (q.dtype === 'uint8' || q.dtype === 'uint16')) {
        const size = q.dtype === 'uint8' ? 1 : 2;
        const codes = Array.from({ length: n }, (_, i) => (size === 1 ? bytes[offset + i]! : bytes.readUInt16LE(offset + 2 * i)));
        const values = Float32Array.from(codes, (c) => Math.fround(q.min! + c * q.scale!));
        out.push({ name: w.name, shape: w.shape, dtype: w.dtype, quantization: q, codes, values, byteLength: n * size });
        offset += n * size;
      } else if (q?.dtype === 'float16') {
        const codes = Array.from({ length: n }, (_, i) => bytes.readUInt16LE(offset + 2 * i));
        const values = Float32Array.from(codes, halfBitsToNumber);
        out.push({ name: w.name, shape: w.shape, dtype: w.dtype, quantization: q, codes, values, byteLength: n * 2 });
        offset += n * 2;
      } else if (w.dtype === 'float32') {
        const values = Float32Array.from({ length: n }, (_, i) => bytes.readFloatLE(offset + 4 * i));
        out.push({ name: w.name, shape: w.shape, dtype: w.dtype, quantization: null, codes: null, values, byteLength: n * 4 });
        offset += n * 4;
      } else {
        const byteLength = w.dtype === 'string' ? stringBytes(bytes, offset, n) : n * (w.dtype === 'bool' ? 1 : w.dtype === 'complex64' ? 8 : 4);
        out.push({ name: w.name, shape: w.shape, dtype: w.dtype, quantization: null, codes: null, values: null, byteLength });
        offset += byteLength;
      }
    }
  }
  return out;
}

function stringBytes(bytes: Buffer, offset: number, n: number): number {
  let at = offset;
  for (let i = 0; i < n; i++) at += 4 + bytes.readUInt32LE(at);
  return at - offset;
}

function halfBitsToNumber(h: number): number {
  const sign = h >> 15 ? -1 : 1;
  const exponent = (h >> 10) & 31;
  const fraction = h & 1023;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}
