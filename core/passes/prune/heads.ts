import { WhittleError } from '../../../api/errors.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Model, Node } from '../../../native-models/ir/model.ts';
import { toFloatScores, type HostTensor } from '../../../native-models/runtimes/host-tensor.ts';
import type { EpChoice } from '../../../native-models/runtimes/onnxruntime.ts';
import { TappedModel } from '../../calibrate/tap.ts';
import type { Dataset } from '../../evaluate/data/index.ts';
import { createPassContext, tensorBytes, type Pass, type PassContext, type PassReport } from '../pass.ts';
import { addInitializer, intAttr, isExcluded, makeNode, NameAllocator, removeUnread } from '../quantize/graph-edit.ts';
import { findAttentionBlocks, intsOf, type AttentionBlock, type ShapeSpec } from './attention.ts';
import { ownTensor, refreshShapes, sliceAlong } from './channel/rewrite.ts';
import { inverseSpd } from './linalg.ts';

/**
 * Attention-head pruning (`whittle prune --method heads`): whole heads of multi-head attention are
 * removed, so the model really gets smaller and faster (Michel et al. 2019, "Are Sixteen Heads
 * Really Better than One?": many heads can go with little loss). An attention block is recognised
 * in the graph an exporter writes for it, not by layer names (attention.ts has the pattern).
 *
 * Removing head h cuts columns h·d … (h+1)·d − 1 of Wq, Wk, Wv and their biases, the same rows of
 * Wo, and H from the two Reshapes (a shape constant shared by several blocks is copied per block).
 * Every head computes independently of the others, so the kept heads' outputs are exactly what
 * they were; o_proj simply no longer receives the removed ones.
 *
 * Importance: 'l2' (default, no data) ranks a head by ‖Wv,h‖·‖Wo,h‖ (Frobenius norms of its value
 * columns and output rows: the scale of what it can write into the residual stream); 'activation'
 * (calibration data) by the energy it actually gives o_proj, Σ‖ctx_h·Wo,h‖² over the data, from each
 * head's context Gram matrix. Each block loses round(H × sparsity) heads (at least one is kept).
 *
 * With calibration data the output projection is refitted (He et al. 2017's second step, as channel
 * pruning does): Wo' = argmin ‖X̃_K·Wo' + b' − (X·Wo + b)‖² over the data, X the unpruned block's merged
 * heads and X̃_K the kept columns of what the block receives now — block by block in graph order, so a
 * block after pruned ones is fitted on its inputs as they have become (paired statistics from the
 * current and the unpruned model on the same batches); the means go into o_proj's bias (uncentred
 * moments without a bias).
 */
export interface HeadPruneOptions {
  /** Fraction of each attention block's heads removed, in [0, 1). */
  sparsity: number;
  importance?: 'l2' | 'activation';
  /**
   * 'block' (default): every block loses round(H × sparsity) heads; 'global': the least important
   * round(total × sparsity) heads of all blocks together (each block keeps at least one), so blocks
   * whose heads matter less lose more (Michel et al. prune globally).
   */
  scope?: 'block' | 'global';
  /** Node names or op types: a block with any of its nodes excluded keeps every head. */
  exclude?: string[];
  /**
   * Calibration data: activation importance is measured on it, and each pruned block's output
   * projection is refitted by least squares to reproduce, from the kept heads, what it gave with all.
   */
  data?: { dataset: Dataset; batchSize: number; ep: EpChoice };
}

export interface HeadBlockReport {
  block: string;
  heads: number;
  kept: number[];
  removed: number[];
  importance: number[];
  /** With calibration data: o_proj's output error ‖ΔY‖²/‖Y‖² on it, heads cut vs refitted. */
  errorCut?: number;
  errorRefit?: number;
}

export interface HeadPruneDetails {
  importance: 'l2' | 'activation';
  scope: 'block' | 'global';
  /** Output projections refitted on the calibration data (samples), or null without data. */
  refit: { samples: number } | null;
  blocks: HeadBlockReport[];
  headsBefore: number;
  headsAfter: number;
  parametersBefore: number;
  parametersAfter: number;
  /** Blocks left whole, with the reason. */
  skipped: { block: string; reason: string }[];
}

