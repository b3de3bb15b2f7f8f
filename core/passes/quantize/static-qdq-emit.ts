import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Node } from '../../../native-models/ir/model.ts';
import { addInitializer, intAttr, makeNode, type NameAllocator } from './graph-edit.ts';
import { channelRanges, minMax, quantizeArray, quantParams, quantRange, roundHalfEven, type QuantParams } from './math.ts';
import { materialise } from './constant-weight.ts';
import type { QdqPlan } from './static-qdq-plan.ts';
import type { PrecomputedWeight } from './static-gptq.ts';

/**
 * Writes a plan into the graph. Activations: the producer's output is renamed and Q → DQ writes the
 * original name back, so every reader (quantized ops, float ops, graph outputs, subgraphs) sees the
 * one dequantized value and the producer's only reader is its Q, which is what onnxruntime's node
 * units need to fuse. Graph inputs cannot be renamed: their DQ output goes to the quantized readers.
 * Weights, biases and constant operands are stored already quantized with only a DequantizeLinear.
 */
export interface EmitResult {
  qdqPairs: number;
  /** DequantizeLinear nodes over stored quantized tensors (weights, biases, constants). */
  dequantizers: number;
  /** Constants and nodes the rewrite may have left unread (the float weights and their Reshapes). */
  unreadNames: Set<string>;
  unreadNodes: Set<Node>;
  /** Relu/Clip nodes dropped because the output quantization clips exactly as they did. */
  removedActivations: string[];
  /** Stored weights whose values came from EmitOptions.weightValues. */
  chosenWeights: Set<string>;
  warnings: string[];
}

