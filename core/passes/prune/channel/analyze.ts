import type { Graph, Node } from '../../../../native-models/ir/model.ts';
import { DataType } from '../../../../native-models/ir/dtypes.ts';
import type { Tensor } from '../../../../native-models/ir/tensor.ts';
import { isExcluded } from '../../quantize/graph-edit.ts';
import { ChannelGroups, cutLayout, hasSources, layoutLength, type Layout, type Segment } from './groups.ts';

/**
 * Walks the main graph in topological order and builds the channel dependency groups: one small,
 * named rule per op family says how channels flow through the node, which constants must be sliced
 * and which groups it pins. Anything without a rule pins the groups it reads.
 */

/** Slice a stored input of `node` along `axis` to the positions `layout` keeps (block = positions per channel; 0 = resolve as dim / channels). */
export interface SliceEdit { kind: 'slice'; node: Node; input: number; axis: number; layout: Layout; block: number }
/** Depthwise Conv: `group` becomes the kept channel count. */
export interface GroupEdit { kind: 'group'; node: Node; layout: Layout }
/** Split along channels: the split sizes become the kept counts of each output. */
export interface SplitEdit { kind: 'split'; node: Node; layouts: Layout[] }
/** Reshape to 2-D with an explicit size at `dim` (1: data [N, K]; 0: a weight [K, N]): that size shrinks with the kept channels. */
export interface ReshapeEdit { kind: 'reshape'; node: Node; layout: Layout; dim: 0 | 1 }
export type Edit = SliceEdit | GroupEdit | SplitEdit | ReshapeEdit;

/** Per-channel evidence for importance: weight norms (summed) or BN scales (multiplied). */
export interface Contribution { kind: 'norm' | 'bnScale'; node: Node; tensor: Tensor; axis: number; layout: Layout; extra?: { variance: Tensor; epsilon: number } }

export interface Analysis {
  groups: ChannelGroups;
  edits: Edit[];
  contributions: Contribution[];
  /** Non-source layers whose tensors are sliced, by group root (BN, depthwise Conv, consumers, constants). */
  members: Map<number, Set<string>>;
  /** Values whose channel count may change (their value_info is dropped so runtimes re-infer it). */
  touchedValues: Set<string>;
  /**
   * Layers that read pruned channels through their weight's input axis (Conv group 1, Gemm,
   * MatMul): the layout they read and the weight positions per channel (H·W after a Flatten).
   */
  consumers: Map<Node, { layout: Layout; block: number }>;
}

interface RuleContext {
  graph: Graph;
  groups: ChannelGroups;
  layouts: Map<string, Layout>;
  edits: Edit[];
  contributions: Contribution[];
  exclude: readonly string[] | undefined;
  member(layout: Layout, node: Node): void;
  /** `node` reads `layout` on its weight's input axis, `block` positions per channel. */
  consumer(node: Node, layout: Layout, block: number): void;
  /** A value whose shape the edits change without it carrying channels (a reshaped weight): its value_info goes. */
  reshaped(name: string): void;
  setOutput(name: string | undefined, layout: Layout): void;
  /** A stored float tensor (the only kind sliced here). */
  floatConstant(name: string | undefined): Tensor | null;
}

/** A rule handles a node; it returns false to fall back to pinning (the node is not understood). */
type Rule = (ctx: RuleContext, node: Node, input: (Layout | undefined)[]) => boolean;

const UNARY_PASS_THROUGH = new Set([
  'Relu', 'LeakyRelu', 'Sigmoid', 'Tanh', 'Elu', 'Selu', 'Celu', 'HardSigmoid', 'HardSwish', 'Softplus', 'Softsign',
  'Gelu', 'Mish', 'ThresholdedRelu', 'Identity', 'Abs', 'Neg', 'Exp', 'Sqrt', 'Erf', 'Reciprocal', 'Floor', 'Ceil',
  'Round', 'Sign', 'Cast', 'Clip', 'Dropout', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'LpPool',
]);
const ELEMENTWISE = new Set(['Add', 'Sub', 'Mul', 'Div', 'Max', 'Min', 'Sum', 'Mean', 'PRelu']);

