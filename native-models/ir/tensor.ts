import { closeSync, openSync, readSync } from 'node:fs';
import type { ByteSource } from '../formats/onnx/wire.ts';
import { bfloat16ToFloat, bitsPerElement, DataType, dtypeName, halfToFloat, isFloatType, rawByteLength } from './dtypes.ts';

/**
 * Where a tensor's bytes are. Inline bytes are views into the model file as read (no copy) until a
 * pass replaces them; external bytes stay in their file and are read when asked for.
 */
export type TensorSource =
  | { kind: 'inline'; bytes: Uint8Array }
  | { kind: 'external'; path: string; offset: number; length: number }
  | { kind: 'strings'; values: Uint8Array[] };

const CHUNK = 16 << 20;

/** Reads a byte range of a file; the range was checked against the file size when the model was opened. */
export function readFileRange(path: string, offset: number, length: number): Uint8Array {
  const out = Buffer.allocUnsafe(length);
  const fd = openSync(path, 'r');
  try {
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), offset + done);
      if (n === 0) throw new Error(`${path}: ended early while reading ${length} bytes at offset ${offset}`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

let scratch: Uint8Array | null = null;
/** One reusable read buffer for streaming statistics (the engine is single-threaded per process). */
function sharedScratch(): Uint8Array {
  return (scratch ??= new Uint8Array(CHUNK));
}

/** Zeros among whole elements of `bytes` (a piece that starts on an element boundary). */
function countZeroElements(dataType: number, bytes: Uint8Array): number {
  let zeros = 0;
  const bits = bitsPerElement(dataType);
  if (bits === 4) {
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if ((b & 0xf) === 0) zeros++;
      if ((b >> 4) === 0) zeros++;
    }
    return zeros;
  }
  const size = bits / 8;
  const a = bytes.byteOffset % Math.max(size, 1) === 0 ? bytes : Uint8Array.prototype.slice.call(bytes);
  const n = Math.floor(a.length / size);
  switch (dataType) {
    case DataType.FLOAT: { const v = new Float32Array(a.buffer, a.byteOffset, n); for (let i = 0; i < n; i++) if (v[i] === 0) zeros++; return zeros; }
    case DataType.DOUBLE: { const v = new Float64Array(a.buffer, a.byteOffset, n); for (let i = 0; i < n; i++) if (v[i] === 0) zeros++; return zeros; }
    case DataType.FLOAT16: case DataType.BFLOAT16: { const v = new Uint16Array(a.buffer, a.byteOffset, n); for (let i = 0; i < n; i++) if ((v[i]! & 0x7fff) === 0) zeros++; return zeros; }
    default: {
      if (size === 1) { for (let i = 0; i < a.length; i++) if (a[i] === 0) zeros++; return zeros; }
      if (size === 2) { const v = new Uint16Array(a.buffer, a.byteOffset, n); for (let i = 0; i < n; i++) if (v[i] === 0) zeros++; return zeros; }
      // 32- and 64-bit integers: an element is zero when all its 32-bit words are
      const words = new Uint32Array(a.buffer, a.byteOffset, (n * size) / 4);
      const per = size / 4;
      for (let i = 0; i < words.length; i += per) {
        let z = true;
        for (let k = 0; k < per; k++) if (words[i + k] !== 0) { z = false; break; }
        if (z) zeros++;
      }
      return zeros;
    }
  }
}

export type TypedArray =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array
  | Uint32Array | BigInt64Array | BigUint64Array;

export class Tensor {
  name: string;
  dataType: number;
  dims: number[];
  source: TensorSource;
  /** The original TensorProto's other fields (doc_string, metadata, unknown fields) kept for writing. */
  readonly extra: Record<string, unknown>;
  /** Set when a pass replaced the data: the writer then cannot reuse any original encoding. */
  modified = false;

  constructor(init: { name: string; dataType: number; dims: number[]; source: TensorSource; extra?: Record<string, unknown> }) {
    this.name = init.name;
    this.dataType = init.dataType;
    this.dims = init.dims;
    this.source = init.source;
    this.extra = init.extra ?? {};
  }

