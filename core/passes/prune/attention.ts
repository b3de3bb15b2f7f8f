import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Node } from '../../../native-models/ir/model.ts';

/**
 * Multi-head attention blocks as an exporter writes them, found in the graph rather than by layer
 * names: what head pruning (heads.ts) rewrites and what `inspect` reports. Pure graph analysis.
 *
 *   x → MatMul Wq (+ bq) → Reshape [·, ·, H, d] → Transpose (0,2,1,3) ┐
 *   x → MatMul Wk (+ bk) → Reshape [·, ·, H, d] → Transpose (0,2,3,1) ┴→ MatMul (scores)
 *   scores → Mul/Div/Add/Sub by values every head shares (scale, [T, T] or [1, 1, T, T] mask) → Softmax
 *   x → MatMul Wv (+ bv) → Reshape [·, ·, H, d] → Transpose (0,2,1,3) ┐
 *   probabilities ─────────────────────────────────────────────────────┴→ MatMul (each head's context)
 *   context → Transpose (0,2,1,3) → Reshape [·, ·, H·d] → MatMul Wo
 *
 * Every value in between is read once (rewriting it changes nothing else), apart from Shape → Gather
 * readers of a value's leading sizes (PyTorch's run-time view shapes), which pruning does not change.
 *
 * Between a head split and the attention MatMul there may be ops that act on each head alone —
 * rotary position embeddings (x·cos + rotate_half(x)·sin) — with keys then split (0,2,1,3) and
 * transposed (0,1,3,2) after them, as LLaMA-style PyTorch exports write it.
 *
 * The three projections may also be one (GPT-2's c_attn, Hugging Face exports of it): x → MatMul
 * [D, 3·H·d] (+ bias) → Split along the last axis into q, k and v, each then Reshape → Transpose
 * as above.
 */
/**
 * A Reshape's target shape: each entry's value (null: computed at run time, like a batch size taken
 * from Shape → Gather), where it comes from, and the Concat that builds it (PyTorch's export with
 * dynamic axes), or null for a stored constant.
 */
export interface ShapeSpec {
  entries: (number | null)[];
  /** Per entry: the Concat input it is in and its offset there (for a constant shape: input 0). */
  sources: { input: number; offset: number }[];
  concat: Node | null;
}

export interface Projection {
  /** The MatMul computing this projection (for a fused projection, q, k and v's shared one). */
  matmul: Node;
  /** The head-split Reshape's target [·, ·, H, d]. */
  shape: ShapeSpec;
  weight: string;
  /** The bias the Add after the MatMul applies, and that Add. */
  bias: string | null;
  biasAdd: Node | null;
  reshape: Node;
  transpose: Node;
  /**
   * A fused projection: the Split along the last axis that hands this projection its columns of the
   * shared MatMul's output, which output of the Split it is, and where its columns start; null when
   * the projection has a MatMul of its own.
   */
  fused: { split: Node; output: number; offset: number } | null;
  /**
   * Head-local ops between the head split and the attention MatMul (rotary embeddings; for keys
   * also the Transpose (0,1,3,2) that a PyTorch export writes for k.transpose(2, 3)): nothing in
   * them depends on H, so they stay as they are.
   */
  region: Node[];
  /**
   * Grouped-query attention's repeat of key/value heads (PyTorch's repeat_kv): Unsqueeze (axis 2) →
   * Expand [·, Hkv, n, ·, ·] → Reshape [·, Hkv·n, ·, ·], after the head-local ops; null without it.
   */
  repeat: Repeat | null;
}

export interface Repeat {
  unsqueeze: Node;
  expand: Node;
  /** The Expand's target: entry 1 is Hkv, entry 2 the group size n. */
  expandShape: ShapeSpec;
  reshape: Node;
  /** The Reshape's target: entry 1 is H = Hkv·n. */
  reshapeShape: ShapeSpec;
  groupSize: number;
}

