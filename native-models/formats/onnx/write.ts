import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { badInput, WhittleError } from '../../../api/errors.ts';
import { AttrType, Graph, Model, Node, SparseTensor, type Attribute, type ValueInfo, type ValueType } from '../../ir/model.ts';
import { Tensor } from '../../ir/tensor.ts';
import { encodeInto, encodeMessage, SizeCache, type ProtoMessage } from './codec.ts';
import { checkExternalLocation, MAX_PROTO_BYTES } from './read.ts';
import { MODEL_PROTO } from './schema.ts';
import { FileSink } from './wire.ts';

export interface WriteOptions {
  /** true: tensors of at least sizeThreshold bytes go to an external data file; 'auto' (default): only when the protobuf would pass 2 GiB. */
  externalData?: boolean | 'auto';
  /** Smallest tensor, in bytes, moved to external data (default 1024, as onnx does). */
  sizeThreshold?: number;
  /** File name of the external data, relative to the model (default: `<model file name>.data`). */
  location?: string;
}

export interface WriteReport {
  path: string;
  bytes: number;
  externalDataPath: string | null;
  externalDataBytes: number;
  externalTensors: number;
  /** Set when the writer chose external data because the model would not fit in one protobuf. */
  autoExternal: boolean;
}

/** External tensors start on 4 KiB boundaries so they can be memory-mapped. */
const ALIGN = 4096;
/** Tensors still in a file are copied through one buffer of this size. */
const COPY_CHUNK = 16 << 20;
/** Leave room for the graph itself when deciding whether weights fit inline. */
const INLINE_BUDGET = MAX_PROTO_BYTES - (64 << 20);

type P = ProtoMessage;

/** A TensorProto's external_data entries: where its bytes are. */
function externalDataEntries(location: string, offset: number, length: number): P[] {
  return [{ key: 'location', value: location }, { key: 'offset', value: String(offset) }, { key: 'length', value: String(length) }];
}

class ExternalDataFile {
  private fd: number;
  offset = 0;
  count = 0;
  /**
   * Reused for every tensor copied from a file: a fresh 16 MiB buffer per chunk (what
   * Tensor.byteSource() yields) costs a page fault per 4 KiB, which made copying 1 GiB 2× slower
   * than plain read+write. Safe here because each chunk is written out before the next is read.
   */
  private copyBuffer: Uint8Array | null = null;
  constructor(readonly tmpPath: string, readonly location: string) {
    this.fd = openSync(tmpPath, 'w');
  }
  append(t: Tensor): P[] {
    const pad = (ALIGN - (this.offset % ALIGN)) % ALIGN;
    if (pad) this.write(new Uint8Array(pad));
    const start = this.offset;
    try {
      for (const chunk of t.chunksInto((this.copyBuffer ??= new Uint8Array(COPY_CHUNK)))) this.write(chunk);
    } catch (err) {
      if (t.source.kind === 'external' && /ended early/.test((err as Error).message)) throw badInput(t.source.path, (err as Error).message.replace(`${t.source.path}: `, ''));
      throw err;
    }
    this.count++;
    return externalDataEntries(this.location, start, t.byteLength);
  }
  private write(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
    this.offset += bytes.length;
  }
  close(): void {
    fsyncSync(this.fd);
    closeSync(this.fd);
  }
}

function totalTensorBytes(model: Model): number {
  let n = 0;
  for (const { tensor } of model.weights()) n += tensor.byteLength;
  for (const g of model.graphs()) for (const s of g.sparseInitializers) n += s.values.byteLength + s.indices.byteLength;
  return n;
}

/**
 * Writes the model to `outPath` (and its external data beside it), streaming tensor bytes straight
 * from where they are. Files are written under temporary names and renamed at the end, so a failed
 * write leaves any existing file untouched, and re-saving a model over itself is safe.
 */
