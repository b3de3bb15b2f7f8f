import { int8Saturation } from '../../../native-models/runtimes/cpu-int8.ts';
import { closeSync, openSync } from 'node:fs';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Model, Node } from '../../../native-models/ir/model.ts';
import type { ComputedSource, Tensor } from '../../../native-models/ir/tensor.ts';
import { createPassContext, tensorBytes, type Pass, type PassContext, type PassReport } from '../pass.ts';
import { checkFiniteTensor, type ConstantWeight, float32Pieces, float32Range, floatWeightOf, keepsOrder, materialise } from './constant-weight.ts';
import { addComputedInitializer, addFloatInitializer, addInitializer, adoptInitializer, castNode, isExcluded, makeNode, NameAllocator, nodeCandidates, removeUnread, replaceNode } from './graph-edit.ts';
import { quantParams, quantRange, type QuantType } from './math.ts';
import { ensureIrVersion, IR_INITIALIZERS_NOT_INPUTS, requireOpset } from './opset.ts';
import { columnParams, quantizeAllSimd, quantizeColumnsSimd, rangeAllSimd, rangeColumnsSimd, type ColumnParams } from './dynamic-simd.ts';

/**
 * Dynamic int8 quantization: weights are stored as 8-bit integers, activations are quantized at run
 * time by DynamicQuantizeLinear. MatMul and Gemm become
 *   DynamicQuantizeLinear(A) → MatMulInteger(A_q, W_q, A_zp, W_zp) → Cast(float) → Mul(A_scale·W_scale) [→ Add bias]
 * which onnxruntime's CPU EP fuses into MatMulIntegerToFloat and then DynamicQuantizeMatMul. The
 * fusions insist on details this file keeps: the scale product is Mul(A_scale, W_scale) in that
 * order, each DynamicQuantizeLinear feeds exactly one MatMulInteger (a shared one is not fused), and
 * the bias is a constant 1-D (or [1,…,N]) second input of the Add.
 * Conv (opt-in) becomes the same pattern around ConvInteger, which is usually slower than fp32 on CPU.
 */
export interface DynamicQuantOptions {
  /** One scale per output column (MatMul/Gemm) or output channel (Conv) instead of one per tensor. */
  perChannel?: boolean;
  /** Weight storage type (default int8). */
  weightType?: 'int8' | 'uint8';
  /**
   * int8 weights in 7 bits ([-64, 64]): onnxruntime's reduce_range, for x86 CPUs without VNNI whose
   * u8×s8 kernels saturate 8-bit weights (native-models/runtimes/cpu-int8.ts). uint8 weights need none.
   * Unset: as this CPU needs.
   */
  reduceRange?: boolean | undefined;
  /** Symmetric weights (zero point 0 for int8, 128 for uint8). Default: true for int8, false for uint8, as onnxruntime's quantizer. */
  symmetric?: boolean;
  /** Op types to quantize (default MatMul and Gemm; add Conv for ConvInteger). */
  opTypes?: string[];
  /** Node names or op types to leave in float. */
  exclude?: string[];
}

export const CONV_INTEGER_WARNING = 'dynamic quantization of Conv uses ConvInteger, which onnxruntime runs much slower than fp32 on CPU (about 6× on SqueezeNet); prefer static QDQ quantization for CNNs';

/** DynamicQuantizeLinear is opset 11. */
const DYNAMIC_OPSET = 11;

export interface QuantizedWeight {
  q: Int8Array | Uint8Array;
  /** One per channel, or one. */
  scales: Float32Array;
  zeroPoints: Int32Array;
}

/**
 * Per-tensor (axis null) or per-channel quantization of a weight, with SPEC §8's arithmetic
 * (range widened to include 0, float64 scales, half-to-even rounding, tiny range → scale 1).
 */
export function quantizeWeight(values: Float32Array, dims: number[], axis: number | null, type: WeightType, symmetric: boolean): QuantizedWeight {
  return quantizeWeightPieces(() => [{ values, offset: 0 }], dims, axis, type, symmetric);
}

type Pieces = () => Iterable<{ values: Float32Array; offset: number }>;