/** Relu, pools, Dropout...: the output has the input's channels. Extra outputs (pool indices, masks) must be unused. */
const passThrough: Rule = (ctx, node, input) => {
  const l = input[0];
  if (!l || input.slice(1).some((x) => x)) return false;
  if (node.opType === 'MaxPool' && node.outputs[1]) return false;
  if ((l.flat || l.last) && node.opType.includes('Pool')) return false;
  ctx.setOutput(node.outputs[0], l);
  if (node.opType === 'Dropout' && node.outputs[1]) ctx.setOutput(node.outputs[1], l);
  return true;
};

/** Conv with a stored weight: reads channels on weight axis 1 (group 1) or is depthwise; its output channels start a source. */
const conv: Rule = (ctx, node, input) => {
  const w = ctx.floatConstant(node.inputs[1]);
  if (!w || input.slice(1).some((x) => x)) return false;
  const l = input[0];
  const group = node.attrInt('group', 1);
  const excluded = isExcluded(node, ctx.exclude);
  if (l && (l.flat || l.last || l.rank !== w.dims.length)) return false;
  if (l && excluded) ctx.groups.pinLayout(l, `excluded layer ${node.label}`);
  if (group === 1) {
    if (l && !excluded) {
      ctx.edits.push({ kind: 'slice', node, input: 1, axis: 1, layout: l, block: 1 });
      ctx.member(l, node);
      ctx.consumer(node, l, 1);
    }
    return startSource(ctx, node, w, 0, node.inputs[2] ? 2 : null, w.dims.length, excluded);
  }
  if (l && group === layoutLength(l) && w.dims[0] === group && w.dims[1] === 1) {
    // depthwise: channel c in is channel c out, so the output keeps the input's layout
    ctx.edits.push({ kind: 'slice', node, input: 1, axis: 0, layout: l, block: 1 });
    if (node.inputs[2]) ctx.edits.push({ kind: 'slice', node, input: 2, axis: 0, layout: l, block: 1 });
    ctx.edits.push({ kind: 'group', node, layout: l });
    ctx.contributions.push({ kind: 'norm', node, tensor: w, axis: 0, layout: l });
    ctx.member(l, node);
    ctx.setOutput(node.outputs[0], l);
    return true;
  }
  if (!l) return true; // a group Conv on unpruned channels: left as it is
  ctx.groups.pinLayout(l, `group Conv ${node.label} (group ${group}) is not depthwise`);
  return true;
};

function startSource(ctx: RuleContext, node: Node, w: Tensor, outAxis: number, biasInput: number | null, rank: number, excluded: boolean, last = false): boolean {
  const source = ctx.groups.addSource(node, w.dims[outAxis]!);
  const layout: Layout = { ...ctx.groups.fullLayout(source, last ? 0 : rank), ...(last ? { last } : {}) };
  if (excluded) ctx.groups.pin(source.id, `excluded layer ${node.label}`);
  ctx.edits.push({ kind: 'slice', node, input: 1, axis: outAxis, layout, block: 1 });
  if (biasInput !== null) {
    const b = ctx.floatConstant(node.inputs[biasInput]);
    if (!b) ctx.groups.pin(source.id, `${node.label}: bias is not a stored tensor`);
    else if (b.dims.length > 0 && b.dims[b.dims.length - 1] === source.channels) {
      ctx.edits.push({ kind: 'slice', node, input: biasInput, axis: b.dims.length - 1, layout, block: 1 });
    }
  }
  ctx.contributions.push({ kind: 'norm', node, tensor: w, axis: outAxis, layout });
  ctx.setOutput(node.outputs[0], layout);
  return true;
}

/**
 * Gemm / MatMul with a stored 2-D weight: reads features on the weight's input axis (a block of H·W
 * per channel after Flatten), starts a source. A MatMul's data may have any rank ([batch, tokens, K]
 * in a transformer): its output channels are on the last axis.
 */