function blockNodes(b: AttentionBlock): Node[] {
  return [b.q, b.k, b.v].flatMap((p) => [p.matmul, p.reshape, p.transpose]).concat([b.context, b.mergeTranspose, b.mergeReshape, b.out.matmul]);
}

/** ‖Wv,h‖·‖Wo,h‖ per head. */
function weightImportance(b: AttentionBlock): number[] {
  const wv = b.graph.constant(b.v.weight)!.typed() as Float32Array;
  const wo = b.graph.constant(b.out.weight)!.typed() as Float32Array;
  const width = b.heads * b.headDim;
  const D = wo.length / width;
  return Array.from({ length: b.heads }, (_, h) => {
    let v2 = 0;
    for (let r = 0; r < wv.length / width; r++) for (let c = h * b.headDim; c < (h + 1) * b.headDim; c++) v2 += wv[r * width + c]! ** 2;
    let o2 = 0;
    for (let r = h * b.headDim; r < (h + 1) * b.headDim; r++) for (let c = 0; c < D; c++) o2 += wo[r * D + c]! ** 2;
    return Math.sqrt(v2 * o2);
  });
}

/** Statistics of a block's merged heads X [tokens, H·d] over the calibration data: XᵀX, column sums, rows. */
interface BlockStats {
  gram: Float64Array;
  sum: Float64Array;
  rows: number;
}

function emptyStats(width: number): BlockStats {
  return { gram: new Float64Array(width * width), sum: new Float64Array(width), rows: 0 };
}

/** Calls `each` with every token's merged-heads row of a tapped context [n, H, T, d] (X[t, h·d + i] = ctx[h, t, i]). */
function forEachRow(b: AttentionBlock, t: HostTensor | undefined, each: (row: Float64Array, index: number) => void): number {
  if (!t) throw new Error(`unreachable: the tapped context ${b.context.outputs[0]} is missing`);
  const { data: x, dims } = toFloatScores(t);
  const [n, H, T, d] = dims as [number, number, number, number];
  if (H !== b.heads || d !== b.headDim) throw new WhittleError('BAD_INPUT', `${b.name}: its context has shape [${dims}], not [·, ${b.heads}, ·, ${b.headDim}]`);
  const row = new Float64Array(H * d);
  for (let s = 0; s < n; s++) {
    for (let p = 0; p < T; p++) {
      for (let h = 0; h < H; h++) for (let c = 0; c < d; c++) row[h * d + c] = x[((s * H + h) * T + p) * d + c]!;
      each(row, s * T + p);
    }
  }
  return n * T;
}

/** Adds row·otherᵀ to `into` (width × width), upper triangle only when `symmetric`. */
function addOuter(into: Float64Array, row: Float64Array, other: Float64Array, symmetric: boolean): void {
  const width = row.length;
  for (let a = 0; a < width; a++) {
    const xa = row[a]!;
    if (xa === 0) continue;
    const at = a * width;
    for (let c = symmetric ? a : 0; c < width; c++) into[at + c] = into[at + c]! + xa * other[c]!;
  }
}

function mirror(gram: Float64Array, width: number): void {
  for (let a = 0; a < width; a++) for (let c = a + 1; c < width; c++) gram[c * width + a] = gram[a * width + c]!;
}

/** One run of the unpruned model over the data, each block's context tapped: each block's BlockStats. */
async function measureBlocks(tapped: TappedModel, blocks: AttentionBlock[], data: NonNullable<HeadPruneOptions['data']>, ctx: PassContext): Promise<BlockStats[]> {
  const stats = blocks.map((b) => emptyStats(b.heads * b.headDim));
  let samples = 0;
  for await (const batch of data.dataset.batches(data.batchSize)) {
    if (ctx.signal?.aborted) break;
    ctx.checkpoint();
    const values = await tapped.run(batch.inputs as Record<string, HostTensor>);
    blocks.forEach((b, i) => {
      const st = stats[i]!;
      st.rows += forEachRow(b, values[b.context.outputs[0]!], (row) => {
        for (let a = 0; a < row.length; a++) st.sum[a] = st.sum[a]! + row[a]!;
        addOuter(st.gram, row, row, true);
      });
    });
    samples += batch.count;
    ctx.progress('measure heads', samples, data.dataset.n);
  }
  if (ctx.signal?.aborted) throw new WhittleError('CANCELLED', 'head pruning cancelled');
  blocks.forEach((b, i) => mirror(stats[i]!.gram, b.heads * b.headDim));
  return stats;
}

