import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import { badInput, WhittleError } from '../../../api/errors.ts';
import { DataType, dtypeName, isKnownDataType, rawByteLength } from '../../ir/dtypes.ts';
import { AttrType, Graph, Model, Node, SparseTensor, type Attribute, type AttrValue, type Dim, type ValueInfo, type ValueType } from '../../ir/model.ts';
import { Tensor, type TensorSource } from '../../ir/tensor.ts';
import { decodeMessage, type ProtoMessage } from './codec.ts';
import { readSkippingPayloads } from './lazy-read.ts';
import { MODEL_PROTO, TENSOR_PROTO } from './schema.ts';
import { WireError } from './wire.ts';

/** Protobuf messages cannot exceed 2 GiB: bigger models keep their weights in external data. */
export const MAX_PROTO_BYTES = 2 ** 31 - 1;
/** More elements than this in one tensor is not a real model (2^40 floats = 4 TiB). */
const MAX_ELEMENTS = 2 ** 40;

type P = ProtoMessage;

interface ReadContext {
  file: string; // the model file, named in every error
  dir: string; // folder external data locations are relative to
  externalSizes: Map<string, number>;
  /** raw_data payloads left in the file (offset → length; see lazy-read.ts): their tensors read from there. */
  payloads?: Map<number, number>;
}

export interface ReadOptions {
  /**
   * Leave big tensor payloads of an inline model in the file (read when asked for, like external
   * data) instead of reading the whole file into memory: for passes that stream weights through
   * their own buffers (quantize). Such tensors have an external source with `inModelFile` set.
   */
  lazyTensors?: boolean;
}

/** Reads an ONNX model file into the IR. Tensor bytes stay views into the file buffer. */
export function readOnnxFile(path: string, options: ReadOptions = {}): Model {
  const file = resolve(path);
  if (options.lazyTensors) {
    const lazy = readLazily(file);
    if (lazy) return lazy;
  }
  const bytes = readWholeFile(file);
  const model = decodeOnnx(bytes, file);
  model.path = file;
  return model;
}

/** readOnnxFile with big payloads left in the file; null when that does not apply (then read as usual, so errors read the same). */
function readLazily(file: string): Model | null {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile() || st.size === 0 || st.size > MAX_PROTO_BYTES) return null;
    size = st.size;
  } catch {
    return null;
  }
  let read;
  try {
    read = readSkippingPayloads(file, size);
  } catch {
    return null;
  }
  if (!read) return null;
  try {
    const model = decodeOnnx(read.bytes, file, read.payloads);
    model.path = file;
    return model;
  } catch {
    return null;
  }
}