export function writeOnnxFile(model: Model, outPath: string, options: WriteOptions = {}): WriteReport {
  const path = resolve(outPath);
  const threshold = options.sizeThreshold ?? 1024;
  let useExternal = options.externalData === true;
  let autoExternal = false;
  if (options.externalData === undefined || options.externalData === 'auto') {
    if (totalTensorBytes(model) > INLINE_BUDGET) useExternal = autoExternal = true;
  }
  const location = options.location ?? `${basename(path)}.data`;
  // the writer must not produce what the reader refuses: absolute paths or `..`
  checkExternalLocation(location, path);
  const suffix = `.tmp-${process.pid}-${Date.now()}`;
  const modelTmp = path + suffix;
  let external: ExternalDataFile | null = null;
  let copyBuffer: Uint8Array | null = null;
  try {
    if (useExternal) external = new ExternalDataFile(join(dirname(path), location) + suffix, location);
    const proto = modelToProto(model, (t) => {
      if (external && t.source.kind !== 'strings' && t.byteLength >= threshold) {
        return { data_location: 1, external_data: external.append(t) };
      }
      if (t.source.kind === 'strings') return { string_data: t.source.values };
      if (t.source.kind === 'inline') return { raw_data: t.source.bytes };
      // still in a file: copied through one reused buffer (the sink writes each piece before the next is read)
      return { raw_data: { byteLength: t.byteLength, chunks: () => t.chunksInto((copyBuffer ??= new Uint8Array(COPY_CHUNK))) } };
    });
    external?.close();
    const sizes = new SizeCache();
    const size = sizes.of(proto, MODEL_PROTO);
    if (size > MAX_PROTO_BYTES) {
      throw new WhittleError('UNSUPPORTED', `${path}: the model would be ${size} bytes in one protobuf (over 2 GiB); write it with external data`);
    }
    const sink = new FileSink(modelTmp);
    try {
      encodeInto(sink, proto, MODEL_PROTO, sizes);
    } finally {
      sink.close();
    }
    if (external) renameSync(external.tmpPath, join(dirname(path), location));
    renameSync(modelTmp, path);
    return {
      path,
      bytes: size,
      externalDataPath: external ? join(dirname(path), location) : null,
      externalDataBytes: external?.offset ?? 0,
      externalTensors: external?.count ?? 0,
      autoExternal,
    };
  } catch (err) {
    rmSync(modelTmp, { force: true });
    if (external) rmSync(external.tmpPath, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code && !(err instanceof WhittleError)) {
      // a missing folder, no permission, a full disk: name the file and the reason, no stack
      throw new WhittleError('BAD_USAGE', `${path}: cannot write the model (${code}: ${(err as Error).message.replace(/^[A-Z]+: /, '').split(',')[0]})`, { file: path, cause: err });
    }
    throw err;
  }
}

/**
 * Writes `model` to `outPath` with every tensor that is still in a file (external data, or a payload a
 * lazy read left in the model file) referenced where it is — external data entries naming that file,
 * offset and length — instead of copied: a file of a few KiB that onnxruntime loads with the same
 * weights, for when only what onnxruntime makes of the graph matters. Locations are relative to
 * `weightsDir` (default: `outPath`'s folder), and every such file must be in it or below it
 * (onnxruntime refuses external data outside the model's folder); a caller that writes elsewhere
 * links the files into `outPath`'s folder under the same relative names.
 */
export function writeOnnxReferencingWeights(model: Model, outPath: string, weightsDir = dirname(resolve(outPath))): number {
  const dir = resolve(weightsDir);
  const proto = modelToProto(model, (t) => {
    const source = t.source;
    switch (source.kind) {
      case 'external': {
        const location = relative(dir, source.path);
        checkExternalLocation(location, outPath);
        return { data_location: 1, external_data: externalDataEntries(location, source.offset, source.length) };
      }
      case 'strings': return { string_data: source.values };
      default: return { raw_data: t.bytes() };
    }
  });
  const bytes = encodeMessage(proto, MODEL_PROTO);
  writeFileSync(outPath, bytes);
  return bytes.length;
}

type PlaceTensor = (t: Tensor) => P;

export function modelToProto(model: Model, place: PlaceTensor): P {
  const p: P = { ir_version: BigInt(model.irVersion) };
  p.opset_import = model.opsets.map((o) => (o.domain ? { domain: o.domain, version: BigInt(o.version) } : { version: BigInt(o.version) }));
  if (model.producerName) p.producer_name = model.producerName;
  if (model.producerVersion) p.producer_version = model.producerVersion;
  if (model.domain) p.domain = model.domain;
  if (model.modelVersion) p.model_version = model.modelVersion;
  if (model.docString) p.doc_string = model.docString;
  p.graph = graphToProto(model.graph, place);
  return { ...model.extra, ...p };
}

