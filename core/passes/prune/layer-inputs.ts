/**
 * What the calibrated pruning passes (Wanda, SparseGPT) know about a layer's input: streamed
 * statistics of the rows X the layer multiplies its weight with, accumulated over calibration
 * batches in float64 so memory does not grow with the number of samples.
 *
 * Each prunable weight is seen as a matrix W [rows × K] per group, with y = W·x for every input row
 * x of length K. For MatMul/Gemm the rows are the activation's rows; for Conv they are the im2col
 * patches of each output position. A Conv column is `s·Cg + c` (kernel position s, input channel c
 * of the group): spatial-major, channel-minor, so that N:M groups (consecutive input channels at one
 * kernel position, the convention sparse tensor cores use) are consecutive columns.
 */
import { availableParallelism } from 'node:os';
import { WhittleError } from '../../../api/errors.ts';
import type { Model } from '../../../native-models/ir/model.ts';
import type { HostTensor } from '../../../native-models/runtimes/host-tensor.ts';
import type { EpChoice } from '../../../native-models/runtimes/onnxruntime.ts';
import { halfToFloat } from '../../../native-models/ir/dtypes.ts';
import { mirrorUpper, roundUp4 } from '../../../native-models/gpu/kernels-cpu.mjs';
import { CpuThreads, evenRanges, factorParts, gramWithWorker, sharedArray, SPLIT_MIN_WORK, splitRun, toShared } from '../../../native-models/gpu/threads.ts';
import { TappedModel } from '../../calibrate/tap.ts';
import type { Dataset } from '../../evaluate/data/index.ts';
import { batchSizeFor, inputSpecs } from '../../evaluate/evaluate.ts';
import type { PassContext } from '../pass.ts';
import { writeFloat32, type PrunableWeight } from './prunable.ts';

/** Conv geometry for im2col (2-D; 1-D convolutions are 2-D with a height of one). */
interface ConvGeometry {
  groups: number;
  /** Input channels per group. */
  cg: number;
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  /** Explicit pads [top, left, bottom, right], or the auto_pad rule resolved per input size. */
  pads: [number, number, number, number] | null;
  autoPad: 'SAME_UPPER' | 'SAME_LOWER' | 'VALID' | 'NOTSET';
}

/** A prunable weight seen as matrices W_g [rowsPerGroup × K], one per group. */
export interface LayerMatrix {
  weight: PrunableWeight;
  op: 'Conv' | 'Gemm' | 'MatMul';
  /** The activation the weight multiplies. */
  input: string;
  groups: number;
  rowsPerGroup: number;
  /** Columns of each group's matrix (the reduction length). */
  k: number;
  /** Columns that form one N:M segment: groups of M never cross a segment (Cg for Conv, K otherwise). */
  segment: number;
  /** For matrix element (g, r, c) at `(g·rowsPerGroup + r)·k + c`: its index in the stored tensor. */
  storedIndex: Int32Array;
  conv: ConvGeometry | null;
  /** Gemm with transA: the activation is [K, M]. */
  transA: boolean;
}