/**
 * Elements of a weight copied per piece when it cannot be read in place: 1 MiB of float32, so a
 * piece just read is still in the cache when it is used (4 MiB pieces made the range pass 1.8×
 * slower: they are evicted before the loop reaches them).
 */
const PIECE_ELEMENTS = 1 << 18;
/** Adding and subtracting 1.5·2^52 rounds a double to an integer, ties to even, for |x| < 2^51. */
const RNE = 6755399441055744;

/**
 * quantizeValue over values[from, to) into out[outOffset + i], inlined for speed. The 1.5·2^52
 * trick rounds exactly (half to even) for |x| < 2^51; beyond that it may be off by one, but such an
 * x is far outside [qmin, qmax] and clips to the same bound. NaN ends as 0, as quantizeValue's does.
 */
function quantizeRun(values: Float32Array, from: number, to: number, out: Uint8Array, outOffset: number, scale: number, zp: number, qmin: number, qmax: number): void {
  for (let i = from; i < to; i++) {
    const q = values[i]! / scale + RNE - RNE + zp;
    out[outOffset + i] = (q < qmin ? qmin : q > qmax ? qmax : q) & 0xff;
  }
}

export interface WeightRanges {
  /** Per channel (one for per-tensor), of the finite values. */
  lo: Float64Array;
  hi: Float64Array;
  /** False when a NaN or ±Infinity was seen. */
  finite: boolean;
}

/** Folds values (the weight's elements from index `offset` on) into the per-column lo/hi of a [K, N] weight (N = lo.length); false when one is NaN. */
function rangeColumnsScalar(values: Float32Array, offset: number, lo: Float64Array, hi: Float64Array): boolean {
  const channels = lo.length;
  let finite = true;
  for (let i = 0, c = offset % channels; i < values.length; c = 0) {
    const run = Math.min(values.length - i, channels - c);
    for (let j = 0; j < run; j++) {
      const v = values[i + j]!;
      if (v < lo[c + j]!) lo[c + j] = v;
      if (v > hi[c + j]!) hi[c + j] = v;
      if (v !== v) finite = false;
    }
    i += run;
  }
  return finite;
}

/** Per-tensor (axis null) or per-channel [min, max] of a weight read in pieces, and whether every value is finite. */
export function weightRanges(pieces: Pieces, dims: number[], axis: number | null): WeightRanges {
  const n = dims.reduce((a, b) => a * b, 1);
  const channels = axis === null ? 1 : dims[axis]!;
  const inner = axis === null ? n : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const lo = new Float64Array(channels).fill(Infinity);
  const hi = new Float64Array(channels).fill(-Infinity);
  let finite = true;
  for (const { values, offset } of pieces()) {
    if (channels === 1) {
      const simd = values.length >= 64 ? rangeAllSimd(values, lo, hi) : null;
      if (simd && !simd.finite) finite = false;
      let a = lo[0]!;
      let b = hi[0]!;
      let nan = false;
      for (let i = simd?.n ?? 0; i < values.length; i++) {
        const v = values[i]!;
        if (v < a) a = v;
        if (v > b) b = v;
        if (v !== v) nan = true;
      }
      lo[0] = a;
      hi[0] = b;
      if (nan) finite = false;
      continue;
    }
    if (inner === 1) {
      // per column of a [K, N] weight: a partial row, whole rows (SIMD), a partial row
      const head = Math.min(values.length, (channels - (offset % channels)) % channels);
      const rows = Math.floor((values.length - head) / channels);
      const simd = rows > 0 ? rangeColumnsSimd(values.subarray(head), rows, lo, hi) : null;
      if (simd === null) {
        if (!rangeColumnsScalar(values, offset, lo, hi)) finite = false;
        continue;
      }
      if (!simd) finite = false;
      if (!rangeColumnsScalar(values.subarray(0, head), offset, lo, hi)) finite = false;
      const tail = head + rows * channels;
      if (!rangeColumnsScalar(values.subarray(tail), offset + tail, lo, hi)) finite = false;
      continue;
    }
    // runs of `inner` elements share a channel (Conv's output channels)
    for (let i = 0; i < values.length;) {
      const at = offset + i;
      const c = Math.floor(at / inner) % channels;
      const end = Math.min(values.length, i + inner - (at % inner));
      let a = lo[c]!;
      let b = hi[c]!;
      for (let j = i; j < end; j++) {
        const v = values[j]!;
        if (v < a) a = v;
        if (v > b) b = v;
        if (v !== v) finite = false;
      }
      lo[c] = a;
      hi[c] = b;
      i = end;
    }
  }
  for (let c = 0; c < channels && finite; c++) if (lo[c] === -Infinity || hi[c] === Infinity) finite = false;
  return { lo, hi, finite };
}

