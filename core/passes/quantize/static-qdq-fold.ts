import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Node } from '../../../native-models/ir/model.ts';
import { findConstantWeight, materialise } from './constant-weight.ts';
import { addInitializer, type NameAllocator } from './graph-edit.ts';

/**
 * CNTK and Caffe exporters write a Conv without bias followed by `Add(conv, B[C,1,1])`. Quantized as
 * it stands that is QLinearConv → requantize → QLinearAdd with a uint8 bias: an extra rounding step
 * and an extra kernel. Folding B into the Conv's bias input (exactly what onnxruntime's ConvAddFusion
 * does for float models) gives one QLinearConv with an int32 bias, which is both faster and more
 * accurate. The sum is computed once in float32, as onnxruntime's fusion would.
 */
export interface FoldedAdd {
  conv: Node;
  add: Node;
  /** Constants and nodes the fold left unread (for cleanup). */
  unreadNames: string[];
  unreadNodes: Node[];
}

/** `eligible(node, asOp)`: the node may be quantized (as `asOp` when the fold changes its op). */
export type Eligible = (n: Node, asOp?: string) => boolean;

/**
 * The `Add(producer output, constant)` pairs both folds look at: an eligible Add, an eligible
 * producer of `op`, whose output feeds only this Add and is not a graph output. The producer and
 * consumer maps are rebuilt only after the caller says (by `next(true)`) that it changed the graph.
 */
function* biasAddCandidates(g: Graph, eligible: Eligible, op: string): Generator<{ add: Node; producer: Node; x: string; c: string; producers: Map<string, Node> }, void, boolean | undefined> {
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  let producers = g.producers();
  let consumers = g.consumers();
  for (const add of [...g.nodes]) {
    if (add.opType !== 'Add' || add.domain !== '' || !eligible(add) || add.inputs.length !== 2) continue;
    for (const side of [0, 1]) {
      const x = add.inputs[side]!;
      const c = add.inputs[1 - side]!;
      const producer = producers.get(x);
      if (!producer || producer.opType !== op || producer.domain !== '' || !eligible(producer)) continue;
      if (graphOutputs.has(x) || (consumers.get(x) ?? []).length !== 1) continue;
      const changed = yield { add, producer, x, c, producers };
      if (changed) {
        producers = g.producers();
        consumers = g.consumers();
        break;
      }
    }
  }
}

/** Removes the Add the producer now stands in for (the producer writes the Add's output). */
function replaceAdd(g: Graph, producer: Node, add: Node, x: string): void {
  producer.outputs[0] = add.outputs[0]!;
  g.nodes.splice(g.nodes.indexOf(add), 1);
  // the producer's old output no longer exists; a stale type entry would describe nothing
  g.valueInfo = g.valueInfo.filter((v) => v.name !== x);
}

export function foldConvBiasAdds(g: Graph, eligible: Eligible, names: NameAllocator): FoldedAdd[] {
  const folded: FoldedAdd[] = [];
  const candidates = biasAddCandidates(g, eligible, 'Conv');
  let changed = false;
  for (let next = candidates.next(); !next.done; next = candidates.next(changed)) {
    changed = false;
    const { add, producer: conv, x, c, producers } = next.value;
    const weight = conv.inputs[1] ? findConstantWeight(g, conv.inputs[1], producers) : null;
    const bias = findConstantWeight(g, c, producers);
    if (!weight || 'problem' in weight || !bias || 'problem' in bias || bias.source.dataType !== DataType.FLOAT) continue;
    const channels = weight.dims[0]!;
    const perChannel = channelBroadcast(bias.dims, weight.dims.length, channels);
    if (perChannel === null) continue;
    // a Conv with a bias already (a BatchNormalization folded into it, say): the two add up
    const own = conv.inputs[2] ? findConstantWeight(g, conv.inputs[2], producers) : null;
    if (conv.inputs[2] && (!own || 'problem' in own || own.source.dataType !== DataType.FLOAT || own.source.elementCount !== channels)) continue;
    const values = materialise(g, bias);
    const ownValues = own && !('problem' in own) ? materialise(g, own) : null;
    const b = new Float32Array(channels);
    for (let i = 0; i < channels; i++) b[i] = values[perChannel ? i : 0]! + (ownValues ? ownValues[i]! : 0);
    const name = names.fresh(`${conv.name || x}_bias`);
    addInitializer(g, name, DataType.FLOAT, [channels], b);
    conv.inputs = [conv.inputs[0]!, conv.inputs[1]!, name];
    replaceAdd(g, conv, add, x);
    const replaced = own && !('problem' in own) ? [own] : [];
    folded.push({ conv, add, unreadNames: [bias.sourceName, ...replaced.map((r) => r.sourceName)], unreadNodes: [...bias.chain, ...replaced.flatMap((r) => r.chain)] });
    changed = true;
  }
  return folded;
}