const dense: Rule = (ctx, node, input) => {
  const w = ctx.floatConstant(node.inputs[1]);
  if (!w && node.opType === 'MatMul' && input[0] && !input.slice(1).some((x) => x)) return reshapedWeight(ctx, node, input[0]);
  if (!w || w.dims.length !== 2 || input.slice(1).some((x) => x)) return false;
  const transB = node.opType === 'Gemm' && node.attrInt('transB', 0) === 1;
  if (node.opType === 'Gemm' && node.attrInt('transA', 0) === 1) return false;
  const inAxis = transB ? 1 : 0;
  const outAxis = 1 - inAxis;
  const l = input[0];
  const excluded = isExcluded(node, ctx.exclude);
  if (l) {
    if (l.last ? w.dims[inAxis] !== layoutLength(l) : l.rank !== 2 || w.dims[inAxis]! % layoutLength(l) !== 0) return false;
    const block = w.dims[inAxis]! / layoutLength(l);
    if (excluded) ctx.groups.pinLayout(l, `excluded layer ${node.label}`);
    else {
      ctx.edits.push({ kind: 'slice', node, input: 1, axis: inAxis, layout: l, block });
      ctx.member(l, node);
      ctx.consumer(node, l, block);
    }
  }
  return startSource(ctx, node, w, outAxis, node.opType === 'Gemm' && node.inputs[2] ? 2 : null, 2, excluded, node.opType === 'MatMul');
};

/**
 * A MatMul whose weight is a Reshape of a stored constant to [K, N] (CNTK's MNIST: [16,4,4,10] →
 * [256, 10] after a Flatten of 16 channels): when the constant's first axis is the channels, cutting
 * channels cuts that axis, and the Reshape's K shrinks with them. The MatMul is not a source: its
 * output channels would have to be cut on the constant's last axis.
 */
function reshapedWeight(ctx: RuleContext, node: Node, l: Layout): boolean {
  if (!l.last && l.rank !== 2) return false; // after a Flatten: [N, K]
  const reshape = ctx.graph.producers().get(node.inputs[1]!);
  if (!reshape || reshape.opType !== 'Reshape' || (reshape.domain !== '' && reshape.domain !== 'ai.onnx')) return false;
  const data = ctx.floatConstant(reshape.inputs[0]);
  const shape = ctx.graph.constant(reshape.inputs[1] ?? '');
  if (!data || !shape || shape.dataType !== DataType.INT64 || shape.elementCount !== 2) return false;
  const [k, n] = Array.from(shape.typed() as BigInt64Array, Number) as [number, number];
  const readers = ctx.graph.nodes.filter((x) => x.inputs.includes(reshape.outputs[0]!)).length;
  // each channel's index on the constant's first axis must be a whole block of K's rows
  if (readers !== 1 || !(k > 0) || n === 0 || data.dims[0] !== layoutLength(l) || k % layoutLength(l) !== 0 || data.elementCount % k !== 0) return false;
  if (isExcluded(node, ctx.exclude)) { ctx.groups.pinLayout(l, `excluded layer ${node.label}`); return true; }
  ctx.edits.push({ kind: 'slice', node: reshape, input: 0, axis: 0, layout: l, block: 1 });
  ctx.edits.push({ kind: 'reshape', node: reshape, layout: l, dim: 0 });
  ctx.reshaped(reshape.outputs[0]!);
  ctx.member(l, node);
  ctx.consumer(node, l, k / layoutLength(l));
  return true;
}

/** BatchNormalization / InstanceNormalization: per-channel parameters sliced with the channels. */
const normalization: Rule = (ctx, node, input) => {
  const l = input[0];
  if (!l || l.last || input.slice(1).some((x) => x) || node.outputs.slice(1).some((o) => o)) return false;
  const params = node.opType === 'BatchNormalization' ? [1, 2, 3, 4] : [1, 2];
  for (const i of params) {
    const t = ctx.floatConstant(node.inputs[i]);
    if (!t || t.dims.length !== 1 || t.dims[0] !== layoutLength(l)) return false;
  }
  for (const i of params) ctx.edits.push({ kind: 'slice', node, input: i, axis: 0, layout: l, block: 1 });
  if (node.opType === 'BatchNormalization') {
    ctx.contributions.push({ kind: 'bnScale', node, tensor: ctx.floatConstant(node.inputs[1])!, axis: 0, layout: l, extra: { variance: ctx.floatConstant(node.inputs[4])!, epsilon: node.attrFloat('epsilon', 1e-5) } });
  }
  ctx.member(l, node);
  ctx.setOutput(node.outputs[0], l);
  return true;
};