/**
 * A block's inputs in the model as pruned so far (earlier blocks lost heads) beside the unpruned
 * model's, token by token over the data: the current statistics and the cross moments XcurᵀXorig
 * that the refit reproduces the unpruned output from (sequential, as channel pruning's refit).
 */
interface Paired {
  orig: BlockStats;
  cur: BlockStats;
  cross: Float64Array;
}

async function pairedStats(current: Model, original: TappedModel, b: AttentionBlock, orig: BlockStats, data: NonNullable<HeadPruneOptions['data']>, ctx: PassContext): Promise<Paired> {
  const name = b.context.outputs[0]!;
  const width = b.heads * b.headDim;
  const tapped = await TappedModel.create(current, [name], data.ep);
  const cur = emptyStats(width);
  const cross = new Float64Array(width * width);
  try {
    for await (const batch of data.dataset.batches(data.batchSize)) {
      if (ctx.signal?.aborted) break;
      ctx.checkpoint();
      const feeds = batch.inputs as Record<string, HostTensor>;
      const now = (await tapped.run(feeds))[name];
      const before = (await original.run(feeds))[name];
      const origRows: Float64Array[] = [];
      forEachRow(b, before, (row) => origRows.push(Float64Array.from(row)));
      cur.rows += forEachRow(b, now, (row, index) => {
        for (let a = 0; a < width; a++) cur.sum[a] = cur.sum[a]! + row[a]!;
        addOuter(cur.gram, row, row, true);
        addOuter(cross, row, origRows[index]!, false);
      });
    }
  } finally {
    await tapped.close();
  }
  if (ctx.signal?.aborted) throw new WhittleError('CANCELLED', 'head pruning cancelled');
  mirror(cur.gram, width);
  return { orig, cur, cross };
}

/** Σ‖ctx_h·Wo,h‖² per head: trace(Wo,hᵀ·G_hh·Wo,h), G_hh the head's block of XᵀX. */
function activationImportance(b: AttentionBlock, st: BlockStats): number[] {
  const wo = b.graph.constant(b.out.weight)!.typed() as Float32Array;
  const d = b.headDim;
  const width = b.heads * d;
  const D = wo.length / width;
  return Array.from({ length: b.heads }, (_, h) => {
    let e = 0;
    for (let a = h * d; a < (h + 1) * d; a++) {
      for (let c = h * d; c < (h + 1) * d; c++) {
        let dot = 0;
        for (let j = 0; j < D; j++) dot += wo[a * D + j]! * wo[c * D + j]!;
        e += st.gram[a * width + c]! * dot;
      }
    }
    return e;
  });
}

/** The constant bias an Add applies right after o_proj ([D]), if there is one: its node and input index. */
function outputBias(b: AttentionBlock, D: number): { add: Node; input: number } | null {
  const g = b.graph;
  const readers = g.nodes.filter((n) => n.inputs.includes(b.out.matmul.outputs[0]!));
  const add = readers.length === 1 && readers[0]!.opType === 'Add' ? readers[0]! : null;
  if (!add) return null;
  const input = add.inputs.findIndex((i) => i !== b.out.matmul.outputs[0] && g.constant(i)?.dims.join() === String(D));
  return input < 0 ? null : { add, input };
}

/**
 * The least-squares o_proj from the kept columns K of the block's current inputs X̃ to the unpruned
 * output X·Wo: Wo' = Σ̃_KK⁻¹·Σ̃_K,X·Wo (covariances, or uncentred second moments when there is no
 * bias to take the means), the bias shift μ·Wo − μ̃_K·Wo', and o_proj's output error on the data with
 * the rows cut (Wo's kept rows on X̃_K) and refitted. Unpruned earlier blocks: X̃ = X.
 */
