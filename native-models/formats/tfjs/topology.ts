import type { TfjsModel } from './read.ts';
import type { TfjsWeight } from './weight.ts';

/**
 * What the topology says about a TF.js model without running it: inputs and outputs, the op or
 * layer-class histogram, and for every weight which layer (Keras) or node (GraphDef) uses it and
 * how — in particular how a kernel is laid out, which pruning needs:
 *   Dense [in, out]; Conv1D/2D/3D [k…, in, out]; SeparableConv2D pointwise [1, 1, in, out];
 *   DepthwiseConv2D [kh, kw, in, multiplier] (no reduction over input channels: no N:M);
 *   Conv2DTranspose [kh, kw, out, in]; MatMul [in, out], or [out, in] with transpose_b.
 */

export interface KernelLayout {
  /** Axis along which output channels / units run. */
  outAxis: number;
  /** The reduction (input) axis N:M groups run along; null where the op has none to offer. */
  inAxis: number | null;
  /** Why N:M does not apply (depthwise, transposed convolution), when inAxis is null. */
  noNm?: string;
}

export interface WeightUse {
  weight: TfjsWeight;
  /** The Keras layer owning the weight, or the graph node reading it ('' when nothing reads it). */
  layer: string;
  /** Index of that layer or node in the topology (Infinity when none): uses sort into network order by it. */
  position: number;
  /** The layer's class (Conv2D, BatchNormalization…) or the node's op (Conv2D, MatMul, Mul…). */
  op: string;
  /** Set for the convolution and dense kernels pruning may change. */
  kernel: KernelLayout | null;
  /** Counted in `parameters` (SPEC §3): float weights, not int32 shape constants or strings. */
  parameter: boolean;
}

export interface TensorInfo {
  name: string;
  dtype: string;
  /** null dims are free (the batch, usually); null shape: unknown without running the model. */
  shape: (number | null)[] | null;
}

