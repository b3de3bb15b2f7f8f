import { AttrType, Model, Node } from '../../../../native-models/ir/model.ts';
import { Tensor } from '../../../../native-models/ir/tensor.ts';
import type { EpChoice } from '../../../../native-models/runtimes/onnxruntime.ts';
import type { Dataset } from '../../../evaluate/data/index.ts';
import type { PassContext } from '../../pass.ts';
import { NameAllocator } from '../../quantize/graph-edit.ts';
import { addToOutputBias, hasOutputBias } from '../bias-correction.ts';
import { collectLayerInputs, layerMatrix, readMatrix, writeMatrix, type GroupStats, type LayerMatrix } from '../layer-inputs.ts';
import { cholesky, quadraticFormSum, solveLower, solveUpper, transpose } from '../linalg.ts';
import { prunableWeights } from '../prunable.ts';
import type { Analysis } from './analyze.ts';
import { keptPositions, type Layout } from './groups.ts';
import type { KeptOf } from './rewrite.ts';

/**
 * Least-squares reconstruction of the layers that read pruned channels (the second step of He et
 * al., "Channel Pruning for Accelerating Very Deep Neural Networks", 2017; ThiNet's too): a Conv or
 * Gemm that loses input channels gets, for the channels it keeps, the weights that best reproduce
 * the unpruned model's output of that layer on the calibration data, instead of its old weights with
 * the others cut off (refit() has the formula; λ is 1 % of the kept block's mean diagonal, as GPTQ
 * damps). The bias term goes only into a bias the layer already has (its B or C, or the per-channel
 * Add after it): the rewrite slices existing tensors and knows of no new ones. Without one, the fit
 * is made on raw second moments (no intercept).
 */

export interface ReconstructOptions {
  data: Dataset;
  samples: number;
  batchSize: number;
  ep?: EpChoice;
}

export interface ReconstructedLayer {
  layer: string;
  /** Input columns (channel × kernel position, or features) kept / before. */
  kept: number;
  of: number;
  /** ‖WX − ŴX‖² / ‖WX‖² on the calibration rows: the old weights cut off, then refitted. */
  errorCut: number;
  errorRefit: number;
  /** Where the mean went: into the existing bias, or nowhere (no bias; uncentered fit). */
  bias: 'bias' | 'none';
}

const DAMP = 0.01;

/**
 * The Conv (group 1), Gemm and MatMul layers that read pruned channels on their weight's input axis
 * and can be seen as one matrix (weights read as stored, no Transpose between, not shared), with
 * the layout they read and its positions per channel.
 */
function readingLayers(model: Model, analysis: Analysis): { layer: LayerMatrix; layout: Layout; block: number }[] {
  const out: { layer: LayerMatrix; layout: Layout; block: number }[] = [];
  for (const w of prunableWeights(model).layers) {
    const reads = analysis.consumers.get(w.node);
    if (!reads || w.graph !== model.graph || w.storedIndex || w.sharedWith.length > 0) continue;
    const m = layerMatrix(w);
    if (typeof m === 'string' || m.groups !== 1) continue;
    out.push({ layer: m, ...reads });
  }
  return out;
}

/** Position along the weight's input axis of matrix column `col`: a Conv's columns are (kernel position)·Cg + channel. */
function positionOf(layer: LayerMatrix, col: number): number {
  return layer.conv ? col % layer.conv.cg : col;
}

/** The reading layers that lose input positions, with the positions (along the weight's input axis) kept. */
function consumers(model: Model, analysis: Analysis, kept: KeptOf): { layer: LayerMatrix; keptPositions: Set<number> }[] {
  const out: { layer: LayerMatrix; keptPositions: Set<number> }[] = [];
  for (const { layer, layout, block } of readingLayers(model, analysis)) {
    const positions = keptPositions(layout, block, kept);
    if (positions.length < layer.weight.shape[layer.weight.inAxis]!) out.push({ layer, keptPositions: new Set(positions) });
  }
  return out;
}

/**
 * Data-aware channel importance: for each channel of each group, the output energy it gives the
 * layers that read it, Σ over those layers' weights on its positions of W_rj²·E[x_j²] (the
 * diagonal of ‖W·X‖², as Wanda scores single weights), from one calibration pass over the unpruned
 * model. A channel that is large in weight but rarely lit, or small in weight but carrying big
 * activations, is ranked by what it really contributes.
 */
