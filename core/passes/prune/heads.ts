import { WhittleError } from '../../../api/errors.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { AttrType, type Graph, type Model, type Node } from '../../../native-models/ir/model.ts';
import type { EpChoice } from '../../../native-models/runtimes/onnxruntime.ts';
import type { Dataset } from '../../evaluate/data/index.ts';
import { createPassContext, tensorBytes, type Pass, type PassContext, type PassReport } from '../pass.ts';
import { addInitializer, intAttr, isExcluded, makeNode, NameAllocator, removeUnread } from '../quantize/graph-edit.ts';
import { findAttentionBlocks, intsOf, type AttentionBlock, type ShapeSpec } from './attention.ts';
import { refitLayer, snapshot, type ReconstructOptions } from './channel/reconstruct.ts';
import { ownTensor, refreshShapes, sliceAlong } from './channel/rewrite.ts';
import { collectLayerInputs, layerMatrix, readMatrix, type LayerMatrix } from './layer-inputs.ts';
import { prunableWeights } from './prunable.ts';

/**
 * Attention-head pruning (`whittle prune --method heads`): whole heads of multi-head attention are
 * removed, so the model really gets smaller and faster (Michel et al. 2019, "Are Sixteen Heads
 * Really Better than One?": many heads can go with little loss). An attention block is recognised
 * in the graph an exporter writes for it, not by layer names (attention.ts has the pattern).
 *
 * Removing head h cuts columns h·d … (h+1)·d − 1 of Wq, Wk, Wv and their biases, the same rows of
 * Wo, and H from the two Reshapes (a shape constant shared by several blocks is copied per block).
 * A fused q/k/v projection (one MatMul, then a Split) loses the same columns in each of its three
 * parts, and the Split's sizes shrink with them.
 * Every head computes independently of the others, so the kept heads' outputs are exactly what
 * they were; o_proj simply no longer receives the removed ones.
 *
 * Importance: 'l2' (default, no data) ranks a head by ‖Wv,h‖·‖Wo,h‖ (Frobenius norms of its value
 * columns and output rows: the scale of what it can write into the residual stream); 'activation'
 * (calibration data) by the energy it actually gives o_proj, Σ‖ctx_h·Wo,h‖² over the data, from each
 * head's context Gram matrix. Each block loses round(H × sparsity) heads (at least one is kept).
 *
 * With calibration data the output projection is refitted by channel pruning's least-squares refit
 * (channel/reconstruct.ts refitLayer: He et al. 2017's second step) onto the kept heads' columns, to
 * reproduce the unpruned block's output — block by block in graph order, a block after pruned ones
 * fitted on its inputs paired with the unpruned model's; the means go into o_proj's bias.
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
  return [b.q, b.k, b.v].flatMap((p) => [p.matmul, p.reshape, p.transpose, ...(p.fused ? [p.fused.split] : []), ...p.region, ...(p.repeat ? [p.repeat.unsqueeze, p.repeat.expand, p.repeat.reshape] : [])]).concat([b.context, b.mergeTranspose, b.mergeReshape, b.out.matmul]);
}

/** ‖Wv,h‖·‖Wo,h‖ per head. */
function weightImportance(b: AttentionBlock): number[] {
  const wvTensor = b.graph.constant(b.v.weight)!;
  const wv = wvTensor.typed() as Float32Array;
  const wo = b.graph.constant(b.out.weight)!.typed() as Float32Array;
  const width = b.heads * b.headDim;
  const D = wo.length / width;
  // v's columns: all of its own weight's, or its part of a fused q/k/v weight
  const stride = wvTensor.dims[1]!;
  const first = b.v.fused?.offset ?? 0;
  return Array.from({ length: b.heads }, (_, h) => {
    let v2 = 0;
    // the value head this query head reads (its group's, for grouped-query attention)
    const vh = Math.floor(h / b.groupSize);
    for (let r = 0; r < wv.length / stride; r++) for (let c = first + vh * b.headDim; c < first + (vh + 1) * b.headDim; c++) v2 += wv[r * stride + c]! ** 2;
    let o2 = 0;
    for (let r = h * b.headDim; r < (h + 1) * b.headDim; r++) for (let c = 0; c < D; c++) o2 += wo[r * D + c]! ** 2;
    return Math.sqrt(v2 * o2);
  });
}

