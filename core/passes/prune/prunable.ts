import { WhittleError } from '../../../api/errors.ts';
import { alreadyQuantized } from '../../../native-models/ir/quantized-ops.ts';
import { DataType, floatToHalf } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Model, Node } from '../../../native-models/ir/model.ts';
import { normalizeAxis, opInfo } from '../../../native-models/ir/op-table.ts';
import type { Tensor } from '../../../native-models/ir/tensor.ts';
import { isExcluded } from '../quantize/graph-edit.ts';

/**
 * Which weights the pruning passes (magnitude, N:M, Wanda, SparseGPT) and `analyze --for prune`
 * may change: the constant float weight of every Conv, ConvTranspose, Gemm and MatMul, followed
 * back through the ops that only re-present a constant (Reshape, Transpose, Flatten, Squeeze,
 * Unsqueeze, Identity, Cast) to the tensor that is stored in the file. Pruning edits that stored
 * tensor, so the saving lands in the artifact and the graph is left as it was.
 *
 * Each entry also says how the op sees the weight (`shape`, `outAxis`, `inAxis`) and, when a
 * Transpose sits in between, where each element the op sees lives in the stored tensor
 * (`storedIndex`): structured patterns such as N:M run along the op's reduction axis, which is not
 * the stored tensor's axis then.
 */

/** Ops whose weight is a pruning target. */
export const PRUNABLE_OPS: readonly string[] = ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'];

/** Ops between a stored constant and its consumer that keep the values (and so may be followed). */
const VIEW_OPS = new Set(['Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Cast']);

const FLOAT_TYPES = new Set<number>([DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE]);

export interface PrunableWeight {
  /** The graph the node sits in (the main graph or a subgraph). */
  graph: Graph;
  node: Node;
  /** Other nodes that read the same stored tensor (tied weights): pruning it changes them too. */
  sharedWith: Node[];
  /** Name of the stored tensor (initializer or Constant output) that pruning edits. */
  weightName: string;
  tensor: Tensor;
  /** The weight's shape as the op reads it (after any Reshape/Transpose in between). */
  shape: number[];
  /** Axis of `shape` along which output channels run (normalised, never negative). */
  outAxis: number;
  /** Axis of `shape` along which the reduction (input channels / K) runs (normalised). */
  inAxis: number;
  /**
   * For each element in the op's row-major order over `shape`, its index in the stored tensor;
   * null when the orders agree (no Transpose on the way, the usual case).
   */
  storedIndex: Int32Array | null;
  /** Op types passed through between the stored tensor and the node, nearest the node first. */
  via: string[];
  /** Elements of the weight. */
  parameters: number;
}

export type SkipReason = 'excluded' | 'too-small' | 'first-last' | 'not-float' | 'shape';

export interface SkippedLayer {
  /** The node's label (its name, or `Op(output)` for unnamed nodes), as inspect shows it. */
  node: string;
  op: string;
  weight: string;
  reason: SkipReason;
  detail: string;
}

export interface PrunableOptions {
  /** Node names, output names, labels or op types to leave alone (matched as the quantizers do). */
  exclude?: readonly string[] | undefined;
  /** Layers whose weight has fewer elements than this are left alone (default 0: none). */
  minParameters?: number | undefined;
  /**
   * Leave the first and the last candidate layer alone (default false). They are found in
   * topological order of the main graph (subgraphs after it) among all constant float weights,
   * before exclusions and the size limit apply — "first" and "last" are those of the network.
   */
  protectFirstLast?: boolean | undefined;
  /** Op types considered (default PRUNABLE_OPS). */
  ops?: readonly string[] | undefined;
}

export interface PrunableSet {
  /** Weights to prune, each stored tensor once, in topological order. */
  layers: PrunableWeight[];
  /** Candidate layers left alone, with why: reports show them as `excluded`. */
  skipped: SkippedLayer[];
  /** alreadyQuantized's words when the model holds quantized ops (its int8 weights cannot be pruned). */
  alreadyQuantized?: string | null;
}