function refitOutput(b: AttentionBlock, st: Paired, cols: number[], centred: boolean): { weight: Float32Array; shift: Float64Array; errorCut: number; errorRefit: number } | null {
  const wo = b.graph.constant(b.out.weight)!.typed() as Float32Array;
  const width = b.heads * b.headDim;
  const D = wo.length / width;
  const n = st.orig.rows;
  if (st.cur.rows !== n) throw new Error(`unreachable: ${b.name}: ${st.cur.rows} current rows against ${n}`);
  const mean = Float64Array.from(st.orig.sum, (v) => v / n);
  const meanCur = Float64Array.from(st.cur.sum, (v) => v / n);
  const moment = (g: Float64Array, ma: Float64Array, mb: Float64Array, a: number, c: number) => g[a * width + c]! / n - (centred ? ma[a]! * mb[c]! : 0);
  const k = cols.length;
  const mkk = new Float64Array(k * k);
  let trace = 0;
  for (let i = 0; i < k; i++) trace += moment(st.cur.gram, meanCur, meanCur, cols[i]!, cols[i]!);
  const damp = 1e-6 * (trace / k || 1);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) mkk[i * k + j] = moment(st.cur.gram, meanCur, meanCur, cols[i]!, cols[j]!) + (i === j ? damp : 0);
  const inv = inverseSpd(mkk, k);
  if (!inv) return null;
  // Σ̃_K,X [k, width] and the target Σ̃_K,X·Wo [k, D]
  const crossK = new Float64Array(k * width);
  for (let i = 0; i < k; i++) for (let a = 0; a < width; a++) crossK[i * width + a] = moment(st.cross, meanCur, mean, cols[i]!, a);
  const target = new Float64Array(k * D);
  for (let i = 0; i < k; i++) {
    for (let a = 0; a < width; a++) {
      const v = crossK[i * width + a]!;
      if (v === 0) continue;
      for (let j = 0; j < D; j++) target[i * D + j] = target[i * D + j]! + v * wo[a * D + j]!;
    }
  }
  const weight = new Float32Array(k * D);
  for (let i = 0; i < k; i++) for (let j = 0; j < D; j++) {
    let v = 0;
    for (let l = 0; l < k; l++) v += inv[i * k + l]! * target[l * D + j]!;
    weight[i * D + j] = v;
  }
  const shift = new Float64Array(D);
  if (centred) {
    for (let j = 0; j < D; j++) {
      let full = 0;
      for (let a = 0; a < width; a++) full += mean[a]! * wo[a * D + j]!;
      let kept = 0;
      for (let i = 0; i < k; i++) kept += meanCur[cols[i]!]! * weight[i * D + j]!;
      shift[j] = full - kept;
    }
  }
  // E‖X·w − X̃_K·u‖² = wᵀΣw − 2·uᵀΣ̃_K,X·w + uᵀΣ̃_KK·u per output column, over E‖X·w‖²
  const sigma = new Float64Array(width * width);
  for (let a = 0; a < width; a++) for (let c = 0; c < width; c++) sigma[a * width + c] = moment(st.orig.gram, mean, mean, a, c);
  const error = (u: (i: number, j: number) => number) => {
    let num = 0;
    let den = 0;
    const w = new Float64Array(width);
    const uj = new Float64Array(k);
    for (let j = 0; j < D; j++) {
      for (let a = 0; a < width; a++) w[a] = wo[a * D + j]!;
      for (let i = 0; i < k; i++) uj[i] = u(i, j);
      let ww = 0;
      for (let a = 0; a < width; a++) for (let c = 0; c < width; c++) ww += w[a]! * sigma[a * width + c]! * w[c]!;
      let uw = 0;
      for (let i = 0; i < k; i++) for (let a = 0; a < width; a++) uw += uj[i]! * crossK[i * width + a]! * w[a]!;
      let uu = 0;
      for (let i = 0; i < k; i++) for (let l = 0; l < k; l++) uu += uj[i]! * (mkk[i * k + l]! - (i === l ? damp : 0)) * uj[l]!;
      num += ww - 2 * uw + uu;
      den += ww;
    }
    return den > 0 ? Math.max(0, num) / den : 0;
  };
  return { weight, shift, errorCut: error((i, j) => wo[cols[i]! * D + j]!), errorRefit: error((i, j) => weight[i * D + j]!) };
}