export function readWholeFile(file: string): Buffer {
  let st;
  try {
    st = statSync(file);
  } catch {
    throw new WhittleError('NOT_FOUND', `${file}: no such file`, { file });
  }
  if (st.isDirectory()) throw badInput(file, 'is a directory, not a model file');
  if (!st.isFile()) throw badInput(file, 'is not a regular file');
  if (st.size === 0) throw badInput(file, 'is empty (0 bytes)');
  if (st.size > MAX_PROTO_BYTES) {
    throw badInput(file, `is ${st.size} bytes: an ONNX protobuf cannot exceed 2 GiB, so this is not a valid single-file model (large models keep weights in external data)`);
  }
  const buf = Buffer.allocUnsafe(st.size);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw badInput(file, `cannot be opened (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    let done = 0;
    while (done < st.size) {
      const n = readSync(fd, buf, done, st.size - done, done);
      if (n === 0) break;
      done += n;
    }
    if (done !== st.size) throw badInput(file, `could only read ${done} of ${st.size} bytes`);
  } finally {
    closeSync(fd);
  }
  return buf;
}

/** Decodes ModelProto bytes; `file` names the model in errors and anchors external data. */
export function decodeOnnx(bytes: Uint8Array, file: string, payloads?: Map<number, number>): Model {
  let proto: P;
  try {
    proto = decodeMessage(bytes, MODEL_PROTO);
  } catch (err) {
    if (err instanceof WireError) throw notOnnx(bytes, file, `not a valid ONNX model: ${err.message}`);
    throw err;
  }
  if (!proto.graph || proto.ir_version === undefined) {
    const what = !proto.graph && proto.ir_version === undefined ? 'no ir_version and no graph' : !proto.graph ? 'no graph' : 'no ir_version';
    throw notOnnx(bytes, file, `not an ONNX model (the data decodes as protobuf but has ${what})`);
  }
  const ctx: ReadContext = { file, dir: dirname(file), externalSizes: new Map(), ...(payloads ? { payloads } : {}) };
  const model = new Model();
  const { ir_version, opset_import, producer_name, producer_version, domain, model_version, doc_string, graph, ...extra } = proto;
  model.irVersion = Number(ir_version as bigint);
  model.opsets = ((opset_import as P[] | undefined) ?? []).map((o) => ({ domain: (o.domain as string | undefined) ?? '', version: Number((o.version as bigint | undefined) ?? 0n) }));
  model.producerName = (producer_name as string | undefined) ?? '';
  model.producerVersion = (producer_version as string | undefined) ?? '';
  model.domain = (domain as string | undefined) ?? '';
  model.modelVersion = (model_version as bigint | undefined) ?? 0n;
  model.docString = (doc_string as string | undefined) ?? '';
  model.extra = extra;
  model.graph = graphFromProto(graph as P, null, ctx, 'main graph');
  return model;
}

/** The error for bytes that are not ONNX: says what they are instead when that is recognisable. */
function notOnnx(bytes: Uint8Array, file: string, problem: string, what = 'an ONNX model'): WhittleError {
  const foreign = describeForeignFile(bytes) ?? (what === 'an ONNX model' && looksLikeTensorProto(bytes) ? { kind: 'an ONNX TensorProto (test data such as input_0.pb)' } : null);
  if (!foreign) return badInput(file, problem);
  return badInput(file, `is ${foreign.kind}, not ${what}${foreign.fix ? `; ${foreign.fix}` : ''}`);
}

/**
 * What a file that failed to decode looks like, from its magic number: people most often hand
 * over the wrong file (a checkpoint, an image, a label file), and "not protobuf" does not say so.
 * Only consulted after decoding failed, so it can never reject a real model.
 */
export function describeForeignFile(bytes: Uint8Array): { kind: string; fix?: string } | null {
  const is = (sig: string, at = 0) => [...sig].every((c, i) => bytes[at + i] === c.charCodeAt(0));
  const toOnnx = 'export or convert the model to ONNX first';
  if (is('\xff\xd8\xff')) return { kind: 'a JPEG image' };
  if (is('\x89PNG\r\n\x1a\n')) return { kind: 'a PNG image' };
  if (is('GIF8')) return { kind: 'a GIF image' };
  if (is('PK\x03\x04') || is('PK\x05\x06')) return { kind: 'a ZIP archive', fix: `PyTorch .pt/.pth checkpoints and .npz files are ZIPs: ${toOnnx}` };
  if (is('\x1f\x8b')) return { kind: 'a gzip-compressed file', fix: 'decompress it first' };
  if (is('\x89HDF\r\n\x1a\n')) return { kind: 'an HDF5 file (a Keras .h5 model?)', fix: toOnnx };
  if (is('TFL3', 4)) return { kind: 'a TensorFlow Lite model', fix: toOnnx };
  if (is('GGUF')) return { kind: 'a GGUF model (llama.cpp)' };
  if (is('\x93NUMPY')) return { kind: 'a NumPy array (.npy)' };
  if (bytes[0] === 0x80 && bytes[1]! >= 2 && bytes[1]! <= 5) return { kind: 'a Python pickle (a PyTorch checkpoint?)', fix: toOnnx };
  if (is('%PDF')) return { kind: 'a PDF document' };
  if (bytes.length > 9 && bytes[6] === 0 && bytes[7] === 0 && bytes[8] === 0x7b) return { kind: 'a safetensors file (weights without a graph)', fix: toOnnx };
  const text = textPrefix(bytes);
  if (text !== null) return { kind: /^\s*[[{]/.test(text) ? 'a JSON file' : 'a text file' };
  return null;
}

/** A TensorProto has data_type (field 2) as a varint, where a ModelProto has producer_name (a string). */
function looksLikeTensorProto(bytes: Uint8Array): boolean {
  try {
    const p = decodeMessage(bytes, TENSOR_PROTO);
    return p.data_type !== undefined && (p.raw_data !== undefined || p.float_data !== undefined || p.int64_data !== undefined || p.int32_data !== undefined);
  } catch {
    return false;
  }
}

/** The first 4 KiB as text, or null when they hold control characters or invalid UTF-8. */
function textPrefix(bytes: Uint8Array): string | null {
  const head = bytes.subarray(0, 4096);
  for (const b of head) if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c) || b === 0x7f) return null;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(head, { stream: true });
  } catch {
    return null;
  }
}

/**
 * Names come from the file: control characters are escaped so an error stays one line and cannot
 * drive the terminal, and very long names are cut.
 */
function printable(name: unknown): string {
  const s = String(name ?? '');
  const cut = s.length > 200 ? `${s.slice(0, 200)}…` : s;
  return cut.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function graphFromProto(p: P, parent: Graph | null, ctx: ReadContext, where: string): Graph {
  const g = new Graph();
  g.parent = parent;
  const { node, name, initializer, sparse_initializer, input, output, value_info, ...extra } = p;
  g.name = (name as string | undefined) ?? '';
  g.extra = extra;
  for (const t of (initializer as P[] | undefined) ?? []) {
    const tensor = tensorFromProto(t, ctx, `initializer "${printable(t.name)}" of ${where}`);
    if (g.initializers.has(tensor.name)) throw badInput(ctx.file, `${where} has two initializers named "${printable(tensor.name)}"`);
    g.initializers.set(tensor.name, tensor);
  }
  g.sparseInitializers = ((sparse_initializer as P[] | undefined) ?? []).map((s) => sparseFromProto(s, ctx, `sparse initializer of ${where}`));
  g.inputs = ((input as P[] | undefined) ?? []).map(valueInfoFromProto);
  g.outputs = ((output as P[] | undefined) ?? []).map(valueInfoFromProto);
  g.valueInfo = ((value_info as P[] | undefined) ?? []).map(valueInfoFromProto);
  g.nodes = ((node as P[] | undefined) ?? []).map((n, i) => nodeFromProto(n, g, ctx, `node ${i} (${printable((n.name as string) || (n.op_type as string) || '?')}) of ${where}`));
  return g;
}

function nodeFromProto(p: P, graph: Graph, ctx: ReadContext, where: string): Node {
  const { input, output, name, op_type, domain, attribute, ...extra } = p;
  return new Node({
    name: (name as string | undefined) ?? '',
    opType: (op_type as string | undefined) ?? '',
    domain: (domain as string | undefined) ?? '',
    inputs: [...((input as string[] | undefined) ?? [])],
    outputs: [...((output as string[] | undefined) ?? [])],
    attributes: ((attribute as P[] | undefined) ?? []).map((a) => attributeFromProto(a, graph, ctx, where)),
    extra,
  });
}

/** IR 1 models may leave `type` out: infer it from the field that is set. */
function inferAttrType(p: P): number {
  if (p.f !== undefined) return AttrType.FLOAT;
  if (p.i !== undefined) return AttrType.INT;
  if (p.s !== undefined) return AttrType.STRING;
  if (p.t !== undefined) return AttrType.TENSOR;
  if (p.g !== undefined) return AttrType.GRAPH;
  if (p.floats) return AttrType.FLOATS;
  if (p.ints) return AttrType.INTS;
  if (p.strings) return AttrType.STRINGS;
  if (p.tensors) return AttrType.TENSORS;
  if (p.graphs) return AttrType.GRAPHS;
  return AttrType.UNDEFINED;
}

function attributeFromProto(p: P, graph: Graph, ctx: ReadContext, where: string): Attribute {
  const { name, type, f, i, s, t, g, sparse_tensor, tp, floats, ints, strings, tensors, graphs, sparse_tensors, type_protos, ...extra } = p;
  const attrName = (name as string | undefined) ?? '';
  const at = (type as number | undefined) ?? inferAttrType(p);
  const here = `attribute "${printable(attrName)}" of ${where}`;
  let value: AttrValue;
  switch (at) {
    case AttrType.FLOAT: value = (f as number | undefined) ?? 0; break;
    case AttrType.INT: value = (i as bigint | undefined) ?? 0n; break;
    case AttrType.STRING: value = (s as Uint8Array | undefined) ?? new Uint8Array(); break;
    case AttrType.TENSOR: value = t ? tensorFromProto(t as P, ctx, here) : undefined; break;
    case AttrType.GRAPH: value = g ? graphFromProto(g as P, graph, ctx, `subgraph ${here}`) : undefined; break;
    case AttrType.SPARSE_TENSOR: value = sparse_tensor ? sparseFromProto(sparse_tensor as P, ctx, here) : undefined; break;
    case AttrType.TYPE_PROTO: value = tp as P | undefined; break;
    case AttrType.FLOATS: value = (floats as number[] | undefined) ?? []; break;
    case AttrType.INTS: value = (ints as bigint[] | undefined) ?? []; break;
    case AttrType.STRINGS: value = (strings as Uint8Array[] | undefined) ?? []; break;
    case AttrType.TENSORS: value = ((tensors as P[] | undefined) ?? []).map((x) => tensorFromProto(x, ctx, here)); break;
    case AttrType.GRAPHS: value = ((graphs as P[] | undefined) ?? []).map((x, k) => graphFromProto(x, graph, ctx, `subgraph ${k} ${here}`)); break;
    case AttrType.SPARSE_TENSORS: value = ((sparse_tensors as P[] | undefined) ?? []).map((x) => sparseFromProto(x, ctx, here)); break;
    case AttrType.TYPE_PROTOS: value = (type_protos as P[] | undefined) ?? []; break;
    default: value = undefined; // a reference attribute (ref_attr_name) inside a function
  }
  return { name: attrName, type: at, value, extra };
}

function sparseFromProto(p: P, ctx: ReadContext, where: string): SparseTensor {
  const { values, indices, dims, ...extra } = p;
  if (!values || !indices) throw badInput(ctx.file, `${where}: sparse tensor without values or indices`);
  return new SparseTensor(
    tensorFromProto(values as P, ctx, `values of ${where}`),
    tensorFromProto(indices as P, ctx, `indices of ${where}`),
    checkDims(((dims as bigint[] | undefined) ?? []), ctx, where),
    extra,
  );
}

function checkDims(raw: bigint[], ctx: ReadContext, where: string): number[] {
  let count = 1;
  const dims = raw.map((d) => {
    if (d < 0n) throw badInput(ctx.file, `${where} has a negative dimension (${d})`);
    if (d > BigInt(MAX_ELEMENTS)) throw badInput(ctx.file, `${where} has an absurd dimension (${d})`);
    count *= Number(d);
    return Number(d);
  });
  if (count > MAX_ELEMENTS) throw badInput(ctx.file, `${where} has absurd dimensions [${dims.join(', ')}] (${count.toExponential(2)} elements)`);
  return dims;
}

const EXTERNAL = 1;

export function tensorFromProto(p: P, ctx: ReadContext, where: string): Tensor {
  const { dims, data_type, name, raw_data, float_data, int32_data, string_data, int64_data, double_data, uint64_data, external_data, data_location, ...extra } = p;
  const dataType = (data_type as number | undefined) ?? DataType.UNDEFINED;
  if (!isKnownDataType(dataType)) throw badInput(ctx.file, `${where} has an unknown data type (${dataType})`);
  const shape = checkDims((dims as bigint[] | undefined) ?? [], ctx, where);
  const count = shape.reduce((a, b) => a * b, 1);
  const tensorName = (name as string | undefined) ?? '';
  let source: TensorSource;
  if (dataType === DataType.STRING) {
    const values = (string_data as Uint8Array[] | undefined) ?? [];
    if (values.length !== count) throw badInput(ctx.file, `${where} has ${values.length} strings for ${count} elements`);
    source = { kind: 'strings', values };
  } else {
    const expected = rawByteLength(dataType, count);
    if (data_location === EXTERNAL) {
      source = externalSource((external_data as P[] | undefined) ?? [], expected, ctx, where);
    } else if (raw_data !== undefined) {
      const bytes = raw_data as Uint8Array;
      if (bytes.length !== expected) {
        throw badInput(ctx.file, `${where}: ${dtypeName(dataType)}[${shape.join(', ')}] needs ${expected} bytes but raw_data holds ${bytes.length}`);
      }
      // a payload left in the file (lazy-read.ts): the bytes here are zeros standing in for it
      source = ctx.payloads?.get(bytes.byteOffset) === bytes.length ? { kind: 'external', path: ctx.file, offset: bytes.byteOffset, length: bytes.length, inModelFile: true } : { kind: 'inline', bytes };
    } else {
      source = { kind: 'inline', bytes: typedFieldsToRaw(dataType, count, { float_data, int32_data, int64_data, double_data, uint64_data }, ctx, where) };
    }
  }
  return new Tensor({ name: tensorName, dataType, dims: shape, source, extra });
}

/** Tensors stored in float_data/int32_data/... are converted once to canonical raw bytes. */
function typedFieldsToRaw(dataType: number, count: number, f: Record<string, unknown>, ctx: ReadContext, where: string): Uint8Array {
  const expected = rawByteLength(dataType, count);
  const fail = (field: string, have: number, want: number) => badInput(ctx.file, `${where}: ${dtypeName(dataType)}[${count} elements] needs ${want} values in ${field} but it holds ${have}`);
  const asBytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (dataType) {
    case DataType.FLOAT: case DataType.COMPLEX64: {
      const a = (f.float_data as Float32Array | undefined) ?? new Float32Array();
      const want = dataType === DataType.COMPLEX64 ? count * 2 : count;
      if (a.length !== want) throw fail('float_data', a.length, want);
      return asBytes(a);
    }
    case DataType.DOUBLE: case DataType.COMPLEX128: {
      const a = (f.double_data as Float64Array | undefined) ?? new Float64Array();
      const want = dataType === DataType.COMPLEX128 ? count * 2 : count;
      if (a.length !== want) throw fail('double_data', a.length, want);
      return asBytes(a);
    }
    case DataType.INT64: {
      const a = (f.int64_data as BigInt64Array | undefined) ?? new BigInt64Array();
      if (a.length !== count) throw fail('int64_data', a.length, count);
      return asBytes(a);
    }
    case DataType.UINT32: case DataType.UINT64: {
      const a = (f.uint64_data as BigUint64Array | undefined) ?? new BigUint64Array();
      if (a.length !== count) throw fail('uint64_data', a.length, count);
      if (dataType === DataType.UINT64) return asBytes(a);
      return asBytes(Uint32Array.from(a, (v) => Number(v)));
    }
    default: {
      // int32_data carries INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16/BFLOAT16 bits, float8, and
      // the 4-bit/2-bit types (one int32 per packed byte).
      const a = (f.int32_data as Int32Array | undefined) ?? new Int32Array();
      const bytesPer8 = rawByteLength(dataType, 8); // under 8 means several elements share a byte
      if (bytesPer8 < 8) {
        const perByte = 8 / bytesPer8;
        const want = Math.ceil(count / perByte);
        if (a.length !== want) throw fail('int32_data', a.length, want);
        return Uint8Array.from(a, (v) => v & 0xff);
      }
      if (a.length !== count) throw fail('int32_data', a.length, count);
      switch (expected / Math.max(count, 1)) {
        case 4: return asBytes(a);
        case 2: return asBytes(Uint16Array.from(a, (v) => v & 0xffff));
        default: return Uint8Array.from(a, (v) => v & 0xff);
      }
    }
  }
}

/** An external-data `location` must stay inside the model's folder: no absolute paths, no `..`. */
export function checkExternalLocation(location: string, file: string): void {
  const parts = location.split(/[\\/]+/);
  if (location === '' || location.includes('\0')) throw badInput(file, `external data location ${JSON.stringify(location)} is empty or invalid`);
  if (isAbsolute(location) || /^[a-zA-Z]:/.test(location) || location.startsWith('\\') || location.startsWith('/')) {
    throw badInput(file, `external data location ${JSON.stringify(location)} is an absolute path; ONNX requires it relative to the model's folder`);
  }
  if (parts.includes('..')) throw badInput(file, `external data location ${JSON.stringify(location)} climbs out of the model's folder with ".."`);
}

