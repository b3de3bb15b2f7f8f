import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Node } from '../../../native-models/ir/model.ts';
import type { TensorRange } from '../../calibrate/index.ts';
import { ALREADY_QUANTIZED, findConstantWeight, gatherTable, type ConstantWeight } from './constant-weight.ts';
import { minMax, quantParams, quantRange, type QuantParams } from './math.ts';

/**
 * Which nodes of the main graph become QDQ, what each input is (activation, weight, bias, quantized
 * constant), and which quantization parameters every activation tensor gets. The rules follow what
 * onnxruntime's CPU EP fuses (qdq_selector_action_transformer.cc, onnxruntime 1.30):
 * - compute ops fuse as DQ → op → Q: Conv → QLinearConv, MatMul → QLinearMatMul (or, with no Q after
 *   it, MatMulIntegerToFloat), Gemm → QGemm (float output allowed), Add/Mul → QLinearAdd/QLinearMul,
 *   Concat → QLinearConcat, AveragePool/GlobalAveragePool → QLinearAveragePool/QLinearGlobalAveragePool,
 *   Sigmoid/LeakyRelu → QLinearSigmoid/QLinearLeakyRelu (table lookups: SiLU = x·Sigmoid(x) runs as
 *   QLinearSigmoid + QLinearMul);
 * - shape-only ops, MaxPool, Gather, Slice, Split, DepthToSpace and nearest-neighbour Resize run on uint8/int8
 *   directly when the DQ before and the Q after carry the same scale and zero point, so their output
 *   shares their input's parameters (a linear Resize has no 8-bit kernel there and stays float);
 * - a Relu/Clip input takes its output's range, so the Q after the producer already clips as the
 *   activation does; the activation is then dropped (see PlannedNode.remove) and Conv/Gemm/MatMul
 *   fuse with it.
 * Identity and Dropout are no-ops at inference; onnxruntime removes them and a shared scale keeps
 * the DQ → Q pair they leave behind an exact no-op its pair remover deletes.
 */