/** Heads to keep: the most important H − round(H·sparsity), at least one, in head order. */
export function keptHeads(importance: number[], sparsity: number): number[] {
  const H = importance.length;
  const remove = Math.min(H - 1, Math.round(H * sparsity));
  const order = importance.map((v, h) => h).sort((a, b) => importance[b]! - importance[a]! || a - b);
  return order.slice(0, H - remove).sort((a, b) => a - b);
}

/**
 * Heads to keep in every block when ranked across blocks: the round(total × sparsity) least important
 * go, lowest first, skipping a block's last head; ties by block, then head order.
 */
export function keptHeadsGlobal(importance: number[][], sparsity: number): number[][] {
  const total = importance.reduce((n, b) => n + b.length, 0);
  let remove = Math.round(total * sparsity);
  const all = importance.flatMap((b, i) => b.map((v, h) => ({ i, h, v }))).sort((a, b) => a.v - b.v || a.i - b.i || a.h - b.h);
  const left = importance.map((b) => b.length);
  const removed = importance.map(() => new Set<number>());
  for (const { i, h } of all) {
    if (remove === 0) break;
    if (left[i]! <= 1) continue;
    removed[i]!.add(h);
    left[i]!--;
    remove--;
  }
  return importance.map((b, i) => b.map((_, h) => h).filter((h) => !removed[i]!.has(h)));
}

function parameters(model: Model): number {
  let n = 0;
  for (const g of model.graphs()) for (const t of g.initializers.values()) if (t.dataType === DataType.FLOAT) n += t.elementCount;
  return n;
}

/** Ops that compute run-time shape entries (removed with the Concat they fed once nothing else reads them). */
const SHAPE_OPS = new Set(['Shape', 'Gather', 'Unsqueeze', 'Squeeze', 'Cast', 'Constant', 'Slice']);

/**
 * A new target for `reshape`: its shape with entry `entry` set to `value` — a new stored int64 shape,
 * or, for a shape a Concat builds, a new Concat (inserted before the Reshape) whose piece holding that
 * entry is a new constant. The name of the new target.
 */
function rewriteShape(g: Graph, reshape: Node, spec: ShapeSpec, entry: number, value: number, names: NameAllocator, created: string[]): string {
  if (!spec.concat) {
    const shape = spec.entries.map((v, i) => (i === entry ? value : v!));
    const name = names.fresh(`${reshape.name || reshape.outputs[0]}.shape`);
    addInitializer(g, name, DataType.INT64, [shape.length], BigInt64Array.from(shape.map(BigInt)));
    created.push(name);
    return name;
  }
  const { input, offset } = spec.sources[entry]!;
  const piece = spec.concat.inputs[input]!;
  const stored = intsOf(g, piece) ?? [0];
  stored[offset] = value;
  const pieceName = names.fresh(`${reshape.name || reshape.outputs[0]}.shape_piece`);
  addInitializer(g, pieceName, DataType.INT64, [stored.length], BigInt64Array.from(stored.map(BigInt)));
  created.push(pieceName);
  const output = names.fresh(`${reshape.name || reshape.outputs[0]}.shape`);
  const concat = makeNode('Concat', spec.concat.inputs.map((x, i) => (i === input ? pieceName : x)), [output], names.fresh(`${spec.concat.name || 'Concat'}_pruned`), '', [intAttr('axis', 0)]);
  g.nodes.splice(g.nodes.indexOf(reshape), 0, concat);
  return output;
}

