import { DataType } from './dtypes.ts';
import { constantNodeTensor, type Graph, type Model, type Node } from './model.ts';
import { opInfo } from './op-table.ts';
import type { Tensor } from './tensor.ts';

/** The SPEC §3 `layers` fields every format's per-layer table has. */
export interface SpecLayerRow {
  name: string;
  op: string;
  weight: string;
  shape: number[];
  parameters: number;
  zeros: number;
  sparsity: number;
  dtype: string;
}

export interface LayerRow extends SpecLayerRow {
  bias: string | null;
  biasParameters: number;
  /** Set when the layer sits in a subgraph (If/Loop/Scan body). */
  graph?: string;
}

export interface ModelStats {
  /** Elements of weight and bias tensors (SPEC §3): not shapes, scales, zero points or indices. */
  parameters: number;
  nonzeroParameters: number;
  parameterBytes: number;
  nodes: number;
  opHistogram: Record<string, number>;
  layers: LayerRow[];
}

const NEVER_PARAMETERS = new Set<number>([DataType.INT64, DataType.BOOL, DataType.STRING, DataType.UNDEFINED]);

/** Constant tensors defined in a graph, keyed by the value name nodes read them by. */
function constantsOf(g: Graph): Map<string, Tensor> {
  const out = new Map(g.initializers);
  for (const n of g.nodes) {
    if (n.opType === 'Constant' && n.domain === '' && n.outputs[0]) {
      const t = constantNodeTensor(n); // directly: g.constant() searches the node list (O(n²) here)
      if (t) out.set(n.outputs[0], t);
    }
  }
  return out;
}

/** True when some use of the value is as a weight, bias or data input, not as a shape/scale/zero point. */
function usedAsParameter(name: string, consumers: Node[], producers: Map<string, Node>): boolean {
  for (const node of consumers) {
    const skip = new Set(opInfo(node).nonParameters);
    for (let i = 0; i < node.inputs.length; i++) {
      if (node.inputs[i] !== name || skip.has(i)) continue;
      if (isDynamicScaleProduct(node, name, producers)) continue;
      return true;
    }
    // read from inside a subgraph: count it (the subgraph's own op decides, which we do not chase)
    if (!node.inputs.includes(name)) return true;
  }
  return false;
}

/**
 * Dynamic quantization multiplies DynamicQuantizeLinear's activation scale by the weight scale:
 * that constant is a scale, not a parameter.
 */
function isDynamicScaleProduct(node: Node, name: string, producers: Map<string, Node>): boolean {
  if (node.opType !== 'Mul') return false;
  const other = node.inputs.find((i) => i !== name);
  const p = other ? producers.get(other) : undefined;
  return p?.opType === 'DynamicQuantizeLinear' && p.outputs[1] === other;
}

/**
 * Logical weights of a tensor: MatMulNBits packs K×N sub-byte weights into uint8 blocks, and
 * GatherBlockQuantized a [V, D] table into [V, D·bits/8] bytes.
 */
function logicalElements(name: string, t: Tensor, consumers: Node[]): number {
  const packer = consumers.find((n) => (n.opType === 'MatMulNBits' && n.inputs[1] === name) || (n.opType === 'GatherBlockQuantized' && n.inputs[0] === name));
  return packer ? elementsAsRead(packer, t) : t.elementCount;
}

/** The weights `node` reads from its stored weight `t` (more than `t` holds where they are packed). */
function elementsAsRead(node: Node, t: Tensor): number {
  if (node.opType === 'MatMulNBits') return node.attrInt('K', 0) * node.attrInt('N', 0);
  if (node.opType === 'GatherBlockQuantized' && t.dataType === DataType.UINT8) return t.elementCount * (8 / node.attrInt('bits', 4));
  return t.elementCount;
}

/**
 * A weight may reach a Conv/MatMul through ops that only re-present a constant: DequantizeLinear
 * (QDQ models), Reshape (CNTK's MatMul weights), Transpose, Cast, Identity... Follow them to the
 * stored tensor.
 */