export interface AttentionBlock {
  graph: Graph;
  /** The output projection's node name (the block's name in reports). */
  name: string;
  /** Query heads (H). */
  heads: number;
  headDim: number;
  /** Key/value heads: H, or H / groupSize for grouped-query attention. */
  kvHeads: number;
  /** Query heads per key/value head (1 without grouped-query attention); heads go by whole groups. */
  groupSize: number;
  q: Projection;
  k: Projection;
  v: Projection;
  /** The MatMul of probabilities and values: its output [·, H, ·, d] is each head's context. */
  context: Node;
  mergeTranspose: Node;
  mergeReshape: Node;
  /** The merge Reshape's target [·, ·, H·d]. */
  mergeShape: ShapeSpec;
  out: { matmul: Node; weight: string };
  /** Every value whose shape has H or H·d in it (their value_info is dropped after pruning). */
  values: string[];
}

const ELEMENTWISE = new Set(['Mul', 'Div', 'Add', 'Sub']);

export function intsOf(graph: Graph, name: string): number[] | null {
  const t = graph.constant(name);
  if (!t || (t.dataType !== DataType.INT64 && t.dataType !== DataType.INT32)) return null;
  return Array.from(t.typed() as BigInt64Array | Int32Array, Number);
}

/** A stored int shape, or one a Concat (axis 0) builds from stored pieces and Unsqueeze'd scalars. */
export function shapeSpec(graph: Graph, producers: Map<string, Node>, name: string): ShapeSpec | null {
  const stored = intsOf(graph, name);
  if (stored) return { entries: stored, sources: stored.map((_, offset) => ({ input: 0, offset })), concat: null };
  const concat = producers.get(name);
  if (concat?.opType !== 'Concat' || concat.domain !== '' || concat.attrInt('axis', 0) !== 0) return null;
  const spec: ShapeSpec = { entries: [], sources: [], concat };
  for (const [input, piece] of concat.inputs.entries()) {
    const values = intsOf(graph, piece);
    if (values) {
      values.forEach((v, offset) => { spec.entries.push(v); spec.sources.push({ input, offset }); });
      continue;
    }
    // one entry computed at run time: Unsqueeze of a scalar (a stored one gives its value)
    const unsqueeze = producers.get(piece);
    if (unsqueeze?.opType !== 'Unsqueeze' || unsqueeze.domain !== '') return null;
    const scalar = graph.constant(unsqueeze.inputs[0]!);
    spec.entries.push(scalar && scalar.dims.length === 0 && (scalar.dataType === DataType.INT64 || scalar.dataType === DataType.INT32) ? Number((scalar.typed() as BigInt64Array | Int32Array)[0]) : null);
    spec.sources.push({ input, offset: 0 });
  }
  return spec;
}

/** All values here are read by exactly one node (so rewriting them changes nothing else), and no graph output. */
function soleReader(graph: Graph, readers: Map<string, Node[]>, name: string): Node | null {
  const r = readers.get(name) ?? [];
  return r.length === 1 && !graph.outputs.some((o) => o.name === name) ? r[0]! : null;
}

/**
 * Whether `reader` only takes a tensor's leading (batch, position) sizes: a Shape whose every reader
 * is a Gather of index 0 or 1 — how PyTorch's export builds a view's run-time entries. Pruning heads
 * changes the last axes only, so such a reader is unaffected.
 */
function leadingSizeReader(graph: Graph, readers: Map<string, Node[]>, reader: Node): boolean {
  if (reader.opType !== 'Shape' || reader.domain !== '' || reader.attr('start') || reader.attr('end')) return false;
  return (readers.get(reader.outputs[0]!) ?? []).every((g) => {
    if (g.opType !== 'Gather' || g.attrInt('axis', 0) !== 0) return false;
    const index = intsOf(graph, g.inputs[1]!);
    return index !== null && index.length === 1 && (index[0] === 0 || index[0] === 1);
  });
}

/** The one node that reads a value's data (readers of only its leading sizes aside), or null. */
function soleDataReader(graph: Graph, readers: Map<string, Node[]>, name: string): Node | null {
  const r = (readers.get(name) ?? []).filter((n) => !leadingSizeReader(graph, readers, n));
  return r.length === 1 && !graph.outputs.some((o) => o.name === name) ? r[0]! : null;
}