/** Rewrites one block to keep `kept` heads (o_proj refitted when `refit` is given); the number of nodes whose inputs changed. */
function pruneBlock(b: AttentionBlock, kept: number[], names: NameAllocator, created: string[], refit: { weight: Float32Array; shift: Float64Array; bias: { add: Node; input: number } | null } | null): number {
  const g = b.graph;
  const cols = kept.flatMap((h) => Array.from({ length: b.headDim }, (_, i) => h * b.headDim + i));
  const changed = new Set<Node>();
  // rewritten in place when only this node reads it, else in a private copy (ownTensor)
  const replace = (node: Node, input: number, axis: number, values?: { data: Float32Array; dims: number[] }) => {
    changed.add(node);
    const t = ownTensor(g, node, input, (base) => names.fresh(base), created);
    const sliced = values ?? sliceAlong(t, axis, cols);
    t.setData(sliced.data, { dims: sliced.dims });
  };
  for (const p of [b.q, b.k, b.v]) {
    replace(p.matmul, 1, 1);
    if (p.bias && p.biasAdd) replace(p.biasAdd, p.biasAdd.inputs.indexOf(p.bias), 0);
  }
  const D = g.constant(b.out.weight)!.dims[1]!;
  replace(b.out.matmul, 1, 0, refit ? { data: refit.weight, dims: [cols.length, D] } : undefined);
  if (refit?.bias) {
    const bias = g.constant(refit.bias.add.inputs[refit.bias.input]!)!;
    const shifted = Float32Array.from(bias.typed() as Float32Array, (v, j) => v + refit.shift[j]!);
    replace(refit.bias.add, refit.bias.input, 0, { data: shifted, dims: [D] });
  }
  // the Reshapes' targets with H' (splits) and H'·d (merge): new stored shapes, or new Concats whose
  // piece for that entry is a new constant (the run-time entries stay as they are); one per distinct original
  const rewritten = new Map<string, string>();
  const retarget = (reshape: Node, spec: ShapeSpec, entry: number, value: number) => {
    const key = `${reshape.inputs[1]}#${entry}=${value}`;
    let target = rewritten.get(key);
    if (!target) {
      target = rewriteShape(g, reshape, spec, entry, value, names, created);
      rewritten.set(key, target);
    }
    reshape.inputs[1] = target;
  };
  for (const p of [b.q, b.k, b.v]) retarget(p.reshape, p.shape, 2, kept.length);
  retarget(b.mergeReshape, b.mergeShape, b.mergeShape.entries.length - 1, kept.length * b.headDim);
  for (const n of [b.q.reshape, b.k.reshape, b.v.reshape, b.mergeReshape]) changed.add(n);
  return changed.size;
}

