import { closeSync, openSync } from 'node:fs';
import { DataType, floatToHalf } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Model, Node } from '../../../native-models/ir/model.ts';
import { AttrType } from '../../../native-models/ir/model.ts';
import { Tensor } from '../../../native-models/ir/tensor.ts';
import { createPassContext, tensorBytes, type Pass, type PassContext, type PassReport } from '../pass.ts';
import { ElemTypes } from './elem-types.ts';
import { float32Pieces, float32Range } from './constant-weight.ts';
import { castNode, intAttr, isExcluded, NameAllocator } from './graph-edit.ts';
import { toHalfClampedSimd, type HalfClamp } from './fp16-simd.ts';

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
 * Ops from other domains (com.microsoft, ai.onnx.ml) are kept fp32: their type constraints are not
 * known here — except FP16_CONTRIB_OPS, whose float inputs and output all share one type (T1).
 * Everything else relies on onnxruntime, which casts around a node by itself where its CPU EP lacks
 * an fp16 kernel.
 */
export const DEFAULT_FP16_BLOCK_LIST: readonly string[] = [
  'Resize', 'Upsample', 'QuantizeLinear', 'DequantizeLinear', 'DynamicQuantizeLinear', 'Range', 'CumSum',
  // ONNX's own integer ops take float32 scales only (an already-quantized model's QLinearConv)
  'QLinearConv', 'QLinearMatMul', 'ConvInteger', 'MatMulInteger',
  'ReduceSumSquare', 'ReduceL2', 'ReduceLogSumExp', 'ReduceProd', 'TopK', 'NonMaxSuppression', 'RoiAlign',
];

/**
 * com.microsoft ops converted with the graph: every float input and the output of MatMulNBits
 * (A, scales, bias → Y) and GatherBlockQuantized (scales → output) are one type T1, float or
 * float16, and onnxruntime 1.30 runs both in float16 on the CPU EP (checked: the int4 character
 * transformer, MatMulNBits and its embedding table, gives the same perplexity with no Cast). int4
 * weights with float16 activations is how language models are usually shipped for GPUs; kept fp32,
 * each of these nodes would sit between two Casts.
 */
export const FP16_CONTRIB_OPS: ReadonlySet<string> = new Set(['MatMulNBits', 'GatherBlockQuantized']);