/** The projection whose heads a Transpose of a head-split Reshape carries, with H and d; null if it is not one. */
function headSplit(graph: Graph, producers: Map<string, Node>, readers: Map<string, Node[]>, transposeOutput: string, perm: number[]): (Projection & { heads: number; headDim: number }) | null {
  const transpose = producers.get(transposeOutput);
  if (transpose?.opType !== 'Transpose' || transpose.domain !== '') return null;
  const p = transpose.attrInts('perm');
  if (!p || p.length !== 4 || p.some((x, i) => x !== perm[i])) return null;
  const reshape = producers.get(transpose.inputs[0]!);
  if (reshape?.opType !== 'Reshape' || soleReader(graph, readers, reshape.outputs[0]!) !== transpose) return null;
  const shape = shapeSpec(graph, producers, reshape.inputs[1]!);
  if (!shape || shape.entries.length !== 4) return null;
  const [heads, headDim] = [shape.entries[2], shape.entries[3]];
  if (heads == null || headDim == null || !(heads > 1 && headDim > 0)) return null;
  let source = producers.get(reshape.inputs[0]!);
  if (!source || soleDataReader(graph, readers, reshape.inputs[0]!) !== reshape) return null;
  // a fused projection: this Reshape reads one output of a Split along the last axis
  let split: Node | null = null;
  if (source.opType === 'Split' && source.domain === '') {
    split = source;
    const into = split.inputs[0]!;
    const rank = graph.valueType(into);
    const axis = split.attrInt('axis', 0);
    if (!(axis === -1 || (rank?.kind === 'tensor' && rank.shape !== null && axis === rank.shape.length - 1))) return null;
    source = producers.get(into);
    if (!source || soleDataReader(graph, readers, into) !== split) return null;
  }
  let bias: string | null = null;
  let biasAdd: Node | null = null;
  if (source.opType === 'Add') {
    biasAdd = source;
    const constant = source.inputs.findIndex((i) => graph.constant(i)?.dims.length === 1);
    if (constant < 0) return null;
    bias = source.inputs[constant]!;
    const other = source.inputs[1 - constant]!;
    const mm = producers.get(other);
    if (!mm || soleReader(graph, readers, other) !== source) return null;
    source = mm;
  }
  if (source.opType !== 'MatMul' || source.domain !== '') return null;
  const w = graph.constant(source.inputs[1]!);
  if (!w || w.dataType !== DataType.FLOAT || w.dims.length !== 2) return null;
  let fused: Projection['fused'] = null;
  if (split) {
    const output = split.outputs.indexOf(reshape.inputs[0]!);
    const sizes = splitSizes(graph, split, w.dims[1]!);
    if (!sizes || sizes[output] !== heads * headDim) return null;
    fused = { split, output, offset: sizes.slice(0, output).reduce((a, b) => a + b, 0) };
  } else if (w.dims[1] !== heads * headDim) return null;
  if (bias && graph.constant(bias)!.dims[0] !== w.dims[1]) return null;
  return { matmul: source, weight: source.inputs[1]!, shape, bias, biasAdd, reshape, transpose, fused, region: [], repeat: null, heads, headDim };
}

/** The repeat_kv that writes \`value\` (Unsqueeze axis 2 → Expand → Reshape, each read once), and what it repeats; null when there is none. */
function repeatInto(graph: Graph, producers: Map<string, Node>, readers: Map<string, Node[]>, value: string, opset: number): { repeat: Repeat; input: string } | null {
  const reshape = producers.get(value);
  if (reshape?.opType !== 'Reshape' || reshape.domain !== '') return null;
  const expand = producers.get(reshape.inputs[0]!);
  if (expand?.opType !== 'Expand' || expand.domain !== '' || soleReader(graph, readers, expand.outputs[0]!) !== reshape) return null;
  const unsqueeze = producers.get(expand.inputs[0]!);
  if (unsqueeze?.opType !== 'Unsqueeze' || unsqueeze.domain !== '' || soleReader(graph, readers, unsqueeze.outputs[0]!) !== expand) return null;
  const axes = opset >= 13 ? (unsqueeze.inputs[1] ? intsOf(graph, unsqueeze.inputs[1]) : null) : (unsqueeze.attrInts('axes') ?? null);
  if (!axes || axes.length !== 1 || axes[0] !== 2) return null;
  const expandShape = shapeSpec(graph, producers, expand.inputs[1]!);
  const reshapeShape = shapeSpec(graph, producers, reshape.inputs[1]!);
  const [kv, n] = [expandShape?.entries[1], expandShape?.entries[2]];
  if (!expandShape || expandShape.entries.length !== 5 || !reshapeShape || reshapeShape.entries.length !== 4 || kv == null || n == null || !(n > 1) || reshapeShape.entries[1] !== kv * n) return null;
  return { repeat: { unsqueeze, expand, expandShape, reshape, reshapeShape, groupSize: n }, input: unsqueeze.inputs[0]! };
}

