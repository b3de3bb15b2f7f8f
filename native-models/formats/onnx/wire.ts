import { closeSync, openSync, writeSync } from 'node:fs';

/**
 * Protobuf wire format primitives. Reading keeps bytes fields as views (subarray) into the input;
 * int64 values are read as two 32-bit halves and combined into an exact bigint.
 */
export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_START_GROUP = 3;
export const WIRE_END_GROUP = 4;
export const WIRE_FIXED32 = 5;

export class WireError extends Error {}

/** Deprecated protobuf groups only appear as unknown fields; real data never nests them deeply. */
const MAX_GROUP_DEPTH = 100;

export class ProtoReader {
  pos = 0;
  readonly view: DataView;
  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get end(): number {
    return this.buf.length;
  }

  private truncated(): never {
    throw new WireError(`truncated: the data ends inside a field (at byte ${this.pos} of ${this.buf.length})`);
  }

  /** A varint known to fit 32 bits (tags, lengths, int32, enums); int32 negatives use the low half. */
  uint32(): number {
    const buf = this.buf;
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= buf.length) this.truncated();
      const b = buf[this.pos++]!;
      if (shift < 32) result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
      shift += 7;
    }
    throw new WireError(`malformed varint at byte ${this.pos}`);
  }

  int32(): number {
    return this.uint32() | 0;
  }

  /** A length or offset: must fit in a JS number and in what is left of the buffer. */
  length(): number {
    const n = this.varint64();
    if (n < 0n || n > BigInt(this.buf.length - this.pos)) {
      throw new WireError(`truncated or corrupt: a length of ${n} bytes at byte ${this.pos} runs past the end of the data (${this.buf.length - this.pos} bytes left)`);
    }
    return Number(n);
  }

  /** Unsigned 64-bit varint, exact. */
  varint64(): bigint {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= buf.length) this.truncated();
      const b = buf[this.pos++]!;
      if (i < 4) lo |= (b & 0x7f) << (i * 7);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (i * 7 - 32);
      if ((b & 0x80) === 0) return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    }
    throw new WireError(`malformed varint at byte ${this.pos}`);
  }

  int64(): bigint {
    return BigInt.asIntN(64, this.varint64());
  }

  fixed32(): number {
    if (this.pos + 4 > this.buf.length) this.truncated();
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  float(): number {
    if (this.pos + 4 > this.buf.length) this.truncated();
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  double(): number {
    if (this.pos + 8 > this.buf.length) this.truncated();
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  fixed64(): bigint {
    if (this.pos + 8 > this.buf.length) this.truncated();
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  bytes(): Uint8Array {
    const n = this.length();
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  skip(wireType: number, fieldNumber: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint64();
        return;
      case WIRE_FIXED64:
        if (this.pos + 8 > this.buf.length) this.truncated();
        this.pos += 8;
        return;
      case WIRE_LEN: {
        // Not `this.pos += this.length()`: that reads pos before length() moves it past the
        // length prefix, landing short by the prefix's size (unknown fields were mis-skipped).
        const n = this.length();
        this.pos += n;
        return;
      }
      case WIRE_FIXED32:
        if (this.pos + 4 > this.buf.length) this.truncated();
        this.pos += 4;
        return;
      case WIRE_START_GROUP: {
        // Iterative with a depth limit: hostile input can open groups a million deep, and
        // recursing on each would overflow the stack (an internal error instead of bad input).
        const open = [fieldNumber];
        while (open.length > 0) {
          const tag = this.uint32();
          const wt = tag & 7;
          if (wt === WIRE_END_GROUP) {
            if (tag >>> 3 !== open.pop()) throw new WireError(`mismatched group end at byte ${this.pos}`);
          } else if (wt === WIRE_START_GROUP) {
            if (open.length >= MAX_GROUP_DEPTH) throw new WireError(`groups nested more than ${MAX_GROUP_DEPTH} deep at byte ${this.pos}`);
            open.push(tag >>> 3);
          } else this.skip(wt, tag >>> 3);
        }
        return;
      }
      default:
        throw new WireError(`invalid wire type ${wireType} for field ${fieldNumber} at byte ${this.pos}`);
    }
  }
}

/** Bytes whose content is produced on demand (a tensor still in its source file). */
export interface ByteSource {
  readonly byteLength: number;
  /** Yields the bytes in order, in pieces small enough to keep memory flat. */
  chunks(): Iterable<Uint8Array>;
}

export function isByteSource(v: unknown): v is ByteSource {
  return typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && typeof (v as ByteSource).chunks === 'function';
}

/** Where encoded bytes go: a growing buffer or a file written in large blocks. */
export abstract class ProtoSink {
  protected scratch = new Uint8Array(1 << 20);
  protected view = new DataView(this.scratch.buffer);
  protected pos = 0;
  /** Bytes handed on so far plus those in scratch. */
  written = 0;

  protected abstract flushBytes(bytes: Uint8Array): void;
  /** Whether flushBytes keeps a reference to what it is given (then scratch cannot be reused). */
  protected abstract readonly keepsFlushedBytes: boolean;

  flush(): void {
    if (this.pos > 0) {
      this.flushBytes(this.scratch.subarray(0, this.pos));
      this.written += this.pos;
      this.pos = 0;
      if (this.keepsFlushedBytes) {
        this.scratch = new Uint8Array(this.scratch.length);
        this.view = new DataView(this.scratch.buffer);
      }
    }
  }

  private room(n: number): void {
    if (this.pos + n > this.scratch.length) this.flush();
  }

  byte(b: number): void {
    this.room(1);
    this.scratch[this.pos++] = b;
  }

  uint32(v: number): void {
    this.room(10);
    v >>>= 0;
    while (v > 0x7f) {
      this.scratch[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.scratch[this.pos++] = v;
  }

  /** int32 and enum values: negatives are sign-extended to ten bytes, as protobuf requires. */
  int32(v: number): void {
    if (v >= 0) this.uint32(v);
    else this.varint64(BigInt.asUintN(64, BigInt(v)));
  }

  varint64(v: bigint): void {
    this.room(10);
    let u = BigInt.asUintN(64, v);
    while (u > 0x7fn) {
      this.scratch[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.scratch[this.pos++] = Number(u);
  }

  tag(field: number, wireType: number): void {
    this.uint32((field << 3) | wireType);
  }

  float(v: number): void {
    this.room(4);
    this.view.setFloat32(this.pos, v, true);
    this.pos += 4;
  }

  double(v: number): void {
    this.room(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  fixed32(v: number): void {
    this.room(4);
    this.view.setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
  }

  fixed64(v: bigint): void {
    this.room(8);
    this.view.setBigUint64(this.pos, BigInt.asUintN(64, v), true);
    this.pos += 8;
  }

  raw(bytes: Uint8Array): void {
    if (bytes.length <= 65536) {
      this.room(bytes.length);
      if (bytes.length <= this.scratch.length) {
        this.scratch.set(bytes, this.pos);
        this.pos += bytes.length;
        return;
      }
    }
    // Large payloads (tensor data) skip the scratch buffer: no copy.
    this.flush();
    this.flushBytes(bytes);
    this.written += bytes.length;
  }
}

export class MemorySink extends ProtoSink {
  protected readonly keepsFlushedBytes = true;
  private parts: Uint8Array[] = [];
  protected flushBytes(bytes: Uint8Array): void {
    this.parts.push(bytes);
  }
  finish(): Uint8Array {
    this.flush();
    if (this.parts.length === 1) return this.parts[0]!;
    const out = new Uint8Array(this.written);
    let off = 0;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

export class FileSink extends ProtoSink {
  protected readonly keepsFlushedBytes = false;
  private fd: number;
  constructor(path: string) {
    super();
    this.fd = openSync(path, 'w');
  }
  protected flushBytes(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
  }
  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

export function varintSize(v: number): number {
  v >>>= 0;
  let n = 1;
  while (v > 0x7f) {
    v >>>= 7;
    n++;
  }
  return n;
}

export function varint64Size(v: bigint): number {
  let u = BigInt.asUintN(64, v);
  let n = 1;
  while (u > 0x7fn) {
    u >>= 7n;
    n++;
  }
  return n;
}