  /** A new tensor owning a copy of the given data (used by passes and generators). */
  static fromTypedArray(name: string, dataType: number, dims: number[], data: TypedArray): Tensor {
    const bytes = Uint8Array.prototype.slice.call(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return new Tensor({ name, dataType, dims, source: { kind: 'inline', bytes } });
  }

  get elementCount(): number {
    return this.dims.reduce((a, b) => a * b, 1);
  }

  get dtype(): string {
    return dtypeName(this.dataType);
  }

  get isFloat(): boolean {
    return isFloatType(this.dataType);
  }

  get isExternal(): boolean {
    return this.source.kind === 'external';
  }

  get byteLength(): number {
    switch (this.source.kind) {
      case 'inline': return this.source.bytes.length;
      case 'external': return this.source.length;
      case 'strings': return this.source.values.reduce((n, v) => n + v.length, 0);
    }
  }

  /** The raw little-endian bytes: a view for inline data, a fresh read for external data. */
  bytes(): Uint8Array {
    switch (this.source.kind) {
      case 'inline': return this.source.bytes;
      case 'external': return readFileRange(this.source.path, this.source.offset, this.source.length);
      case 'strings': throw new Error(`tensor ${this.name} holds strings, not raw bytes`);
    }
  }

  /** The bytes as a stream of pieces: what the writer uses, so external data never sits in memory whole. */
  byteSource(): ByteSource {
    const source = this.source;
    if (source.kind === 'strings') throw new Error(`tensor ${this.name} holds strings`);
    if (source.kind === 'inline') return { byteLength: source.bytes.length, chunks: () => [source.bytes] };
    return {
      byteLength: source.length,
      *chunks() {
        for (let off = 0; off < source.length; off += CHUNK) {
          yield readFileRange(source.path, source.offset + off, Math.min(CHUNK, source.length - off));
        }
      },
    };
  }

  /** The data as a typed array of its own type (copied if the file offset is not aligned). */
  typed(): TypedArray {
    const b = this.bytes();
    const n = this.elementCount;
    // Uint8Array.prototype.slice copies; Buffer's slice would return another unaligned view.
    const aligned = (size: number) => (b.byteOffset % size === 0 ? b : Uint8Array.prototype.slice.call(b));
    switch (this.dataType) {
      case DataType.FLOAT: { const a = aligned(4); return new Float32Array(a.buffer, a.byteOffset, n); }
      case DataType.DOUBLE: { const a = aligned(8); return new Float64Array(a.buffer, a.byteOffset, n); }
      case DataType.INT8: return new Int8Array(b.buffer, b.byteOffset, n);
      case DataType.UINT8: case DataType.BOOL: return b.subarray(0, n);
      case DataType.INT16: { const a = aligned(2); return new Int16Array(a.buffer, a.byteOffset, n); }
      case DataType.UINT16: case DataType.FLOAT16: case DataType.BFLOAT16: { const a = aligned(2); return new Uint16Array(a.buffer, a.byteOffset, n); }
      case DataType.INT32: { const a = aligned(4); return new Int32Array(a.buffer, a.byteOffset, n); }
      case DataType.UINT32: { const a = aligned(4); return new Uint32Array(a.buffer, a.byteOffset, n); }
      case DataType.INT64: { const a = aligned(8); return new BigInt64Array(a.buffer, a.byteOffset, n); }
      case DataType.UINT64: { const a = aligned(8); return new BigUint64Array(a.buffer, a.byteOffset, n); }
      default: return b; // packed sub-byte and float8 types: the raw bytes
    }
  }

  /** Values as float32 (any numeric type; 4-bit types unpacked, signed where the type is). */
  toFloat32(): Float32Array {
    const n = this.elementCount;
    const out = new Float32Array(n);
    switch (this.dataType) {
      case DataType.FLOAT: out.set(this.typed() as Float32Array); return out;
      case DataType.FLOAT16: { const h = this.typed() as Uint16Array; for (let i = 0; i < n; i++) out[i] = halfToFloat(h[i]!); return out; }
      case DataType.BFLOAT16: { const h = this.typed() as Uint16Array; for (let i = 0; i < n; i++) out[i] = bfloat16ToFloat(h[i]!); return out; }
      case DataType.INT4: case DataType.UINT4: {
        const b = this.bytes();
        const signed = this.dataType === DataType.INT4;
        for (let i = 0; i < n; i++) {
          let v = (b[i >> 1]! >> ((i & 1) * 4)) & 0xf;
          if (signed && v > 7) v -= 16;
          out[i] = v;
        }
        return out;
      }
      case DataType.INT64: case DataType.UINT64: { const t = this.typed() as BigInt64Array; for (let i = 0; i < n; i++) out[i] = Number(t[i]!); return out; }
      default: {
        const t = this.typed();
        if (t instanceof BigInt64Array || t instanceof BigUint64Array) throw new Error('unreachable');
        if (rawByteLength(this.dataType, n) !== t.byteLength && !(t instanceof Uint8Array && t.length === n)) {
          throw new Error(`tensor ${this.name}: cannot convert ${this.dtype} to float32`);
        }
        for (let i = 0; i < n; i++) out[i] = t[i] as number;
        return out;
      }
    }
  }

  /**
   * The bytes in pieces read into `scratch`, which is reused: each piece is valid only until the next
   * is requested. Inline data comes as one view (no copy). Reusing one buffer matters: a fresh 16 MiB
   * buffer per piece costs a page fault per 4 KiB and made streaming 1 GiB twice as slow.
   */
  *chunksInto(scratch: Uint8Array): Generator<Uint8Array> {
    const source = this.source;
    if (source.kind === 'strings') throw new Error(`tensor ${this.name} holds strings`);
    if (source.kind === 'inline') {
      yield source.bytes;
      return;
    }
    const fd = openSync(source.path, 'r');
    try {
      for (let done = 0; done < source.length;) {
        const n = readSync(fd, scratch, 0, Math.min(scratch.length, source.length - done), source.offset + done);
        if (n === 0) throw new Error(`${source.path}: ended early while reading tensor ${this.name} (the file changed after the model was opened?)`);
        yield scratch.subarray(0, n);
        done += n;
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Number of elements equal to zero (for float types, +0 and -0), streamed for external data. */
  countZeros(): number {
    if (this.source.kind === 'strings') return 0;
    let zeros = 0;
    const scratch = sharedScratch();
    for (const chunk of this.chunksInto(scratch)) {
      if (chunk.byteOffset % 8 === 0 || chunk.buffer === scratch.buffer) {
        zeros += countZeroElements(this.dataType, chunk);
        continue;
      }
      // an inline tensor at an odd file offset: copy it through the aligned scratch buffer piece
      // by piece rather than copying the whole tensor (a 64 MiB copy costs more than the count)
      for (let off = 0; off < chunk.length; off += scratch.length) {
        const piece = chunk.subarray(off, Math.min(chunk.length, off + scratch.length));
        scratch.set(piece);
        zeros += countZeroElements(this.dataType, scratch.subarray(0, piece.length));
      }
    }
    // an odd count of 4-bit elements leaves a padding nibble (zero by convention) in the last byte
    if ((this.dataType === DataType.INT4 || this.dataType === DataType.UINT4) && this.elementCount % 2 === 1) {
      const last = this.bytes()[this.byteLength - 1]!;
      if ((last >> 4) === 0) zeros--;
    }
    return zeros;
  }

  /** Replaces the data (a pass changed it): the tensor now owns the given bytes. */
  setData(data: TypedArray | Uint8Array, opts: { dataType?: number; dims?: number[] } = {}): void {
    if (opts.dataType !== undefined) this.dataType = opts.dataType;
    if (opts.dims !== undefined) this.dims = opts.dims;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const expected = rawByteLength(this.dataType, this.elementCount);
    if (bytes.length !== expected) {
      throw new Error(`tensor ${this.name}: ${bytes.length} bytes given for ${this.dtype}[${this.dims.join(',')}], expected ${expected}`);
    }
    this.source = { kind: 'inline', bytes };
    this.modified = true;
  }
}