/** o_proj as the calibrated passes see it (input rows [tokens, H·d], one output row per model channel), or why not. */
function outputLayer(model: Model, b: AttentionBlock): LayerMatrix | string {
  const w = prunableWeights(model).layers.find((x) => x.node === b.out.matmul);
  return w ? layerMatrix(w) : `${b.name}: its weight is not a plain stored matrix`;
}

/**
 * Σ‖ctx_h·Wo,h‖² per head over the data: trace(Wo,hᵀ·G_hh·Wo,h), G_hh the head's block of XᵀX of
 * o_proj's input (collectLayerInputs, one run of the unpruned model for every block).
 */
async function activationImportance(model: Model, blocks: AttentionBlock[], layers: LayerMatrix[], o: ReconstructOptions, ctx: PassContext): Promise<number[][]> {
  const { stats } = await collectLayerInputs(model, layers, { data: o.data, samples: o.samples, hessian: true, batchSize: o.batchSize, ep: o.ep, phase: 'measure heads' }, ctx);
  return blocks.map((b, i) => {
    const xtx = stats[i]!.groups[0]!.xtx!;
    const layer = layers[i]!;
    const w = readMatrix(layer); // [outputs × H·d]
    const k = layer.k;
    const d = b.headDim;
    return Array.from({ length: b.heads }, (_, h) => {
      let e = 0;
      for (let a = h * d; a < (h + 1) * d; a++) {
        for (let c = h * d; c < (h + 1) * d; c++) {
          let dot = 0;
          for (let r = 0; r < layer.rowsPerGroup; r++) dot += w[r * k + a]! * w[r * k + c]!;
          e += xtx[a * k + c]! * dot;
        }
      }
      return e;
    });
  });
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

/**
 * A fused q/k/v Split's parts, now `sizes` wide (in output order): a new sizes input (the old may
 * be shared), or the attribute before opset 13; equal parts without stored sizes stay equal.
 */
function resizeSplit(g: Graph, split: Node, sizes: number[], names: NameAllocator, created: string[]): void {
  if (split.inputs[1]) {
    const name = names.fresh(`${split.name || split.outputs[0]}.split`);
    addInitializer(g, name, DataType.INT64, [sizes.length], BigInt64Array.from(sizes.map(BigInt)));
    created.push(name);
    split.inputs[1] = name;
  } else if (split.attr('split')) {
    split.setAttr('split', AttrType.INTS, sizes.map(BigInt));
  }
}

/** Rewrites one block to keep `kept` heads (o_proj refitted when `refit` is given); the number of nodes whose inputs changed. */
function pruneBlock(b: AttentionBlock, kept: number[], names: NameAllocator, created: string[]): number {
  const g = b.graph;
  const columns = (heads: number[]) => heads.flatMap((h) => Array.from({ length: b.headDim }, (_, i) => h * b.headDim + i));
  const cols = columns(kept);
  // grouped-query attention: the key/value heads of the kept groups (every head otherwise)
  const keptGroups = [...new Set(kept.map((h) => Math.floor(h / b.groupSize)))];
  const colsOf = (p: AttentionBlock['q']) => (p === b.q ? cols : columns(keptGroups));
  const changed = new Set<Node>();
  // rewritten in place when only this node reads it, else in a private copy (ownTensor)
  const replace = (node: Node, input: number, axis: number, keep = cols) => {
    changed.add(node);
    const t = ownTensor(g, node, input, (base) => names.fresh(base), created);
    const sliced = sliceAlong(t, axis, keep);
    t.setData(sliced.data, { dims: sliced.dims });
  };
  const fused = b.q.fused;
  if (fused) {
    // one weight for q, k and v: each part keeps its kept heads' columns, parts in the Split's order
    const parts = [b.q, b.k, b.v].sort((x, y) => x.fused!.offset - y.fused!.offset);
    const keep = parts.flatMap((p) => colsOf(p).map((c) => p.fused!.offset + c));
    replace(b.q.matmul, 1, 1, keep);
    if (b.q.bias && b.q.biasAdd) replace(b.q.biasAdd, b.q.biasAdd.inputs.indexOf(b.q.bias), 0, keep);
    resizeSplit(g, fused.split, [...parts].sort((x, y) => x.fused!.output - y.fused!.output).map((p) => colsOf(p).length), names, created);
    changed.add(fused.split);
  } else {
    for (const p of [b.q, b.k, b.v]) {
      replace(p.matmul, 1, 1, colsOf(p));
      if (p.bias && p.biasAdd) replace(p.biasAdd, p.biasAdd.inputs.indexOf(p.bias), 0, colsOf(p));
    }
  }
  // o_proj's rows (refitted first, when there is data: refitLayer wrote them and its bias)
  replace(b.out.matmul, 1, 0);
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
  for (const p of [b.q, b.k, b.v]) {
    retarget(p.reshape, p.shape, 2, p === b.q ? kept.length : keptGroups.length);
    changed.add(p.reshape);
    if (p.repeat) {
      // repeat_kv: Hkv' groups expanded, H' heads after the Reshape
      retarget(p.repeat.expand, p.repeat.expandShape, 1, keptGroups.length);
      retarget(p.repeat.reshape, p.repeat.reshapeShape, 1, kept.length);
      changed.add(p.repeat.expand).add(p.repeat.reshape);
    }
  }
  retarget(b.mergeReshape, b.mergeShape, b.mergeShape.entries.length - 1, kept.length * b.headDim);
  changed.add(b.mergeReshape);
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
    const replaced = new Set(blocks.flatMap((b) => [b.q, b.k, b.v].flatMap((p) => [p.weight, p.reshape.inputs[1]!, ...(p.bias ? [p.bias] : []), ...(p.fused?.split.inputs[1] ? [p.fused.split.inputs[1]] : [])]).concat([b.out.weight, b.mergeReshape.inputs[1]!])));
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
    const o: ReconstructOptions | null = options.data ? { data: options.data.dataset, samples: options.data.dataset.n, batchSize: options.data.batchSize, ep: options.data.ep } : null;
    // o_proj of every block as a matrix (for the activation statistics and the refit)
    const layers = blocks.map((b) => outputLayer(model, b));
    const unusable = layers.find((l): l is string => typeof l === 'string');
    if (o && unusable) throw new WhittleError('UNSUPPORTED', `head pruning with calibration data: ${unusable}`);
    const importance = importanceKind === 'activation'
      ? await activationImportance(model, blocks, layers as LayerMatrix[], o!, ctx)
      : blocks.map(weightImportance);
    // the unpruned graph, to fit each block after a pruned one on its inputs as they have become
    const snap = o ? snapshot(model) : null;
    // heads go by whole groups (grouped-query attention: a key/value head with its query heads; one head each otherwise)
    const groupImportance = blocks.map((b, i) => Array.from({ length: b.kvHeads }, (_, g) => importance[i]!.slice(g * b.groupSize, (g + 1) * b.groupSize).reduce((a, v) => a + v, 0)));
    const headsOf = (b: AttentionBlock, groups: number[]) => groups.flatMap((g) => Array.from({ length: b.groupSize }, (_, r) => g * b.groupSize + r));
    const keptGlobal = options.scope === 'global' ? keptHeadsGlobal(groupImportance, options.sparsity) : null;
    let changedBefore = false;
    for (const [i, b] of blocks.entries()) {
      ctx.checkpoint();
      const kept = headsOf(b, keptGlobal ? keptGlobal[i]! : keptHeads(groupImportance[i]!, options.sparsity));
      const report: HeadBlockReport = { block: b.name, heads: b.heads, kept, removed: Array.from({ length: b.heads }, (_, h) => h).filter((h) => !kept.includes(h)), importance: importance[i]! };
      reports.push(report);
      if (kept.length === b.heads) continue;
      if (o) {
        // channel pruning's refit (reconstruct.ts): o_proj onto the kept heads' columns, paired with
        // the unpruned model once an earlier block changed
        const cols = kept.flatMap((h) => Array.from({ length: b.headDim }, (_, j) => h * b.headDim + j));
        const r = await refitLayer(model, changedBefore ? snap : null, layers[i] as LayerMatrix, cols, o, names, ctx);
        report.errorCut = r.layer.errorCut;
        report.errorRefit = r.layer.errorRefit;
      }
      const before = created.length;
      nodesChanged += pruneBlock(b, kept, names, created);
      // shapes as they now are: the next block's statistics run this model
      refreshShapes(b.graph, new Set(b.values), created.slice(before));
      changedBefore = true;
      ctx.progress('prune heads', i + 1, blocks.length);
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
