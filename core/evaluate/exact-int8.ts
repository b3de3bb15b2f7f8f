import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { readOnnxFile, writeOnnxFile } from '../../native-models/formats/onnx/index.ts';
import { DataType } from '../../native-models/ir/dtypes.ts';
import type { Graph, Node } from '../../native-models/ir/model.ts';
import { addFloatInitializer, intAttr, makeNode, NameAllocator } from '../passes/quantize/graph-edit.ts';

/**
 * `whittle eval --exact-int8`: an int8 model's own arithmetic, without onnxruntime's integer CPU
 * kernels — which on x86 CPUs without VNNI saturate 8-bit weights (native-models/runtimes/cpu-int8.ts).
 * With graph optimizations off a QDQ model already runs DequantizeLinear → float op → QuantizeLinear;
 * MatMulInteger and ConvInteger (dynamic quantization) are integer kernels themselves, so a copy of
 * the model computes them in float: (A − a_zp)·(B − b_zp) of the same integers, exact in float32 for
 * |sum| < 2^24 (K·255·127 for K up to 518), cast back to the int32 the graph expects. QLinearConv and
 * QLinearMatMul stored as such (onnxruntime's QOperator format) become DequantizeLinear → Conv/MatMul →
 * QuantizeLinear, with the constant weight dequantized (w − zp)·scale per channel and the int32 bias
 * times x_scale·w_scale.
 */
const INTEGER_OPS: Record<string, string> = { MatMulInteger: 'MatMul', ConvInteger: 'Conv' };
const QLINEAR_OPS: Record<string, string> = { QLinearConv: 'Conv', QLinearMatMul: 'MatMul' };

/** A constant's values as float64 (an initializer or a Constant node), or null when the input is computed. */
function constant(g: Graph, name: string | undefined): { values: Float64Array; dims: number[] } | null {
  const t = name ? g.constant(name) : null;
  if (!t) return null;
  return { values: Float64Array.from(t.typed() as ArrayLike<number>), dims: t.dims };
}

/**
 * QLinearConv (x, x_s, x_zp, w, w_s, w_zp, y_s, y_zp[, B]) or QLinearMatMul (a, a_s, a_zp, b, b_s,
 * b_zp, y_s, y_zp) with a constant weight and scales, as float ops; null when they are not constant.
 */
function floatQLinear(g: Graph, n: Node, floatOp: string, names: NameAllocator): Node[] | null {
  const [x, xs, xzp, w, ws, wzp, ys, yzp, bias] = n.inputs;
  const W = constant(g, w), Ws = constant(g, ws), Wzp = constant(g, wzp), Xs = constant(g, xs);
  if (!x || !W || !Ws || !Xs || !ys || !n.outputs[0]) return null;
  // the weight's channel axis: Conv [M, C, …] along 0, MatMul [K, N] along 1
  const channels = floatOp === 'Conv' ? W.dims[0]! : W.dims[W.dims.length - 1]!;
  const perChannel = Ws.values.length > 1;
  const inner = floatOp === 'Conv' ? W.values.length / channels : 1;
  const channelOf = (i: number) => (floatOp === 'Conv' ? Math.floor(i / inner) : i % channels);
  const wf = new Float32Array(W.values.length);
  for (let i = 0; i < wf.length; i++) {
    const c = perChannel ? channelOf(i) : 0;
    wf[i] = (W.values[i]! - (Wzp ? Wzp.values[Wzp.values.length > 1 ? c : 0]! : 0)) * Ws.values[c]!;
  }
  const base = n.name || n.outputs[0];
  const wName = names.fresh(`${base}_weight_float`);
  addFloatInitializer(g, wName, W.dims, wf);
  const inputs = [names.fresh(`${base}_input_float`), wName];
  const B = constant(g, bias);
  if (B) {
    const bName = names.fresh(`${base}_bias_float`);
    addFloatInitializer(g, bName, B.dims, Array.from(B.values, (b, c) => b * Xs.values[0]! * Ws.values[perChannel ? c : 0]!));
    inputs.push(bName);
  } else if (bias) return null;
  const y = names.fresh(`${base}_float`);
  return [
    makeNode('DequantizeLinear', [x, xs!, ...(xzp ? [xzp] : [])], [inputs[0]!], names.fresh(`${base}_dequantize`)),
    makeNode(floatOp, inputs, [y], names.fresh(`${base}_${floatOp.toLowerCase()}`), '', floatOp === 'Conv' ? n.attributes : []),
    makeNode('QuantizeLinear', [y, ys, ...(yzp ? [yzp] : [])], [n.outputs[0]], names.fresh(`${base}_quantize`)),
  ];
}

