import { DataType, floatToHalf } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Model, Node } from '../../../native-models/ir/model.ts';
import { AttrType } from '../../../native-models/ir/model.ts';
import { Tensor } from '../../../native-models/ir/tensor.ts';
import { createPassContext, tensorBytes, type Pass, type PassContext, type PassReport } from '../pass.ts';
import { ElemTypes } from './elem-types.ts';
import { castNode, intAttr, isExcluded, NameAllocator } from './graph-edit.ts';

/**
 * float32 → float16 for every float32 tensor and value: initializers, Constant values, graph
 * inputs/outputs and value_info, in subgraphs too. Nodes whose op is on the block list stay fp32
 * with Casts around them; with keepIoTypes the graph's inputs and outputs stay fp32 with Casts at
 * the boundary. Stored values are clamped into [1e-7, 1e4] in magnitude (SPEC §8): smaller ones
 * would flush to zero or lose all precision in fp16's subnormals, larger ones leave little room
 * before fp16's 65504 overflows in the ops that follow.
 */
export interface Fp16Options {
  /** Graph inputs and outputs stay float32 (Casts at the boundary), so callers feed and read fp32. */
  keepIoTypes?: boolean;
  /** Op types kept in fp32 (replaces DEFAULT_FP16_BLOCK_LIST). */
  blockList?: string[];
  /** Further node names or op types kept in fp32. */
  exclude?: string[];
}

/**
 * Kept in fp32 by default, and why:
 * - Resize, Upsample: their `scales` input must be float32 whatever the data type.
 * - QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear: float32-only scales / input before
 *   opset 19 (DynamicQuantizeLinear always).
 * - Range, CumSum: long running sums lose integers above 2048 and overflow at 65504.
 * - ReduceSumSquare, ReduceL2, ReduceLogSumExp, ReduceProd: sums of squares, exponentials and
 *   products overflow fp16 for ordinary activations.
 * - TopK, NonMaxSuppression, RoiAlign: index and box arithmetic where fp16's 11-bit mantissa
 *   changes which element or box is picked; onnxruntime has no fp16 CPU kernels for them anyway.
 * Ops from other domains (com.microsoft, ai.onnx.ml) are always kept fp32: their type constraints
 * are not known here. Everything else relies on onnxruntime, which casts around a node by itself
 * where its CPU EP lacks an fp16 kernel.
 */
export const DEFAULT_FP16_BLOCK_LIST: readonly string[] = [
  'Resize', 'Upsample', 'QuantizeLinear', 'DequantizeLinear', 'DynamicQuantizeLinear', 'Range', 'CumSum',
  'ReduceSumSquare', 'ReduceL2', 'ReduceLogSumExp', 'ReduceProd', 'TopK', 'NonMaxSuppression', 'RoiAlign',
];

