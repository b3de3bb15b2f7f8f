import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Model, Node } from '../../../native-models/ir/model.ts';
import { createPassContext, tensorBytes, type Pass, type PassContext, type PassReport } from '../pass.ts';
import { checkFinite, findConstantWeight, materialise, type ConstantWeight } from './constant-weight.ts';
import { addFloatInitializer, addInitializer, castNode, isExcluded, makeNode, NameAllocator, removeUnread, replaceNode } from './graph-edit.ts';
import { channelRanges, minMax, quantizeValue, quantParams, quantRange, type QuantType } from './math.ts';
import { ensureIrVersion, IR_INITIALIZERS_NOT_INPUTS, requireOpset } from './opset.ts';

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
export function quantizeWeight(values: Float32Array, dims: number[], axis: number | null, type: 'int8' | 'uint8', symmetric: boolean): QuantizedWeight {
  const qt: QuantType = type;
  const [qmin, qmax] = quantRange(qt, symmetric);
  const channels = axis === null ? 1 : dims[axis]!;
  const inner = axis === null ? values.length : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  let lo: ArrayLike<number>;
  let hi: ArrayLike<number>;
  if (axis === null) {
    const [a, b] = minMax(values);
    lo = [a];
    hi = [b];
  } else {
    const r = channelRanges(values, dims, axis);
    lo = r.min;
    hi = r.max;
  }
  const scales = new Float32Array(channels);
  const zeroPoints = new Int32Array(channels);
  for (let c = 0; c < channels; c++) {
    const p = quantParams(lo[c]!, hi[c]!, qt, symmetric);
    scales[c] = p.scale;
    zeroPoints[c] = p.zeroPoint;
  }
  const q = type === 'int8' ? new Int8Array(values.length) : new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const c = channels === 1 ? 0 : Math.floor(i / inner) % channels;
    q[i] = quantizeValue(values[i]!, scales[c]!, zeroPoints[c]!, qmin, qmax);
  }
  return { q, scales, zeroPoints };
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
}

/** Why a node cannot be quantized, or its plan. Reads no weight data except to check it is finite. */
function planNode(graph: Graph, node: Node, producers: Map<string, Node>, file: string | null): Plan | string {
  const wName = node.inputs[1];
  if (!node.inputs[0] || !wName) return 'it has no weight input';
  const w = findConstantWeight(graph, wName, producers);
  if (w === null) return `its input ${wName} is not a constant weight`;
  if ('problem' in w) return w.problem;
  if (w.source.dataType !== DataType.FLOAT && w.chain.every((n) => n.opType !== 'Cast')) return `its weight is ${w.source.dtype}, not float32`;
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
  checkFinite(w.source.dataType === DataType.FLOAT ? (w.source.typed() as Float32Array) : w.source.toFloat32(), node, w.sourceName, file);
  return { graph, node, weight: w, input: node.inputs[0], alpha, transposeWeight };
}

export const dynamicQuantizePass: Pass<DynamicQuantOptions> = {
  name: 'quantize-dynamic',
  async run(model: Model, options: DynamicQuantOptions, ctx: PassContext = createPassContext()): Promise<PassReport> {
    const weightType = options.weightType ?? 'int8';
    const symmetric = options.symmetric ?? weightType === 'int8';
    const opTypes = options.opTypes ?? ['MatMul', 'Gemm'];
    const bytesBefore = tensorBytes(model);
    const excluded: string[] = [];
    const warnings: string[] = [];
    const warn = (m: string) => { warnings.push(m); ctx.warn(m); };
    if (opTypes.includes('Conv')) warn(CONV_INTEGER_WARNING);

    // Plan everything first: a bad weight or an opset that cannot be raised fails before any change.
    const plans: Plan[] = [];
    const candidates = model.graphs().flatMap((g) => g.nodes.filter((n) => opTypes.includes(n.opType) && n.domain === '').map((n) => ({ g, n })));
    const producers = new Map<Graph, Map<string, Node>>();
    const producersOf = (g: Graph) => producers.get(g) ?? producers.set(g, g.producers()).get(g)!;
    for (const [i, { g, n }] of candidates.entries()) {
      ctx.checkpoint();
      ctx.progress('plan', i, candidates.length);
      if (isExcluded(n, options.exclude)) { excluded.push(n.label); continue; }
      const plan = planNode(g, n, producersOf(g), model.path);
      if (typeof plan === 'string') {
        excluded.push(n.label);
        warn(`${n.label} (${n.opType}) left in float: ${plan}`);
      } else plans.push(plan);
    }
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
      const weight = quantizedWeightFor(plan, { perChannel: !!options.perChannel, weightType, symmetric }, names, cache, warn);
      replaceNode(plan.graph, plan.node, rewrite(plan, weight, names));
      for (const n of plan.weight.chain) removable.nodes.add(n);
      removable.names.add(plan.weight.sourceName);
      for (const i of plan.node.inputs.slice(1)) if (i) removable.names.add(i);
      nodesChanged++;
    }
    ctx.progress('quantize', plans.length, plans.length);
    removeUnread(model, removable);
    return { pass: this.name, nodesChanged, bytesBefore, bytesAfter: tensorBytes(model), excluded, warnings, details: { weightType, symmetric, perChannel: !!options.perChannel, quantized: plans.map((p) => p.node.label) } };
  },
};

function quantizedWeightFor(plan: Plan, o: { perChannel: boolean; weightType: 'int8' | 'uint8'; symmetric: boolean }, names: NameAllocator, cache: Map<string, { q: string; scale: string; zp: string }>, warn: (m: string) => void): { q: string; scale: string; zp: string } {
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

  let values = materialise(graph, weight);
  let dims = [...weight.dims];
  if (plan.transposeWeight) {
    const t = new Float32Array(values.length);
    const [n, k] = dims as [number, number];
    for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) t[c * n + r] = values[r * k + c]!;
    values = t;
    dims = [k, n];
  }
  if (plan.alpha !== 1) values = values.map((v) => Math.fround(v * plan.alpha));
  const axis = o.perChannel ? (isConv ? 0 : 1) : null;
  const qw = quantizeWeight(values, dims, axis, o.weightType, symmetric);
  const base = node.inputs[1]!;
  const q = names.fresh(`${base}_quantized`);
  const scale = names.fresh(`${base}_scale`);
  const zp = names.fresh(`${base}_zero_point`);
  addInitializer(graph, q, o.weightType === 'int8' ? DataType.INT8 : DataType.UINT8, dims, qw.q);
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