/** What quantizing a weight needs once its ranges are known: per-channel scales and zero points, and the layout. */
export interface WeightQuantizer {
  n: number;
  /** 1 for per-tensor. */
  channels: number;
  /** Elements in a run that share a channel (n for per-tensor, 1 for MatMul columns, the spatial size for Conv). */
  inner: number;
  scales: Float32Array;
  zeroPoints: Int32Array;
  /** The same as float64, for the per-column loop. */
  scales64: Float64Array;
  zeroPoints64: Float64Array;
  qmin: number;
  qmax: number;
  /** The per-column parameters as the SIMD kernel reads them, made on first use. */
  columnParams?: ColumnParams;
}

/** Scales and zero points from ranges (SPEC §8), for `quantizeInto`. */
/** A weight's quantized type: int8, uint8, or int8 storage in 7 bits (reduce range). */
export type WeightType = 'int8' | 'uint8' | 'int7';

export function weightQuantizer(dims: number[], axis: number | null, type: WeightType, symmetric: boolean, ranges: Pick<WeightRanges, 'lo' | 'hi'>): WeightQuantizer {
  const qt: QuantType = type;
  const [qmin, qmax] = quantRange(qt, symmetric);
  const n = dims.reduce((a, b) => a * b, 1);
  const channels = axis === null ? 1 : dims[axis]!;
  const inner = axis === null ? n : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const scales = new Float32Array(channels);
  const zeroPoints = new Int32Array(channels);
  for (let c = 0; c < channels; c++) {
    const p = quantParams(ranges.lo[c]!, ranges.hi[c]!, qt, symmetric);
    scales[c] = p.scale;
    zeroPoints[c] = p.zeroPoint;
  }
  return { n, channels, inner, scales, zeroPoints, scales64: Float64Array.from(scales), zeroPoints64: Float64Array.from(zeroPoints), qmin, qmax };
}

/**
 * Quantizes `values`, the weight's elements from index `at` on, into out[outAt …]: int8 values are
 * stored as their two's complement bytes (one store path for both types).
 */
export function quantizeInto(k: WeightQuantizer, values: Float32Array, at: number, out: Uint8Array, outAt: number): void {
  const { channels, inner, scales, zeroPoints, scales64: scale, zeroPoints64: zp, qmin, qmax } = k;
  if (channels === 1) {
    const done = values.length >= 64 ? quantizeAllSimd(values, out, outAt, scales[0]!, zeroPoints[0]!, qmin, qmax) : -1;
    quantizeRun(values, Math.max(done, 0), values.length, out, outAt, scales[0]!, zeroPoints[0]!, qmin, qmax);
  } else if (inner === 1) {
    // per column of a [K, N] MatMul weight: a partial row, whole rows (SIMD), a partial row
    const head = Math.min(values.length, (channels - (at % channels)) % channels);
    const rows = Math.floor((values.length - head) / channels);
    if (rows > 0 && quantizeColumnsSimd(values.subarray(head), rows, (k.columnParams ??= columnParams(scale, zp, qmin, qmax)), out, outAt + head)) {
      const tail = head + rows * channels;
      quantizeInto(k, values.subarray(0, head), at, out, outAt);
      quantizeInto(k, values.subarray(tail), at + tail, out, outAt + tail);
      return;
    }
    for (let i = 0, c = at % channels; i < values.length; c = 0) {
      const run = Math.min(values.length - i, channels - c);
      const o = outAt + i;
      for (let j = 0; j < run; j++) {
        const q = values[i + j]! / scale[c + j]! + RNE - RNE + zp[c + j]!;
        out[o + j] = (q < qmin ? qmin : q > qmax ? qmax : q) & 0xff;
      }
      i += run;
    }
  } else {
    // runs of `inner` elements share a channel (Conv's output channels)
    for (let i = 0; i < values.length;) {
      const g = at + i;
      const c = Math.floor(g / inner) % channels;
      const end = Math.min(values.length, i + inner - (g % inner));
      quantizeRun(values, i, end, out, outAt, scales[c]!, zeroPoints[c]!, qmin, qmax);
      i = end;
    }
  }
}

