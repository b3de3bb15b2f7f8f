import { basename } from 'node:path';
import type { Model } from './model.ts';

/**
 * Ops that compute on quantized values or hold quantized weights: onnxruntime's QOperator format
 * (QLinear*), dynamic quantization (MatMulInteger, ConvInteger, their fused forms), weight-only
 * blocks (MatMulNBits, GatherBlockQuantized) and the QDQ format's Q/DQ pairs. A model with any of
 * them was quantized already; quantizing or pruning it again works on what is left in float only.
 */
const QUANTIZED_OPS = new Set([
  'QLinearConv', 'QLinearMatMul', 'QLinearAdd', 'QLinearMul', 'QLinearConcat', 'QLinearGlobalAveragePool',
  'QLinearAveragePool', 'QLinearSigmoid', 'QLinearLeakyRelu', 'QLinearSoftmax', 'QLinearReduceMean', 'QLinearWhere',
  'QGemm', 'QAttention', 'MatMulInteger', 'ConvInteger', 'DynamicQuantizeLinear', 'DynamicQuantizeMatMul',
  'MatMulIntegerToFloat', 'MatMulNBits', 'GatherBlockQuantized', 'QuantizeLinear', 'DequantizeLinear',
]);

/** How many of each quantized op the model's graphs hold, most first (empty: a float model). */
export function quantizedOpCounts(model: Model): [string, number][] {
  const counts = new Map<string, number>();
  for (const g of model.graphs()) {
    for (const n of g.nodes) if (QUANTIZED_OPS.has(n.opType)) counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

/**
 * "squeezenet-int8.onnx is already quantized (56 QLinearConv, 16 QLinearConcat, …)", or null for a
 * model with no quantized op, or none but those in `except` (ops a step is meant to follow, as fp16
 * follows int4's MatMulNBits). `path` names the file (the model's own path when not given).
 */
export function alreadyQuantized(model: Model, path = model.path, { except = new Set<string>() }: { except?: ReadonlySet<string> } = {}): string | null {
  const counts = quantizedOpCounts(model);
  if (counts.length === 0 || counts.every(([op]) => except.has(op))) return null;
  const shown = counts.slice(0, 4).map(([op, n]) => `${n} ${op}`);
  return `${path ? basename(path) : 'the model'} is already quantized (${shown.join(', ')}${counts.length > 4 ? ', …' : ''})`;
}