/** The weight as a LayerMatrix sees it, or a reason it cannot be used by the calibrated passes. */
export function layerMatrix(w: PrunableWeight): LayerMatrix | string {
  const node = w.node;
  const input = node.inputs[0];
  if (!input) return `${node.label}: no activation input`;
  const shape = w.shape;
  const op = node.opType;
  const opToStored = (i: number) => (w.storedIndex ? w.storedIndex[i]! : i);
  if (op === 'MatMul' || op === 'Gemm') {
    if (shape.length !== 2) return `${node.label}: ${shape.length}-D weight (batched MatMul) is not supported by calibrated pruning`;
    const rows = shape[w.outAxis]!;
    const k = shape[w.inAxis]!;
    const idx = new Int32Array(rows * k);
    for (let r = 0; r < rows; r++) for (let c = 0; c < k; c++) {
      const opIndex = w.outAxis === 0 ? r * k + c : c * rows + r;
      idx[r * k + c] = opToStored(opIndex);
    }
    return { weight: w, op, input, groups: 1, rowsPerGroup: rows, k, segment: k, storedIndex: idx, conv: null, transA: op === 'Gemm' && node.attrInt('transA', 0) !== 0 };
  }
  if (op === 'Conv') {
    if (shape.length !== 3 && shape.length !== 4) return `${node.label}: ${shape.length - 2}-D convolution is not supported by calibrated pruning`;
    const groups = node.attrInt('group', 1);
    const [m, cg] = [shape[0]!, shape[1]!];
    if (m % groups !== 0) return `${node.label}: ${m} output channels do not divide into ${groups} groups`;
    const kh = shape.length === 4 ? shape[2]! : 1;
    const kw = shape[shape.length - 1]!;
    const s = kh * kw;
    const k = cg * s;
    const idx = new Int32Array(m * k);
    for (let r = 0; r < m; r++) for (let c = 0; c < cg; c++) for (let p = 0; p < s; p++) idx[r * k + p * cg + c] = opToStored((r * cg + c) * s + p);
    const two = (name: string, fallback: number): [number, number] => {
      const v = node.attrInts(name);
      if (!v) return [fallback, fallback];
      return v.length === 1 ? [1, v[0]!] as [number, number] : [v[0]!, v[1]!];
    };
    const rawPads = node.attrInts('pads');
    const pads: [number, number, number, number] | null = rawPads
      ? (rawPads.length === 2 ? [0, rawPads[0]!, 0, rawPads[1]!] : [rawPads[0]!, rawPads[1]!, rawPads[2]!, rawPads[3]!])
      : null;
    const autoPad = (node.attrString('auto_pad') ?? 'NOTSET') as ConvGeometry['autoPad'];
    const conv: ConvGeometry = {
      groups, cg, kernel: [kh, kw], strides: two('strides', 1), dilations: two('dilations', 1), pads, autoPad,
    };
    return { weight: w, op: 'Conv', input, groups, rowsPerGroup: m / groups, k, segment: cg, storedIndex: idx, conv, transA: false };
  }
  return `${node.label}: ${op} is not supported by calibrated pruning`;
}

/** The weight's matrices as float64, [groups·rowsPerGroup × K] row-major. */
export function readMatrix(layer: LayerMatrix): Float64Array {
  const stored = layer.weight.tensor.toFloat32();
  const out = new Float64Array(layer.storedIndex.length);
  for (let i = 0; i < out.length; i++) out[i] = stored[layer.storedIndex[i]!]!;
  return out;
}

/** Writes the matrices back into the stored tensor (in its own dtype). */
export function writeMatrix(layer: LayerMatrix, values: Float64Array): void {
  const stored = layer.weight.tensor.toFloat32();
  for (let i = 0; i < values.length; i++) stored[layer.storedIndex[i]!] = values[i]!;
  writeFloat32(layer.weight.tensor, stored);
}

/** Streamed statistics of one group's input rows. */
export interface GroupStats {
  k: number;
  /** Σ x_j² per input feature: ‖X_j‖² (Wanda's activation norm, squared). */
  sqNorm: Float64Array;
  /** Σ x_j per input feature (the mean times `rows`): what bias correction preserves. */
  sum: Float64Array;
  /** Σ x·xᵀ [K×K] (H = 2·XᵀX, up to SparseGPT's 1/n), or null when not asked for. */
  xtx: Float64Array | null;
  /** Rows (tokens, patches) seen. */
  rows: number;
}

const CHUNK_ROWS = 256;

/**
 * Accumulates rows of length K in a [K × CHUNK_ROWS] buffer (feature-major, so each XᵀX entry is a
 * dot product of two contiguous runs) and folds full chunks into the sums. With `threads`, the
 * XᵀX of a chunk is shared between this thread and a worker (gramWithWorker): buffer and sums are
 * then shared memory. Callers flush (awaited) whenever `full` before taking the next row.
 */
class RowAccumulator {
  readonly stats: GroupStats;
  private buf: Float64Array;
  private fill = 0;

