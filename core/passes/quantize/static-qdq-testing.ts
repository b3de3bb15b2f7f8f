/**
 * Checks the static QDQ tests share: is a written QDQ graph well formed, and what did onnxruntime
 * leave unfused in the graph it optimized from it.
 */
import assert from 'node:assert/strict';
import { readOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import type { Model } from '../../../native-models/ir/model.ts';
import { createSession } from '../../../native-models/runtimes/onnxruntime.ts';

/**
 * What would make a QDQ graph wrong or unfusable: a QuantizeLinear output read by anything but a
 * DequantizeLinear (a quantized tensor reaching a float op), a graph output written by a
 * QuantizeLinear, a read of a name nothing defines, or a node before the producer of its input.
 */
export function qdqProblems(model: Model): string[] {
  const g = model.graph;
  const problems: string[] = [];
  const defined = new Set<string>([...g.inputs.map((v) => v.name), ...g.initializers.keys()]);
  const quantized = new Set<string>();
  for (const n of g.nodes) {
    for (const i of n.inputs) {
      if (!i) continue;
      if (!defined.has(i)) problems.push(`${n.label} reads ${i} before anything defines it`);
      if (quantized.has(i) && n.opType !== 'DequantizeLinear') problems.push(`${n.label} (${n.opType}) reads quantized ${i} without a DequantizeLinear`);
    }
    for (const o of n.outputs) if (o) defined.add(o);
    if (n.opType === 'QuantizeLinear') quantized.add(n.outputs[0]!);
  }
  for (const o of g.outputs) if (quantized.has(o.name)) problems.push(`graph output ${o.name} is quantized`);
  return problems;
}

/** Ops onnxruntime's CPU EP runs on quantized data once fused (or with the Q/DQ dropped around them). */
const FUSED_OPS = new Set(['Conv', 'MatMul', 'Gemm', 'Add', 'Mul', 'Concat', 'AveragePool', 'GlobalAveragePool', 'Sigmoid', 'LeakyRelu', 'MaxPool', 'Relu', 'Clip', 'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Gather', 'Slice', 'Split', 'DepthToSpace']);

/** Ops the planner leaves float at the tail on purpose when nothing quantized reads their output (static-qdq-plan.ts). */
const FLOAT_TAIL_OK = new Set(['Concat', 'AveragePool', 'GlobalAveragePool', 'Sigmoid', 'LeakyRelu', 'MaxPool', 'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Gather', 'Slice', 'Split', 'DepthToSpace', 'Resize']);

/**
 * In onnxruntime's optimized graph: DequantizeLinear → QuantizeLinear pairs (a requantization
 * nobody needed) and float ops with a fused form still reading a DequantizeLinear output — except a
 * pooling or shape op whose output no QuantizeLinear reads: the float tail before a Softmax or a
 * graph output, left float on purpose.
 */
export function unfusedIslands(optimized: Model, allowFloat: ReadonlySet<string> = new Set()): string[] {
  const g = optimized.graph;
  const producers = g.producers();
  const consumers = g.consumers();
  const islands: string[] = [];
  for (const n of g.nodes) {
    const fromDq = n.inputs.filter((i) => i && producers.get(i)?.opType === 'DequantizeLinear' && producers.get(i)?.domain === '');
    if (fromDq.length === 0) continue;
    if (n.opType === 'QuantizeLinear') islands.push(`DequantizeLinear → QuantizeLinear at ${n.inputs[0]}`);
    else if (n.domain === '' && FLOAT_TAIL_OK.has(n.opType) && !(consumers.get(n.outputs[0]!) ?? []).some((c) => c.opType === 'QuantizeLinear')) continue;
    else if (n.domain === '' && FUSED_OPS.has(n.opType) && !allowFloat.has(n.name)) islands.push(`${n.opType} ${n.label} runs float on ${fromDq.join(', ')}`);
  }
  return islands;
}

export function opHistogram(model: Model): Record<string, number> {
  const h: Record<string, number> = {};
  for (const n of model.graph.nodes) {
    const key = n.domain ? `${n.domain}.${n.opType}` : n.opType;
    h[key] = (h[key] ?? 0) + 1;
  }
  return h;
}

/** The graph onnxruntime's CPU EP actually runs (all optimizations), read back from the file it wrote. */
export async function optimizedModel(path: string): Promise<Model> {
  const opt = `${path}.optimized.onnx`;
  const { session } = await createSession(path, { ep: 'cpu', graphOptimizationLevel: 'all', optimizedModelFilePath: opt });
  await session.release();
  return readOnnxFile(opt);
}

/**
 * A static int8 MNIST as onnxruntime's CPU EP runs it is fully integer: both Convs QLinearConv, the
 * MatMul with its bias Add (folded into a Gemm) a QGemm, no float op on dequantized values, and only
 * the graph input quantized at run time. Returns the optimized graph's op histogram.
 */
export async function assertMnistFullyFused(path: string): Promise<Record<string, number>> {
  const opt = await optimizedModel(path);
  const h = opHistogram(opt);
  assert.equal(h['com.microsoft.QLinearConv'], 2, JSON.stringify(h));
  assert.equal(h['com.microsoft.QGemm'], 1, JSON.stringify(h));
  for (const float of ['Conv', 'MatMul', 'Gemm', 'Add', 'Relu', 'MaxPool', 'DequantizeLinear', 'BatchNormalization']) assert.equal(h[float], undefined, `${float} left: ${JSON.stringify(h)}`);
  assert.equal(h['QuantizeLinear'], 1, 'only the graph input is quantized at run time');
  assert.deepEqual(unfusedIslands(opt), []);
  return h;
}
