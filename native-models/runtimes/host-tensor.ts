/**
 * A tensor in host memory, independent of any runtime: what datasets produce, what metrics read and
 * what crosses worker/process boundaries (typed arrays transfer cheaply). float16 is carried as its
 * raw bits in a Uint16Array because Node 20 has no Float16Array.
 */
import { halfToFloat } from '../ir/dtypes.ts';
export interface HostTensorData {
  float32: Float32Array;
  float16: Uint16Array;
  float64: Float64Array;
  uint8: Uint8Array;
  int8: Int8Array;
  uint16: Uint16Array;
  int16: Int16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  bool: Uint8Array;
}
export type HostDtype = keyof HostTensorData;

/** A tagged union, so `t.dtype === 'int64'` narrows `t.data` to BigInt64Array. */
export type HostTensor = { [D in HostDtype]: { dtype: D; dims: number[]; data: HostTensorData[D] } }[HostDtype];

type TypedArrayConstructor = { new (length: number): HostTensorData[HostDtype]; readonly name: string };

export const HOST_DTYPES: Record<HostDtype, TypedArrayConstructor> = {
  float32: Float32Array,
  float16: Uint16Array,
  float64: Float64Array,
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  bool: Uint8Array,
};

export function isHostDtype(s: string): s is HostDtype {
  return Object.hasOwn(HOST_DTYPES, s);
}

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Why `t` is malformed (wrong array type or length for its dims), or null when it is sound. */
export function hostTensorProblem(t: HostTensor): string | null {
  const ctor = HOST_DTYPES[t.dtype];
  if (!ctor) return `unknown dtype "${String(t.dtype)}"`;
  if (!(t.data instanceof ctor)) return `${t.dtype} data must be a ${ctor.name}, got ${t.data?.constructor?.name ?? typeof t.data}`;
  if (!t.dims.every((d) => Number.isInteger(d) && d >= 0)) return `dims must be non-negative integers, got [${t.dims.join(',')}]`;
  const n = elementCount(t.dims);
  if (t.data.length !== n) return `dims [${t.dims.join(',')}] need ${n} elements, data has ${t.data.length}`;
  return null;
}

/** IEEE 754 half-precision bits to a number (subnormals, infinities and NaN included). */
export const float16BitsToNumber = halfToFloat;

/** A numeric view for metrics: float32/float64 as they are, everything else widened to float64. */
export function toFloatScores(t: HostTensor): { dims: number[]; data: Float32Array | Float64Array } {
  switch (t.dtype) {
    case 'float32':
    case 'float64':
      return { dims: t.dims, data: t.data };
    case 'float16':
      return { dims: t.dims, data: Float64Array.from(t.data, float16BitsToNumber) };
    case 'int64':
      return { dims: t.dims, data: Float64Array.from(t.data, (v) => Number(v)) };
    default:
      return { dims: t.dims, data: Float64Array.from(t.data) };
  }
}