  constructor(k: number, hessian: boolean, private threads: CpuThreads | null = null) {
    const shared = hessian && threads !== null;
    const xtx = hessian ? (shared ? sharedArray(Float64Array, k * k) : new Float64Array(k * k)) : null;
    this.stats = { k, sqNorm: new Float64Array(k), sum: new Float64Array(k), xtx, rows: 0 };
    // rows of the buffer past k stay zero: gramChunk reads features four at a time
    const length = roundUp4(k) * CHUNK_ROWS;
    this.buf = shared ? sharedArray(Float64Array, length) : new Float64Array(length);
  }

  get full(): boolean {
    return this.fill === CHUNK_ROWS;
  }

  /** The column to write the next row into: `buf[j·CHUNK_ROWS + col]` (flush first when full). */
  next(): { buf: Float64Array; col: number; stride: number } {
    if (this.full) throw new Error('unreachable: RowAccumulator.next() on a full chunk');
    const col = this.fill++;
    return { buf: this.buf, col, stride: CHUNK_ROWS };
  }

  async flush(): Promise<void> {
    const t = this.fill;
    if (t === 0) return;
    const { k, sqNorm, sum, xtx } = this.stats;
    const b = this.buf;
    for (let i = 0; i < k; i++) {
      const oi = i * CHUNK_ROWS;
      let s = 0, s1 = 0;
      for (let r = 0; r < t; r++) { const v = b[oi + r]!; s += v * v; s1 += v; }
      sqNorm[i] = sqNorm[i]! + s;
      sum[i] = sum[i]! + s1;
    }
    if (xtx) await gramWithWorker(this.threads, b, CHUNK_ROWS, t, k, xtx);
    this.stats.rows += t;
    this.buf.fill(0, 0, k * CHUNK_ROWS);
    this.fill = 0;
  }

  /** Flushes and mirrors the upper triangle of XᵀX into the lower one (a plain array again). */
  async finish(): Promise<GroupStats> {
    await this.flush();
    const { k } = this.stats;
    if (this.stats.xtx) {
      const xtx = this.stats.xtx.buffer instanceof SharedArrayBuffer ? Float64Array.from(this.stats.xtx) : this.stats.xtx;
      mirrorUpper(xtx, k);
      this.stats.xtx = xtx;
    }
    return this.stats;
  }
}

function floatData(t: HostTensor, label: string): Float32Array {
  if (t.dtype === 'float32') return t.data;
  if (t.dtype === 'float16') return Float32Array.from(t.data, (h) => halfToFloat(h));
  if (t.dtype === 'float64') return Float32Array.from(t.data);
  throw new WhittleError('UNSUPPORTED', `${label}: input activation is ${t.dtype}, not float`);
}

/** Adds the first `samples` samples' rows of a MatMul/Gemm activation. */
async function addDenseRows(layer: LayerMatrix, acc: RowAccumulator, x: HostTensor, samples: number, batchCount: number): Promise<void> {
  const data = floatData(x, layer.weight.node.label);
  const k = layer.k;
  if (layer.transA) {
    // A is [K, M]: row m is column m of A (Gemm has no batch dimension to trim)
    const m = x.dims[1]!;
    for (let r = 0; r < m; r++) {
      if (acc.full) await acc.flush();
      const { buf, col, stride } = acc.next();
      for (let j = 0; j < k; j++) buf[j * stride + col] = data[j * m + r]!;
    }
    return;
  }
  if (x.dims[x.dims.length - 1] !== k) throw new WhittleError('BAD_INPUT', `${layer.weight.node.label}: activation last dimension ${x.dims[x.dims.length - 1]} ≠ K ${k}`);
  const total = data.length / k;
  const perSample = x.dims.length >= 2 && batchCount > 0 && total % batchCount === 0 ? total / batchCount : total;
  const rows = Math.min(total, samples * perSample);
  for (let r = 0; r < rows; r++) {
    // a batch of a sequence model has batch × tokens rows: many chunks
    if (acc.full) await acc.flush();
    const { buf, col, stride } = acc.next();
    const off = r * k;
    for (let j = 0; j < k; j++) buf[j * stride + col] = data[off + j]!;
  }
}