export const FP16_MIN_MAGNITUDE = 1e-7;
export const FP16_MAX_MAGNITUDE = 1e4;
const F32 = DataType.FLOAT;
const F16 = DataType.FLOAT16;
type Prec = 'f16' | 'f32';
const CONTROL_FLOW = new Set(['If', 'Loop', 'Scan']);
/** Ops whose `dtype` attribute picks a float output type. */
const DTYPE_OPS = new Set(['RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'EyeLike', 'Bernoulli']);

interface ClampStats { low: number; high: number; nan: number; tensors: string[]; converted: number; nanTensors?: string[] }

/** float32 values → float16 bits, clamping magnitudes into [1e-7, 1e4] (zero stays zero, NaN stays NaN). */
export function toHalfClamped(values: Float32Array, stats?: ClampStats, name?: string): Uint16Array {
  const out = new Uint16Array(values.length);
  const counts = toHalfClampedInto(values, out, 0);
  if (stats) addCounts(stats, counts, name);
  return out;
}

function addCounts(stats: ClampStats, counts: { low: number; high: number; nan: number }, name?: string): void {
  if (!(counts.low || counts.high || counts.nan)) return;
  stats.low += counts.low;
  stats.high += counts.high;
  stats.nan += counts.nan;
  if (name) stats.tensors.push(name);
  if (name && counts.nan) (stats.nanTensors ??= []).push(name);
}

const bits32 = new Uint32Array(Float32Array.of(FP16_MAX_MAGNITUDE, FP16_MIN_MAGNITUDE).buffer);
/** |v| > 1e4 ⇔ its bits (sign cleared) exceed these (1e4 is exact in float32). */
const HIGH_BITS = bits32[0]!;
/** 0 < |v| < 1e-7 ⇔ 0 < its bits < LOW_BITS (1e-7 is not exact: fround rounds it one way or the other). */
const LOW_BITS = Math.fround(FP16_MIN_MAGNITUDE) >= FP16_MIN_MAGNITUDE ? bits32[1]! : bits32[1]! + 1;
const HIGH_HALF = floatToHalf(FP16_MAX_MAGNITUDE);
const LOW_HALF = floatToHalf(FP16_MIN_MAGNITUDE);

/** Adding and subtracting 1.5·2^52 rounds a double to an integer, ties to even (|x| < 2^51). */
const RNE = 6755399441055744;
/** float32 bits of 2^-14, the smallest normal float16. */
const HALF_NORMAL_BITS = 0x38800000;

/**
 * toHalfClamped into out[at…], working on the float32 bits: what floatToHalf does (round to
 * nearest even), without a round trip through a number per element — this loop is the fp16 pass.
 * Normal halves: rebias the exponent and round at bit 13 by adding 0xfff plus the kept lsb (a carry
 * runs into the exponent as it should). Subnormal halves are multiples of 2^-24: |v|·2^24 rounded.
 */
export function toHalfClampedScalar(values: Float32Array, out: Uint16Array, at: number): { low: number; high: number; nan: number } {
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  let low = 0;
  let high = 0;
  let nan = 0;
  for (let i = 0; i < u.length; i++) {
    const x = u[i]!;
    const abs = x & 0x7fffffff;
    const sign = (x >>> 16) & 0x8000;
    if (abs > HIGH_BITS) {
      if (abs > 0x7f800000) { nan++; out[at + i] = 0x7e00; } else { high++; out[at + i] = sign | HIGH_HALF; }
    } else if (abs >= HALF_NORMAL_BITS) {
      out[at + i] = sign | ((abs - 0x38000000 + 0xfff + ((abs >>> 13) & 1)) >>> 13);
    } else if (abs < LOW_BITS) {
      if (abs !== 0) low++;
      out[at + i] = abs === 0 ? sign : sign | LOW_HALF;
    } else {
      out[at + i] = sign | (Math.abs(values[i]!) * 16777216 + RNE - RNE);
    }
  }
  return { low, high, nan };
}

const CLAMP: HalfClamp = { lowBits: LOW_BITS, lowHalf: LOW_HALF, highBits: HIGH_BITS, highHalf: HIGH_HALF };

/** toHalfClampedScalar's bits and counts, on WebAssembly SIMD where the engine has it (fp16-simd.ts). */
export function toHalfClampedInto(values: Float32Array, out: Uint16Array, at: number): { low: number; high: number; nan: number } {
  const simd = values.length >= 64 ? toHalfClampedSimd(values, out, at, CLAMP) : null;
  if (!simd) return toHalfClampedScalar(values, out, at);
  if (simd.n === values.length) return { low: simd.low, high: simd.high, nan: simd.nan };
  const rest = toHalfClampedScalar(values.subarray(simd.n), out, at + simd.n);
  return { low: simd.low + rest.low, high: simd.high + rest.high, nan: simd.nan + rest.nan };
}

/** Elements per piece when a tensor is converted in pieces (1 MiB of float32: still in the cache when converted). */
const PIECE_ELEMENTS = 1 << 18;

/** A tensor this big or bigger is converted while the writer streams it, not held converted. */
const COMPUTED_MIN_ELEMENTS = 1 << 16;

/** One buffer of float32 values for every computed tensor's pieces (fills run one at a time, each to its end). */
let fillScratch: Float32Array | null = null;

/**
 * float32 → float16 in place, read in pieces through `scratch` (no float32 copy of the whole tensor).
 * A big stored tensor is only counted here (the clamp warnings need the counts now) through a
 * reused float16 buffer, and converted again while the writer streams it (see ComputedSource): the
 * float16 copy is never held, which saves a page fault per 4 KiB of it.
 */
function convertTensor(t: Tensor, stats: ClampStats, scratch: Float32Array, halves: Uint16Array): void {
  stats.converted++;
  const source = t.source;
  if (t.dataType === F32 && (source.kind === 'inline' || source.kind === 'external') && t.elementCount >= COMPUTED_MIN_ELEMENTS) {
    const counts = { low: 0, high: 0, nan: 0 };
    for (const { values } of float32Pieces(t, scratch)) {
      // an inline tensor comes as one piece, longer than the buffer: counted a buffer at a time
      for (let from = 0; from < values.length; from += halves.length) {
        const c = toHalfClampedInto(values.subarray(from, from + halves.length), halves, 0);
        counts.low += c.low;
        counts.high += c.high;
        counts.nan += c.nan;
      }
    }
    addCounts(stats, counts, t.name);
    const elements = t.elementCount;
    t.dataType = F16;
    t.modified = true;
    t.source = {
      kind: 'computed',
      length: elements * 2,
      fill(into: Uint8Array, byteOffset: number): void {
        if (byteOffset % 2 !== 0 || into.length % 2 !== 0 || into.byteOffset % 2 !== 0) {
          // not on element boundaries (no caller asks so): whole elements around it, then the part asked for
          const from = byteOffset - (byteOffset % 2);
          const whole = new Uint8Array(Math.ceil((byteOffset + into.length - from) / 2) * 2);
          this.fill(whole, from);
          into.set(whole.subarray(byteOffset - from, byteOffset - from + into.length));
          return;
        }
        const values = (fillScratch ??= new Float32Array(PIECE_ELEMENTS));
        const out = new Uint16Array(into.buffer, into.byteOffset, into.length / 2);
        const fd = source.kind === 'external' ? openSync(source.path, 'r') : null;
        try {
          for (let done = 0; done < out.length;) {
            const count = Math.min(values.length, out.length - done);
            toHalfClampedInto(float32Range(source, fd, byteOffset / 2 + done, count, values), out, done);
            done += count;
          }
        } finally {
          if (fd !== null) closeSync(fd);
        }
      },
    };
    return;
  }
  const out = new Uint16Array(t.elementCount);
  const counts = { low: 0, high: 0, nan: 0 };
  for (const { values, offset } of float32Pieces(t, scratch)) {
    const c = toHalfClampedInto(values, out, offset);
    counts.low += c.low;
    counts.high += c.high;
    counts.nan += c.nan;
  }
  addCounts(stats, counts, t.name);
  t.setData(out, { dataType: F16 });
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
    // one reused buffer for reading tensors in pieces, for this run only (see float32Pieces)
    const scratch = new Float32Array(PIECE_ELEMENTS);
    const halves = new Uint16Array(PIECE_ELEMENTS);
    const excluded: string[] = [];
    let nodesChanged = 0;

    const blocked = (n: Node): boolean => {
      if (CONTROL_FLOW.has(n.opType) && (n.domain === '' || n.domain === 'ai.onnx')) return false;
      const ownDomain = n.domain === '' || n.domain === 'ai.onnx' || (n.domain === 'com.microsoft' && FP16_CONTRIB_OPS.has(n.opType));
      return !ownDomain || blockList.has(n.opType) || isExcluded(n, options.exclude);
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
        if (P.get(name) === 'f16') convertTensor(t, stats, scratch, halves);
      }
      for (const s of g.sparseInitializers) {
        if (s.values.dataType !== F32) continue;
        P.set(s.values.name, constantPrec(s.values.name));
        if (P.get(s.values.name) === 'f16') convertTensor(s.values, stats, scratch, halves);
      }
      for (const n of g.nodes) {
        if (n.opType === 'Constant' && n.domain === '') {
          const out = n.outputs[0]!;
          if (types.of(g, out) !== F32) continue;
          const p = constantPrec(out);
          P.set(out, p === 'f16' && convertConstant(n, stats, scratch, halves) ? 'f16' : 'f32');
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
    if (stats.nan) {
      const where = stats.nanTensors ?? [];
      warn(`fp16: ${stats.nan} stored value(s) are NaN in ${where.slice(0, 5).join(', ')}${where.length > 5 ? ` and ${where.length - 5} more tensors` : ''}; they stay NaN, as the fp32 model has them (fix the model: the nodes that read them compute NaN)`);
    }
    if (stats.converted === 0 && nodesChanged === 0) warn('fp16: nothing was converted: the model has no float32 weights or values (is it float16 already?); the model is written unchanged');
    return {
      pass: this.name, nodesChanged, bytesBefore, bytesAfter: tensorBytes(model), excluded, warnings,
      details: { tensorsConverted: stats.converted, keepIoTypes: keepIo, blockList: [...blockList], clampedBelow: stats.low, clampedAbove: stats.high },
    };
  },
};

/** A Constant's float32 value to float16; false when it carries something we leave alone (sparse). */
function convertConstant(n: Node, stats: ClampStats, scratch: Float32Array, halves: Uint16Array): boolean {
  const value = n.attr('value')?.value;
  if (value instanceof Tensor) {
    convertTensor(value, stats, scratch, halves);
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