/**
 * The projection behind one operand of an attention MatMul (`consumer`), through head-local ops:
 * a head split (Reshape → Transpose `perm`), then ops acting on each head alone. Keys may also
 * come as Transpose (0,2,1,3) → head-local ops → Transpose (0,1,3,2) (`keys`).
 */
function projectionInto(graph: Graph, producers: Map<string, Node>, readers: Map<string, Node[]>, consumer: Node, input: number, perm: number[], opset: number, keys = false): ReturnType<typeof headSplit> {
  let value = consumer.inputs[input]!;
  let reader = consumer;
  const after: Node[] = [];
  const swap = producers.get(value);
  if (keys && swap?.opType === 'Transpose' && swap.domain === '' && swap.attrInts('perm')?.join() === '0,1,3,2' && soleReader(graph, readers, value) === consumer) {
    after.push(swap);
    [value, reader, perm] = [swap.inputs[0]!, swap, [0, 2, 1, 3]];
  }
  // grouped-query attention: key/value heads repeated for their query heads
  const repeated = soleReader(graph, readers, value) === reader ? repeatInto(graph, producers, readers, value, opset) : null;
  if (repeated) [value, reader] = [repeated.input, repeated.repeat.unsqueeze];
  const region = headLocalRegion(graph, producers, readers, value, reader);
  const p = region && headSplit(graph, producers, readers, region.start, perm);
  if (!p) return null;
  if (repeated && repeated.repeat.expandShape.entries[1] !== p.heads) return null;
  return { ...p, region: [...region.nodes, ...after], repeat: repeated?.repeat ?? null };
}

/**
 * A Split's output widths along its axis of `total`: its `split` input (opset 13 on) or attribute
 * (before), or equal parts when it has neither; null when they are not stored or do not add up.
 */
export function splitSizes(graph: Graph, split: Node, total: number): number[] | null {
  const sizes = split.inputs[1] ? intsOf(graph, split.inputs[1]) : (split.attrInts('split') ?? null);
  if (split.inputs[1] && !sizes) return null;
  const parts = split.outputs.length;
  const all = sizes ?? (total % parts === 0 ? Array.from({ length: parts }, () => total / parts) : null);
  return all && all.length === parts && all.reduce((a, b) => a + b, 0) === total ? all : null;
}

/**
 * Ops that act on each head alone (they never mix the head axis, −3 of [·, H, T, d] or [·, H, d, T]):
 * element-wise ops with an operand every head shares, and Slice/Concat along the last axis —
 * rotary position embeddings (x·cos + rotate_half(x)·sin, rotate_half a Slice → Neg → Concat) are
 * written with them. Head pruning passes through them unchanged.
 */
const HEAD_LOCAL_UNARY = new Set(['Neg', 'Cast', 'Identity']);

/** Whether `n` is head-local: every operand of it either in the region (`isRegion`) or shared by the heads. */
function headLocal(graph: Graph, n: Node, isRegion: (v: string) => boolean): boolean {
  if (n.domain !== '') return false;
  if (HEAD_LOCAL_UNARY.has(n.opType)) return true;
  if (ELEMENTWISE.has(n.opType) && n.inputs.length === 2) return n.inputs.every((x) => isRegion(x) || sharedByHeads(graph, x));
  const lastAxis = (axis: number) => axis === -1 || axis === 3;
  if (n.opType === 'Concat') return lastAxis(n.attrInt('axis', 0)) && n.inputs.every(isRegion);
  if (n.opType === 'Slice') {
    // opset 10+: starts, ends, axes (required here: the default is every axis), steps
    const axes = n.inputs[3] ? intsOf(graph, n.inputs[3]) : null;
    return axes !== null && axes.every(lastAxis) && n.inputs.slice(1).every((x) => !x || graph.constant(x) !== null);
  }
  return false;
}