/** Begin pads and output size along one axis, following ONNX Conv's auto_pad rules. */
function axisPads(size: number, kernel: number, stride: number, dilation: number, autoPad: ConvGeometry['autoPad'], begin: number, end: number): { pad: number; out: number } {
  const span = (kernel - 1) * dilation + 1;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const out = Math.ceil(size / stride);
    const total = Math.max(0, (out - 1) * stride + span - size);
    return { pad: autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2), out };
  }
  if (autoPad === 'VALID') return { pad: 0, out: Math.floor((size - span) / stride) + 1 };
  return { pad: begin, out: Math.floor((size + begin + end - span) / stride) + 1 };
}

/** Adds the im2col patches of the first `samples` samples, one accumulator per group. */
async function addConvPatches(layer: LayerMatrix, accs: RowAccumulator[], x: HostTensor, samples: number): Promise<void> {
  const geo = layer.conv!;
  const data = floatData(x, layer.weight.node.label);
  const is1d = x.dims.length === 3;
  const [n, c] = [x.dims[0]!, x.dims[1]!];
  const h = is1d ? 1 : x.dims[2]!;
  const w = x.dims[x.dims.length - 1]!;
  if (c !== geo.cg * geo.groups) throw new WhittleError('BAD_INPUT', `${layer.weight.node.label}: activation has ${c} channels, the weight expects ${geo.cg}×${geo.groups}`);
  const [kh, kw] = geo.kernel;
  const [sh, sw] = geo.strides;
  const [dh, dw] = geo.dilations;
  const p = geo.pads ?? [0, 0, 0, 0];
  const ph = axisPads(h, kh, sh, dh, geo.autoPad, p[0], p[2]);
  const pw = axisPads(w, kw, sw, dw, geo.autoPad, p[1], p[3]);
  const cg = geo.cg;
  const hw = h * w;
  for (let b = 0; b < Math.min(n, samples); b++) {
    for (let g = 0; g < geo.groups; g++) {
      const acc = accs[g]!;
      const base = (b * c + g * cg) * hw;
      for (let oh = 0; oh < ph.out; oh++) {
        for (let ow = 0; ow < pw.out; ow++) {
          if (acc.full) await acc.flush();
          const { buf, col, stride } = acc.next();
          for (let i = 0; i < kh; i++) {
            const ih = oh * sh - ph.pad + i * dh;
            if (ih < 0 || ih >= h) continue; // padding: zeros (the buffer is cleared)
            for (let j = 0; j < kw; j++) {
              const iw = ow * sw - pw.pad + j * dw;
              if (iw < 0 || iw >= w) continue;
              const col0 = (i * kw + j) * cg;
              const src = base + ih * w + iw;
              for (let ch = 0; ch < cg; ch++) buf[(col0 + ch) * stride + col] = data[src + ch * hw]!;
            }
          }
        }
      }
    }
  }
}

export interface LayerInputStats {
  layer: LayerMatrix;
  /** One entry per group. */
  groups: GroupStats[];
}

export interface CollectOptions {
  data: Dataset;
  /** At most this many samples (default 128). */
  samples?: number | undefined;
  /** Also accumulate XᵀX (SparseGPT); Wanda needs only the norms. */
  hessian: boolean;
  batchSize?: number | undefined;
  ep?: EpChoice | undefined;
  /** The progress phase reported while the data streams through (default 'calibrate'). */
  phase?: string | undefined;
}

/**
 * Runs the calibration data through the model once, tapping every layer's input, and accumulates
 * each layer's input statistics. The statistics are those of the unpruned model.
 */