export const FP16_MIN_MAGNITUDE = 1e-7;
export const FP16_MAX_MAGNITUDE = 1e4;
const F32 = DataType.FLOAT;
const F16 = DataType.FLOAT16;
type Prec = 'f16' | 'f32';
const CONTROL_FLOW = new Set(['If', 'Loop', 'Scan']);
/** Ops whose `dtype` attribute picks a float output type. */
const DTYPE_OPS = new Set(['RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'EyeLike', 'Bernoulli']);

interface ClampStats { low: number; high: number; nan: number; tensors: string[]; converted: number }

/** float32 values → float16 bits, clamping magnitudes into [1e-7, 1e4] (zero stays zero, NaN stays NaN). */
export function toHalfClamped(values: Float32Array, stats?: ClampStats, name?: string): Uint16Array {
  const out = new Uint16Array(values.length);
  let low = 0;
  let high = 0;
  let nan = 0;
  for (let i = 0; i < values.length; i++) {
    let v = values[i]!;
    const a = Math.abs(v);
    if (a > FP16_MAX_MAGNITUDE) { v = Math.sign(v) * FP16_MAX_MAGNITUDE; high++; }
    else if (a < FP16_MIN_MAGNITUDE && a > 0) { v = Math.sign(v) * FP16_MIN_MAGNITUDE; low++; }
    else if (Number.isNaN(v)) nan++;
    out[i] = floatToHalf(v);
  }
  if (stats && (low || high || nan)) {
    stats.low += low;
    stats.high += high;
    stats.nan += nan;
    if (name) stats.tensors.push(name);
  }
  return out;
}

function convertTensor(t: Tensor, stats: ClampStats): void {
  stats.converted++;
  t.setData(toHalfClamped(t.toFloat32(), stats, t.name), { dataType: F16 });
}

export const fp16Pass: Pass<Fp16Options> = {
  name: 'convert-fp16',
  async run(model: Model, options: Fp16Options, ctx: PassContext = createPassContext()): Promise<PassReport> {
    const bytesBefore = tensorBytes(model);
    const warnings: string[] = [];
    const warn = (m: string) => { warnings.push(m); ctx.warn(m); };
    const blockList = new Set(options.blockList ?? DEFAULT_FP16_BLOCK_LIST);
    const keepIo = !!options.keepIoTypes;
    const types = new ElemTypes(model);
    const names = new NameAllocator(model);
    const stats: ClampStats = { low: 0, high: 0, nan: 0, tensors: [], converted: 0 };
    const excluded: string[] = [];
    let nodesChanged = 0;

    const blocked = (n: Node): boolean => {
      if (CONTROL_FLOW.has(n.opType) && (n.domain === '' || n.domain === 'ai.onnx')) return false;
      return (n.domain !== '' && n.domain !== 'ai.onnx') || blockList.has(n.opType) || isExcluded(n, options.exclude);
    };
    for (const g of model.graphs()) for (const n of g.nodes) if (blocked(n)) excluded.push(n.label);
    for (const n of model.graphs().flatMap((g) => g.nodes)) {
      if (CONTROL_FLOW.has(n.opType) && isExcluded(n, options.exclude)) warn(`${n.label} (${n.opType}): control-flow nodes cannot be kept in fp32; their subgraphs are converted`);
    }

    // Who reads each float32 value, and in which precision: decides whether a constant is converted.
    const wants = new Map<string, Set<Prec>>();
    const want = (name: string, p: Prec) => (wants.get(name) ?? wants.set(name, new Set()).get(name)!).add(p);
    for (const g of model.graphs()) {
      for (const n of g.nodes) for (const i of n.inputs) if (i && types.of(g, i) === F32) want(i, blocked(n) ? 'f32' : 'f16');
      for (const o of g.outputs) if (types.of(g, o.name) === F32) want(o.name, g === model.graph && keepIo ? 'f32' : 'f16');
    }
    const constantPrec = (name: string): Prec => (wants.get(name)?.has('f16') ? 'f16' : 'f32');

    const prec = new Map<Graph, Map<string, Prec>>();
    const precOf = (g: Graph, name: string): Prec | undefined => {
      for (let x: Graph | null = g; x; x = x.parent) { const p = prec.get(x)?.get(name); if (p) return p; }
      return undefined;
    };
    const casts = new Map<Graph, Map<string, string>>();
    const cachedCast = (g: Graph, key: string): string | undefined => {
      for (let x: Graph | null = g; x; x = x.parent) { const c = casts.get(x)?.get(key); if (c) return c; }
      return undefined;
    };

    const graphs = model.graphs();
    let done = 0;
    const convertGraph = (g: Graph, isMain: boolean): void => {
      ctx.checkpoint();
      ctx.progress('convert', done++, graphs.length);
      const P = new Map<string, Prec>();
      prec.set(g, P);
      casts.set(g, new Map());
      const castsAfter = new Map<Node | null, Node[]>();

      // 1. the precision each float32 value is defined in
      for (const v of g.inputs) if (!g.initializers.has(v.name) && types.of(g, v.name) === F32) P.set(v.name, isMain && keepIo ? 'f32' : 'f16');
      for (const [name, t] of g.initializers) {
        if (t.dataType !== F32) continue;
        P.set(name, constantPrec(name));
        if (P.get(name) === 'f16') convertTensor(t, stats);
      }
      for (const s of g.sparseInitializers) {
        if (s.values.dataType !== F32) continue;
        P.set(s.values.name, constantPrec(s.values.name));
        if (P.get(s.values.name) === 'f16') convertTensor(s.values, stats);
      }
      for (const n of g.nodes) {
        if (n.opType === 'Constant' && n.domain === '') {
          const out = n.outputs[0]!;
          if (types.of(g, out) !== F32) continue;
          const p = constantPrec(out);
          P.set(out, p === 'f16' && convertConstant(n, stats) ? 'f16' : 'f32');
          continue;
        }
        const isBlocked = blocked(n);
        for (const o of n.outputs) if (o && types.of(g, o) === F32) P.set(o, isBlocked ? 'f32' : 'f16');
        if (!isBlocked && retypeAttributes(n, (o) => types.of(g, o) === F32, stats)) nodesChanged++;
      }

      // 2. outputs that must be in another precision than they are made in: the producer writes an
      // internal name and a Cast makes the output; consumers of the output find the internal one
      const required: Prec = isMain && keepIo ? 'f32' : 'f16';
      for (const o of g.outputs) {
        const p = P.get(o.name);
        if (!p || p === required) continue;
        const internal = names.fresh(`${o.name}_${p === 'f16' ? 'fp16' : 'fp32'}`);
        const producer = g.nodes.find((n) => n.outputs.includes(o.name)) ?? null;
        if (producer) producer.outputs = producer.outputs.map((x) => (x === o.name ? internal : x));
        else if (g.initializers.has(o.name)) {
          const t = g.initializers.get(o.name)!;
          g.initializers.delete(o.name);
          t.name = internal;
          g.initializers.set(internal, t);
        } else {
          warn(`graph ${g.name || '(main)'}: output ${o.name} is not produced in the graph and stays ${p === 'f16' ? 'float16' : 'float32'}`);
          continue;
        }
        P.set(internal, p);
        P.set(o.name, required);
        casts.get(g)!.set(`${o.name}|${p}`, internal);
        const list = castsAfter.get(producer) ?? castsAfter.set(producer, []).get(producer)!;
        list.push(castNode(internal, o.name, required === 'f16' ? F16 : F32, names.fresh(`${o.name}_Cast`)));
        nodesChanged++;
      }

      // 3. every float32 input read in another precision than it is defined in gets a (shared) Cast
      const nodes: Node[] = [...(castsAfter.get(null) ?? [])];
      for (const n of g.nodes) {
        const wanted: Prec = blocked(n) ? 'f32' : 'f16';
        n.inputs = n.inputs.map((input) => {
          if (!input || types.of(g, input) !== F32) return input;
          const have = precOf(g, input);
          if (!have || have === wanted) return input;
          const key = `${input}|${wanted}`;
          const hit = cachedCast(g, key);
          if (hit) return hit;
          const name = names.fresh(`${input}_${wanted === 'f16' ? 'fp16' : 'fp32'}`);
          nodes.push(castNode(input, name, wanted === 'f16' ? F16 : F32, names.fresh(`${input}_Cast_${wanted}`)));
          casts.get(g)!.set(key, name);
          P.set(name, wanted);
          nodesChanged++;
          return name;
        });
        nodes.push(n, ...(castsAfter.get(n) ?? []));
        for (const sub of n.subgraphs()) convertGraph(sub, false);
      }
      g.nodes = nodes;

      // 4. declared types follow
      for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) {
        if (v.type?.kind === 'tensor' && v.type.elemType === F32 && precOf(g, v.name) === 'f16') v.type = { ...v.type, elemType: F16 };
      }
    };
    convertGraph(model.graph, true);
    ctx.progress('convert', graphs.length, graphs.length);

    if (stats.low || stats.high) {
      warn(`fp16: clamped ${stats.low + stats.high} stored values into [${FP16_MIN_MAGNITUDE}, ${FP16_MAX_MAGNITUDE}] (${stats.low} below, ${stats.high} above) in ${stats.tensors.slice(0, 5).join(', ')}${stats.tensors.length > 5 ? ` and ${stats.tensors.length - 5} more tensors` : ''}`);
    }
    if (stats.nan) warn(`fp16: ${stats.nan} stored values are NaN and stay NaN`);
    return {
      pass: this.name, nodesChanged, bytesBefore, bytesAfter: tensorBytes(model), excluded, warnings,
      details: { tensorsConverted: stats.converted, keepIoTypes: keepIo, blockList: [...blockList], clampedBelow: stats.low, clampedAbove: stats.high },
    };
  },
};

/** A Constant's float32 value to float16; false when it carries something we leave alone (sparse). */
function convertConstant(n: Node, stats: ClampStats): boolean {
  const value = n.attr('value')?.value;
  if (value instanceof Tensor) {
    convertTensor(value, stats);
    return true;
  }
  const single = n.attr('value_float');
  const many = n.attr('value_floats');
  if (!single && !many) return false;
  const values = single ? Float32Array.of(single.value as number) : Float32Array.from(many!.value as number[]);
  const t = Tensor.fromTypedArray(`${n.outputs[0]}_value`, F16, single ? [] : [values.length], toHalfClamped(values, stats, n.outputs[0]));
  n.attributes = n.attributes.filter((a) => a.name !== 'value_float' && a.name !== 'value_floats');
  n.setAttr('value', AttrType.TENSOR, t);
  return true;
}

/** Attributes that make a node output float32 (Cast's `to`, ConstantOfShape's value, `dtype`) now say float16. */
function retypeAttributes(n: Node, isF32: (name: string) => boolean, stats: ClampStats): boolean {
  const out = n.outputs[0];
  if (!out || !isF32(out) || (n.domain !== '' && n.domain !== 'ai.onnx')) return false;
  if (n.opType === 'Cast') {
    n.setAttr('to', AttrType.INT, BigInt(F16));
    return true;
  }
  if (n.opType === 'ConstantOfShape') {
    const v = n.attr('value')?.value;
    const values = v instanceof Tensor ? v.toFloat32() : Float32Array.of(0);
    n.setAttr('value', AttrType.TENSOR, Tensor.fromTypedArray(v instanceof Tensor ? v.name : `${out}_value`, F16, [1], toHalfClamped(values, stats)));
    return true;
  }
  if (DTYPE_OPS.has(n.opType) && (n.attr('dtype') || n.opType === 'RandomNormal' || n.opType === 'RandomUniform')) {
    n.attributes = n.attributes.filter((a) => a.name !== 'dtype');
    n.attributes.push(intAttr('dtype', F16));
    return true;
  }
  return false;
}
