/** ONNX TensorProto.DataType values and what the engine needs to know about each. */
export const DataType = {
  UNDEFINED: 0, FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8,
  BOOL: 9, FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, COMPLEX64: 14, COMPLEX128: 15,
  BFLOAT16: 16, FLOAT8E4M3FN: 17, FLOAT8E4M3FNUZ: 18, FLOAT8E5M2: 19, FLOAT8E5M2FNUZ: 20,
  UINT4: 21, INT4: 22, FLOAT4E2M1: 23, FLOAT8E8M0: 24, UINT2: 25, INT2: 26,
} as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

interface DTypeInfo {
  name: string; // the short name used in JSON output and by onnxruntime-node
  bits: number; // storage bits per element in raw_data (0: strings)
  float: boolean;
}

const INFO: Record<number, DTypeInfo> = {
  [DataType.FLOAT]: { name: 'float32', bits: 32, float: true },
  [DataType.UINT8]: { name: 'uint8', bits: 8, float: false },
  [DataType.INT8]: { name: 'int8', bits: 8, float: false },
  [DataType.UINT16]: { name: 'uint16', bits: 16, float: false },
  [DataType.INT16]: { name: 'int16', bits: 16, float: false },
  [DataType.INT32]: { name: 'int32', bits: 32, float: false },
  [DataType.INT64]: { name: 'int64', bits: 64, float: false },
  [DataType.STRING]: { name: 'string', bits: 0, float: false },
  [DataType.BOOL]: { name: 'bool', bits: 8, float: false },
  [DataType.FLOAT16]: { name: 'float16', bits: 16, float: true },
  [DataType.DOUBLE]: { name: 'float64', bits: 64, float: true },
  [DataType.UINT32]: { name: 'uint32', bits: 32, float: false },
  [DataType.UINT64]: { name: 'uint64', bits: 64, float: false },
  [DataType.COMPLEX64]: { name: 'complex64', bits: 64, float: true },
  [DataType.COMPLEX128]: { name: 'complex128', bits: 128, float: true },
  [DataType.BFLOAT16]: { name: 'bfloat16', bits: 16, float: true },
  [DataType.FLOAT8E4M3FN]: { name: 'float8e4m3fn', bits: 8, float: true },
  [DataType.FLOAT8E4M3FNUZ]: { name: 'float8e4m3fnuz', bits: 8, float: true },
  [DataType.FLOAT8E5M2]: { name: 'float8e5m2', bits: 8, float: true },
  [DataType.FLOAT8E5M2FNUZ]: { name: 'float8e5m2fnuz', bits: 8, float: true },
  [DataType.UINT4]: { name: 'uint4', bits: 4, float: false },
  [DataType.INT4]: { name: 'int4', bits: 4, float: false },
  [DataType.FLOAT4E2M1]: { name: 'float4e2m1', bits: 4, float: true },
  [DataType.FLOAT8E8M0]: { name: 'float8e8m0', bits: 8, float: true },
  [DataType.UINT2]: { name: 'uint2', bits: 2, float: false },
  [DataType.INT2]: { name: 'int2', bits: 2, float: false },
};

export function isKnownDataType(code: number): boolean {
  return INFO[code] !== undefined;
}

export function dtypeName(code: number): string {
  return INFO[code]?.name ?? `dtype(${code})`;
}

export function dtypeCode(name: string): DataTypeCode {
  for (const [code, info] of Object.entries(INFO)) if (info.name === name) return Number(code) as DataTypeCode;
  throw new Error(`unknown dtype name ${name}`);
}

export function isFloatType(code: number): boolean {
  return INFO[code]?.float ?? false;
}

export function bitsPerElement(code: number): number {
  return INFO[code]?.bits ?? 0;
}

/** Bytes that `count` elements take in raw_data: sub-byte types are packed, low bits first. */
export function rawByteLength(code: number, count: number): number {
  return Math.ceil((count * bitsPerElement(code)) / 8);
}

/** float16 bits → float32 value (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → float16 bits, rounding to nearest even (what numpy and onnxruntime do). */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

export function bfloat16ToFloat(b: number): number {
  u32[0] = b << 16;
  return f32[0]!;
}