/**
 * Whether a constant of `dims` added to a Conv output of `rank` is one value per output channel
 * (true), one value for all (false), or anything else (null: not a bias, leave the Add alone).
 */
function channelBroadcast(dims: number[], rank: number, channels: number): boolean | null {
  if (dims.length > rank) return null;
  const padded = [...new Array<number>(rank - dims.length).fill(1), ...dims];
  if (padded.some((d, i) => i !== 1 && d !== 1)) return null;
  const c = padded[1]!;
  return c === channels ? true : c === 1 ? false : null;
}

/**
 * MatMul + Add(bias) on a 2-D input is a Linear layer. onnxruntime's own MatMulAddFusion turns it
 * into a float Gemm before its QDQ fusions run, which leaves the dequantized weight to a float Gemm
 * at run time. Written as a Gemm with an int32 bias here, it fuses into QGemm instead.
 */
export function foldMatMulBiasAdds(g: Graph, eligible: Eligible, names: NameAllocator): FoldedAdd[] {
  const folded: FoldedAdd[] = [];
  const candidates = biasAddCandidates(g, eligible, 'MatMul');
  let changed = false;
  for (let next = candidates.next(); !next.done; next = candidates.next(changed)) {
    changed = false;
    const { add, producer: mm, x, c, producers } = next.value;
    if (!eligible(mm, 'Gemm') || rankOf(g, mm.inputs[0]!, producers) !== 2) continue;
    const weight = findConstantWeight(g, mm.inputs[1]!, producers);
    const bias = findConstantWeight(g, c, producers);
    if (!weight || 'problem' in weight || weight.dims.length !== 2 || !bias || 'problem' in bias || bias.source.dataType !== DataType.FLOAT) continue;
    const n = weight.dims[1]!;
    if (bias.dims.length > 2 || bias.dims.slice(0, -1).some((d) => d !== 1) || (bias.dims.at(-1) ?? 1) !== n) continue;
    const values = materialise(g, bias);
    const name = names.fresh(`${mm.name || x}_bias`);
    addInitializer(g, name, DataType.FLOAT, [n], Float32Array.from(values));
    mm.opType = 'Gemm';
    mm.inputs = [mm.inputs[0]!, mm.inputs[1]!, name];
    replaceAdd(g, mm, add, x);
    folded.push({ conv: mm, add, unreadNames: [bias.sourceName], unreadNodes: bias.chain });
    changed = true;
  }
  return folded;
}

/** The rank of a value: from its type, or from the Reshape/Flatten that made it. */
function rankOf(g: Graph, name: string, producers: Map<string, Node>): number | null {
  const t = g.valueType(name);
  if (t && t.kind === 'tensor' && t.shape) return t.shape.length;
  const p = producers.get(name);
  if (p?.opType === 'Flatten' && p.domain === '') return 2;
  const shape = p?.opType === 'Reshape' && p.domain === '' && p.inputs[1] ? g.constant(p.inputs[1]) : null;
  return shape && shape.dims.length === 1 ? shape.dims[0]! : null;
}