export async function collectLayerInputs(model: Model, layers: LayerMatrix[], options: CollectOptions, ctx: PassContext): Promise<{ stats: LayerInputStats[]; samples: number }> {
  const samples = options.samples ?? 128;
  if (!Number.isSafeInteger(samples) || samples < 1) throw new WhittleError('BAD_USAGE', `samples must be a whole number ≥ 1, got ${samples}`);
  const graphInputs = new Set(model.graph.inputs.map((i) => i.name));
  const tapNames = [...new Set(layers.map((l) => l.input).filter((n) => !graphInputs.has(n)))];
  // two cores or more: XᵀX chunks are shared with one worker thread (gramWithWorker);
  // WHITTLE_CPU_THREADS=1 keeps everything on this thread
  const cores = Number(process.env.WHITTLE_CPU_THREADS) || availableParallelism();
  const threads = options.hessian && cores > 1 ? new CpuThreads(2) : null;
  const accs = layers.map((l) => Array.from({ length: l.groups }, () => new RowAccumulator(l.k, options.hessian, threads)));
  const batchSize = batchSizeFor(inputSpecs(model), options.batchSize ?? 32);
  const total = Math.min(samples, options.data.n);
  const tapped = await TappedModel.create(model, tapNames, options.ep ?? 'cpu');
  let seen = 0;
  try {
    for await (const { batch, values } of tapped.batches(options.data, { batchSize, signal: ctx.signal })) {
      ctx.checkpoint();
      const take = Math.min(batch.count, samples - seen);
      for (let i = 0; i < layers.length; i++) {
        const layer = layers[i]!;
        const x = values[layer.input] ?? (batch.inputs[layer.input] as HostTensor | undefined);
        if (!x) throw new WhittleError('INTERNAL', `${layer.weight.node.label}: input ${layer.input} was not tapped`);
        if (layer.conv) await addConvPatches(layer, accs[i]!, x, take);
        else await addDenseRows(layer, accs[i]![0]!, x, take, batch.count);
      }
      seen += take;
      ctx.progress(options.phase ?? 'calibrate', seen, total);
      if (seen >= samples) break;
    }
    ctx.checkpoint();
    if (seen === 0) throw new WhittleError('BAD_INPUT', `${options.data.path}: no calibration samples`);
    const stats: LayerInputStats[] = [];
    for (const [i, layer] of layers.entries()) {
      const groups: GroupStats[] = [];
      for (const a of accs[i]!) groups.push(await a.finish());
      stats.push({ layer, groups });
    }
    return { stats, samples: seen };
  } finally {
    await tapped.close();
    await threads?.close();
  }
}

/**
 * ‖ΔW·X‖² / ‖W·X‖² over the calibration rows for one layer (all groups), from XᵀX: two quadratic
 * forms per row (quadraticFormRows, kernels-cpu.mjs), rows split over every core. 2·rows·k² multiply-
 * adds: 1.1·10¹¹ for a ResNet-50-sized model, as much as SparseGPT's own row updates.
 */
export async function reconstructionError(layer: LayerMatrix, stats: GroupStats[], before: Float64Array, after: Float64Array): Promise<number> {
  const { k, rowsPerGroup } = layer;
  const parts = rowsPerGroup * k * k >= SPLIT_MIN_WORK ? Math.min(factorParts(), rowsPerGroup) : 1;
  const shared = parts > 1;
  const w = shared ? toShared(before) : before;
  const d = shared ? sharedArray(Float64Array, before.length) : new Float64Array(before.length);
  for (let i = 0; i < d.length; i++) d[i] = before[i]! - after[i]!;
  const sums = shared ? sharedArray(Float64Array, 2 * parts) : new Float64Array(2);
  let num = 0, den = 0;
  for (let g = 0; g < layer.groups; g++) {
    const xtx = stats[g]!.xtx;
    if (!xtx) throw new WhittleError('INTERNAL', 'reconstruction error needs XᵀX');
    const h = shared ? toShared(xtx) : xtx;
    const ranges = evenRanges(rowsPerGroup, parts).map(([r0, r1]) => [g * rowsPerGroup + r0, g * rowsPerGroup + r1] as [number, number]);
    await splitRun('quadraticFormRows', ranges, (range) => ({ a: w, b: d, h, k, r0: range[0], r1: range[1], sums, slot: ranges.indexOf(range) }));
    for (let p = 0; p < ranges.length; p++) { den += sums[2 * p]!; num += sums[2 * p + 1]!; }
  }
  return den > 0 ? num / den : 0;
}