export async function activationImportance(model: Model, analysis: Analysis, o: ReconstructOptions, ctx: PassContext): Promise<Map<number, Float64Array>> {
  const { groups } = analysis;
  const out = new Map<number, Float64Array>();
  for (const s of groups.sources) {
    const r = groups.find(s.id);
    if (!out.has(r)) out.set(r, new Float64Array(s.channels));
  }
  const readers = readingLayers(model, analysis);
  if (readers.length === 0) return out;
  const { stats } = await collectLayerInputs(model, readers.map((x) => x.layer), {
    data: o.data, samples: o.samples, hessian: false, batchSize: o.batchSize, ep: o.ep, phase: 'importance',
  }, ctx);
  for (const [i, { layer, layout, block }] of readers.entries()) {
    const st = stats[i]!.groups[0]!;
    const w = readMatrix(layer);
    const n = Math.max(st.rows, 1);
    // the layout position (channel of the tensor read) of each column, then its source channel
    const where: ({ root: number; channel: number } | null)[] = [];
    for (const seg of layout.segments) for (let c = 0; c < seg.len; c++) where.push(seg.source === null ? null : { root: groups.find(seg.source), channel: seg.start + c });
    for (let j = 0; j < layer.k; j++) {
      const at = where[Math.floor(positionOf(layer, j) / block)];
      if (!at) continue;
      let energy = 0;
      for (let r = 0; r < layer.rowsPerGroup; r++) energy += w[r * layer.k + j]! ** 2;
      out.get(at.root)![at.channel]! += energy * (st.sqNorm[j]! / n);
    }
  }
  return out;
}

/** The unpruned graph (nodes and stored values), to pair each layer's current inputs with the original ones. */
export interface Snapshot { nodes: Node[]; initializers: Tensor[] }

export function snapshot(model: Model): Snapshot {
  return {
    nodes: model.graph.nodes.map((n) => new Node({ name: n.name, opType: n.opType, domain: n.domain, inputs: [...n.inputs], outputs: [...n.outputs], attributes: n.attributes })),
    initializers: [...model.graph.initializers.values()].map((t) => new Tensor({ name: t.name, dataType: t.dataType, dims: [...t.dims], source: { kind: 'inline', bytes: Uint8Array.prototype.slice.call(t.bytes()) } })),
  };
}

const ORIGINAL = 'whittle_unpruned/';

/**
 * One graph holding the model as it is now and, under ORIGINAL-prefixed names, as it was before any
 * refit, both fed by the same inputs; `input` of each is concatenated along `channelAxis` so one
 * tap gives every row's current and original values side by side.
 */
function pairedModel(model: Model, snap: Snapshot, input: string, channelAxis: number): { model: Model; pair: string } {
  // the data inputs feed both; everything else, initializers included (IR < 4 lists them as inputs too), is renamed
  const dataInputs = new Set(model.graph.inputs.map((v) => v.name).filter((n) => !model.graph.initializers.has(n)));
  const rename = (n: string) => (!n || dataInputs.has(n) ? n : ORIGINAL + n);
  const m = new Model();
  // IR 4 lets the renamed initializers stay out of the graph inputs
  m.irVersion = Math.max(model.irVersion, 4);
  m.opsets = model.opsets;
  m.extra = model.extra;
  m.path = model.path;
  const g = m.graph;
  g.name = model.graph.name;
  // IR 4: initializers need not be listed as inputs (onnxruntime warns about each one that is)
  g.inputs = model.graph.inputs.filter((v) => dataInputs.has(v.name));
  g.outputs = model.graph.outputs;
  g.valueInfo = model.graph.valueInfo;
  g.initializers = new Map(model.graph.initializers);
  for (const t of snap.initializers) g.initializers.set(rename(t.name), new Tensor({ name: rename(t.name), dataType: t.dataType, dims: t.dims, source: t.source }));
  const pair = `${ORIGINAL}pair/${input}`;
  g.nodes = [
    ...snap.nodes.map((n) => new Node({ name: ORIGINAL + (n.name || n.outputs[0]!), opType: n.opType, domain: n.domain, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename), attributes: n.attributes })),
    ...model.graph.nodes,
    new Node({ name: pair, opType: 'Concat', inputs: [input, rename(input)], outputs: [pair], attributes: [{ name: 'axis', type: AttrType.INT, value: BigInt(channelAxis), extra: {} }] }),
  ];
  return { model: m, pair };
}

