import { closeSync, openSync, readSync } from 'node:fs';
import type { ByteSource } from '../formats/onnx/wire.ts';
import { bfloat16ToFloat, bitsPerElement, DataType, dtypeName, halfToFloat, isFloatType, rawByteLength } from './dtypes.ts';

/**
 * Where a tensor's bytes are. Inline bytes are views into the model file as read (no copy) until a
 * pass replaces them; external bytes stay in their file and are read when asked for.
 */
export type TensorSource =
  | { kind: 'inline'; bytes: Uint8Array }
  /** `inModelFile`: a payload of the model file itself, left there by a lazy read (ReadOptions.lazyTensors), not an external data file. */
  | { kind: 'external'; path: string; offset: number; length: number; inModelFile?: boolean }
  | { kind: 'strings'; values: Uint8Array[] }
  | ComputedSource;

/**
 * Bytes a pass computes when they are asked for, piece by piece, instead of holding them: a
 * quantized weight is produced while the writer streams it out, through the writer's reused buffer.
 * (A fresh buffer per weight costs a page fault per 4 KiB on first touch; on the VMs this project is
 * measured in, 64 MiB of them cost about 0.24 s, as much as the arithmetic.) `fill` must give the
 * same bytes however often and in whatever pieces it is called.
 */
export interface ComputedSource {
  kind: 'computed';
  length: number;
  /** Writes bytes [offset, offset + into.length) of the data into `into`. */
  fill(into: Uint8Array, offset: number): void;
  /** Elements equal to zero, once a full pass over the data has counted them. */
  zeros?: number;
}

const CHUNK = 16 << 20;
/** Bytes of a computed tensor produced at a time. */
const COMPUTED_PIECE = 1 << 20;

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
/**
 * Zeros (±0) among n 16-bit floats, two at a time: with the signs cleared, a word holds a zero half
 * only if (x − 0x00010001) & ~x & 0x80008000 is not 0 (lanes below 0x8000 cannot borrow into the
 * next), so the usual word of two non-zero weights costs one test (the fp16 pass counts every
 * weight it writes).
 */
function countZeroHalves(a: Uint8Array, n: number): number {
  let zeros = 0;
  const words = a.byteOffset % 4 === 0 ? new Uint32Array(a.buffer, a.byteOffset, n >> 1) : null;
  const pairs = words ? words.length : 0;
  for (let i = 0; i < pairs; i++) {
    const x = words![i]! & 0x7fff7fff;
    if (((x - 0x00010001) & ~x & 0x80008000) === 0) continue;
    if ((x & 0x7fff) === 0) zeros++;
    if ((x >>> 16) === 0) zeros++;
  }
  const v = new Uint16Array(a.buffer, a.byteOffset, n);
  for (let i = pairs * 2; i < n; i++) if ((v[i]! & 0x7fff) === 0) zeros++;
  return zeros;
}

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
    case DataType.FLOAT16: case DataType.BFLOAT16: return countZeroHalves(a, n);
    default: {
      if (size === 1) return countZeroBytes(a);
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

/**
 * Zero bytes, four at a time where the bytes are 4-aligned (int8 weights: 64 MiB in about 20 ms
 * where a byte loop takes 60): in each 32-bit word, bit 7 of a byte of
 * ~(((w & 0x7f7f7f7f) + 0x7f7f7f7f) | w | 0x7f7f7f7f) is set exactly when that byte is 0, and the
 * multiply sums the four bits into the top byte.
 */
export function countZeroBytes(bytes: Uint8Array): number {
  let zeros = 0;
  let i = 0;
  if (bytes.byteOffset % 4 === 0) {
    const n = bytes.length >> 2;
    const words = new Int32Array(bytes.buffer, bytes.byteOffset, n);
    for (let k = 0; k < n; k++) {
      const w = words[k]!;
      const t = ~(((w & 0x7f7f7f7f) + 0x7f7f7f7f) | w | 0x7f7f7f7f);
      zeros += Math.imul(t >>> 7, 0x01010101) >>> 24;
    }
    i = n * 4;
  }
  for (; i < bytes.length; i++) if (bytes[i] === 0) zeros++;
  return zeros;
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
      case 'computed': return this.source.length;
    }
  }

  /** The raw little-endian bytes: a view for inline data, a fresh read for external data. */
  bytes(): Uint8Array {
    switch (this.source.kind) {
      case 'inline': return this.source.bytes;
      case 'external': return readFileRange(this.source.path, this.source.offset, this.source.length);
      case 'strings': throw new Error(`tensor ${this.name} holds strings, not raw bytes`);
      case 'computed': {
        // computed once for whoever wants it whole; the tensor then holds the bytes
        const bytes = new Uint8Array(this.source.length);
        this.source.fill(bytes, 0);
        this.source = { kind: 'inline', bytes };
        return bytes;
      }
    }
  }

  /** The bytes as a stream of pieces: what the writer uses, so external data never sits in memory whole. */
  byteSource(): ByteSource {
    const source = this.source;
    if (source.kind === 'strings') throw new Error(`tensor ${this.name} holds strings`);
    if (source.kind === 'inline') return { byteLength: source.bytes.length, chunks: () => [source.bytes] };
    if (source.kind === 'computed') {
      return {
        byteLength: source.length,
        *chunks() {
          for (let off = 0; off < source.length; off += CHUNK) {
            const piece = new Uint8Array(Math.min(CHUNK, source.length - off));
            source.fill(piece, off);
            yield piece;
          }
        },
      };
    }
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
    if (source.kind === 'computed') {
      // pieces of whole elements (8-byte multiples), zeros counted on the way: a full pass is
      // usually the writer's, and the statistics taken after it then need no second one. At most
      // 1 MiB at a time, so a piece is still in the cache when it is written out.
      const size = Math.min(scratch.length, COMPUTED_PIECE);
      const step = Math.max(8, size - (size % 8));
      let zeros = 0;
      for (let off = 0; off < source.length; off += step) {
        const piece = scratch.subarray(0, Math.min(step, source.length - off));
        source.fill(piece, off);
        if (source.zeros === undefined) zeros += countZeroElements(this.dataType, piece);
        yield piece;
      }
      source.zeros ??= this.zerosInPadding(zeros);
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
    if (this.source.kind === 'computed') {
      const source = this.source;
      if (source.zeros === undefined) for (const it = this.chunksInto(sharedScratch()); !it.next().done;);
      return source.zeros!;
    }
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
    return this.zerosInPadding(zeros);
  }

  /** A zero count over whole bytes, less the padding nibble an odd count of 4-bit elements leaves in the last byte. */
  private zerosInPadding(zeros: number): number {
    if ((this.dataType === DataType.INT4 || this.dataType === DataType.UINT4) && this.elementCount % 2 === 1) {
      const last = new Uint8Array(1);
      if (this.source.kind === 'computed') this.source.fill(last, this.byteLength - 1);
      else last[0] = this.bytes()[this.byteLength - 1]!;
      if ((last[0]! >> 4) === 0) zeros--;
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