export const headPrunePass: Pass<HeadPruneOptions> = {
  name: 'prune-heads',
  async run(model: Model, options: HeadPruneOptions, ctx: PassContext = createPassContext()): Promise<PassReport> {
    if (!(options.sparsity >= 0 && options.sparsity < 1)) throw new WhittleError('BAD_USAGE', `sparsity must be in [0, 1), got ${options.sparsity}`);
    const importanceKind = options.importance ?? 'l2';
    if (importanceKind === 'activation' && !options.data) throw new WhittleError('BAD_USAGE', 'activation importance is measured on calibration data (--calib DATA)');
    const bytesBefore = tensorBytes(model);
    const parametersBefore = parameters(model);
    const warnings: string[] = [];
    const excluded: string[] = [];
    const skipped: HeadPruneDetails['skipped'] = [];
    const found = model.graphs().flatMap((g) => {
      const r = findAttentionBlocks(g, model.opsetVersion('') ?? 13);
      warnings.push(...r.notes.map((n) => `attention not pruned: ${n}`));
      return r.blocks;
    });
    const blocks = found.filter((b) => {
      const hit = blockNodes(b).find((n) => isExcluded(n, options.exclude));
      if (hit) {
        skipped.push({ block: b.name, reason: `${hit.label} is excluded` });
        excluded.push(b.name);
      }
      return !hit;
    });
    const fused = model.graphs().flatMap((g) => g.nodes.filter((n) => /^(Attention|MultiHeadAttention|GroupQueryAttention|PackedAttention)$/.test(n.opType)));
    if (fused.length) warnings.push(`${fused.length} fused attention node(s) (${[...new Set(fused.map((n) => n.opType))].join(', ')}, e.g. ${fused[0]!.label}) keep their heads: head pruning rewrites attention written as MatMul/Reshape/Transpose/Softmax`);
    if (found.length === 0) {
      throw new WhittleError('BAD_INPUT', `${model.path ?? 'the model'}: no multi-head attention block found (queries and keys split into heads by Reshape [·, ·, H, d] + Transpose, multiplied, Softmax, times head-split values, merged and projected by a MatMul)${fused.length ? `; its attention is fused into ${fused[0]!.opType} nodes` : ''}`);
    }
    ctx.progress('measure heads', 0, 1);
    const names = new NameAllocator(model);
    const created: string[] = [];
    const reports: HeadBlockReport[] = [];
    // the tensors pruning may leave unread (the originals, once sliced copies or new shapes replace them)
    const replaced = new Set(blocks.flatMap((b) => [b.q, b.k, b.v].flatMap((p) => [p.weight, p.reshape.inputs[1]!, ...(p.bias ? [p.bias] : [])]).concat([b.out.weight, b.mergeReshape.inputs[1]!])));
    // Concats that built the old shapes (and what fed only them: Shape, Gather, Unsqueeze) go once unread
    const oldShapeNodes = new Set(blocks.flatMap((b) => [b.q.shape, b.k.shape, b.v.shape, b.mergeShape].flatMap((spec) => (spec.concat ? [spec.concat] : []))));
    for (const g of model.graphs()) {
      const producers = g.producers();
      const pending = [...oldShapeNodes].filter((n) => g.nodes.includes(n));
      while (pending.length) {
        for (const input of pending.pop()!.inputs) {
          const p = input ? producers.get(input) : undefined;
          if (p && SHAPE_OPS.has(p.opType) && !oldShapeNodes.has(p)) {
            oldShapeNodes.add(p);
            pending.push(p);
          }
        }
      }
    }
    let nodesChanged = 0;
    // with data: the unpruned model, every block's context tapped, open until every block is refitted
    const original = options.data ? await TappedModel.create(model, blocks.map((b) => b.context.outputs[0]!), options.data.ep) : null;
    try {
      const measured = original ? await measureBlocks(original, blocks, options.data!, ctx) : null;
      const importance = blocks.map((b, i) => (importanceKind === 'activation' ? activationImportance(b, measured![i]!) : weightImportance(b)));
      const keptGlobal = options.scope === 'global' ? keptHeadsGlobal(importance, options.sparsity) : null;
      let changedBefore = false;
      for (const [i, b] of blocks.entries()) {
        ctx.checkpoint();
        const kept = keptGlobal ? keptGlobal[i]! : keptHeads(importance[i]!, options.sparsity);
        const report: HeadBlockReport = { block: b.name, heads: b.heads, kept, removed: Array.from({ length: b.heads }, (_, h) => h).filter((h) => !kept.includes(h)), importance: importance[i]! };
        reports.push(report);
        if (kept.length === b.heads) continue;
        let refit: Parameters<typeof pruneBlock>[4] = null;
        if (measured) {
          const cols = kept.flatMap((h) => Array.from({ length: b.headDim }, (_, j) => h * b.headDim + j));
          const bias = outputBias(b, b.graph.constant(b.out.weight)!.dims[1]!);
          // the block's inputs as they now are (earlier blocks pruned), against the unpruned ones
          const paired = changedBefore
            ? await pairedStats(model, original!, b, measured[i]!, options.data!, ctx)
            : { orig: measured[i]!, cur: measured[i]!, cross: measured[i]!.gram };
          const r = refitOutput(b, paired, cols, bias !== null);
          if (r) {
            refit = { weight: r.weight, shift: r.shift, bias };
            report.errorCut = r.errorCut;
            report.errorRefit = r.errorRefit;
          } else warnings.push(`${b.name}: the kept heads' statistics are singular on this data; its rows are cut, not refitted`);
        }
        const before = created.length;
        nodesChanged += pruneBlock(b, kept, names, created, refit);
        // shapes as they now are: the next block's statistics run this model
        refreshShapes(b.graph, new Set(b.values), created.slice(before));
        changedBefore = true;
        ctx.progress('prune heads', i + 1, blocks.length);
      }
    } finally {
      await original?.close();
    }
    removeUnread(model, { nodes: oldShapeNodes, names: replaced });
    const details: HeadPruneDetails = {
      importance: importanceKind,
      scope: options.scope ?? 'block',
      refit: options.data ? { samples: options.data.dataset.n } : null,
      blocks: reports,
      headsBefore: found.reduce((n, b) => n + b.heads, 0),
      headsAfter: found.reduce((n, b) => n + b.heads, 0) - reports.reduce((n, r) => n + r.removed.length, 0),
      parametersBefore,
      parametersAfter: parameters(model),
      skipped,
    };
    return {
      pass: this.name,
      nodesChanged,
      bytesBefore, bytesAfter: tensorBytes(model), excluded, warnings,
      details: details as unknown as Record<string, unknown>,
    };
  },
};