/** Where matrix column j's input sits in the paired rows: `tilde` the current value, `orig` the unpruned one. */
function pairedColumns(layer: LayerMatrix): { tilde: Int32Array; orig: Int32Array } {
  const tilde = new Int32Array(layer.k);
  const orig = new Int32Array(layer.k);
  for (let j = 0; j < layer.k; j++) {
    if (layer.conv) {
      const cg = layer.conv.cg;
      const p = Math.floor(j / cg), c = j % cg;
      tilde[j] = p * 2 * cg + c;
      orig[j] = p * 2 * cg + cg + c;
    } else {
      tilde[j] = j;
      orig[j] = layer.k + j;
    }
  }
  return { tilde, orig };
}

/**
 * Refits every consumer of pruned channels in place (weights and existing biases), before the
 * rewrite slices them, one layer at a time in graph order: each layer's statistics pair its inputs
 * in the model as refitted so far (removed columns zeroed in every refitted reader) with its inputs
 * in the unpruned model, so it is fitted to reproduce the unpruned model's output from what it
 * really receives — the drift of the layers before it included. A layer fed by a graph input sees
 * no drift and is fitted on its own statistics.
 */
export async function reconstructConsumers(model: Model, analysis: Analysis, kept: KeptOf, o: ReconstructOptions, ctx: PassContext): Promise<{ layers: ReconstructedLayer[]; samples: number }> {
  const targets = consumers(model, analysis, kept);
  if (targets.length === 0) return { layers: [], samples: 0 };
  const snap = snapshot(model);
  const dataInputs = new Set(model.graph.inputs.map((v) => v.name).filter((n) => !model.graph.initializers.has(n)));
  const names = new NameAllocator(model);
  const layers: ReconstructedLayer[] = [];
  let samples = 0;
  for (const [i, { layer, keptPositions }] of targets.entries()) {
    ctx.checkpoint();
    ctx.progress('reconstruct', i, targets.length);
    const keep: number[] = [];
    for (let c = 0; c < layer.k; c++) if (keptPositions.has(positionOf(layer, c))) keep.push(c);
    const r = await refitLayer(model, dataInputs.has(layer.input) ? null : snap, layer, keep, o, names, ctx);
    layers.push(r.layer);
    samples = r.samples;
  }
  ctx.progress('reconstruct', targets.length, targets.length);
  return { layers, samples };
}

/**
 * Refits one layer onto its input columns `keep` (matrix columns) and writes it back, removed columns
 * zeroed for the rewrite to drop, the mean into its bias when it has one. `snap`: the unpruned graph
 * (snapshot()) to pair the layer's current inputs with — null when nothing before the layer changed,
 * and its own statistics are the unpruned ones.
 */
export async function refitLayer(model: Model, snap: Snapshot | null, layer: LayerMatrix, keep: number[], o: ReconstructOptions, names: NameAllocator, ctx: PassContext): Promise<{ layer: ReconstructedLayer; samples: number }> {
  const collect = (m: Model, l: LayerMatrix) => collectLayerInputs(m, [l], {
    data: o.data, samples: o.samples, hessian: true, batchSize: o.batchSize, ep: o.ep, phase: 'reconstruct',
  }, ctx);
  let st: GroupStats;
  let cols: { tilde: Int32Array; orig: Int32Array } | undefined;
  let samples: number;
  if (!snap) {
    const r = await collect(model, layer);
    st = r.stats[0]!.groups[0]!;
    samples = r.samples;
  } else {
    // a Conv's channels are on axis 1; a Gemm's or MatMul's features on the last
    const paired = pairedModel(model, snap, layer.input, layer.conv ? 1 : -1);
    const wide: LayerMatrix = { ...layer, input: paired.pair, k: 2 * layer.k, ...(layer.conv ? { conv: { ...layer.conv, cg: 2 * layer.conv.cg }, segment: 2 * layer.conv.cg } : { segment: 2 * layer.k }) };
    const r = await collect(paired.model, wide);
    st = r.stats[0]!.groups[0]!;
    samples = r.samples;
    cols = pairedColumns(layer);
  }
  const withBias = hasOutputBias(layer);
  const before = readMatrix(layer);
  const { after, shift, errorCut, errorRefit } = refit(before, layer.rowsPerGroup, layer.k, keep, st, withBias, cols);
  writeMatrix(layer, after);
  if (withBias && shift.some((v) => v !== 0)) addToOutputBias(model, layer, shift, names);
  return { layer: { layer: layer.weight.node.label, kept: keep.length, of: layer.k, errorCut, errorRefit, bias: withBias ? 'bias' : 'none' }, samples };
}

