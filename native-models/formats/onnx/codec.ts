import { descriptor, type FieldDescriptor, type MessageDescriptor } from './schema.ts';
import {
  isByteSource, MemorySink, ProtoReader, ProtoSink, varint64Size, varintSize, WireError,
  WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT, type ByteSource,
} from './wire.ts';

/**
 * Schema-driven protobuf codec for ONNX messages.
 * - Decoded messages are plain objects keyed by the .proto field names (snake_case).
 * - int64/uint64 are bigint; bytes are views into the input (never copied).
 * - Bulk repeated numbers of TensorProto become typed arrays; other repeated fields are arrays.
 * - Fields the schema does not know are kept in `$unknown` as their raw bytes (tag included) and
 *   written back unchanged, so models from newer tools survive a round trip.
 */
export type ProtoMessage = { [field: string]: unknown; $unknown?: Uint8Array[] };

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const UTF8_ENCODER = new TextEncoder();

function wireTypeOf(kind: FieldDescriptor['kind']): number {
  switch (kind) {
    case 'double': case 'fixed64': case 'sfixed64': return WIRE_FIXED64;
    case 'float': case 'fixed32': case 'sfixed32': return WIRE_FIXED32;
    case 'string': case 'bytes': case 'message': return WIRE_LEN;
    default: return WIRE_VARINT;
  }
}

function readScalar(r: ProtoReader, kind: FieldDescriptor['kind']): unknown {
  switch (kind) {
    case 'int32': case 'enum': return r.int32();
    case 'uint32': return r.uint32();
    case 'sint32': { const v = r.uint32(); return (v >>> 1) ^ -(v & 1); }
    case 'int64': return r.int64();
    case 'uint64': return r.varint64();
    case 'sint64': { const v = r.varint64(); return (v >> 1n) ^ -(v & 1n); }
    case 'bool': return r.varint64() !== 0n;
    case 'float': return r.float();
    case 'double': return r.double();
    case 'fixed32': return r.fixed32();
    case 'sfixed32': return r.fixed32() | 0;
    case 'fixed64': return r.fixed64();
    case 'sfixed64': return BigInt.asIntN(64, r.fixed64());
    case 'string': {
      const b = r.bytes();
      try {
        return UTF8.decode(b);
      } catch {
        throw new WireError(`a string field holds bytes that are not UTF-8 (at byte ${r.pos - b.length})`);
      }
    }
    case 'bytes': return r.bytes();
    default: throw new Error(`unexpected scalar kind ${kind}`);
  }
}

type BulkArray = Float32Array | Float64Array | Int32Array | BigInt64Array | BigUint64Array;

/** Packed float/double fields become typed arrays with one copy (the file offset is rarely aligned). */
function readPackedBulk(r: ProtoReader, kind: FieldDescriptor['kind']): BulkArray {
  const len = r.length();
  const start = r.pos;
  const end = start + len;
  if (kind === 'float' || kind === 'double') {
    const size = kind === 'float' ? 4 : 8;
    if (len % size !== 0) throw new WireError(`packed ${kind} data of ${len} bytes is not a multiple of ${size}`);
    // copy (Uint8Array's slice, not Buffer's view): aligned, and owned by the typed array
    const bytes = Uint8Array.prototype.slice.call(r.buf, start, end);
    r.pos = end;
    return kind === 'float' ? new Float32Array(bytes.buffer, 0, len / 4) : new Float64Array(bytes.buffer, 0, len / 8);
  }
  // varints: count first so the typed array is allocated once
  let count = 0;
  for (let i = start; i < end; i++) if ((r.buf[i]! & 0x80) === 0) count++;
  const out = kind === 'int32' ? new Int32Array(count) : kind === 'uint64' ? new BigUint64Array(count) : new BigInt64Array(count);
  for (let i = 0; i < count; i++) {
    if (kind === 'int32') (out as Int32Array)[i] = r.int32();
    else if (kind === 'uint64') (out as BigUint64Array)[i] = r.varint64();
    else (out as BigInt64Array)[i] = r.int64();
  }
  if (r.pos !== end) throw new WireError(`packed field ends at byte ${r.pos}, expected ${end}`);
  return out;
}