const PASS_THROUGH = new Set(['DequantizeLinear', 'Reshape', 'Transpose', 'Cast', 'Identity', 'Squeeze', 'Unsqueeze', 'Flatten']);

/** Graph.constant() with the producer map the caller already has (no search of the node list). */
function constantWithProducers(g: Graph, name: string, producers: Map<string, Node>): Tensor | null {
  const init = g.initializers.get(name);
  if (init) return init;
  const p = producers.get(name);
  if (p) return p.opType === 'Constant' && p.domain === '' ? constantNodeTensor(p) : null;
  return g.parent && !g.inputs.some((v) => v.name === name) ? g.parent.constant(name) : null;
}

export function storedWeight(g: Graph, name: string, producers: Map<string, Node>): { name: string; tensor: Tensor } | null {
  for (let hops = 0; hops < 8; hops++) {
    const t = constantWithProducers(g, name, producers);
    if (t) return { name, tensor: t };
    const p = producers.get(name);
    if (!p || !PASS_THROUGH.has(p.opType) || !p.inputs[0]) return null;
    name = p.inputs[0];
  }
  return null;
}

/** `countZeros: false` skips reading tensor data (parameters only; nonzeroParameters is then a copy). */
export function modelStats(model: Model, options: { countZeros?: boolean } = {}): ModelStats {
  const countZeros = options.countZeros ?? true;
  const stats: ModelStats = { parameters: 0, nonzeroParameters: 0, parameterBytes: 0, nodes: 0, opHistogram: {}, layers: [] };
  const histogram = new Map<string, number>();
  // Counting zeros reads every byte (external data from disk): once per tensor, however often it is used.
  const zeroCounts = new Map<Tensor, number>();
  const zerosOf = (t: Tensor) => (countZeros ? (zeroCounts.get(t) ?? zeroCounts.set(t, t.countZeros()).get(t)!) : 0);
  for (const g of model.graphs()) {
    const consumers = g.consumers();
    const producers = g.producers();
    for (const [name, t] of constantsOf(g)) {
      if (NEVER_PARAMETERS.has(t.dataType)) continue;
      const users = consumers.get(name) ?? [];
      if (!usedAsParameter(name, users, producers)) continue;
      const elements = logicalElements(name, t, users);
      stats.parameters += elements;
      // packed weights: zero bytes are not zero weights, so they count as non-zero
      stats.nonzeroParameters += elements === t.elementCount ? t.elementCount - zerosOf(t) : elements;
      stats.parameterBytes += t.byteLength;
    }
    for (const n of g.nodes) {
      const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType;
      histogram.set(key, (histogram.get(key) ?? 0) + 1);
      stats.nodes++;
      const info = opInfo(n);
      for (const role of info.weights) {
        const input = n.inputs[role.input];
        const w = input ? storedWeight(g, input, producers) : null;
        if (!w || NEVER_PARAMETERS.has(w.tensor.dataType)) continue;
        if (n.opType === 'Gather' && !w.tensor.isFloat) continue;
        const biasName = info.biases.map((i) => n.inputs[i]).find((b) => b && storedWeight(g, b, producers)) ?? null;
        const bias = biasName ? storedWeight(g, biasName, producers) : null;
        const elements = elementsAsRead(n, w.tensor);
        const zeros = elements === w.tensor.elementCount ? zerosOf(w.tensor) : 0;
        const row: LayerRow = {
          name: n.label,
          op: n.opType,
          weight: w.name,
          shape: [...w.tensor.dims],
          parameters: elements,
          zeros,
          sparsity: elements ? zeros / elements : 0,
          dtype: w.tensor.dtype,
          bias: bias?.name ?? null,
          biasParameters: bias?.tensor.elementCount ?? 0,
        };
        if (g !== model.graph) row.graph = g.name || '(subgraph)';
        stats.layers.push(row);
      }
    }
  }
  // an own property per op, even for op types such as "constructor" or "__proto__"
  stats.opHistogram = Object.fromEntries(histogram);
  return stats;
}