/**
 * The head-split Transpose whose output reaches `value` through head-local ops only (rotary
 * embeddings and the like), with those ops; `value` itself when it is that Transpose's output.
 * Every value in between must be read only inside the region (or by `consumer`), so that what the
 * region computes for each head depends on that head alone. Null when it is not so.
 */
function headLocalRegion(graph: Graph, producers: Map<string, Node>, readers: Map<string, Node[]>, value: string, consumer: Node): { start: string; nodes: Node[] } | null {
  const nodes: Node[] = [];
  const values = new Set<string>();
  let start: string | null = null;
  const pending = [value];
  while (pending.length) {
    const v = pending.pop()!;
    if (values.has(v)) continue;
    values.add(v);
    const p = producers.get(v);
    if (!p) return null;
    if (p.opType === 'Transpose') {
      if (start !== null && start !== v) return null;
      start = v;
      continue;
    }
    if (nodes.includes(p)) continue;
    // an operand is in the region unless every head shares it (a constant, a [·, 1, ·, ·] table)
    const inRegion = (x: string) => !sharedByHeads(graph, x) && graph.constant(x) === null;
    if (!headLocal(graph, p, inRegion)) return null;
    nodes.push(p);
    for (const x of p.inputs) if (x && inRegion(x)) pending.push(x);
  }
  if (start === null) return null;
  // nothing leaves the region but `value`, into `consumer`
  for (const v of values) {
    for (const r of readers.get(v) ?? []) {
      if (!nodes.includes(r) && !(v === value && r === consumer)) return null;
    }
    if (graph.outputs.some((o) => o.name === v)) return null;
  }
  return { start, nodes };
}

/** Whether an element-wise operand is the same for every head (a scalar, a [T, T] mask, a [1, 1, T, T] mask). */
function sharedByHeads(graph: Graph, name: string): boolean {
  const type = graph.valueType(name);
  const dims = type?.kind === 'tensor' ? type.shape : null;
  if (!dims) return false;
  return dims.length < 3 || dims[dims.length - 3] === 1;
}

/**
 * Every attention block of the graph, and why attention-looking parts were not taken. `opset`: the
 * model's default-domain opset (Softmax's default axis is 1 before opset 13, −1 from 13).
 */
