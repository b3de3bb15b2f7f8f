/**
 * Element types as they appear in data files (a superset of the model dtypes: npy and TensorProto
 * also carry uint32/uint64), with conversion to what the model takes.
 */
import type { HostDType, HostTensor } from './types.ts';
import { float16BitsToNumber, float32ToFloat16Bits } from './float16.ts';

export type ElemType = HostDType | 'uint32' | 'uint64';
export type ElemArray = HostTensor['data'] | Uint32Array | BigUint64Array;

export const ELEM_BYTES: Record<ElemType, number> = {
  float32: 4, float16: 2, float64: 8, uint8: 1, int8: 1, uint16: 2, int16: 2, int32: 4, int64: 8, bool: 1,
  uint32: 4, uint64: 8,
};

export function isFloatType(t: ElemType): boolean {
  return t === 'float32' || t === 'float16' || t === 'float64';
}

export function allocElems(type: ElemType, n: number): ElemArray {
  switch (type) {
    case 'float32': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
    case 'float16': case 'uint16': return new Uint16Array(n);
    case 'uint8': case 'bool': return new Uint8Array(n);
    case 'int8': return new Int8Array(n);
    case 'int16': return new Int16Array(n);
    case 'int32': return new Int32Array(n);
    case 'int64': return new BigInt64Array(n);
    case 'uint32': return new Uint32Array(n);
    case 'uint64': return new BigUint64Array(n);
  }
}

/**
 * Typed elements from little-endian bytes. The bytes are copied into a fresh, aligned buffer: file
 * reads land at arbitrary offsets and typed arrays need element alignment.
 */
export function elemsFromBytes(type: ElemType, bytes: Uint8Array, bigEndian = false): ElemArray {
  const size = ELEM_BYTES[type];
  const n = Math.floor(bytes.length / size);
  const out = allocElems(type, n);
  const dst = new Uint8Array(out.buffer, out.byteOffset, n * size);
  dst.set(bytes.subarray(0, n * size));
  if (bigEndian && size > 1) {
    for (let i = 0; i < dst.length; i += size) dst.subarray(i, i + size).reverse();
  }
  return out;
}

/** Element i as a JavaScript number (float16 bits decoded, 64-bit integers through Number). */
export function elemAsNumber(type: ElemType, arr: ElemArray, i: number): number {
  const v = arr[i]!;
  if (typeof v === 'bigint') return Number(v);
  return type === 'float16' ? float16BitsToNumber(v) : v;
}

const INT_RANGE: Partial<Record<HostDType, [number, number]>> = {
  uint8: [0, 255], int8: [-128, 127], uint16: [0, 65535], int16: [-32768, 32767],
  int32: [-2147483648, 2147483647], bool: [0, 1],
};

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Writes a number into a model-typed array: floats stored (float16 as RNE bits), integers rounded and clamped. */
export function storeNumber(type: HostDType, out: HostTensor['data'], i: number, v: number): void {
  if (type === 'float16') { out[i] = float32ToFloat16Bits(v); return; }
  if (type === 'float32' || type === 'float64') { out[i] = v; return; }
  if (type === 'bool') { out[i] = v !== 0 ? 1 : 0; return; }
  if (type === 'int64') {
    (out as BigInt64Array)[i] = Number.isFinite(v) ? BigInt(roundHalfEven(v)) : 0n;
    return;
  }
  const [lo, hi] = INT_RANGE[type]!;
  out[i] = Number.isNaN(v) ? 0 : Math.min(hi, Math.max(lo, roundHalfEven(v)));
}

export function allocHost(type: HostDType, n: number): HostTensor['data'] {
  return allocElems(type, n) as HostTensor['data'];
}
