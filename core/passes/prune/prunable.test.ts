import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WhittleError } from '../../../api/errors.ts';
import { readOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { AttrType, Node } from '../../../native-models/ir/model.ts';
import { Tensor } from '../../../native-models/ir/tensor.ts';
import { fixture } from '../../testing/fixtures.ts';
import { buildModel, floatTensor, gaussian, valueInfo } from '../quantize/test-models.ts';
import { prunableWeights, requirePrunable, writeFloat32 } from './prunable.ts';

const perm = (p: number[]) => ({ name: 'perm', type: AttrType.INTS, value: p.map(BigInt), extra: {} });

/** x[B,6] → MatMul(Transpose(WT [4,6])) → Gemm(transB, G [3,4]) → MatMul(Reshape(R [3,1,2] → [3,2])) → y[B,2] */
function chain() {
  return buildModel({
    inputs: [valueInfo('x', DataType.FLOAT, ['b', 6])],
    outputs: [valueInfo('y', DataType.FLOAT, ['b', 2])],
    initializers: [
      floatTensor('WT', [4, 6], gaussian(24, 1)), floatTensor('G', [3, 4], gaussian(12, 2)), floatTensor('R', [3, 1, 2], gaussian(6, 3)),
      Tensor.fromTypedArray('shape', DataType.INT64, [2], BigInt64Array.from([3n, -1n])),
    ],
    nodes: [
      new Node({ name: 't', opType: 'Transpose', inputs: ['WT'], outputs: ['W'], attributes: [perm([1, 0])] }),
      new Node({ name: 'fc0', opType: 'MatMul', inputs: ['x', 'W'], outputs: ['h0'] }),
      new Node({ name: 'fc1', opType: 'Gemm', inputs: ['h0', 'G'], outputs: ['h1'], attributes: [{ name: 'transB', type: AttrType.INT, value: 1n, extra: {} }] }),
      new Node({ name: 'r', opType: 'Reshape', inputs: ['R', 'shape'], outputs: ['R2'] }),
      new Node({ name: 'fc2', opType: 'MatMul', inputs: ['h1', 'R2'], outputs: ['y'] }),
    ],
  });
}

describe('prunableWeights', () => {
  it('follows Transpose and Reshape to the stored tensor and maps the op’s element order onto it', () => {
    const { layers, skipped } = prunableWeights(chain());
    assert.deepEqual(skipped, []);
    assert.deepEqual(layers.map((l) => [l.node.name, l.weightName, l.shape, l.outAxis, l.inAxis, l.via]), [
      ['fc0', 'WT', [6, 4], 1, 0, ['Transpose']],
      ['fc1', 'G', [3, 4], 0, 1, []],
      ['fc2', 'R', [3, 2], 1, 0, ['Reshape']],
    ]);
    const t = layers[0]!;
    // W[k][n] = WT[n][k]
    for (let k = 0; k < 6; k++) for (let n = 0; n < 4; n++) assert.equal(t.storedIndex![k * 4 + n], n * 6 + k);
    assert.equal(layers[1]!.storedIndex, null);
    assert.equal(layers[2]!.storedIndex, null);
  });

  it('applies exclusions, the minimum size and first/last protection, naming each layer', () => {
    const m = chain();
    assert.deepEqual(prunableWeights(m, { protectFirstLast: true }).layers.map((l) => l.node.name), ['fc1']);
    const s = prunableWeights(m, { exclude: ['fc1'], minParameters: 7 });
    assert.deepEqual(s.layers.map((l) => l.node.name), ['fc0']);
    assert.deepEqual(s.skipped.map((x) => [x.node, x.reason]), [['fc1', 'excluded'], ['fc2', 'too-small']]);
    assert.throws(() => requirePrunable(prunableWeights(m, { exclude: ['MatMul', 'Gemm'] }), 'p'), (e: WhittleError) => e.code === 'BAD_USAGE' && /fc0: excluded/.test(e.message));
  });

  it('finds all 26 SqueezeNet convolutions; a quantized model has nothing prunable (BAD_INPUT)', () => {
    assert.equal(prunableWeights(readOnnxFile(fixture('squeezenet', 'squeezenet1.0_fp32.onnx'))).layers.length, 26);
    const q = prunableWeights(readOnnxFile(fixture('shufflenet-int8', 'shufflenet-v2-12-int8.onnx')));
    assert.throws(() => requirePrunable(q, 'prune'), (e: WhittleError) => e.code === 'BAD_INPUT' && /no prunable weight/.test(e.message));
  });

  it('writeFloat32 keeps each float dtype', () => {
    for (const dt of [DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE]) {
      const t = new Tensor({ name: 'w', dataType: dt, dims: [3], source: { kind: 'inline', bytes: new Uint8Array(dt === DataType.DOUBLE ? 24 : dt === DataType.FLOAT ? 12 : 6) } });
      writeFloat32(t, Float32Array.from([1.5, -2, 0]));
      assert.equal(t.dataType, dt);
      assert.deepEqual(Array.from(t.toFloat32()), [1.5, -2, 0]);
    }
  });
});
