import type { Model, Node } from '../../../../native-models/ir/model.ts';
import type { EpChoice } from '../../../../native-models/runtimes/onnxruntime.ts';
import type { Dataset } from '../../../evaluate/data/index.ts';
import type { PassContext } from '../../pass.ts';
import { NameAllocator } from '../../quantize/graph-edit.ts';
import { addToOutputBias, hasOutputBias } from '../bias-correction.ts';
import { collectLayerInputs, layerMatrix, readMatrix, writeMatrix, type GroupStats, type LayerMatrix } from '../layer-inputs.ts';
import { cholesky, solveLower, solveUpper, transpose } from '../linalg.ts';
import { prunableWeights } from '../prunable.ts';
import type { Analysis } from './analyze.ts';
import { keptPositions } from './groups.ts';
import type { KeptOf } from './rewrite.ts';

/**
 * Least-squares reconstruction of the layers that read pruned channels (the second step of He et
 * al., "Channel Pruning for Accelerating Very Deep Neural Networks", 2017; ThiNet's too): a Conv or
 * Gemm that loses input channels gets, for the channels it keeps, the weights that best reproduce
 * its original output on the calibration data, instead of its old weights with the others cut off.
 *
 * With x the layer's input (im2col rows for a Conv) over the calibration data, μ its mean and C its
 * covariance, S the kept columns and R the removed ones, each output row w becomes
 *   w'_S = w_S + (C_SS + λI)⁻¹ C_SR w_R,   bias' = bias + w·μ − w'_S·μ_S
 * which minimises E[(w·x + b − w'_S·x_S − b')²] (λ: 1 % of C_SS's mean diagonal, as GPTQ damps).
 * The bias term goes only into a bias the layer already has (its B or C, or the per-channel Add
 * after it): the rewrite slices existing tensors and knows of no new ones. Without one, the fit is
 * made on the uncentered second moment (no intercept).
 *
 * One calibration pass over the unpruned model gives every consumer's statistics: the values of the
 * channels a layer keeps do not change when other channels are removed (only the consumers upstream
 * are refitted, which shifts them slightly).
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

/** The Conv (group 1), Gemm or MatMul layers whose stored weight loses input positions, with the positions kept. */
function consumers(model: Model, analysis: Analysis, kept: KeptOf): { layer: LayerMatrix; keptPositions: Set<number> }[] {
  // a weight is sliced along its output axis when its layer is pruned, along its input axis when it reads pruned channels
  const cut = new Map<Node, { axis: number; positions: number[] }[]>();
  for (const e of analysis.edits) {
    if (e.kind !== 'slice' || e.input !== 1) continue;
    const list = cut.get(e.node) ?? cut.set(e.node, []).get(e.node)!;
    list.push({ axis: e.axis, positions: keptPositions(e.layout, e.block, kept) });
  }
  const out: { layer: LayerMatrix; keptPositions: Set<number> }[] = [];
  for (const w of prunableWeights(model).layers) {
    const c = cut.get(w.node)?.find((x) => x.axis === w.inAxis);
    // weights read as stored (no Transpose between), unshared, cut along their input axis
    if (!c || w.graph !== model.graph || w.storedIndex || w.sharedWith.length > 0) continue;
    if (c.positions.length === w.shape[w.inAxis]) continue;
    const m = layerMatrix(w);
    if (typeof m === 'string' || m.groups !== 1) continue;
    out.push({ layer: m, keptPositions: new Set(c.positions) });
  }
  return out;
}

/** Position along the weight's input axis of matrix column `col`: a Conv's columns are (kernel position)·Cg + channel. */
function positionOf(layer: LayerMatrix, col: number): number {
  return layer.conv ? col % layer.conv.cg : col;
}

/**
 * Refits every consumer of pruned channels in place (weights and existing biases), before the
 * rewrite slices them. Returns what was done per layer.
 */
