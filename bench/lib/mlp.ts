/**
 * A generated MLP of MatMul+Add layers (hidden × hidden float32 weights) for benchmarks, written
 * without ever holding the whole model in memory: the weights go chunk by chunk into a scratch
 * file, the IR's tensors point into it, and our writer streams them into the model (inline, or
 * into one external data file).
 */
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { writeOnnxFile } from '../../native-models/formats/onnx/index.ts';
import { DataType } from '../../native-models/ir/dtypes.ts';
import { Model, Node, type ValueInfo } from '../../native-models/ir/model.ts';
import { Tensor } from '../../native-models/ir/tensor.ts';
import { CHUNK } from './plain-io.ts';

export interface MlpSpec {
  layers: number;
  hidden: number;
  /** Weights in `<file>.data` beside the model (else inline: the whole model must stay under 2 GiB). */
  externalData: boolean;
  /** Model file name inside the folder (default model.onnx). */
  file?: string;
  /** Seed of the weights (default 0x9e3779b9). */
  seed?: number;
}

export interface GeneratedMlp {
  path: string;
  /** The model file and, with external data, its data file. */
  files: string[];
  layers: number;
  hidden: number;
  parameters: number;
  modelBytes: number;
  externalTensors: number;
}

/** xorshift32 floats in [-0.05, 0.05): cheap, deterministic, and never NaN. */
export function fillRandom(out: Float32Array, state: { s: number }): void {
  let s = state.s;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 8) / 16777216 - 0.5) * 0.1;
  }
  state.s = s;
}

/** Bytes of one layer's weight and bias. */
export function layerBytes(hidden: number): number {
  return 4 * hidden * hidden + 4 * hidden;
}

/** Layers needed for at least `gib` GiB of weights. */
export function layersForGiB(gib: number, hidden: number): number {
  return Math.max(1, Math.ceil((gib * 2 ** 30) / layerBytes(hidden)));
}

export function generateMlp(dir: string, spec: MlpSpec): GeneratedMlp {
  const { layers, hidden } = spec;
  const file = spec.file ?? 'model.onnx';
  const scratch = join(dir, `${file}.scratch`);
  const fd = openSync(scratch, 'w');
  const chunk = new Float32Array(CHUNK / 4);
  const state = { s: spec.seed ?? 0x9e3779b9 };
  let offset = 0;
  const model = new Model();
  model.irVersion = 8;
  model.opsets = [{ domain: '', version: 17 }];
  model.producerName = 'whittle-bench';
  const g = model.graph;
  g.name = 'mlp';
  const f32 = (name: string): ValueInfo => ({ name, type: { kind: 'tensor', elemType: DataType.FLOAT, shape: [1, hidden] }, extra: {} });
  g.inputs = [f32('x')];
  const external = (name: string, dims: number[]): Tensor => {
    const length = dims.reduce((a, b) => a * b, 4);
    for (let done = 0; done < length;) {
      const n = Math.min(CHUNK, length - done);
      const view = chunk.subarray(0, n / 4);
      fillRandom(view, state);
      const bytes = new Uint8Array(view.buffer, 0, n);
      for (let off = 0; off < n;) off += writeSync(fd, bytes, off, n - off);
      done += n;
    }
    const t = new Tensor({ name, dataType: DataType.FLOAT, dims, source: { kind: 'external', path: scratch, offset, length } });
    offset += length;
    return t;
  };
  let h = 'x';
  try {
    for (let i = 0; i < layers; i++) {
      g.initializers.set(`w${i}`, external(`w${i}`, [hidden, hidden]));
      g.initializers.set(`b${i}`, external(`b${i}`, [hidden]));
      g.nodes.push(new Node({ name: `matmul${i}`, opType: 'MatMul', inputs: [h, `w${i}`], outputs: [`mm${i}`] }));
      g.nodes.push(new Node({ name: `add${i}`, opType: 'Add', inputs: [`mm${i}`, `b${i}`], outputs: [`h${i}`] }));
      h = `h${i}`;
    }
  } finally {
    closeSync(fd);
  }
  g.outputs = [f32(h)];
  const path = join(dir, file);
  try {
    const report = writeOnnxFile(model, path, { externalData: spec.externalData });
    return {
      path,
      files: report.externalDataPath ? [path, report.externalDataPath] : [path],
      layers,
      hidden,
      parameters: layers * (hidden * hidden + hidden),
      modelBytes: report.bytes + report.externalDataBytes,
      externalTensors: report.externalTensors,
    };
  } finally {
    rmSync(scratch, { force: true });
  }
}