function parseOffset(value: string | undefined, key: string, ctx: ReadContext, where: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw badInput(ctx.file, `${where}: external data ${key} ${JSON.stringify(value)} is not a byte count`);
  return Number(value);
}

function externalSource(entries: P[], expected: number, ctx: ReadContext, where: string): TensorSource {
  const kv = new Map(entries.map((e) => [(e.key as string | undefined) ?? '', (e.value as string | undefined) ?? '']));
  const location = kv.get('location');
  if (location === undefined) throw badInput(ctx.file, `${where} is marked external but has no location`);
  checkExternalLocation(location, ctx.file);
  const path = resolve(ctx.dir, location);
  if (path !== ctx.dir && !path.startsWith(ctx.dir + sep)) throw badInput(ctx.file, `external data location ${JSON.stringify(location)} resolves outside the model's folder`);
  let size = ctx.externalSizes.get(path);
  if (size === undefined) {
    if (!existsSync(path)) throw badInput(ctx.file, `${where}: its external data file ${location} does not exist next to the model`);
    const st = statSync(path);
    if (!st.isFile()) throw badInput(ctx.file, `${where}: external data ${location} is not a regular file`);
    size = st.size;
    ctx.externalSizes.set(path, size);
  }
  const offset = parseOffset(kv.get('offset'), 'offset', ctx, where) ?? 0;
  const length = parseOffset(kv.get('length'), 'length', ctx, where) ?? expected;
  if (length !== expected) throw badInput(ctx.file, `${where}: external data length ${length} disagrees with its type and shape (${expected} bytes)`);
  if (offset + length > size) throw badInput(ctx.file, `${where}: external data ${location} holds ${size} bytes, but the tensor needs bytes ${offset}..${offset + length}`);
  return { kind: 'external', path, offset, length };
}

