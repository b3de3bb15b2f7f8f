import { WhittleError } from '../../../api/errors.ts';
import { floatToHalf, halfToFloat } from '../../ir/dtypes.ts';
import { elementCountOf, type ManifestEntry, type TfjsDtype, type WeightQuantization } from './manifest.ts';

/**
 * One weight of a TF.js model: its manifest entry and the bytes it occupies in its group's shards,
 * exactly as stored (quantized codes for a quantized weight). Nothing is decoded until asked, and
 * a weight nobody changed is written back byte for byte.
 */
export class TfjsWeight {
  private current: ManifestEntry;
  private stored: Uint8Array;
  /** True once replace() gave it new bytes or a new quantization. */
  changed = false;

  constructor(entry: ManifestEntry, readonly group: number, bytes: Uint8Array) {
    this.current = entry;
    this.stored = plainView(bytes);
  }

  /** The manifest entry as it will be written (fields other than quantization kept as read). */
  get entry(): ManifestEntry { return this.current; }
  get name(): string { return this.current.name; }
  get shape(): number[] { return this.current.shape; }
  get dtype(): TfjsDtype { return this.current.dtype; }
  get quantization(): WeightQuantization | null { return this.current.quantization ?? null; }
  get bytes(): Uint8Array { return this.stored; }
  get elementCount(): number { return elementCountOf(this.current.shape); }
  /** float32 weights, quantized or not: what pruning and quantization work on. */
  get isFloat(): boolean { return this.current.dtype === 'float32'; }

  /** The element type in the shard: `uint8 (quantized)` for a quantized weight, else the dtype. */
  get storedDtype(): string {
    const q = this.quantization;
    return q ? `${q.dtype} (quantized)` : this.dtype;
  }

  /**
   * The values TF.js computes when it loads the weight: q·scale + min in float64 then stored as
   * float32 (tfjs-core io_utils decodeWeight), IEEE half for float16. Always a fresh array.
   */
  toFloat32(): Float32Array {
    const n = this.elementCount;
    const q = this.quantization;
    if (q?.dtype === 'uint8' || q?.dtype === 'uint16') {
      const codes = this.codes();
      const out = new Float32Array(n);
      const { scale, min } = q as Required<Pick<WeightQuantization, 'scale' | 'min'>>;
      for (let i = 0; i < n; i++) out[i] = codes[i]! * scale + min;
      return out;
    }
    if (q?.dtype === 'float16') {
      const bits = this.codes();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(bits[i]!);
      return out;
    }
    switch (this.dtype) {
      case 'float32': return new Float32Array(copyAligned(this.stored, n * 4).buffer);
      case 'int32': return Float32Array.from(new Int32Array(copyAligned(this.stored, n * 4).buffer));
      case 'bool': return Float32Array.from(this.stored.subarray(0, n));
      default: throw new WhittleError('UNSUPPORTED', `weight ${this.name} is ${this.dtype}, which has no float values`);
    }
  }

  /** The quantized codes (uint8/uint16) or half bits (float16) of a quantized weight. */
  codes(): Uint8Array | Uint16Array {
    const q = this.quantization;
    if (!q) throw new WhittleError('INTERNAL', `weight ${this.name} is not quantized`);
    if (q.dtype === 'uint8') return this.stored.subarray(0, this.elementCount);
    return new Uint16Array(copyAligned(this.stored, this.elementCount * 2).buffer);
  }

  /** Zeros among the values TF.js sees (dequantized for quantized weights). */
  countZeros(): number {
    const v = this.toFloat32();
    let zeros = 0;
    for (let i = 0; i < v.length; i++) if (v[i] === 0) zeros++;
    return zeros;
  }

  /** New stored bytes and, with them, how they are quantized (null: stored as the dtype itself). */
  replace(bytes: Uint8Array, quantization: WeightQuantization | null): void {
    const { quantization: _old, ...rest } = this.current;
    this.current = quantization ? { ...rest, quantization } : (rest as ManifestEntry);
    this.stored = plainView(bytes);
    this.changed = true;
  }

  /** Stores float values as plain float32 (dropping any quantization). */
  setFloat32(values: Float32Array): void {
    this.replace(new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)), null);
  }

  /** Stores float values as float16 with TF.js's `{dtype: 'float16'}` quantization. */
  setFloat16(values: Float32Array): void {
    const bits = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) bits[i] = floatToHalf(values[i]!);
    this.replace(new Uint8Array(bits.buffer), { dtype: 'float16', original_dtype: 'float32' });
  }
}

/** A plain Uint8Array over the same memory: a Node Buffer's slice() would not copy. */
function plainView(bytes: Uint8Array): Uint8Array {
  return Buffer.isBuffer(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes;
}

/**
 * `length` bytes copied into a fresh buffer of exactly that size, so typed-array views are aligned
 * whatever the shard offset (and never see the rest of a Buffer's pool: Buffer#slice does not copy).
 */
function copyAligned(bytes: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  out.set(bytes.subarray(0, length));
  return out;
}