function toBulk(kind: FieldDescriptor['kind'], values: unknown[]): BulkArray {
  switch (kind) {
    case 'float': return Float32Array.from(values as number[]);
    case 'double': return Float64Array.from(values as number[]);
    case 'int32': return Int32Array.from(values as number[]);
    case 'uint64': return BigUint64Array.from(values as bigint[]);
    default: return BigInt64Array.from(values as bigint[]);
  }
}

function concatBulk(a: BulkArray, b: BulkArray): BulkArray {
  const Ctor = a.constructor as new (n: number) => BulkArray;
  const out = new Ctor(a.length + b.length);
  (out as Float64Array).set(a as Float64Array);
  (out as Float64Array).set(b as Float64Array, a.length);
  return out;
}

const MAX_DEPTH = 100;

export function decodeMessage(buf: Uint8Array, desc: MessageDescriptor): ProtoMessage {
  return decodeFrom(new ProtoReader(buf), desc, buf.length, 0);
}

function decodeFrom(r: ProtoReader, desc: MessageDescriptor, end: number, depth: number): ProtoMessage {
  if (depth > MAX_DEPTH) throw new WireError(`messages nested more than ${MAX_DEPTH} deep`);
  const msg: ProtoMessage = {};
  let looseBulk: Map<FieldDescriptor, unknown[]> | null = null;
  while (r.pos < end) {
    const tagStart = r.pos;
    const tag = r.uint32();
    const fieldNumber = tag >>> 3;
    const wireType = tag & 7;
    if (fieldNumber === 0) throw new WireError(`field number 0 at byte ${tagStart}: not protobuf data`);
    const field = desc.byId.get(fieldNumber);
    if (!field) {
      r.skip(wireType, fieldNumber);
      (msg.$unknown ??= []).push(r.buf.subarray(tagStart, r.pos));
      continue;
    }
    const expected = wireTypeOf(field.kind);
    if (field.kind === 'message') {
      if (wireType !== WIRE_LEN) throw new WireError(`${desc.name}.${field.name} has wire type ${wireType}, expected ${WIRE_LEN} (at byte ${tagStart})`);
      const len = r.length();
      const sub = decodeFrom(r, field.message!, r.pos + len, depth + 1);
      if (field.repeated) ((msg[field.name] as ProtoMessage[] | undefined) ?? (msg[field.name] = [] as ProtoMessage[]) as ProtoMessage[]).push(sub);
      else msg[field.name] = mergeMessage(msg[field.name] as ProtoMessage | undefined, sub);
      continue;
    }
    if (field.repeated && wireType === WIRE_LEN && expected !== WIRE_LEN) {
      // packed encoding of a repeated scalar (accepted whether or not the schema says packed)
      if (field.bulk) {
        const arr = readPackedBulk(r, field.kind);
        const prev = msg[field.name] as BulkArray | undefined;
        msg[field.name] = prev ? concatBulk(prev, arr) : arr;
      } else {
        const len = r.length();
        const stop = r.pos + len;
        const list = (msg[field.name] as unknown[] | undefined) ?? (msg[field.name] = []) as unknown[];
        while (r.pos < stop) list.push(readScalar(r, field.kind));
        if (r.pos !== stop) throw new WireError(`packed ${desc.name}.${field.name} overruns its length`);
      }
      continue;
    }
    if (wireType !== expected) {
      throw new WireError(`${desc.name}.${field.name} has wire type ${wireType}, expected ${expected} (at byte ${tagStart})`);
    }
    const value = readScalar(r, field.kind);
    if (field.repeated) {
      if (field.bulk) {
        looseBulk ??= new Map();
        const list = looseBulk.get(field) ?? [];
        list.push(value);
        looseBulk.set(field, list);
      } else ((msg[field.name] as unknown[] | undefined) ?? (msg[field.name] = []) as unknown[]).push(value);
    } else msg[field.name] = value;
  }
  if (r.pos !== end) throw new WireError(`${desc.name} overruns its length (ends at byte ${r.pos}, expected ${end})`);
  if (looseBulk) {
    for (const [field, values] of looseBulk) {
      const arr = toBulk(field.kind, values);
      const prev = msg[field.name] as BulkArray | undefined;
      msg[field.name] = prev ? concatBulk(prev, arr) : arr;
    }
  }
  return msg;
}