/**
 * quantizeWeight over a weight read in pieces (twice: ranges, then values), so a 64 MiB weight
 * needs no 64 MiB copy. `pieces` yields the values in row-major order with their element offsets.
 */
export function quantizeWeightPieces(pieces: Pieces, dims: number[], axis: number | null, type: WeightType, symmetric: boolean, known?: WeightRanges): QuantizedWeight {
  const k = weightQuantizer(dims, axis, type, symmetric, known ?? weightRanges(pieces, dims, axis));
  const bytes = new Uint8Array(k.n);
  for (const { values, offset } of pieces()) quantizeInto(k, values, offset, bytes, offset);
  const q = type === 'uint8' ? bytes : new Int8Array(bytes.buffer);
  return { q, scales: k.scales, zeroPoints: k.zeroPoints };
}

/** One float buffer for every computed weight's pieces (fills run one at a time, each to its end). */
let fillScratch: Float32Array | null = null;

/**
 * The quantized bytes of a stored float32 weight, computed when the writer asks for them (see
 * ComputedSource): never held whole, read again from where the float values are. Captures the
 * weight's source as it is now.
 */
function quantizedSource(weight: Tensor, k: WeightQuantizer): ComputedSource {
  const source = weight.source;
  if (source.kind !== 'inline' && source.kind !== 'external') throw new Error(`unreachable: ${weight.name} is ${source.kind}`);
  return {
    kind: 'computed',
    length: k.n,
    fill(into: Uint8Array, offset: number): void {
      const scratch = (fillScratch ??= new Float32Array(PIECE_ELEMENTS));
      const fd = source.kind === 'external' ? openSync(source.path, 'r') : null;
      try {
        for (let done = 0; done < into.length;) {
          const count = Math.min(scratch.length, into.length - done);
          quantizeInto(k, float32Range(source, fd, offset + done, count, scratch), offset + done, into, done);
          done += count;
        }
      } finally {
        if (fd !== null) closeSync(fd);
      }
    },
  };
}

interface Plan {
  graph: Graph;
  node: Node;
  weight: ConstantWeight;
  /** Float input (A or X). */
  input: string;
  /** Gemm: alpha folded into the weight, weight transposed to [K, N] when transB. */
  alpha: number;
  transposeWeight: boolean;
  /** The weight's ranges, taken while checking it is finite, when its stored values are quantized as they are. */
  ranges: WeightRanges | null;
}

/** The stored float32 values, in stored order, are what gets quantized: read them in pieces, never copied whole. */
function readsInPlace(w: ConstantWeight, alpha: number, transposeWeight: boolean): boolean {
  return !transposeWeight && alpha === 1 && keepsOrder(w) && w.source.dataType === DataType.FLOAT;
}

/**
 * Why a node cannot be quantized, or its plan. Reads the weight once, to check it is finite; when
 * the stored values are what gets quantized, that read also takes their ranges for the quantizer.
 */
function planNode(graph: Graph, node: Node, producers: Map<string, Node>, file: string | null, scratch: Float32Array, perChannel: boolean): Plan | string {
  const w = floatWeightOf(graph, node, producers);
  if (typeof w === 'string') return w;
  let alpha = 1;
  let transposeWeight = false;
  switch (node.opType) {
    case 'MatMul':
      if (w.dims.length !== 2) return `its weight has shape [${w.dims}] (only 2-D [K, N] weights are quantized)`;
      break;
    case 'Gemm':
      if (node.attrInt('transA', 0) !== 0) return 'it has transA=1 (MatMulInteger takes A as is)';
      if (w.dims.length !== 2) return `its weight has shape [${w.dims}]`;
      alpha = node.attrFloat('alpha', 1);
      transposeWeight = node.attrInt('transB', 0) === 1;
      break;
    case 'Conv':
      if (w.dims.length < 3) return `its weight has shape [${w.dims}]`;
      if (node.inputs[2] && !graph.constant(node.inputs[2])) return 'its bias is not a constant';
      break;
    default:
      return `${node.opType} is not supported by dynamic quantization (MatMul, Gemm, Conv are)`;
  }
  // the stored values are what gets quantized: check them before anything is changed
  let ranges: WeightRanges | null = null;
  if (readsInPlace(w, alpha, transposeWeight)) {
    ranges = weightRanges(() => float32Pieces(w.source, scratch), w.dims, perChannel ? (node.opType === 'Conv' ? 0 : 1) : null);
    if (!ranges.finite) checkFiniteTensor(w.source, scratch, node, w.sourceName, file); // throws, naming the element
  } else {
    checkFiniteTensor(w.source, scratch, node, w.sourceName, file);
  }
  return { graph, node, weight: w, input: node.inputs[0]!, alpha, transposeWeight, ranges };
}