/** Reads a single TensorProto file (input_0.pb / output_0.pb of ONNX test data). */
export function readTensorProtoFile(path: string): Tensor {
  const file = resolve(path);
  return decodeTensorProto(readWholeFile(file), file);
}

/** Decodes TensorProto bytes; `file` names them in errors and anchors any external data. */
export function decodeTensorProto(bytes: Uint8Array, file: string): Tensor {
  let p: P;
  try {
    p = decodeMessage(bytes, TENSOR_PROTO);
  } catch (err) {
    if (err instanceof WireError) throw notOnnx(bytes, file, `not a valid TensorProto: ${err.message}`, 'a TensorProto');
    throw err;
  }
  return tensorFromProto(p, { file, dir: dirname(file), externalSizes: new Map() }, 'tensor');
}

/** Used by the IR's ValueInfo conversion. */
function valueInfoFromProto(p: P): ValueInfo {
  const { name, type, ...extra } = p;
  const vt = type ? valueTypeFromProto(type as P) : null;
  if (type) Object.defineProperty(extra, '$typeProto', { value: { type: vt, proto: type }, enumerable: false });
  return { name: (name as string | undefined) ?? '', type: vt, extra };
}

function valueTypeFromProto(p: P): ValueType {
  const tt = p.tensor_type as P | undefined;
  if (!tt) return { kind: 'other', proto: p };
  const shapeProto = tt.shape as P | undefined;
  const shape: Dim[] | null = shapeProto
    ? ((shapeProto.dim as P[] | undefined) ?? []).map((d) => (d.dim_value !== undefined ? Number(d.dim_value as bigint) : (d.dim_param as string | undefined) ?? null))
    : null;
  return { kind: 'tensor', elemType: (tt.elem_type as number | undefined) ?? 0, shape };
}