/** Protobuf semantics: a non-repeated message field seen twice is merged. */
function mergeMessage(prev: ProtoMessage | undefined, next: ProtoMessage): ProtoMessage {
  if (!prev) return next;
  for (const [k, v] of Object.entries(next)) {
    if (Array.isArray(v) && Array.isArray(prev[k])) (prev[k] as unknown[]).push(...v);
    else prev[k] = v;
  }
  return prev;
}

// ---------------------------------------------------------------- encoding

function scalarSize(kind: FieldDescriptor['kind'], v: unknown): number {
  switch (kind) {
    case 'int32': case 'enum': return (v as number) >= 0 ? varintSize(v as number) : 10;
    case 'uint32': return varintSize(v as number);
    case 'sint32': { const n = v as number; return varintSize(((n << 1) ^ (n >> 31)) >>> 0); }
    case 'int64': case 'uint64': return varint64Size(BigInt(v as bigint));
    case 'sint64': { const n = BigInt(v as bigint); return varint64Size((n << 1n) ^ (n >> 63n)); }
    case 'bool': return 1;
    case 'float': case 'fixed32': case 'sfixed32': return 4;
    case 'double': case 'fixed64': case 'sfixed64': return 8;
    case 'string': { const n = utf8Length(v as string); return varintSize(n) + n; }
    case 'bytes': { const n = byteLengthOf(v); return varintSize(n) + n; }
    default: throw new Error(`unexpected scalar kind ${kind}`);
  }
}

function byteLengthOf(v: unknown): number {
  if (v instanceof Uint8Array) return v.length;
  if (isByteSource(v)) return v.byteLength;
  throw new Error('bytes field must be a Uint8Array or a ByteSource');
}

const stringLengths = new Map<string, number>();
function utf8Length(s: string): number {
  // ASCII fast path; names are almost always ASCII
  let ascii = true;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) { ascii = false; break; }
  if (ascii) return s.length;
  let n = stringLengths.get(s);
  if (n === undefined) {
    n = UTF8_ENCODER.encode(s).length;
    if (stringLengths.size < 10000) stringLengths.set(s, n);
  }
  return n;
}

function writeScalar(sink: ProtoSink, kind: FieldDescriptor['kind'], v: unknown): void {
  switch (kind) {
    case 'int32': case 'enum': sink.int32(v as number); return;
    case 'uint32': sink.uint32(v as number); return;
    case 'sint32': { const n = v as number; sink.uint32(((n << 1) ^ (n >> 31)) >>> 0); return; }
    case 'int64': case 'uint64': sink.varint64(BigInt(v as bigint)); return;
    case 'sint64': { const n = BigInt(v as bigint); sink.varint64((n << 1n) ^ (n >> 63n)); return; }
    case 'bool': sink.byte(v ? 1 : 0); return;
    case 'float': sink.float(v as number); return;
    case 'double': sink.double(v as number); return;
    case 'fixed32': case 'sfixed32': sink.fixed32(v as number); return;
    case 'fixed64': case 'sfixed64': sink.fixed64(BigInt(v as bigint)); return;
    case 'string': { const b = UTF8_ENCODER.encode(v as string); sink.uint32(b.length); sink.raw(b); return; }
    case 'bytes': {
      sink.uint32(byteLengthOf(v));
      if (v instanceof Uint8Array) sink.raw(v);
      else for (const chunk of (v as ByteSource).chunks()) sink.raw(chunk);
      return;
    }
    default: throw new Error(`unexpected scalar kind ${kind}`);
  }
}

