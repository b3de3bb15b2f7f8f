/**
 * Helpers for the quantization pass tests: small models built with the IR, runs in onnxruntime,
 * and the optimized graph onnxruntime makes of a file (to see which fusions fired).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { readOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { Graph, Model, Node, type Dim, type ValueInfo } from '../../../native-models/ir/model.ts';
import { seededRandom } from '../../../native-models/ir/random.ts';
import { Tensor } from '../../../native-models/ir/tensor.ts';

// "Initializer appears in graph inputs" and "serializing an NCHWc-optimized model" are expected here
ort.env.logLevel = 'error';

export function tempDir(label: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `whittle-${label}-`));
  mkdirSync(dir, { recursive: true });
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function valueInfo(name: string, elemType: number, shape: Dim[]): ValueInfo {
  return { name, type: { kind: 'tensor', elemType, shape }, extra: {} };
}

export function buildModel(init: { opset?: number; irVersion?: number; inputs: ValueInfo[]; outputs: ValueInfo[]; nodes: Node[]; initializers?: Tensor[] }): Model {
  const m = new Model();
  m.irVersion = init.irVersion ?? 8;
  m.opsets = [{ domain: '', version: init.opset ?? 13 }];
  m.producerName = 'whittle-test';
  const g = new Graph();
  g.name = 'test';
  g.inputs = init.inputs;
  g.outputs = init.outputs;
  g.nodes = init.nodes;
  for (const t of init.initializers ?? []) g.initializers.set(t.name, t);
  m.graph = g;
  return m;
}

/** Normal(0, sigma) values from a seeded generator (Box–Muller). */
export function gaussian(n: number, seed: number, sigma = 1): Float32Array {
  const rand = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = sigma * Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  return out;
}

export function floatTensor(name: string, dims: number[], values: Float32Array): Tensor {
  return Tensor.fromTypedArray(name, DataType.FLOAT, dims, values);
}

export async function runFloat(path: string, feeds: Record<string, { data: Float32Array; dims: number[] }>, output?: string): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(path, { executionProviders: ['cpu'] });
  try {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = new ort.Tensor('float32', v.data, v.dims);
    const out = await session.run(ortFeeds);
    return out[output ?? session.outputNames[0]!]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** Op types (domain-qualified for contrib ops) of the graph onnxruntime runs after all optimizations. */
export async function optimizedOps(path: string): Promise<string[]> {
  const opt = `${path}.optimized.onnx`;
  const session = await ort.InferenceSession.create(path, { executionProviders: ['cpu'], graphOptimizationLevel: 'all', optimizedModelFilePath: opt });
  await session.release();
  return readOnnxFile(opt).graph.nodes.map((n) => (n.domain ? `${n.domain}.${n.opType}` : n.opType));
}

/** Output signal-to-quantization-noise ratio in dB. */
export function sqnrDb(reference: ArrayLike<number>, test: ArrayLike<number>): number {
  let s = 0;
  let e = 0;
  for (let i = 0; i < reference.length; i++) {
    s += reference[i]! ** 2;
    e += (reference[i]! - test[i]!) ** 2;
  }
  return 10 * Math.log10(s / e);
}

export function fileBytes(path: string): Buffer {
  return readFileSync(path);
}