/** Lists the prunable weights of a model (see the module comment); changes nothing. */
export function prunableWeights(model: Model, options: PrunableOptions = {}): PrunableSet {
  const ops = new Set(options.ops ?? PRUNABLE_OPS);
  const minParameters = options.minParameters ?? 0;
  const candidates: PrunableWeight[] = [];
  const skipped: SkippedLayer[] = [];
  const byTensor = new Map<Tensor, PrunableWeight>();
  for (const g of model.graphs()) {
    const producers = g.producers();
    let order: Node[];
    try {
      order = g.topologicalOrder();
    } catch {
      order = g.nodes;
    }
    for (const node of order) {
      if (!ops.has(node.opType) || (node.domain !== '' && node.domain !== 'ai.onnx')) continue;
      for (const role of opInfo(node).weights) {
        const input = node.inputs[role.input];
        if (!input) continue;
        const found = traceWeight(g, input, producers);
        if (!found) continue; // computed at run time (an activation): not a layer weight
        const skip = (reason: SkipReason, detail: string) => skipped.push({ node: node.label, op: node.opType, weight: found.name, reason, detail });
        if (!FLOAT_TYPES.has(found.tensor.dataType)) {
          skip('not-float', `${node.label}: weight ${found.name} is ${found.tensor.dtype}, not a float type (prune before quantizing)`);
          continue;
        }
        const earlier = byTensor.get(found.tensor);
        if (earlier) {
          earlier.sharedWith.push(node);
          continue;
        }
        const view = viewOf(g, found.tensor, found.via);
        if (typeof view === 'string') {
          skip('shape', `${node.label}: ${view}`);
          continue;
        }
        const rank = view.shape.length;
        const outAxis = normalizeAxis(role.outAxis, rank);
        const inAxis = normalizeAxis(role.inAxis, rank);
        if (rank < 2 || outAxis < 0 || outAxis >= rank || inAxis < 0 || inAxis >= rank) {
          skip('shape', `${node.label}: weight ${found.name} has shape [${view.shape.join(', ')}], not what ${node.opType} expects`);
          continue;
        }
        const w: PrunableWeight = {
          graph: g, node, sharedWith: [], weightName: found.name, tensor: found.tensor, shape: view.shape, outAxis, inAxis,
          storedIndex: view.storedIndex, via: found.via.map((p) => p.opType), parameters: found.tensor.elementCount,
        };
        byTensor.set(found.tensor, w);
        candidates.push(w);
      }
    }
  }
  const protectedSet = new Set<PrunableWeight>();
  if (options.protectFirstLast && candidates.length > 0) {
    protectedSet.add(candidates[0]!);
    protectedSet.add(candidates[candidates.length - 1]!);
  }
  const layers: PrunableWeight[] = [];
  for (const w of candidates) {
    const skip = (reason: SkipReason, detail: string) => skipped.push({ node: w.node.label, op: w.node.opType, weight: w.weightName, reason, detail });
    const excludedBy = [w.node, ...w.sharedWith].find((n) => isExcluded(n, options.exclude));
    if (excludedBy) skip('excluded', `${excludedBy.label}: excluded`);
    else if (protectedSet.has(w)) skip('first-last', `${w.node.label}: ${w === candidates[0] ? 'first' : 'last'} prunable layer, protected`);
    else if (w.parameters < minParameters) skip('too-small', `${w.node.label}: ${w.parameters} parameters, fewer than the minimum ${minParameters}`);
    else layers.push(w);
  }
  // only the no-prunable-weight error reads it
  return { layers, skipped, alreadyQuantized: layers.length === 0 ? alreadyQuantized(model) : null };
}

/**
 * Throws a clear error when nothing is left to prune: BAD_INPUT when the model has no constant float
 * Conv/Gemm/MatMul weight at all, BAD_USAGE when the options (exclusions, minimum size, protection)
 * left none.
 */
export function requirePrunable(set: PrunableSet, passName: string): void {
  if (set.layers.length > 0) return;
  if (set.skipped.length === 0 || set.skipped.every((s) => s.reason === 'not-float' || s.reason === 'shape')) {
    const why = set.skipped.length ? `: ${set.skipped.map((s) => s.detail).join('; ')}` : '';
    const quantized = set.alreadyQuantized ? `; ${set.alreadyQuantized}: prune its float original, then quantize` : '';
    throw new WhittleError('BAD_INPUT', `${passName}: the model has no prunable weight (a constant float weight of ${PRUNABLE_OPS.join(', ')})${why}${quantized}`);
  }
  throw new WhittleError('BAD_USAGE', `${passName}: every prunable layer was left out by the options: ${set.skipped.map((s) => s.detail).join('; ')}`);
}

interface Traced {
  name: string;
  tensor: Tensor;
  /** View ops from the node back to the stored tensor (nearest the node first). */
  via: Node[];
}

function traceWeight(g: Graph, name: string, producers: Map<string, Node>): Traced | null {
  const via: Node[] = [];
  for (let hops = 0; hops < 8; hops++) {
    const t = g.constant(name);
    if (t) return { name, tensor: t, via };
    const p = producers.get(name);
    if (!p || !VIEW_OPS.has(p.opType) || (p.domain !== '' && p.domain !== 'ai.onnx') || !p.inputs[0]) return null;
    via.push(p);
    name = p.inputs[0];
  }
  return null;
}