function isPresent(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return (v as { length: number }).length > 0;
  return true;
}

function packedPayloadSize(field: FieldDescriptor, values: ArrayLike<unknown>): number {
  const fixed = wireTypeOf(field.kind) === WIRE_FIXED32 ? 4 : wireTypeOf(field.kind) === WIRE_FIXED64 ? 8 : 0;
  if (fixed) return fixed * values.length;
  let n = 0;
  for (let i = 0; i < values.length; i++) n += scalarSize(field.kind, values[i]);
  return n;
}

/** Sizes of every message in the tree, computed once per encode (messages are length-prefixed). */
export class SizeCache {
  private sizes = new WeakMap<ProtoMessage, number>();

  of(msg: ProtoMessage, desc: MessageDescriptor): number {
    const cached = this.sizes.get(msg);
    if (cached !== undefined) return cached;
    let size = 0;
    for (const field of desc.fields) {
      const v = msg[field.name];
      if (!isPresent(v)) continue;
      const tagSize = varintSize(field.id << 3);
      if (field.kind === 'message') {
        const list = field.repeated ? (v as ProtoMessage[]) : [v as ProtoMessage];
        for (const m of list) {
          const n = this.of(m, field.message!);
          size += tagSize + varintSize(n) + n;
        }
      } else if (field.repeated) {
        const values = v as ArrayLike<unknown>;
        if (field.packed) {
          const n = packedPayloadSize(field, values);
          size += tagSize + varintSize(n) + n;
        } else for (let i = 0; i < values.length; i++) size += tagSize + scalarSize(field.kind, values[i]);
      } else size += tagSize + scalarSize(field.kind, v);
    }
    for (const u of msg.$unknown ?? []) size += u.length;
    this.sizes.set(msg, size);
    return size;
  }
}

export function encodeInto(sink: ProtoSink, msg: ProtoMessage, desc: MessageDescriptor, sizes: SizeCache): void {
  for (const field of desc.fields) {
    const v = msg[field.name];
    if (!isPresent(v)) continue;
    if (field.kind === 'message') {
      const list = field.repeated ? (v as ProtoMessage[]) : [v as ProtoMessage];
      for (const m of list) {
        sink.tag(field.id, WIRE_LEN);
        sink.uint32(sizes.of(m, field.message!));
        encodeInto(sink, m, field.message!, sizes);
      }
    } else if (field.repeated) {
      const values = v as ArrayLike<unknown>;
      if (field.packed) {
        sink.tag(field.id, WIRE_LEN);
        sink.uint32(packedPayloadSize(field, values));
        if (field.kind === 'float' && values instanceof Float32Array) sink.raw(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
        else if (field.kind === 'double' && values instanceof Float64Array) sink.raw(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
        else for (let i = 0; i < values.length; i++) writeScalar(sink, field.kind, values[i]);
      } else {
        const wt = wireTypeOf(field.kind);
        for (let i = 0; i < values.length; i++) {
          sink.tag(field.id, wt);
          writeScalar(sink, field.kind, values[i]);
        }
      }
    } else {
      sink.tag(field.id, wireTypeOf(field.kind));
      writeScalar(sink, field.kind, v);
    }
  }
  for (const u of msg.$unknown ?? []) sink.raw(u);
}

export function encodeMessage(msg: ProtoMessage, desc: MessageDescriptor): Uint8Array {
  const sink = new MemorySink();
  encodeInto(sink, msg, desc, new SizeCache());
  return sink.finish();
}

export function encodedSize(msg: ProtoMessage, desc: MessageDescriptor): number {
  return new SizeCache().of(msg, desc);
}

export { descriptor };