export function findAttentionBlocks(graph: Graph, opset = 13): { blocks: AttentionBlock[]; notes: string[] } {
  const softmaxDefaultAxis = opset >= 13 ? -1 : 1;
  const producers = graph.producers();
  const readers = graph.consumers();
  const blocks: AttentionBlock[] = [];
  const notes: string[] = [];
  for (const scores of graph.nodes) {
    if (scores.opType !== 'MatMul' || scores.domain !== '') continue;
    const q = projectionInto(graph, producers, readers, scores, 0, [0, 2, 1, 3], opset);
    const k = projectionInto(graph, producers, readers, scores, 1, [0, 2, 3, 1], opset, true);
    if (!q || !k) continue;
    const name = scores.name || scores.outputs[0]!;
    // every value whose shape has H (or H·d) in it; a fused projection's Split input has it three times
    const projectionValues = (p: Projection) => [p.matmul.outputs[0]!, p.reshape.inputs[0]!, p.reshape.outputs[0]!, p.transpose.outputs[0]!, ...p.region.flatMap((n) => n.outputs),
      ...(p.fused ? [p.fused.split.inputs[0]!] : []), ...(p.repeat ? [p.repeat.unsqueeze, p.repeat.expand, p.repeat.reshape].map((n) => n.outputs[0]!) : [])];
    const values = [q, k].flatMap(projectionValues);
    // scores → element-wise ops with operands every head shares → Softmax → … → MatMul(·, v)
    let at = scores.outputs[0]!;
    let context: Node | null = null;
    let v: ReturnType<typeof headSplit> = null;
    for (;;) {
      values.push(at);
      const next = soleReader(graph, readers, at);
      if (!next) break;
      if (next.opType === 'Softmax' && next.domain === '' && [-1, 3].includes(next.attrInt('axis', softmaxDefaultAxis))) { at = next.outputs[0]!; continue; }
      if (ELEMENTWISE.has(next.opType) && next.domain === '' && next.inputs.length === 2) {
        const other = next.inputs[next.inputs[0] === at ? 1 : 0]!;
        if (!sharedByHeads(graph, other)) break;
        at = next.outputs[0]!;
        continue;
      }
      if (next.opType === 'MatMul' && next.domain === '' && next.inputs[0] === at) {
        v = projectionInto(graph, producers, readers, next, 1, [0, 2, 1, 3], opset);
        if (v) context = next;
      }
      break;
    }
    if (!context || !v) {
      notes.push(`${name}: queries and keys split into heads, but no MatMul with head-split values follows through shared scale/mask ops and Softmax`);
      continue;
    }
    // keys and values: as many heads as the queries, or (grouped-query) Hkv heads repeated n times each
    const groupSize = k.repeat?.groupSize ?? 1;
    if (q.repeat || (v.repeat?.groupSize ?? 1) !== groupSize || k.heads !== v.heads || q.heads !== k.heads * groupSize || q.headDim !== k.headDim || q.headDim !== v.headDim) {
      notes.push(`${name}: queries, keys and values split into head shapes that do not match (${q.heads}, ${k.heads}, ${v.heads} heads${groupSize > 1 ? `, keys repeated ${groupSize}×` : ''})`);
      continue;
    }
    const fusedSplits = new Set([q, k, v].map((p) => p.fused?.split ?? null));
    if (fusedSplits.size !== 1 || (q.fused && (q.fused.split.outputs.length !== 3 || new Set([q, k, v].map((p) => p.fused!.output)).size !== 3))) {
      notes.push(`${name}: queries, keys and values are not either three MatMuls or one MatMul split three ways into them`);
      continue;
    }
    const { heads, headDim } = q;
    const mergeTranspose = soleReader(graph, readers, context.outputs[0]!);
    const mergePerm = mergeTranspose?.opType === 'Transpose' ? mergeTranspose.attrInts('perm') : null;
    const mergeReshape = mergeTranspose ? soleDataReader(graph, readers, mergeTranspose.outputs[0]!) : null;
    const mergeShape = mergeReshape?.opType === 'Reshape' ? shapeSpec(graph, producers, mergeReshape.inputs[1]!) : null;
    const out = mergeReshape ? soleReader(graph, readers, mergeReshape.outputs[0]!) : null;
    const wo = out?.opType === 'MatMul' && out.inputs[0] === mergeReshape!.outputs[0] ? graph.constant(out.inputs[1]!) : null;
    if (!mergePerm || mergePerm.join() !== '0,2,1,3' || !mergeShape || mergeShape.entries[mergeShape.entries.length - 1] !== heads * headDim || !wo || wo.dataType !== DataType.FLOAT || wo.dims.length !== 2 || wo.dims[0] !== heads * headDim) {
      notes.push(`${name}: the heads' context is not merged (Transpose 0,2,1,3 → Reshape [·, ·, ${heads * headDim}]) into an output MatMul with a stored [${heads * headDim}, ·] weight`);
      continue;
    }
    values.push(...projectionValues(v), context.outputs[0]!, mergeTranspose!.outputs[0]!, mergeReshape!.outputs[0]!);
    blocks.push({ graph, name: out!.name || out!.outputs[0]!, heads, headDim, kvHeads: k.heads, groupSize, q, k, v, context, mergeTranspose: mergeTranspose!, mergeReshape: mergeReshape!, mergeShape, out: { matmul: out!, weight: out!.inputs[1]! }, values: [...new Set(values)] });
  }
  return { blocks, notes };
}