export async function reconstructConsumers(model: Model, analysis: Analysis, kept: KeptOf, o: ReconstructOptions, ctx: PassContext): Promise<{ layers: ReconstructedLayer[]; samples: number }> {
  const targets = consumers(model, analysis, kept);
  if (targets.length === 0) return { layers: [], samples: 0 };
  const { stats, samples } = await collectLayerInputs(model, targets.map((t) => t.layer), {
    data: o.data, samples: o.samples, hessian: true, batchSize: o.batchSize, ep: o.ep, phase: 'reconstruct',
  }, ctx);
  const names = new NameAllocator(model);
  const layers: ReconstructedLayer[] = [];
  for (const [i, { layer, keptPositions }] of targets.entries()) {
    ctx.checkpoint();
    const st = stats[i]!.groups[0]!;
    const withBias = hasOutputBias(layer);
    const keep: number[] = [];
    for (let c = 0; c < layer.k; c++) if (keptPositions.has(positionOf(layer, c))) keep.push(c);
    const before = readMatrix(layer);
    const { after, shift, errorCut, errorRefit } = refit(before, layer.rowsPerGroup, layer.k, keep, st, withBias);
    writeMatrix(layer, after);
    if (withBias && shift.some((v) => v !== 0)) addToOutputBias(model, layer, shift, names);
    layers.push({ layer: layer.weight.node.label, kept: keep.length, of: layer.k, errorCut, errorRefit, bias: withBias ? 'bias' : 'none' });
  }
  return { layers, samples };
}

/**
 * The least-squares refit of `rows` output rows (row-major [rows × k]) onto the columns `keep`.
 * Removed columns come back as 0 (the rewrite drops them). Errors are relative to ‖WX‖² over the rows
 * the statistics saw.
 */
export function refit(w: Float64Array, rows: number, k: number, keep: number[], st: GroupStats, withBias: boolean): { after: Float64Array; shift: Float64Array; errorCut: number; errorRefit: number } {
  const n = Math.max(st.rows, 1);
  const mean = Float64Array.from(st.sum, (v) => v / n);
  // the second moment E[xxᵀ], and the matrix the fit uses: the covariance with a bias, else the moment
  const moment = Float64Array.from(st.xtx!, (v) => v / n);
  const c = withBias ? Float64Array.from(moment, (v, idx) => v - mean[Math.floor(idx / k)]! * mean[idx % k]!) : moment;
  const isKept = new Uint8Array(k);
  for (const j of keep) isKept[j] = 1;
  const removed: number[] = [];
  for (let j = 0; j < k; j++) if (!isKept[j]) removed.push(j);
  const s = keep.length;

  const a = new Float64Array(s * s);
  let diag = 0;
  for (let p = 0; p < s; p++) diag += c[keep[p]! * k + keep[p]!]!;
  const lambda = Math.max(DAMP * (diag / Math.max(s, 1)), 1e-12);
  for (let p = 0; p < s; p++) for (let q = 0; q < s; q++) a[p * s + q] = c[keep[p]! * k + keep[q]!]! + (p === q ? lambda : 0);
  const l = cholesky(a, s);
  const u = l ? transpose(l, s) : null;

  const after = new Float64Array(rows * k);
  const shift = new Float64Array(rows);
  let signal = 0, cutErr = 0, refitErr = 0;
  const e = new Float64Array(k);
  const rhs = new Float64Array(s);
  for (let r = 0; r < rows; r++) {
    const row = w.subarray(r * k, (r + 1) * k);
    // C_SR·w_R
    for (let p = 0; p < s; p++) {
      let v = 0;
      const off = keep[p]! * k;
      for (const j of removed) v += c[off + j]! * row[j]!;
      rhs[p] = v;
    }
    const delta = l && u ? solveUpper(u, solveLower(l, rhs, s), s) : new Float64Array(s);
    for (let p = 0; p < s; p++) after[r * k + keep[p]!] = row[keep[p]!]! + delta[p]!;
    if (withBias) {
      let d = 0;
      for (let j = 0; j < k; j++) d += (row[j]! - after[r * k + j]!) * mean[j]!;
      shift[r] = d;
    }
    // errors: eᵀ C e with e = w − ŵ (C centered: the bias takes the mean; the cut alone keeps no bias change)
    signal += quadratic(moment, row, k);
    for (let j = 0; j < k; j++) e[j] = isKept[j] ? 0 : row[j]!;
    cutErr += quadratic(moment, e, k);
    for (let j = 0; j < k; j++) e[j] = row[j]! - after[r * k + j]!;
    refitErr += quadratic(c, e, k);
  }
  return { after, shift, errorCut: signal > 0 ? cutErr / signal : 0, errorRefit: signal > 0 ? refitErr / signal : 0 };
}

function quadratic(m: Float64Array, v: ArrayLike<number>, k: number): number {
  let total = 0;
  for (let i = 0; i < k; i++) {
    const vi = v[i]!;
    if (vi === 0) continue;
    let s = 0;
    const off = i * k;
    for (let j = 0; j < k; j++) s += m[off + j]! * v[j]!;
    total += vi * s;
  }
  return total;
}
