/** Test helpers for the calibrated pruning passes: in-memory datasets and tiny hand-built layers. */
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { AttrType, Node, type Attribute, type Model } from '../../../native-models/ir/model.ts';
import type { Batch, Dataset } from '../../evaluate/data/index.ts';
import { buildModel, floatTensor, valueInfo } from '../quantize/test-models.ts';

/** A dataset over fixed float32 samples of one input (each sample `sampleDims`), no labels. */
export function memoryDataset(input: string, sampleDims: number[], samples: Float32Array[]): Dataset {
  const per = sampleDims.reduce((a, b) => a * b, 1);
  return {
    kind: 'npy', path: 'memory', n: samples.length, synthetic: false, hasLabels: false, warnings: [],
    async *batches(batchSize: number): AsyncIterable<Batch> {
      for (let i = 0; i < samples.length; i += batchSize) {
        const count = Math.min(batchSize, samples.length - i);
        const data = new Float32Array(count * per);
        for (let s = 0; s < count; s++) data.set(samples[i + s]!, s * per);
        yield { inputs: { [input]: { dtype: 'float32', dims: [count, ...sampleDims], data } }, labels: null, count, index: i };
      }
    },
  };
}

/** x [batch, K] → MatMul W [K, N] → y; with `tokens`, x is [batch, tokens, K] as in a sequence model. */
export function matmulModel(k: number, n: number, w: Float32Array, tokens?: number): Model {
  const rows = tokens === undefined ? ['batch'] : ['batch', tokens];
  return buildModel({
    inputs: [valueInfo('x', DataType.FLOAT, [...rows, k])],
    outputs: [valueInfo('y', DataType.FLOAT, [...rows, n])],
    initializers: [floatTensor('W', [k, n], w)],
    nodes: [new Node({ name: 'fc', opType: 'MatMul', inputs: ['x', 'W'], outputs: ['y'] })],
  });
}

export const ints = (name: string, v: number[]): Attribute => ({ name, type: AttrType.INTS, value: v.map(BigInt), extra: {} });
export const int = (name: string, v: number): Attribute => ({ name, type: AttrType.INT, value: BigInt(v), extra: {} });
export const str = (name: string, v: string): Attribute => ({ name, type: AttrType.STRING, value: new TextEncoder().encode(v), extra: {} });