export interface TopologySummary {
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  /** Layers (layers models) or GraphDef nodes (graph models). */
  nodes: number;
  opHistogram: Record<string, number>;
  uses: WeightUse[];
  /** Who made the file: converter and generator, or the Keras version. */
  producer: string;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export function describeTopology(model: TfjsModel): TopologySummary {
  const topology = model.json.modelTopology as Json;
  const summary = model.kind === 'graph' ? describeGraph(model, topology) : describeLayers(model, topology);
  // network order (stable: weights of one layer keep their manifest order)
  summary.uses.sort((a, b) => a.position - b.position || 0);
  const producer = [model.json.convertedBy, model.json.generatedBy, isObject(topology) && topology.keras_version ? `Keras ${String(topology.keras_version)}` : undefined]
    .filter((s): s is string => typeof s === 'string' && s !== '').join(', ');
  return { ...summary, producer };
}

function histogram(names: string[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  return Object.fromEntries(counts); // own properties, even for names like "constructor"
}

function shapeOf(dims: unknown): (number | null)[] | null {
  if (!Array.isArray(dims)) return null;
  return dims.map((d) => (typeof d === 'number' && d >= 0 ? d : null));
}

// ---------------------------------------------------------------- layers models (Keras config)

interface KerasLayer { name: string; className: string; config: Json }

/** Every layer of a Keras model config, nested models (Functional/Sequential inside) included. */
function kerasLayers(modelConfig: Json): KerasLayer[] {
  const out: KerasLayer[] = [];
  const visit = (config: unknown) => {
    const list = Array.isArray(config) ? config : isObject(config) && Array.isArray(config.layers) ? config.layers : [];
    for (const layer of list) {
      if (!isObject(layer)) continue;
      const layerConfig = isObject(layer.config) ? layer.config : {};
      const name = str(layer.name) ?? str(layerConfig.name) ?? '';
      out.push({ name, className: str(layer.class_name) ?? '?', config: layerConfig });
      if (Array.isArray(layerConfig.layers) || Array.isArray(layer.config)) visit(layer.config);
    }
  };
  visit(modelConfig.config);
  return out;
}

/** Kernel layouts of the Keras layers pruning handles, by class and attribute name. */
function kerasKernel(className: string, attribute: string, rank: number): KernelLayout | null {
  if (attribute === 'kernel') {
    if (className === 'Dense' && rank === 2) return { inAxis: 0, outAxis: 1 };
    if ((className === 'Conv1D' || className === 'Conv2D' || className === 'Conv3D') && rank >= 3) return { inAxis: rank - 2, outAxis: rank - 1 };
    if ((className === 'Conv2DTranspose' || className === 'Conv3DTranspose') && rank >= 3) {
      return { inAxis: null, outAxis: rank - 2, noNm: 'a transposed convolution reduces over its last axis per output position, not along a stored input dimension' };
    }
  }
  if (attribute === 'pointwise_kernel' && rank >= 3) return { inAxis: rank - 2, outAxis: rank - 1 };
  if (attribute === 'depthwise_kernel' && rank >= 3) {
    return { inAxis: null, outAxis: rank - 2, noNm: 'a depthwise convolution has no reduction over input channels' };
  }
  return null;
}

function describeLayers(model: TfjsModel, topology: Json): Omit<TopologySummary, 'producer'> {
  const modelConfig = isObject(topology.model_config) ? topology.model_config : topology;
  const layers = kerasLayers(modelConfig);
  const byName = new Map(layers.map((l) => [l.name, l]));
  const positions = new Map(layers.map((l, i) => [l.name, i]));
  const uses = model.weights.map((weight): WeightUse => {
    // TF.js names weights `<layer>/<attribute>`, with nested scopes before the layer (`outer/inner/kernel`)
    const parts = weight.name.split('/');
    const attribute = (parts[parts.length - 1] ?? '').replace(/_\d+$/, '');
    let layer: KerasLayer | undefined;
    for (let i = parts.length - 1; i >= 1 && !layer; i--) layer = byName.get(parts.slice(0, i).join('/')) ?? byName.get(parts[i - 1]!);
    return {
      weight,
      layer: layer?.name ?? parts.slice(0, -1).join('/'),
      position: layer ? positions.get(layer.name)! : Infinity,
      op: layer?.className ?? '?',
      kernel: layer && weight.isFloat ? kerasKernel(layer.className, attribute, weight.shape.length) : null,
      parameter: weight.isFloat,
    };
  });
  const config = isObject(modelConfig.config) ? modelConfig.config : {};
  const inputs: TensorInfo[] = [];
  const inputLayers = Array.isArray(config.input_layers) ? config.input_layers : null;
  if (inputLayers) {
    for (const ref of inputLayers) {
      const name = Array.isArray(ref) ? str(ref[0]) : undefined;
      const l = name ? byName.get(name) : undefined;
      if (name) inputs.push({ name, dtype: str(l?.config.dtype) ?? 'float32', shape: shapeOf(l?.config.batch_input_shape ?? l?.config.batchInputShape) });
    }
  } else if (layers[0]) {
    // Sequential: the first layer declares the input; TF.js names the input `<first layer>_input`
    const first = layers[0];
    const isInput = first.className === 'InputLayer';
    inputs.push({ name: isInput ? first.name : `${first.name}_input`, dtype: str(first.config.dtype) ?? 'float32', shape: shapeOf(first.config.batch_input_shape ?? first.config.batchInputShape) });
  }
  const outputLayers = Array.isArray(config.output_layers) ? config.output_layers : null;
  const outputNames = outputLayers
    ? outputLayers.map((ref) => (Array.isArray(ref) ? str(ref[0]) : undefined)).filter((n): n is string => n !== undefined)
    : layers.length ? [layers[layers.length - 1]!.name] : [];
  return {
    inputs,
    outputs: outputNames.map((name) => ({ name, dtype: 'float32', shape: null })),
    nodes: layers.length,
    opHistogram: histogram(layers.map((l) => l.className)),
    uses,
  };
}

// ---------------------------------------------------------------- graph models (GraphDef JSON)

interface GraphNode { name: string; op: string; input: string[]; attr: Json }

const TF_DTYPES: Record<string, string> = {
  DT_FLOAT: 'float32', DT_INT32: 'int32', DT_BOOL: 'bool', DT_STRING: 'string', DT_INT64: 'int64',
  DT_HALF: 'float16', DT_DOUBLE: 'float64', DT_UINT8: 'uint8', DT_INT8: 'int8', DT_COMPLEX64: 'complex64',
};

function graphNodes(topology: Json): GraphNode[] {
  const list = Array.isArray(topology.node) ? topology.node : [];
  return list.filter(isObject).map((n) => ({
    name: str(n.name) ?? '',
    op: str(n.op) ?? '?',
    input: Array.isArray(n.input) ? n.input.filter((i): i is string => typeof i === 'string') : [],
    attr: isObject(n.attr) ? n.attr : {},
  }));
}

/** `name`, `name:1` → `name`; control inputs (`^name`) are not data. */
function dataInput(input: string): string | null {
  return input.startsWith('^') ? null : input.replace(/:\d+$/, '');
}

function attrType(attr: Json, key: string): string | undefined {
  const a = attr[key];
  return isObject(a) ? str(a.type) : undefined;
}

function attrBool(attr: Json, key: string): boolean {
  const a = attr[key];
  return isObject(a) && a.b === true;
}

function tensorShape(shape: unknown): (number | null)[] | null {
  if (!isObject(shape)) return null;
  if (shape.unknownRank === true) return null;
  const dims = Array.isArray(shape.dim) ? shape.dim : [];
  return dims.map((d) => {
    const size = isObject(d) ? Number(d.size) : NaN;
    return Number.isSafeInteger(size) && size >= 0 ? size : null;
  });
}

/** A graph node's kernel layout when `index` is the filter/weight input of a convolution or matmul. */
function graphKernel(node: GraphNode, index: number, rank: number): KernelLayout | null {
  if (index !== 1) return null;
  switch (node.op) {
    case 'Conv2D': case '_FusedConv2D': case 'Conv3D':
      return rank >= 4 ? { inAxis: rank - 2, outAxis: rank - 1 } : null;
    case 'DepthwiseConv2dNative': case 'FusedDepthwiseConv2dNative':
      return rank === 4 ? { inAxis: null, outAxis: 2, noNm: 'a depthwise convolution has no reduction over input channels' } : null;
    case 'Conv2DBackpropInput':
      return rank === 4 ? { inAxis: null, outAxis: 2, noNm: 'a transposed convolution reduces over its last axis per output position, not along a stored input dimension' } : null;
    case 'MatMul': case '_FusedMatMul':
      if (rank !== 2) return null;
      return attrBool(node.attr, 'transpose_b') ? { inAxis: 1, outAxis: 0 } : { inAxis: 0, outAxis: 1 };
    default:
      return null;
  }
}

function signatureTensors(sig: unknown): TensorInfo[] | null {
  if (!isObject(sig)) return null;
  const entries = Object.values(sig).filter(isObject);
  if (entries.length === 0) return null;
  return entries.map((e) => ({
    name: (str(e.name) ?? '').replace(/:0$/, ''),
    dtype: TF_DTYPES[str(e.dtype) ?? ''] ?? str(e.dtype) ?? 'unknown',
    shape: tensorShape(e.tensorShape),
  }));
}

function describeGraph(model: TfjsModel, topology: Json): Omit<TopologySummary, 'producer'> {
  const nodes = graphNodes(topology);
  const consumers = new Map<string, { node: GraphNode; index: number }[]>();
  const positions = new Map(nodes.map((n, i) => [n, i]));
  for (const node of nodes) {
    node.input.forEach((raw, index) => {
      const name = dataInput(raw);
      if (name === null) return;
      const list = consumers.get(name);
      if (list) list.push({ node, index });
      else consumers.set(name, [{ node, index }]);
    });
  }
  const uses = model.weights.map((weight): WeightUse => {
    const readers = consumers.get(weight.name) ?? [];
    const first = readers[0];
    // a kernel only when every reader uses it as one, the same way: pruning it must not surprise another op
    const layouts = readers.map((r) => graphKernel(r.node, r.index, weight.shape.length));
    const same = layouts.every((k) => k !== null && JSON.stringify(k) === JSON.stringify(layouts[0]));
    return {
      weight,
      layer: first?.node.name ?? '',
      position: first ? positions.get(first.node)! : Infinity,
      op: first?.node.op ?? (readers.length ? '?' : '(unused)'),
      kernel: weight.isFloat && readers.length > 0 && same ? layouts[0]! : null,
      parameter: weight.isFloat,
    };
  });
  const signature = isObject(model.json.signature) ? model.json.signature : {};
  const placeholders = nodes.filter((n) => n.op === 'Placeholder');
  const inputs = signatureTensors(signature.inputs) ?? placeholders.map((n) => ({
    name: n.name,
    dtype: TF_DTYPES[attrType(n.attr, 'dtype') ?? ''] ?? 'unknown',
    shape: tensorShape(isObject(n.attr.shape) ? n.attr.shape.shape : undefined),
  }));
  // without a signature TF.js takes the nodes nothing reads as the outputs; so do we
  const read = new Set<string>();
  for (const n of nodes) for (const raw of n.input) read.add(raw.replace(/^\^/, '').replace(/:\d+$/, ''));
  const outputs = signatureTensors(signature.outputs) ?? nodes
    .filter((n) => !read.has(n.name) && n.op !== 'Const' && n.op !== 'NoOp' && n.op !== 'Placeholder')
    .map((n) => ({ name: n.name, dtype: TF_DTYPES[attrType(n.attr, 'T') ?? attrType(n.attr, 'dtype') ?? ''] ?? 'unknown', shape: null }));
  return { inputs, outputs, nodes: nodes.length, opHistogram: histogram(nodes.map((n) => n.op)), uses };
}