export const dynamicQuantizePass: Pass<DynamicQuantOptions> = {
  name: 'quantize-dynamic',
  async run(model: Model, options: DynamicQuantOptions, ctx: PassContext = createPassContext()): Promise<PassReport> {
    const weightType = options.weightType ?? 'int8';
    const symmetric = options.symmetric ?? weightType === 'int8';
    const reduceRange = weightType === 'int8' && (options.reduceRange ?? int8Saturation().saturates);
    const opTypes = options.opTypes ?? ['MatMul', 'Gemm'];
    const bytesBefore = tensorBytes(model);
    const excluded: string[] = [];
    const warnings: string[] = [];
    const warn = (m: string) => { warnings.push(m); ctx.warn(m); };
    if (opTypes.includes('Conv')) warn(CONV_INTEGER_WARNING);

    // Plan everything first: a bad weight or an opset that cannot be raised fails before any change.
    const plans: Plan[] = [];
    // one reused buffer for reading weights in pieces, for this run only (see float32Pieces)
    const scratch = new Float32Array(PIECE_ELEMENTS);
    const { candidates, producersOf } = nodeCandidates(model, (n) => opTypes.includes(n.opType));
    for (const [i, { g, n }] of candidates.entries()) {
      ctx.checkpoint();
      ctx.progress('plan', i, candidates.length);
      if (isExcluded(n, options.exclude)) { excluded.push(n.label); continue; }
      const plan = planNode(g, n, producersOf(g), model.path, scratch, !!options.perChannel);
      if (typeof plan === 'string') {
        excluded.push(n.label);
        warn(`${n.label} (${n.opType}) left in float: ${plan}`);
      } else plans.push(plan);
    }
    if (plans.length === 0) warn(nothingQuantized(model, opTypes, candidates.length));
    if (plans.length > 0) {
      requireOpset(model, DYNAMIC_OPSET, 'dynamic quantization (DynamicQuantizeLinear)');
      ensureIrVersion(model, IR_INITIALIZERS_NOT_INPUTS);
    }

    const names = new NameAllocator(model);
    const cache = new Map<string, { q: string; scale: string; zp: string }>();
    const removable = { nodes: new Set<Node>(), names: new Set<string>() };
    let nodesChanged = 0;
    for (const [i, plan] of plans.entries()) {
      ctx.checkpoint();
      ctx.progress('quantize', i, plans.length);
      const weight = quantizedWeightFor(plan, { perChannel: !!options.perChannel, weightType, reduceRange, symmetric }, names, cache, warn, scratch);
      replaceNode(plan.graph, plan.node, rewrite(plan, weight, names));
      for (const n of plan.weight.chain) removable.nodes.add(n);
      removable.names.add(plan.weight.sourceName);
      for (const i of plan.node.inputs.slice(1)) if (i) removable.names.add(i);
      nodesChanged++;
    }
    ctx.progress('quantize', plans.length, plans.length);
    removeUnread(model, removable);
    return { pass: this.name, nodesChanged, bytesBefore, bytesAfter: tensorBytes(model), excluded, warnings, details: { weightType, reduceRange, symmetric, perChannel: !!options.perChannel, quantized: plans.map((p) => p.node.label) } };
  },
};