/**
 * The least-squares refit of `rows` output rows (row-major [rows × k]) onto the columns `keep`.
 * `st` describes rows z of the layer's inputs: by default z = x (the input as it was), or, with
 * `cols`, z holding each input twice, as the layer now receives it (x̃, column cols.tilde[j]) and as
 * the unpruned model gave it (x, cols.orig[j]). The fit minimises E[(w·x + b − w'·x̃_S − b')²]:
 *   w'_S = w_S + (C_x̃x̃ + λI)⁻¹ (C_x̃x·w − C_x̃x̃·w_S),   b' = b + w·μ_x − w'_S·μ_x̃S
 * (C: covariances with a bias, raw second moments without; λ damps toward the old weights).
 * Removed columns come back as 0 (the rewrite drops them). Errors are relative to E[(w·x)²].
 */
export function refit(w: Float64Array, rows: number, k: number, keep: number[], st: GroupStats, withBias: boolean, cols?: { tilde: Int32Array; orig: Int32Array }): { after: Float64Array; shift: Float64Array; errorCut: number; errorRefit: number } {
  const kz = st.k;
  const identity = Int32Array.from({ length: k }, (_, j) => j);
  const tilde = cols?.tilde ?? identity;
  const orig = cols?.orig ?? identity;
  const n = Math.max(st.rows, 1);
  const mean = Float64Array.from(st.sum, (v) => v / n);
  const moment = Float64Array.from(st.xtx!, (v) => v / n);
  const c = withBias ? Float64Array.from(moment, (v, idx) => v - mean[Math.floor(idx / kz)]! * mean[idx % kz]!) : moment;
  const s = keep.length;
  const at = keep.map((j) => tilde[j]!);

  const a = new Float64Array(s * s);
  let diag = 0;
  for (let p = 0; p < s; p++) diag += c[at[p]! * kz + at[p]!]!;
  const lambda = Math.max(DAMP * (diag / Math.max(s, 1)), 1e-12);
  for (let p = 0; p < s; p++) for (let q = 0; q < s; q++) a[p * s + q] = c[at[p]! * kz + at[q]!]! + (p === q ? lambda : 0);
  const l = cholesky(a, s);
  const u = l ? transpose(l, s) : null;

  const after = new Float64Array(rows * k);
  const shift = new Float64Array(rows);
  let signal = 0, cutErr = 0, refitErr = 0;
  const target = new Float64Array(kz); // w placed on the unpruned columns
  const e = new Float64Array(kz);
  const rhs = new Float64Array(s);
  for (let r = 0; r < rows; r++) {
    const row = w.subarray(r * k, (r + 1) * k);
    target.fill(0);
    for (let j = 0; j < k; j++) target[orig[j]!]! += row[j]!;
    // C_x̃x·w − C_x̃x̃·w_S: what the kept columns miss of the unpruned output
    for (let p = 0; p < s; p++) {
      const off = at[p]! * kz;
      let v = 0;
      for (let j = 0; j < k; j++) v += c[off + orig[j]!]! * row[j]!;
      for (let q = 0; q < s; q++) v -= c[off + at[q]!]! * row[keep[q]!]!;
      rhs[p] = v;
    }
    const delta = l && u ? solveUpper(u, solveLower(l, rhs, s), s) : new Float64Array(s);
    for (let p = 0; p < s; p++) after[r * k + keep[p]!] = row[keep[p]!]! + delta[p]!;
    if (withBias) {
      let d = 0;
      for (let j = 0; j < k; j++) d += row[j]! * mean[orig[j]!]!;
      for (let p = 0; p < s; p++) d -= after[r * k + keep[p]!]! * mean[at[p]!]!;
      shift[r] = d;
    }
    // errors over z: e = (w on x) − (ŵ on x̃); the cut keeps the old bias, the refit moves it (centered C)
    signal += quadraticFormSum(target, 1, moment, kz);
    e.set(target);
    for (let p = 0; p < s; p++) e[at[p]!]! -= row[keep[p]!]!;
    cutErr += quadraticFormSum(e, 1, moment, kz);
    e.set(target);
    for (let p = 0; p < s; p++) e[at[p]!]! -= after[r * k + keep[p]!]!;
    refitErr += quadraticFormSum(e, 1, c, kz);
  }
  return { after, shift, errorCut: signal > 0 ? cutErr / signal : 0, errorRefit: signal > 0 ? refitErr / signal : 0 };
}