function graphToProto(g: Graph, place: PlaceTensor): P {
  const p: P = { ...g.extra };
  p.node = g.nodes.map((n) => nodeToProto(n, place));
  if (g.name) p.name = g.name;
  p.initializer = [...g.initializers.values()].map((t) => tensorToProto(t, place));
  p.sparse_initializer = g.sparseInitializers.map((s) => sparseToProto(s, place));
  p.input = g.inputs.map(valueInfoToProto);
  p.output = g.outputs.map(valueInfoToProto);
  p.value_info = g.valueInfo.map(valueInfoToProto);
  return p;
}

function nodeToProto(n: Node, place: PlaceTensor): P {
  const p: P = { ...n.extra, input: n.inputs, output: n.outputs };
  if (n.name) p.name = n.name;
  p.op_type = n.opType;
  if (n.domain) p.domain = n.domain;
  p.attribute = n.attributes.map((a) => attributeToProto(a, place));
  return p;
}

function attributeToProto(a: Attribute, place: PlaceTensor): P {
  const p: P = { ...a.extra, name: a.name };
  if (a.type !== AttrType.UNDEFINED) p.type = a.type;
  const v = a.value;
  switch (a.type) {
    case AttrType.FLOAT: p.f = v as number; break;
    case AttrType.INT: p.i = BigInt(v as bigint | number); break;
    case AttrType.STRING: p.s = v as Uint8Array; break;
    case AttrType.TENSOR: if (v) p.t = tensorToProto(v as Tensor, place); break;
    case AttrType.GRAPH: if (v) p.g = graphToProto(v as Graph, place); break;
    case AttrType.SPARSE_TENSOR: if (v) p.sparse_tensor = sparseToProto(v as SparseTensor, place); break;
    case AttrType.TYPE_PROTO: p.tp = v; break;
    case AttrType.FLOATS: p.floats = v; break;
    case AttrType.INTS: p.ints = (v as (bigint | number)[]).map((x) => BigInt(x)); break;
    case AttrType.STRINGS: p.strings = v; break;
    case AttrType.TENSORS: p.tensors = (v as Tensor[]).map((t) => tensorToProto(t, place)); break;
    case AttrType.GRAPHS: p.graphs = (v as Graph[]).map((g) => graphToProto(g, place)); break;
    case AttrType.SPARSE_TENSORS: p.sparse_tensors = (v as SparseTensor[]).map((s) => sparseToProto(s, place)); break;
    case AttrType.TYPE_PROTOS: p.type_protos = v; break;
  }
  return p;
}

function tensorToProto(t: Tensor, place: PlaceTensor): P {
  const p: P = { ...t.extra, dims: t.dims.map((d) => BigInt(d)), data_type: t.dataType };
  if (t.name) p.name = t.name;
  return { ...p, ...place(t) };
}

function sparseToProto(s: SparseTensor, place: PlaceTensor): P {
  return { ...s.extra, values: tensorToProto(s.values, place), indices: tensorToProto(s.indices, place), dims: s.dims.map((d) => BigInt(d)) };
}

function sameType(a: ValueType | null, b: ValueType | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function valueInfoToProto(v: ValueInfo): P {
  const p: P = { ...v.extra, name: v.name };
  const original = (v.extra as { $typeProto?: { type: ValueType | null; proto: P } }).$typeProto;
  if (original && sameType(original.type, v.type)) p.type = original.proto;
  else if (v.type) p.type = valueTypeToProto(v.type);
  return p;
}

export function valueTypeToProto(t: ValueType): P {
  if (t.kind === 'other') return t.proto as P;
  const tensorType: P = { elem_type: t.elemType };
  if (t.shape) tensorType.shape = { dim: t.shape.map((d) => (typeof d === 'number' ? { dim_value: BigInt(d) } : typeof d === 'string' ? { dim_param: d } : {})) };
  return { tensor_type: tensorType };
}