function quantizedWeightFor(plan: Plan, o: { perChannel: boolean; weightType: 'int8' | 'uint8'; reduceRange: boolean; symmetric: boolean }, names: NameAllocator, cache: Map<string, { q: string; scale: string; zp: string }>, warn: (m: string) => void, scratch: Float32Array): { q: string; scale: string; zp: string } {
  const { graph, node, weight } = plan;
  const isConv = node.opType === 'Conv';
  let symmetric = o.symmetric;
  // ConvInteger in onnxruntime takes one weight zero point: per-channel asymmetric uint8 cannot run
  if (isConv && o.perChannel && o.weightType === 'uint8' && !symmetric) {
    symmetric = true;
    warn(`${node.label}: ConvInteger takes a single weight zero point, so per-channel uint8 weights are symmetric (zero point 128)`);
  }
  const key = `${node.inputs[1]}|${plan.transposeWeight}|${plan.alpha}|${isConv}|${symmetric}`;
  const hit = cache.get(key);
  if (hit && graph.initializers.has(hit.q)) return hit;

  let dims = [...weight.dims];
  let pieces: Pieces;
  const ranges = plan.ranges ?? undefined;
  const computed = readsInPlace(weight, plan.alpha, plan.transposeWeight) && (weight.source.source.kind === 'inline' || weight.source.source.kind === 'external');
  if (readsInPlace(weight, plan.alpha, plan.transposeWeight)) {
    // the stored values in stored order, read in pieces; their ranges were taken while planning
    pieces = () => float32Pieces(weight.source, scratch);
  } else {
    let values = materialise(graph, weight);
    if (plan.transposeWeight) {
      const t = new Float32Array(values.length);
      const [n, k] = dims as [number, number];
      for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) t[c * n + r] = values[r * k + c]!;
      values = t;
      dims = [k, n];
    }
    if (plan.alpha !== 1) values = values.map((v) => Math.fround(v * plan.alpha));
    const all = [{ values, offset: 0 }];
    pieces = () => all;
  }
  const axis = o.perChannel ? (isConv ? 0 : 1) : null;
  const base = node.inputs[1]!;
  const q = names.fresh(`${base}_quantized`);
  const scale = names.fresh(`${base}_scale`);
  const zp = names.fresh(`${base}_zero_point`);
  let qw: Omit<QuantizedWeight, 'q'>;
  const qType = o.weightType === 'int8' ? DataType.INT8 : DataType.UINT8;
  const type: WeightType = o.reduceRange && o.weightType === 'int8' ? 'int7' : o.weightType;
  if (computed) {
    // quantized while the writer streams it: the float values are read a second time then, never held
    const k = weightQuantizer(dims, axis, type, symmetric, ranges ?? weightRanges(pieces, dims, axis));
    addComputedInitializer(graph, q, qType, dims, quantizedSource(weight.source, k));
    qw = k;
  } else {
    const r = quantizeWeightPieces(pieces, dims, axis, type, symmetric, ranges);
    adoptInitializer(graph, q, qType, dims, r.q);
    qw = r;
  }
  const zpType = o.weightType === 'int8' ? DataType.INT8 : DataType.UINT8;
  const zpData = o.weightType === 'int8' ? Int8Array.from(qw.zeroPoints) : Uint8Array.from(qw.zeroPoints);
  if (axis === null) {
    addFloatInitializer(graph, scale, [], qw.scales);
    addInitializer(graph, zp, zpType, [], zpData);
  } else if (isConv) {
    // the scale multiplies the [N, M, spatial…] output: shape it [M, 1, …]; the zero point is one value (all equal)
    addFloatInitializer(graph, scale, [dims[0]!, ...dims.slice(2).map(() => 1)], qw.scales);
    addInitializer(graph, zp, zpType, [], zpData.subarray(0, 1));
  } else {
    addFloatInitializer(graph, scale, [dims[1]!], qw.scales);
    addInitializer(graph, zp, zpType, [dims[1]!], zpData);
  }
  const made = { q, scale, zp };
  cache.set(key, made);
  return made;
}