/** Rewrites MatMulInteger/ConvInteger, and QLinearConv/QLinearMatMul with constant weights, in place; returns how many. */
export function floatIntegerOps(g: Graph, names: NameAllocator): number {
  let rewritten = 0;
  const nodes: Node[] = [];
  for (const n of g.nodes) {
    const qlinear = n.domain === '' ? QLINEAR_OPS[n.opType] : undefined;
    const replaced = qlinear ? floatQLinear(g, n, qlinear, names) : null;
    if (replaced) { nodes.push(...replaced); rewritten++; continue; }
    const floatOp = n.domain === '' ? INTEGER_OPS[n.opType] : undefined;
    if (!floatOp || !n.outputs[0]) { nodes.push(n); continue; }
    const base = n.name || n.outputs[0];
    const toFloat = (input: string, zeroPoint: string | undefined, tag: string): string => {
      const cast = names.fresh(`${base}_${tag}_float`);
      nodes.push(makeNode('Cast', [input], [cast], names.fresh(`${base}_${tag}_cast`), '', [intAttr('to', DataType.FLOAT)]));
      if (!zeroPoint) return cast;
      const zp = names.fresh(`${base}_${tag}_zero_point_float`);
      nodes.push(makeNode('Cast', [zeroPoint], [zp], names.fresh(`${base}_${tag}_zero_point_cast`), '', [intAttr('to', DataType.FLOAT)]));
      const centred = names.fresh(`${base}_${tag}_centred`);
      nodes.push(makeNode('Sub', [cast, zp], [centred], names.fresh(`${base}_${tag}_sub`)));
      return centred;
    };
    const a = toFloat(n.inputs[0]!, n.inputs[2] || undefined, 'a');
    const b = toFloat(n.inputs[1]!, n.inputs[3] || undefined, 'b');
    const product = names.fresh(`${base}_float`);
    // ConvInteger's attributes are Conv's (pads, strides, dilations, group, kernel_shape)
    nodes.push(makeNode(floatOp, [a, b], [product], names.fresh(`${base}_${floatOp.toLowerCase()}`), '', floatOp === 'Conv' ? n.attributes : []));
    nodes.push(makeNode('Cast', [product], [n.outputs[0]], names.fresh(`${base}_int32`), '', [intAttr('to', DataType.INT32)]));
    rewritten++;
  }
  if (rewritten > 0) g.nodes = nodes;
  return rewritten;
}

/**
 * A copy of the model with its integer ops in float, in a temporary folder (dispose removes it), or
 * null when it has none (the model runs as it is, unoptimized).
 */
export function exactInt8Copy(path: string): { path: string; dispose: () => void } | null {
  const model = readOnnxFile(path);
  if (!model.graph.nodes.some((n) => n.domain === '' && (INTEGER_OPS[n.opType] || QLINEAR_OPS[n.opType]))) return null;
  floatIntegerOps(model.graph, new NameAllocator(model));
  const dir = mkdtempSync(join(tmpdir(), 'whittle-exact-int8-'));
  const copy = join(dir, basename(path));
  writeOnnxFile(model, copy);
  return { path: copy, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}