/** The shape the consumer sees and the element order, applying the view ops from the stored tensor outwards. */
function viewOf(g: Graph, tensor: Tensor, via: Node[]): { shape: number[]; storedIndex: Int32Array | null } | string {
  let shape = [...tensor.dims];
  let index: Int32Array | null = null;
  const n = tensor.elementCount;
  for (let k = via.length - 1; k >= 0; k--) {
    const op = via[k]!;
    const ints = (input: number, attr: string): number[] | undefined => {
      const c = op.inputs[input] ? g.constant(op.inputs[input]) : null;
      if (c) return Array.from(c.toFloat32(), (v) => Math.trunc(v));
      return op.attrInts(attr);
    };
    switch (op.opType) {
      case 'Identity': case 'Cast': break;
      case 'Reshape': {
        const target = ints(1, 'shape'); // opset < 5 kept the shape in an attribute
        if (!target) return `${op.label}: shape is not a constant`;
        const allowZero = op.attrInt('allowzero', 0) === 1;
        const dims = target.map((d, i) => (d === 0 && !allowZero ? shape[i] ?? -2 : d));
        const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        const out = dims.map((d) => (d === -1 ? (known > 0 ? n / known : 0) : d));
        if (out.some((d) => !Number.isInteger(d) || d < 0) || out.reduce((a, b) => a * b, 1) !== n) return `${op.label}: cannot reshape [${shape.join(', ')}] to [${target.join(', ')}]`;
        shape = out;
        break;
      }
      case 'Flatten': {
        const axis = normalizeAxis(op.attrInt('axis', 1), shape.length);
        const prod = (a: number[]) => a.reduce((x, y) => x * y, 1);
        shape = [prod(shape.slice(0, axis)), prod(shape.slice(axis))];
        break;
      }
      case 'Squeeze': {
        const axes = ints(1, 'axes')?.map((a) => normalizeAxis(a, shape.length));
        shape = shape.filter((d, i) => (axes ? !axes.includes(i) : d !== 1));
        break;
      }
      case 'Unsqueeze': {
        const axes = ints(1, 'axes');
        if (!axes) return `${op.label}: axes are not a constant`;
        const rank = shape.length + axes.length;
        const at = new Set(axes.map((a) => normalizeAxis(a, rank)));
        const out: number[] = [];
        for (let i = 0, j = 0; i < rank; i++) out.push(at.has(i) ? 1 : shape[j++]!);
        shape = out;
        break;
      }
      case 'Transpose': {
        const perm = op.attrInts('perm') ?? shape.map((_, i) => shape.length - 1 - i);
        if (perm.length !== shape.length) return `${op.label}: perm does not match the weight's rank`;
        index = transposeIndex(shape, perm, index);
        shape = perm.map((p) => shape[p]!);
        break;
      }
      default: return `${op.label}: cannot follow ${op.opType}`;
    }
  }
  return { shape, storedIndex: index };
}

/** The stored index of each element after a Transpose, given those before it (null: identity). */
function transposeIndex(shape: number[], perm: number[], before: Int32Array | null): Int32Array {
  const rank = shape.length;
  const n = shape.reduce((a, b) => a * b, 1);
  const strides = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1]! * shape[i + 1]!;
  const outDims = perm.map((p) => shape[p]!);
  const outStrides = perm.map((p) => strides[p]!);
  const counter = new Array<number>(rank).fill(0);
  const out = new Int32Array(n);
  let src = 0;
  for (let i = 0; i < n; i++) {
    out[i] = before ? before[src]! : src;
    for (let d = rank - 1; d >= 0; d--) {
      counter[d]!++;
      src += outStrides[d]!;
      if (counter[d]! < outDims[d]!) break;
      src -= outStrides[d]! * outDims[d]!;
      counter[d] = 0;
    }
  }
  return out;
}

/**
 * Sets the stored elements marked in `mask` to zero, keeping the tensor's dtype and every other
 * value bit for bit (no round trip through float32). Returns the tensor's zero count afterwards.
 */
export function zeroMasked(tensor: Tensor, mask: Uint8Array): number {
  const data = tensor.typed();
  const copy = data.slice() as Float32Array | Float64Array | Uint16Array;
  for (let i = 0; i < copy.length; i++) if (mask[i]) copy[i] = 0;
  tensor.setData(copy);
  return tensor.countZeros();
}

/** Writes float32 values into a float tensor in its own dtype (for passes that also update kept weights). */
export function writeFloat32(tensor: Tensor, values: Float32Array): void {
  switch (tensor.dataType) {
    case DataType.FLOAT: tensor.setData(values.slice()); return;
    case DataType.DOUBLE: tensor.setData(Float64Array.from(values)); return;
    case DataType.FLOAT16: tensor.setData(Uint16Array.from(values, (v) => floatToHalf(v))); return;
    case DataType.BFLOAT16: {
      const bits = new Uint32Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
      // round to nearest even on the 16 dropped bits; NaN stays a quiet NaN
      tensor.setData(Uint16Array.from(bits, (b) => ((b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16)));
      return;
    }
    default: throw new WhittleError('UNSUPPORTED', `tensor ${tensor.name}: cannot write float values into ${tensor.dtype}`);
  }
}