export const COMPUTE_OPS = ['Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'Add', 'Mul', 'Concat', 'AveragePool', 'GlobalAveragePool', 'Sigmoid', 'LeakyRelu'] as const;
export const SHARED_PARAM_OPS = ['MaxPool', 'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Dropout', 'Gather', 'Slice', 'DepthToSpace', 'Resize', 'Split'] as const;
export const CLIPPING_OPS = ['Relu', 'Clip'] as const;

/** The default op list: everything above that onnxruntime's CPU EP has a fused kernel for (ConvTranspose is opt-in). */
export const DEFAULT_STATIC_OP_TYPES: readonly string[] = [...COMPUTE_OPS.filter((o) => o !== 'ConvTranspose'), ...SHARED_PARAM_OPS, ...CLIPPING_OPS];

const compute = new Set<string>(COMPUTE_OPS);
const shared = new Set<string>(SHARED_PARAM_OPS);
const clipping = new Set<string>(CLIPPING_OPS);
/** Ops whose fused form may give a float output, so their output is quantized only when a quantized op reads it. */
const FLOAT_OUTPUT_OK = new Set(['MatMul', 'Gemm']);
/**
 * Ops without weights that are cheap in float, so they are left float where nothing quantized reads
 * them. Not Add/Mul: a float Add after a MatMul is folded by onnxruntime into a float Gemm on
 * dequantized weights, losing the integer MatMul.
 */
export const QUANTIZED_ONLY_WHEN_READ: ReadonlySet<string> = new Set<string>(['Concat', 'AveragePool', 'GlobalAveragePool', 'Sigmoid', 'LeakyRelu', ...SHARED_PARAM_OPS]);

/** Constants are found here and read when written (emit), one at a time, so memory stays near the model's size. */
export type InputRole =
  | { kind: 'activation' }
  /** Stored int8 (symmetric) with a DequantizeLinear; `axis` null means per-tensor. */
  | { kind: 'weight'; weight: ConstantWeight; axis: number | null }
  /** int32 with scale input_scale × weight_scale, zero point 0. */
  | { kind: 'bias'; bias: ConstantWeight; activationInput: number; weightInput: number }
  /** A constant operand of Add/Mul/Concat...: stored in the activation type with its own parameters. */
  | { kind: 'constant'; value: ConstantWeight }
  /**
   * The table of a Gather (an embedding): stored in the activation type with the parameters it shares
   * with the Gather's output, so onnxruntime drops the DQ → Gather → Q and gathers 8-bit rows.
   */
  | { kind: 'table'; value: ConstantWeight };

export interface PlannedNode {
  node: Node;
  kind: 'compute' | 'shared' | 'clipping';
  roles: Map<number, InputRole>;
  quantizeOutput: boolean;
  /**
   * A Relu/Clip whose output's quantization already clips exactly as it does (Relu: zero point at
   * the type's minimum; Clip: representable range inside [min, max]): it is removed and its producer
   * writes the output, as onnxruntime's quantizer does. Kept, onnxruntime's ReluQuantFusion removes
   * it only after its own Q/DQ-pair cleanup has run, which leaves a DQ → Q island wherever the
   * Relu's output has several readers (every SqueezeNet fire module).
   */
  remove?: boolean;
}

export interface PlanOptions {
  ranges: Map<string, TensorRange>;
  activationType: 'uint8' | 'int8';
  perChannel: boolean;
  opTypes: ReadonlySet<string>;
  isExcluded: (n: Node) => boolean;
}

export interface QdqPlan {
  /** In the graph's topological order. */
  nodes: PlannedNode[];
  /** Every activation tensor that gets a Q/DQ pair, in the order they are produced. */
  tensors: string[];
  /** tensor → the representative of its parameter-sharing group. */
  groupOf: Map<string, string>;
  /** group representative → its parameters. */
  params: Map<string, QuantParams>;
  /** Nodes left float because something they need is missing, with why. */
  skipped: { node: Node; reason: string }[];
}

/**
 * Plans repeatedly: a node dropped for a missing range can leave a neighbour (a MaxPool after it)
 * without a quantized producer, so planning starts over until nothing more drops out.
 */
export function planStaticQdq(g: Graph, opts: PlanOptions): QdqPlan {
  const skipped = new Map<Node, string>();
  for (let round = 0; ; round++) {
    const draft = planOnce(g, opts, skipped);
    const missing = rangeless(draft);
    if (missing.size === 0 || round > g.nodes.length) {
      return { ...draft, skipped: [...skipped].map(([node, reason]) => ({ node, reason })) };
    }
    for (const p of draft.nodes) {
      const touched = [...p.roles].filter(([, r]) => r.kind === 'activation').map(([i]) => p.node.inputs[i]!);
      if (p.quantizeOutput) touched.push(...quantizedOutputs(p.node));
      const lacking = touched.find((t) => missing.has(t));
      if (lacking !== undefined) skipped.set(p.node, `no calibration range for tensor ${lacking}`);
    }
  }
}

type Draft = Omit<QdqPlan, 'skipped'>;

function planOnce(g: Graph, opts: PlanOptions, skipped: Map<Node, string>): Draft {
  const producers = g.producers();
  const consumers = g.consumers();
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const planned = new Map<Node, PlannedNode>();
  for (const n of g.topologicalOrder()) {
    if (n.domain !== '' || !opts.opTypes.has(n.opType) || opts.isExcluded(n) || skipped.has(n)) continue;
    if (n.opType === 'Gather' && n.outputs.filter(Boolean).length === 1) {
      const table = embeddingTable(g, n, producers);
      if (table) {
        planned.set(n, { node: n, kind: 'shared', roles: new Map([[0, { kind: 'table', value: table }]]), quantizeOutput: true });
        continue;
      }
    }
    if (shared.has(n.opType) || clipping.has(n.opType)) {
      // float in, float out otherwise: only worth quantizing next to a quantized producer
      const p = producers.get(n.inputs[0] ?? '');
      // Split: every part shares the input's parameters, as onnxruntime's Split fusion requires
      if (!p || !planned.has(p) || (n.outputs.filter(Boolean).length !== 1 && n.opType !== 'Split')) continue;
      if (n.opType === 'Clip' && n.inputs.slice(1).some((i) => i && !g.constant(i))) continue;
      // checked with onnxruntime 1.30: only a nearest-neighbour Resize drops its Q/DQ pair
      if (n.opType === 'Resize' && (n.attrString('mode') ?? 'nearest') !== 'nearest') continue;
      planned.set(n, { node: n, kind: shared.has(n.opType) ? 'shared' : 'clipping', roles: new Map([[0, { kind: 'activation' }]]), quantizeOutput: true });
      continue;
    }
    if (!compute.has(n.opType)) continue;
    const roles = computeRoles(g, n, opts, producers);
    if (typeof roles === 'string') { skipped.set(n, roles); continue; }
    const mask = n.opType === 'Add' ? maskAddedBeforeSoftmax(g, n, roles, opts.ranges, consumers) : null;
    if (mask) { skipped.set(n, mask); continue; }
    planned.set(n, { node: n, kind: 'compute', roles, quantizeOutput: true });
  }

  // A pooling, element-wise or shape-only op that no quantized op reads (the tail before a float
  // Softmax or a graph output) stays float, as with onnxruntime's quantizer, whose QDQ op list has
  // no GlobalAveragePool: the fused QLinear form would requantize to 8 bits for a float reader, and
  // on a classifier's logits that one step merges close scores (SqueezeNet's argmax ties). Dropping
  // one can strand the op before it, so this repeats until nothing changes.
  for (let changed = true; changed;) {
    changed = false;
    for (const p of [...planned.values()]) {
      if (!QUANTIZED_ONLY_WHEN_READ.has(p.node.opType)) continue;
      const read = quantizedOutputs(p.node).some((out) => (consumers.get(out) ?? []).some((c) => planned.get(c)?.roles.get(c.inputs.indexOf(out))?.kind === 'activation'));
      if (!read) { planned.delete(p.node); changed = true; }
    }
  }

  // MatMul/Gemm fuse without a Q after them (MatMulIntegerToFloat, QGemm with float output): a
  // requantization nobody reads would only cost accuracy.
  for (const p of planned.values()) {
    if (!FLOAT_OUTPUT_OK.has(p.node.opType)) continue;
    const out = p.node.outputs[0]!;
    p.quantizeOutput = (consumers.get(out) ?? []).some((c) => planned.get(c)?.roles.get(c.inputs.indexOf(out))?.kind === 'activation');
  }

  const tensors: string[] = [];
  const seen = new Set<string>();
  const add = (t: string) => { if (t && !seen.has(t)) { seen.add(t); tensors.push(t); } };
  for (const v of g.inputs) {
    if ([...planned.values()].some((p) => [...p.roles].some(([i, r]) => r.kind === 'activation' && p.node.inputs[i] === v.name))) add(v.name);
  }
  for (const p of planned.values()) {
    for (const [i, r] of p.roles) if (r.kind === 'activation') add(p.node.inputs[i]!);
    if (p.quantizeOutput) for (const out of quantizedOutputs(p.node)) add(out);
  }
  // produced order: graph inputs first, then by producer position (deterministic output)
  const position = new Map(g.topologicalOrder().map((n, i) => [n, i]));
  const order = (t: string) => { const p = producers.get(t); return p ? position.get(p)! : -1; };
  const sorted = tensors.map((t, i) => ({ t, i })).sort((a, b) => order(a.t) - order(b.t) || a.i - b.i).map((x) => x.t);

  const { groupOf, params } = shareParameters(g, [...planned.values()], sorted, opts, consumers, graphOutputs);
  for (const p of planned.values()) {
    if (p.kind !== 'clipping') continue;
    const x = p.node.inputs[0]!;
    const q = params.get(groupOf.get(x)!);
    const onlyReader = (consumers.get(x) ?? []).length === 1 && !graphOutputs.has(x);
    if (q && onlyReader && clipsExactly(g, p.node, q, opts.activationType)) p.remove = true;
  }
  return { nodes: [...planned.values()], tensors: sorted, groupOf, params };
}

/**
 * True when quantizing with `q` clips at least as the Relu/Clip would, so dropping the node changes
 * no quantized value: the representable range [scale·(qmin−zp), scale·(qmax−zp)] lies inside the
 * Clip's bounds, up to half a step (a value within half a step of a bound rounds to the same code).
 */
function clipsExactly(g: Graph, n: Node, q: QuantParams, type: 'uint8' | 'int8'): boolean {
  const [qmin, qmax] = quantRange(type);
  const lo = q.scale * (qmin - q.zeroPoint);
  const hi = q.scale * (qmax - q.zeroPoint);
  if (n.opType === 'Relu') return q.zeroPoint === qmin;
  // Clip-6 (an opset the model kept) has its bounds as attributes; from 11 they are inputs
  const bound = (i: number, attr: string, fallback: number) => {
    if (n.attr(attr)) return n.attrFloat(attr, fallback);
    const t = n.inputs[i] ? g.constant(n.inputs[i]!) : null;
    return t && t.elementCount === 1 ? t.toFloat32()[0]! : fallback;
  };
  const min = bound(1, 'min', -Infinity);
  const max = bound(2, 'max', Infinity);
  return min <= lo + q.scale / 2 && max >= hi - q.scale / 2;
}

/** The outputs a planned node's quantization covers: all of a Split's parts, else the one output. */
function quantizedOutputs(n: Node): string[] {
  return n.opType === 'Split' ? n.outputs.filter(Boolean) : [n.outputs[0]!];
}

/** The constant float 2-D table a Gather reads along axis 0 (an embedding), or null. */
function embeddingTable(g: Graph, n: Node, producers: Map<string, Node>): ConstantWeight | null {
  const c = n.attrInt('axis', 0) === 0 ? gatherTable(g, n, producers) : null;
  return c && c.dims.length === 2 ? c : null;
}

/** Values this far from zero in an operand of an Add before a Softmax are a mask (−1e4, −1e9, float32's lowest, −∞), not data. */
const MASK_MAGNITUDE = 1e4;
/** Ops a mask may pass on its way to the Softmax without being one: they only move values. */
const MOVES_VALUES = new Set(['Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Identity', 'Flatten', 'Cast']);

/**
 * Why an Add that applies an attention mask stays float, or null. Its output's range would reach the
 * mask's −1e9: in 8 bits the masked positions take the whole range and every score that matters
 * rounds to the zero point, so the Softmax after it attends uniformly (the transformer test bed's
 * perplexity: 6.7 → 18.1). onnxruntime's quantizer has no such rule; transformer users there
 * exclude these nodes by hand. The mask is found by value (a constant, or an activation's
 * calibrated range) and by position (the Add's output reaches a Softmax through ops that only move
 * values), so a residual Add with large activations elsewhere is not affected.
 */
function maskAddedBeforeSoftmax(g: Graph, n: Node, roles: Map<number, InputRole>, ranges: Map<string, TensorRange>, consumers: Map<string, Node[]>): string | null {
  let feedsSoftmax = false;
  for (let frontier = [n.outputs[0]!], hops = 0; frontier.length > 0 && !feedsSoftmax && hops < 8; hops++) {
    const next: string[] = [];
    for (const t of frontier) {
      for (const c of consumers.get(t) ?? []) {
        if (c.opType === 'Softmax' || c.opType === 'LogSoftmax') feedsSoftmax = true;
        else if (MOVES_VALUES.has(c.opType)) next.push(c.outputs[0]!);
      }
    }
    frontier = next;
  }
  if (!feedsSoftmax) return null;
  for (const [i, role] of roles) {
    const name = n.inputs[i]!;
    let lo: number, hi: number;
    if (role.kind === 'constant') [lo, hi] = minMax(role.value.source.toFloat32());
    else {
      const r = ranges.get(name);
      if (!r) continue;
      [lo, hi] = [r.min, r.max];
    }
    const extreme = Math.abs(lo) >= Math.abs(hi) ? lo : hi;
    if (!(Math.abs(extreme) < MASK_MAGNITUDE)) {
      const shown = Number.isFinite(extreme) ? extreme.toExponential(0).replace('e+', 'e') : String(extreme);
      return `it adds a mask before a Softmax (${name} reaches ${shown}): in 8 bits the masked positions would take the whole range and every other score would round to one value`;
    }
  }
  return null;
}

/** Data inputs of each compute op; the rest (weight, bias) are handled by name below. */
function dataInputs(n: Node): number[] {
  switch (n.opType) {
    case 'Conv': case 'ConvTranspose': case 'Gemm': case 'AveragePool': case 'GlobalAveragePool': case 'Sigmoid': case 'LeakyRelu': return [0];
    case 'MatMul': return [0];
    default: return n.inputs.map((_, i) => i).filter((i) => n.inputs[i]);
  }
}

function isFloat32(g: Graph, name: string): boolean {
  const t = g.valueType(name);
  return !t || t.kind !== 'tensor' || t.elemType === DataType.FLOAT || t.elemType === DataType.UNDEFINED;
}

/** Per-channel axis of a weight (SPEC §8), or null where per-channel does not apply. */
function channelAxis(n: Node, dims: number[]): number | null {
  switch (n.opType) {
    case 'Conv': return 0;
    // groups split axis 1 into per-group slices the bias cannot follow; per-tensor then
    case 'ConvTranspose': return n.attrInt('group', 1) === 1 ? 1 : null;
    case 'Gemm': return n.attrInt('transB', 0) ? 0 : 1;
    // QLinearMatMul takes a per-column scale only for a 2-D B
    case 'MatMul': return dims.length === 2 ? 1 : null;
    default: return null;
  }
}

/** Output channels a bias must have: Conv M, ConvTranspose C_out, Gemm N. */
function outputChannels(n: Node, dims: number[]): number {
  switch (n.opType) {
    case 'ConvTranspose': return dims[1]! * n.attrInt('group', 1);
    case 'Gemm': return n.attrInt('transB', 0) ? dims[0]! : dims[1]!;
    default: return dims[0]!;
  }
}

function computeRoles(g: Graph, n: Node, opts: PlanOptions, producers: Map<string, Node>): Map<number, InputRole> | string {
  const roles = new Map<number, InputRole>();
  const constantOrActivation = (i: number): InputRole | string => {
    const name = n.inputs[i]!;
    const c = findConstantWeight(g, name, producers);
    if (c && 'problem' in c) return c.problem;
    if (c) {
      if (c.source.dataType !== DataType.FLOAT) return `its input ${name} is ${c.source.dtype}, not float32`;
      return { kind: 'constant', value: c };
    }
    if (producers.get(name)?.opType === 'DequantizeLinear') return `its input ${name} is ${ALREADY_QUANTIZED}`;
    if (!isFloat32(g, name)) return `its input ${name} is not float32`;
    return { kind: 'activation' };
  };
  for (const i of dataInputs(n)) {
    const r = constantOrActivation(i);
    if (typeof r === 'string') return r;
    roles.set(i, r);
  }
  if (!isFloat32(g, n.outputs[0]!)) return `its output ${n.outputs[0]} is not float32`;
  const hasWeight = ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'].includes(n.opType);
  if (!hasWeight) return roles;

  const wName = n.inputs[1];
  if (!wName) return 'it has no weight input';
  const w = findConstantWeight(g, wName, producers);
  if (w && 'problem' in w) return w.problem;
  if (!w) {
    // MatMul/Gemm of two activations (attention) quantizes both sides as activations
    if (n.opType === 'Conv' || n.opType === 'ConvTranspose') return `its weight ${wName} is not a constant`;
    const r = constantOrActivation(1);
    if (typeof r === 'string') return r;
    roles.set(1, r);
  } else {
    if (w.source.dataType !== DataType.FLOAT) return `its weight ${wName} is ${w.source.dtype}, not float32`;
    roles.set(1, { kind: 'weight', weight: w, axis: opts.perChannel ? channelAxis(n, w.dims) : null });
  }

  const bName = n.inputs[2];
  if (!bName || n.opType === 'MatMul') return roles;
  const b = findConstantWeight(g, bName, producers);
  if (!b || 'problem' in b) return `its bias ${bName} is not a constant`;
  const weightRole = roles.get(1);
  const channels = weightRole?.kind === 'weight' ? outputChannels(n, weightRole.weight.dims) : -1;
  const gemmScaled = n.opType === 'Gemm' && (n.attrFloat('alpha', 1) !== 1 || n.attrFloat('beta', 1) !== 1);
  if (b.source.dataType !== DataType.FLOAT || channels < 0 || b.source.elementCount !== channels || b.dims.filter((d) => d !== 1).length > 1 || gemmScaled) {
    // an int32 bias must be one value per output channel on the accumulator's scale; anything
    // else (a full [M,N] C, alpha/beta ≠ 1, a bias beside an activation weight) stays float
    if (n.opType !== 'Gemm') return `its bias ${bName} is not one value per output channel`;
    return roles;
  }
  roles.set(2, { kind: 'bias', bias: b, activationInput: 0, weightInput: 1 });
  return roles;
}

/**
 * Groups tensors that must share parameters (union-find) and gives each group the union of its
 * members' calibrated ranges. A Relu/Clip input read only by that Relu/Clip takes the group's range
 * without widening it: the values it would add are the ones the activation clips away.
 */
function shareParameters(g: Graph, planned: PlannedNode[], tensors: string[], opts: PlanOptions, consumers: Map<string, Node[]>, graphOutputs: Set<string>): { groupOf: Map<string, string>; params: Map<string, QuantParams> } {
  const parent = new Map<string, string>(tensors.map((t) => [t, t]));
  const find = (t: string): string => {
    let r = t;
    while (parent.get(r) !== r) r = parent.get(r)!;
    parent.set(t, r);
    return r;
  };
  // the earlier tensor stays the representative, so names do not depend on visiting order
  const index = new Map(tensors.map((t, i) => [t, i]));
  const union = (a: string, b: string) => {
    const ra = find(a);
    const rb = find(b);
    if (ra === rb) return;
    if (index.get(ra)! <= index.get(rb)!) parent.set(rb, ra);
    else parent.set(ra, rb);
  };
  const silent = new Set<string>();
  const contributing = new Set<string>();
  // a Gather's table widens its output's range to every row it might gather
  const tableRanges = new Map<string, [number, number]>();
  for (const p of planned) {
    const n = p.node;
    const out = n.outputs[0]!;
    const table = p.roles.get(0);
    if (table?.kind === 'table') tableRanges.set(out, minMax(table.value.source.toFloat32()));
    else if (p.kind === 'shared') for (const o of quantizedOutputs(n)) union(n.inputs[0]!, o);
    else if (p.kind === 'clipping') {
      const x = n.inputs[0]!;
      union(x, out);
      const onlyReader = (consumers.get(x) ?? []).length === 1 && !graphOutputs.has(x);
      if (onlyReader) silent.add(x);
      else contributing.add(x);
    } else if (n.opType === 'Concat') {
      for (const [i, r] of p.roles) if (r.kind === 'activation') union(n.inputs[i]!, out);
    }
  }
  const lo = new Map<string, number>();
  const hi = new Map<string, number>();
  for (const t of tensors) {
    if (silent.has(t) && !contributing.has(t)) continue;
    const table = tableRanges.get(t);
    const r = table ? { min: table[0], max: table[1] } : opts.ranges.get(t);
    if (!validRange(r)) continue;
    const root = find(t);
    lo.set(root, Math.min(lo.get(root) ?? Infinity, r.min));
    hi.set(root, Math.max(hi.get(root) ?? -Infinity, r.max));
  }
  const groupOf = new Map<string, string>();
  const params = new Map<string, QuantParams>();
  for (const t of tensors) {
    const root = find(t);
    groupOf.set(t, root);
    if (!params.has(root) && lo.has(root)) params.set(root, quantParams(lo.get(root)!, hi.get(root)!, opts.activationType));
  }
  return { groupOf, params };
}

export function validRange(r: TensorRange | undefined): r is TensorRange {
  return !!r && Number.isFinite(r.min) && Number.isFinite(r.max) && r.min <= r.max;
}

/** Tensors of the draft whose group has no usable range. */
function rangeless(d: Draft): Set<string> {
  const out = new Set<string>();
  for (const t of d.tensors) if (!d.params.has(d.groupOf.get(t)!)) out.add(t);
  return out;
}