/**
 * Add/Mul/...: activations read together are coupled (residual branches join one group); stored
 * constants that vary along the channel axis (per-channel scales, PRelu slopes) are sliced.
 */
const elementwise: Rule = (ctx, node, input) => {
  const layouts = input.filter((x): x is Layout => x !== undefined);
  const first = layouts[0]!;
  if (layouts.some((l) => !!l.last !== !!first.last)) return false;
  for (let i = 0; i < node.inputs.length; i++) {
    if (input[i]) continue;
    const c = ctx.floatConstant(node.inputs[i]);
    if (!c) return false; // an activation without known channels: cannot follow it
    // right-aligned broadcasting: the channel axis is the constant's last (channels last) or sits rank − 1 places before it
    const axis = first.last ? c.dims.length - 1 : 1 - (first.rank - c.dims.length);
    if (!first.last && c.dims.length > first.rank) return false;
    if (axis < 0 || c.dims[axis] === 1) continue; // broadcast along channels
    if (first.flat || c.dims[axis] !== layoutLength(first)) return false;
    ctx.edits.push({ kind: 'slice', node, input: i, axis, layout: first, block: 1 });
  }
  for (const other of layouts.slice(1)) ctx.groups.couple(first, other, `${node.opType} ${node.label} joins branches that do not line up`);
  ctx.member(first, node);
  ctx.setOutput(node.outputs[0], first);
  return true;
};

/** Concat along channels lays the inputs' layouts end to end (other axes couple the inputs like Add). */
const concat: Rule = (ctx, node, input) => {
  const some = input.find((x): x is Layout => x !== undefined)!;
  const axis = node.attrInt('axis', 1);
  const norm = axis < 0 ? axis + some.rank : axis;
  if (some.flat || input.some((x) => x?.last)) return false;
  if (norm !== 1) {
    if (input.some((x) => !x)) return false;
    return elementwise(ctx, node, input);
  }
  const segments: Segment[] = [];
  for (let i = 0; i < node.inputs.length; i++) {
    const l = input[i];
    if (l) { segments.push(...l.segments); continue; }
    const t = ctx.graph.valueType(node.inputs[i]!);
    const c = t?.kind === 'tensor' ? t.shape?.[1] : undefined;
    if (typeof c !== 'number') return false;
    segments.push({ source: null, start: 0, len: c });
  }
  ctx.setOutput(node.outputs[0], { segments, rank: some.rank, flat: false });
  return true;
};

/** Split along channels hands each output its range; a source cut in the middle is pinned. */
const split: Rule = (ctx, node, input) => {
  const l = input[0];
  if (!l || l.flat || l.last || input.slice(1).some((x) => x)) return false;
  const axis = node.attrInt('axis', 0);
  if ((axis < 0 ? axis + l.rank : axis) !== 1) return false;
  const sizesConst = node.inputs[1] ? ctx.graph.constant(node.inputs[1]) : null;
  const sizes = sizesConst ? Array.from(sizesConst.toFloat32()) : node.attrInts('split');
  if (!sizes || sizes.length !== node.outputs.length || sizes.reduce((a, b) => a + b, 0) !== layoutLength(l)) return false;
  const outs: Layout[] = [];
  let from = 0;
  for (let i = 0; i < sizes.length; i++) {
    const { layout, cutSources } = cutLayout(l, from, sizes[i]!);
    for (const s of cutSources) ctx.groups.pin(s, `Split ${node.label} cuts a layer's channels`);
    outs.push(layout);
    ctx.setOutput(node.outputs[i], layout);
    from += sizes[i]!;
  }
  ctx.edits.push({ kind: 'split', node, layouts: outs });
  return true;
};