/** The nodes that replace `plan.node`, ending in its original output name. */
function rewrite(plan: Plan, w: { q: string; scale: string; zp: string }, names: NameAllocator): Node[] {
  const { graph, node } = plan;
  const base = node.name || node.outputs[0]!;
  const output = node.outputs[0]!;
  const aq = names.fresh(`${plan.input}_quantized_for_${base}`);
  const aScale = names.fresh(`${plan.input}_scale_for_${base}`);
  const aZp = names.fresh(`${plan.input}_zero_point_for_${base}`);
  const acc = names.fresh(`${base}_int32`);
  const accF = names.fresh(`${base}_int32_float`);
  const scale = names.fresh(`${base}_scale_product`);
  const isConv = node.opType === 'Conv';
  const bias = biasFor(plan, names);
  const scaled = bias ? names.fresh(`${base}_unbiased`) : output;

  const nodes: Node[] = [makeNode('DynamicQuantizeLinear', [plan.input], [aq, aScale, aZp], names.fresh(`${base}_QuantizeInput`))];
  if (isConv) {
    const attrs = node.attributes.filter((a) => ['auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides'].includes(a.name));
    nodes.push(makeNode('ConvInteger', [aq, w.q, aZp, w.zp], [acc], names.fresh(`${base}_ConvInteger`), '', attrs));
  } else {
    nodes.push(makeNode('MatMulInteger', [aq, w.q, aZp, w.zp], [acc], names.fresh(`${base}_MatMulInteger`)));
  }
  nodes.push(castNode(acc, accF, DataType.FLOAT, names.fresh(`${base}_Cast`)));
  nodes.push(makeNode('Mul', [aScale, w.scale], [scale], names.fresh(`${base}_ScaleProduct`)));
  nodes.push(makeNode('Mul', [accF, scale], [scaled], names.fresh(`${base}_Rescale`)));
  if (bias) {
    if (bias.beta !== undefined) {
      const betaName = names.fresh(`${base}_beta`);
      addFloatInitializer(graph, betaName, [], [bias.beta]);
      const scaledBias = names.fresh(`${base}_bias_scaled`);
      nodes.push(makeNode('Mul', [bias.name, betaName], [scaledBias], names.fresh(`${base}_BiasBeta`)));
      nodes.push(makeNode('Add', [scaled, scaledBias], [output], names.fresh(`${base}_AddBias`)));
    } else {
      nodes.push(makeNode('Add', [scaled, bias.name], [output], names.fresh(`${base}_AddBias`)));
    }
  }
  return nodes;
}

/**
 * The bias as the Add's second input. Gemm's beta·C is folded into a new constant when C is one;
 * Conv's [M] bias is reshaped to [M, 1, …] to broadcast over the spatial axes.
 */
function biasFor(plan: Plan, names: NameAllocator): { name: string; beta?: number } | null {
  const { graph, node } = plan;
  const c = node.inputs[2];
  if (!c) return null;
  const base = node.name || node.outputs[0]!;
  const constant = graph.constant(c);
  if (node.opType === 'Conv') {
    const name = names.fresh(`${c}_reshaped`);
    addFloatInitializer(graph, name, [constant!.elementCount, ...plan.weight.dims.slice(2).map(() => 1)], constant!.toFloat32());
    return { name };
  }
  const beta = node.attrFloat('beta', 1);
  if (beta === 0) return null;
  if (!constant) return beta === 1 ? { name: c } : { name: c, beta };
  if (beta === 1 && constant.dataType === DataType.FLOAT) return { name: c };
  const name = names.fresh(`${base}_bias`);
  addFloatInitializer(graph, name, [...constant.dims], constant.toFloat32().map((v) => Math.fround(v * beta)));
  return { name };
}

/** The warning for a run that changed nothing, saying what the model has instead. */
function nothingQuantized(model: Model, opTypes: string[], candidates: number): string {
  if (candidates > 0) return `no node was quantized: every ${opTypes.join('/')} node was excluded or left in float (see above); the model is written unchanged`;
  const convs = model.graphs().reduce((n, g) => n + g.nodes.filter((x) => x.opType === 'Conv' && x.domain === '').length, 0);
  const hint = convs > 0 && !opTypes.includes('Conv')
    ? ` (it has ${convs} Conv: --include-conv quantizes them with ConvInteger, usually slower than fp32 on CPU; --method static is the better choice for CNNs)`
    : '';
  return `no node was quantized: dynamic quantization rewrites ${opTypes.join(', ')} nodes, and this model has none${hint}; the model is written unchanged`;
}
