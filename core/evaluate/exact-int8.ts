import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { readOnnxFile, writeOnnxFile } from '../../native-models/formats/onnx/index.ts';
import { DataType } from '../../native-models/ir/dtypes.ts';
import type { Graph, Node } from '../../native-models/ir/model.ts';
import { intAttr, makeNode, NameAllocator } from '../passes/quantize/graph-edit.ts';

/**
 * `whittle eval --exact-int8`: an int8 model's own arithmetic, without onnxruntime's integer CPU
 * kernels — which on x86 CPUs without VNNI saturate 8-bit weights (native-models/runtimes/cpu-int8.ts).
 * With graph optimizations off a QDQ model already runs DequantizeLinear → float op → QuantizeLinear;
 * MatMulInteger and ConvInteger (dynamic quantization) are integer kernels themselves, so a copy of
 * the model computes them in float: (A − a_zp)·(B − b_zp) of the same integers, exact in float32 for
 * |sum| < 2^24 (K·255·127 for K up to 518), cast back to the int32 the graph expects.
 */
const INTEGER_OPS: Record<string, string> = { MatMulInteger: 'MatMul', ConvInteger: 'Conv' };

/** Rewrites MatMulInteger/ConvInteger in place; returns how many. */
export function floatIntegerOps(g: Graph, names: NameAllocator): number {
  let rewritten = 0;
  const nodes: Node[] = [];
  for (const n of g.nodes) {
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
  if (!model.graph.nodes.some((n) => n.domain === '' && INTEGER_OPS[n.opType])) return null;
  floatIntegerOps(model.graph, new NameAllocator(model));
  const dir = mkdtempSync(join(tmpdir(), 'whittle-exact-int8-'));
  const copy = join(dir, basename(path));
  writeOnnxFile(model, copy);
  return { path: copy, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}