const ORDER_KEEPING = new Set(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity']);
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

export interface EmitOptions {
  activationType: 'uint8' | 'int8';
  names: NameAllocator;
  /** DequantizeLinear may take `axis` (opset ≥ 13). */
  axisDq: boolean;
  /** Runs before each planned node's tensors are written: progress, and the place to cancel. */
  step?: (done: number, total: number) => void;
  /** int8 values chosen elsewhere (GPTQ, static-gptq.ts) by stored weight name, used instead of rounding to nearest. */
  weightValues?: ReadonlyMap<string, PrecomputedWeight> | undefined;
  /** Weights in 7 bits ([-64, 64]; onnxruntime's reduce_range, cpu-int8.ts says why). */
  reduceRange?: boolean | undefined;
}

export function emitQdq(g: Graph, plan: QdqPlan, o: EmitOptions): EmitResult {
  const { activationType, names } = o;
  const step = o.step ?? (() => {});
  const result: EmitResult = { qdqPairs: 0, dequantizers: 0, unreadNames: new Set(), unreadNodes: new Set(), removedActivations: [], chosenWeights: new Set(), warnings: [] };
  const actDataType = activationType === 'uint8' ? DataType.UINT8 : DataType.INT8;
  const zpArray = (v: number[]) => (activationType === 'uint8' ? Uint8Array.from(v) : Int8Array.from(v));
  const before = new Map<Node, Node[]>();
  const after = new Map<Node, Node[]>();
  const prefix: Node[] = [];
  const push = (map: Map<Node, Node[]>, n: Node, added: Node[]) => map.set(n, [...(map.get(n) ?? []), ...added]);

  // one scale/zero-point pair per group: onnxruntime drops Q/DQ around MaxPool and Reshape only
  // when both sides carry the same parameters
  const groupInits = new Map<string, { scale: string; zp: string }>();
  const paramsOf = (tensor: string): QuantParams => plan.params.get(plan.groupOf.get(tensor)!)!;
  const initsOf = (tensor: string) => {
    const root = plan.groupOf.get(tensor)!;
    let inits = groupInits.get(root);
    if (!inits) {
      const p = paramsOf(tensor);
      inits = { scale: names.fresh(`${root}_scale`), zp: names.fresh(`${root}_zero_point`) };
      addInitializer(g, inits.scale, DataType.FLOAT, [], Float32Array.of(p.scale));
      addInitializer(g, inits.zp, actDataType, [], zpArray([p.zeroPoint]));
      groupInits.set(root, inits);
    }
    return inits;
  };

  const dequantizer = (base: string, q: { dataType: number; dims: number[]; data: Int8Array | Uint8Array | Int32Array }, scales: Float32Array, zps: Int8Array | Uint8Array | Int32Array, axis: number | null) => {
    const qName = names.fresh(`${base}_quantized`);
    const sName = names.fresh(`${base}_scale`);
    const zName = names.fresh(`${base}_zero_point`);
    const out = names.fresh(`${base}_dequantized`);
    const perAxis = axis !== null;
    addInitializer(g, qName, q.dataType, q.dims, q.data);
    addInitializer(g, sName, DataType.FLOAT, perAxis ? [scales.length] : [], scales);
    addInitializer(g, zName, zpDataType(zps), perAxis ? [zps.length] : [], zps);
    const node = makeNode('DequantizeLinear', [qName, sName, zName], [out], names.fresh(`${base}_DequantizeLinear`), '', perAxis ? [intAttr('axis', axis)] : []);
    result.dequantizers++;
    return { node, out };
  };

  // Weights first (a bias needs its weight's scales), each stored once per (tensor, axis).
  const weightCache = new Map<string, { out: string; scales: Float32Array }>();
  const constantCache = new Map<string, { out: string; params: QuantParams }>();
  for (const [done, p] of plan.nodes.entries()) {
    step(done, plan.nodes.length);
    const n = p.node;
    const originalInputs = [...n.inputs];
    const inputScale = (i: number): number => {
      const name = originalInputs[i]!;
      const c = constantCache.get(name);
      return c ? c.params.scale : paramsOf(name).scale;
    };
    let weightScales: Float32Array | null = null;
    for (const [i, role] of [...p.roles].sort((a, b) => a[0] - b[0])) {
      const name = originalInputs[i]!;
      if (role.kind === 'weight') {
        const key = `${name}|${role.axis}`;
        let w = weightCache.get(key);
        if (!w) {
          // a Reshape/Flatten/Squeeze on the way keeps the stored element order, so the chosen values still apply
          const chosen = role.weight.chain.every((c) => ORDER_KEEPING.has(c.opType)) ? o.weightValues?.get(role.weight.sourceName) : undefined;
          const usable = chosen && chosen.axis === role.axis && chosen.data.length === role.weight.source.elementCount;
          if (usable) result.chosenWeights.add(role.weight.sourceName);
          const q = usable ? chosen : quantizeWeight(materialise(g, role.weight), role.weight.dims, role.axis, o.reduceRange ? 'int7' : 'int8');
          const zps = new Int8Array(q.scales.length);
          const dq = dequantizer(name, { dataType: DataType.INT8, dims: role.weight.dims, data: q.data }, q.scales, zps, role.axis);
          push(before, n, [dq.node]);
          w = { out: dq.out, scales: q.scales };
          weightCache.set(key, w);
          forget(result, role.weight);
        }
        n.inputs[i] = w.out;
        weightScales = w.scales;
      } else if (role.kind === 'constant') {
        let c = constantCache.get(name);
        if (!c) {
          const values = materialise(g, role.value);
          const [lo, hi] = minMax(values);
          const params = quantParams(lo, hi, activationType);
          const q = quantizeArray(values, params, activationType);
          const data = activationType === 'uint8' ? Uint8Array.from(q) : Int8Array.from(q);
          const dq = dequantizer(name, { dataType: actDataType, dims: role.value.dims, data }, Float32Array.of(params.scale), zpArray([params.zeroPoint]), null);
          push(before, n, [dq.node]);
          c = { out: dq.out, params };
          constantCache.set(name, c);
          forget(result, role.value);
        }
        n.inputs[i] = c.out;
      } else if (role.kind === 'table') {
        // the output's parameters (its range covers every row), so the DQ before and the Q after match
        const params = paramsOf(n.outputs[0]!);
        const q = quantizeArray(materialise(g, role.value), params, activationType);
        const data = activationType === 'uint8' ? Uint8Array.from(q) : Int8Array.from(q);
        const dq = dequantizer(name, { dataType: actDataType, dims: role.value.dims, data }, Float32Array.of(params.scale), zpArray([params.zeroPoint]), null);
        push(before, n, [dq.node]);
        forget(result, role.value);
        n.inputs[i] = dq.out;
      } else if (role.kind === 'bias') {
        if (!weightScales) throw new Error(`unreachable: bias of ${n.label} before its weight`);
        const b = quantizeBias(materialise(g, role.bias), inputScale(role.activationInput), weightScales);
        if (b.clamped > 0) result.warnings.push(`${n.label} (${n.opType}): ${b.clamped} bias value(s) exceed int32 at scale input×weight and were clamped`);
        // stored 1-D ([N] and Gemm's [1, N] broadcast alike), so a per-channel axis is always 0
        const dq = dequantizer(name, { dataType: DataType.INT32, dims: [b.data.length], data: b.data }, b.scales, new Int32Array(b.scales.length), b.scales.length > 1 ? 0 : null);
        push(before, n, [dq.node]);
        forget(result, role.bias);
        n.inputs[i] = dq.out;
      }
    }
  }

  // Relu/Clip that the quantization already performs: the producer writes their output directly
  const removedInputs = new Set<string>();
  const removedNodes = new Set<Node>();
  for (const p of plan.nodes) {
    if (!p.remove) continue;
    const x = p.node.inputs[0]!;
    const producer = g.nodes.find((n) => n.outputs.includes(x))!;
    producer.outputs[producer.outputs.indexOf(x)] = p.node.outputs[0]!;
    g.valueInfo = g.valueInfo.filter((v) => v.name !== x);
    removedInputs.add(x);
    removedNodes.add(p.node);
    result.removedActivations.push(p.node.label);
  }
  g.nodes = g.nodes.filter((n) => !removedNodes.has(n));

  const producers = g.producers();
  const graphInputs = new Set(g.inputs.map((v) => v.name));
  const quantizedName = new Map<string, string>();
  for (const t of plan.tensors) {
    if (removedInputs.has(t)) continue;
    const { scale, zp } = initsOf(t);
    const q = names.fresh(`${t}_quantized`);
    quantizedName.set(t, q);
    const producer = producers.get(t);
    if (graphInputs.has(t) && !producer) {
      const dq = names.fresh(`${t}_dequantized`);
      prefix.push(makeNode('QuantizeLinear', [t, scale, zp], [q], names.fresh(`${t}_QuantizeLinear`)));
      prefix.push(makeNode('DequantizeLinear', [q, scale, zp], [dq], names.fresh(`${t}_DequantizeLinear`)));
      // float readers keep the exact input; only the quantized ops read the dequantized copy
      for (const p of plan.nodes) {
        for (const [i, r] of p.roles) if (r.kind === 'activation' && p.node.inputs[i] === t) p.node.inputs[i] = dq;
      }
    } else if (producer) {
      const raw = names.fresh(`${t}_float`);
      producer.outputs[producer.outputs.indexOf(t)] = raw;
      push(after, producer, [
        makeNode('QuantizeLinear', [raw, scale, zp], [q], names.fresh(`${t}_QuantizeLinear`)),
        makeNode('DequantizeLinear', [q, scale, zp], [t], names.fresh(`${t}_DequantizeLinear`)),
      ]);
    } else {
      throw new Error(`unreachable: activation ${t} has no producer and is not a graph input`);
    }
    result.qdqPairs++;
  }

  if (o.axisDq) {
    const planned = new Set(plan.nodes.map((p) => p.node));
    const producersNow = g.producers();
    for (const n of g.nodes) {
      if (planned.has(n) || !GUARDED.has(n.opType) || n.domain !== '') continue;
      // onnxruntime's QDQ propagation moves a per-tensor DequantizeLinear forward through the float
      // MaxPool/Reshape/Transpose/Squeeze/Unsqueeze/Slice before a node, which would put it right in
      // front of the float Conv again: guard the first of them instead
      let reader = n;
      let t = n.inputs[0]!;
      let onlyMaxPools = true;
      for (let p = producersNow.get(t); p && !quantizedName.has(t) && !planned.has(p) && PROPAGATED.has(p.opType) && p.domain === ''; p = producersNow.get(t)) {
        onlyMaxPools &&= p.opType === 'MaxPool';
        reader = p;
        t = p.inputs[0]!;
      }
      const q = quantizedName.get(t);
      if (!q || graphInputs.has(t)) continue;
      // the per-axis copy runs along axis 1 of t: the node's input channels when only MaxPools (which
      // keep them) lie between, else t's own stated size there
      const channels = reader === n || onlyMaxPools ? inputChannels(g, n) : axisOneOf(g, t);
      if (!channels) continue;
      const dq = dequantizerOver(q, t, channels, paramsOf(t));
      push(before, reader, [dq.node]);
      reader.inputs[0] = dq.out;
    }
  }

  g.nodes = [...prefix, ...g.nodes.flatMap((n) => [...(before.get(n) ?? []), n, ...(after.get(n) ?? [])])];
  return result;

  /**
   * onnxruntime's WeightBiasQuantization quantizes the float weight of any Conv/ConvTranspose/Gemm
   * that reads a per-tensor DequantizeLinear and feeds a QuantizeLinear, so a Conv left float
   * between two quantized neighbours would run int8 after all. It skips inputs dequantized per
   * axis: the float node gets its own DequantizeLinear with the same scale and zero point repeated
   * along the channel axis, numerically the same value.
   */
  function dequantizerOver(q: string, t: string, c: { axis: number; size: number }, p: QuantParams) {
    const sName = names.fresh(`${t}_scale_per_axis`);
    const zName = names.fresh(`${t}_zero_point_per_axis`);
    addInitializer(g, sName, DataType.FLOAT, [c.size], new Float32Array(c.size).fill(p.scale));
    addInitializer(g, zName, actDataType, [c.size], zpArray(new Array<number>(c.size).fill(p.zeroPoint)));
    const out = names.fresh(`${t}_dequantized_for_float`);
    return { node: makeNode('DequantizeLinear', [q, sName, zName], [out], names.fresh(`${t}_DequantizeLinear_for_float`), '', [intAttr('axis', c.axis)]), out };
  }
}

const GUARDED = new Set(['Conv', 'ConvTranspose', 'Gemm']);
/** The ops onnxruntime's QDQPropagationTransformer moves a DequantizeLinear across (qdq_propagation.cc). */
const PROPAGATED = new Set(['MaxPool', 'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Slice']);

/** Axis 1 of a value whose type states that dimension. */
function axisOneOf(g: Graph, name: string): { axis: number; size: number } | null {
  const t = g.valueType(name);
  const d = t && t.kind === 'tensor' ? t.shape?.[1] : undefined;
  return typeof d === 'number' && d > 0 ? { axis: 1, size: d } : null;
}

/** The axis of a Conv/ConvTranspose/Gemm data input its weight reduces over, and that axis' size. */
function inputChannels(g: Graph, n: Node): { axis: number; size: number } | null {
  const w = n.inputs[1] ? g.constant(n.inputs[1]) : null;
  if (!w || w.dims.length < 2) return null;
  switch (n.opType) {
    case 'Conv': return { axis: 1, size: w.dims[1]! * n.attrInt('group', 1) };
    case 'ConvTranspose': return { axis: 1, size: w.dims[0]! };
    default: return { axis: n.attrInt('transA', 0) ? 0 : 1, size: n.attrInt('transB', 0) ? w.dims[1]! : w.dims[0]! };
  }
}

function forget(result: EmitResult, c: { sourceName: string; chain: Node[] }): void {
  result.unreadNames.add(c.sourceName);
  for (const n of c.chain) result.unreadNodes.add(n);
}

function zpDataType(a: Int8Array | Uint8Array | Int32Array): number {
  return a instanceof Int8Array ? DataType.INT8 : a instanceof Uint8Array ? DataType.UINT8 : DataType.INT32;
}

/**
 * Symmetric int8 ([-127, 127], zero point 0), per tensor or per channel along `axis`; 'int7' keeps
 * them in [-64, 64] (reduce range), still stored as int8.
 */
export function quantizeWeight(values: Float32Array, dims: number[], axis: number | null, type: 'int8' | 'int7' = 'int8'): { data: Int8Array; scales: Float32Array } {
  if (axis === null) {
    const [lo, hi] = minMax(values);
    const p = quantParams(lo, hi, type, true);
    return { data: Int8Array.from(quantizeArray(values, p, type, true)), scales: Float32Array.of(p.scale) };
  }
  const { min, max } = channelRanges(values, dims, axis);
  const params = Array.from(min, (lo, c) => quantParams(lo, max[c]!, type, true));
  return { data: quantizeAlongAxis(values, dims, axis, params, type), scales: Float32Array.from(params, (p) => p.scale) };
}

function quantizeAlongAxis(values: Float32Array, dims: number[], axis: number, params: QuantParams[], type: 'int8' | 'int7'): Int8Array {
  const [qmin, qmax] = quantRange(type, true);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channels = dims[axis]!;
  const out = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const p = params[Math.floor(i / inner) % channels]!;
    const q = roundHalfEven(values[i]! / p.scale) + p.zeroPoint;
    out[i] = q < qmin ? qmin : q > qmax ? qmax : q;
  }
  return out;
}

/**
 * int32 bias on the accumulator's scale: scale = input_scale × weight_scale (per channel when the
 * weight is), stored as float32 like every scale, zero point 0, q = round-half-even(b / scale).
 */
export function quantizeBias(values: Float32Array, inputScale: number, weightScales: Float32Array): { data: Int32Array; scales: Float32Array; clamped: number } {
  const scales = Float32Array.from(weightScales, (w) => Math.fround(inputScale * w));
  const data = new Int32Array(values.length);
  let clamped = 0;
  for (let i = 0; i < data.length; i++) {
    const s = scales.length > 1 ? scales[i]! : scales[0]!;
    let q = roundHalfEven(values[i]! / s);
    if (q < INT32_MIN || q > INT32_MAX) {
      clamped++;
      q = q < INT32_MIN ? INT32_MIN : INT32_MAX;
    }
    data[i] = q;
  }
  return { data, scales, clamped };
}