/** Flatten(axis 1) and Reshape to [N, K]: channels become blocks of features, read by a Gemm/MatMul. */
const flatten: Rule = (ctx, node, input) => {
  const l = input[0];
  if (!l || l.last || input.slice(1).some((x) => x)) return false;
  if (node.opType === 'Flatten') {
    if (node.attrInt('axis', 1) !== 1) return false;
  } else {
    const shape = ctx.graph.constant(node.inputs[1] ?? '');
    if (!shape || shape.dataType !== DataType.INT64 || shape.elementCount !== 2) return false;
    const [n, k] = Array.from(shape.typed() as BigInt64Array, Number) as [number, number];
    if (!(n === 0 || n === 1 || k === -1)) return false;
    if (k !== -1) ctx.edits.push({ kind: 'reshape', node, layout: l, dim: 1 });
  }
  ctx.setOutput(node.outputs[0], { segments: l.segments, rank: 2, flat: l.flat || l.rank > 2 });
  return true;
};

const RULES: Record<string, Rule> = {
  Conv: conv,
  Gemm: dense,
  MatMul: dense,
  BatchNormalization: normalization,
  InstanceNormalization: normalization,
  Concat: concat,
  Split: split,
  Flatten: flatten,
  Reshape: flatten,
};

function ruleFor(node: Node): Rule | undefined {
  if (node.domain !== '' && node.domain !== 'ai.onnx') return undefined;
  if (Object.hasOwn(RULES, node.opType)) return RULES[node.opType];
  if (UNARY_PASS_THROUGH.has(node.opType)) return passThrough;
  if (ELEMENTWISE.has(node.opType)) return elementwise;
  return undefined;
}

/** Ops that start a source even when no pruned channels flow into them. */
const SOURCE_OPS = new Set(['Conv', 'Gemm', 'MatMul']);

export function analyzeChannels(graph: Graph, exclude: readonly string[] | undefined): Analysis {
  const groups = new ChannelGroups();
  const layouts = new Map<string, Layout>();
  const members = new Map<number, Set<string>>();
  const touchedValues = new Set<string>();
  const consumers = new Map<Node, { layout: Layout; block: number }>();
  const ctx: RuleContext = {
    graph,
    groups,
    layouts,
    edits: [],
    contributions: [],
    exclude,
    member(layout, node) {
      for (const s of layout.segments) {
        if (s.source === null) continue;
        const set = members.get(s.source) ?? new Set<string>();
        set.add(node.label);
        members.set(s.source, set);
      }
    },
    consumer(node, layout, block) {
      consumers.set(node, { layout, block });
    },
    reshaped(name) {
      touchedValues.add(name);
    },
    setOutput(name, layout) {
      if (!name || !hasSources(layout)) return;
      layouts.set(name, layout);
      touchedValues.add(name);
    },
    floatConstant(name) {
      if (!name) return null;
      const t = graph.constant(name);
      return t && (t.dataType === DataType.FLOAT || t.dataType === DataType.FLOAT16 || t.dataType === DataType.DOUBLE) ? t : null;
    },
  };
  for (const node of graph.topologicalOrder()) {
    const input = node.inputs.map((n) => (n ? layouts.get(n) : undefined));
    const reads = input.some((x) => x);
    // a node whose subgraph reads pruned values: not followed
    const outer = node.subgraphs().flatMap((g) => [...g.outerReferences()]).map((n) => layouts.get(n)).filter((x): x is Layout => !!x);
    if (!reads && !SOURCE_OPS.has(node.opType)) { for (const l of outer) groups.pinLayout(l, `read inside a subgraph of ${node.label}`); continue; }
    const rule = outer.length === 0 ? ruleFor(node) : undefined;
    if (rule && rule(ctx, node, input)) continue;
    for (const l of [...input, ...outer]) if (l) groups.pinLayout(l, `${node.opType} ${node.label} reads it (no channel rule)`);
  }
  for (const o of graph.outputs) {
    const l = layouts.get(o.name);
    if (l) groups.pinLayout(l, `graph output ${o.name}`);
  }
  // members are recorded per source: fold them onto group roots
  const byRoot = new Map<number, Set<string>>();
  for (const [source, set] of members) {
    const r = groups.find(source);
    const target = byRoot.get(r) ?? new Set<string>();
    for (const m of set) target.add(m);
    byRoot.set(r, target);
  }
  return { groups, edits: ctx.edits, contributions: ctx.contributions, members: byRoot, touchedValues, consumers };
}
