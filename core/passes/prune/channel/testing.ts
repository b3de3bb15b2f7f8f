/**
 * Test helpers for channel pruning: a small model with every coupling rule (BN chain, residual Add,
 * depthwise Conv, per-channel Mul, Concat, Flatten→Gemm) and a checker that reads a written file
 * and verifies every layer's channel counts from the weights alone.
 */
import { readOnnxFile } from '../../../../native-models/formats/onnx/index.ts';
import { AttrType, Node, type Model } from '../../../../native-models/ir/model.ts';
import { DataType } from '../../../../native-models/ir/dtypes.ts';
import { Tensor } from '../../../../native-models/ir/tensor.ts';
import { buildModel, floatTensor, gaussian, valueInfo } from '../../quantize/test-models.ts';

const ints = (name: string, v: number[]) => ({ name, type: AttrType.INTS, value: v.map(BigInt), extra: {} });
const int = (name: string, v: number) => ({ name, type: AttrType.INT, value: BigInt(v), extra: {} });

export const INPUT_SHAPE = [1, 3, 16, 16];

export function couplingModel(seed = 1): Model {
  let s = seed;
  const w = (name: string, dims: number[], sigma = 0.3) => floatTensor(name, dims, gaussian(dims.reduce((a, b) => a * b, 1), s++, sigma));
  const pos = (name: string, n: number) => floatTensor(name, [n], Float32Array.from(gaussian(n, s++, 0.2), (v) => 1 + Math.abs(v)));
  const conv = (name: string, x: string, wName: string, out: string, k: number, group = 1) =>
    new Node({ name, opType: 'Conv', inputs: [x, wName, `${wName}_b`], outputs: [out], attributes: [ints('kernel_shape', [k, k]), ints('pads', k === 3 ? [1, 1, 1, 1] : [0, 0, 0, 0]), int('group', group)] });
  const initializers: Tensor[] = [
    w('w1', [16, 3, 3, 3]), w('w1_b', [16], 0.1),
    pos('bn1_scale', 16), w('bn1_bias', [16], 0.1), w('bn1_mean', [16], 0.1), pos('bn1_var', 16),
    w('w2', [16, 16, 1, 1]), w('w2_b', [16], 0.1),
    w('wdw', [16, 1, 3, 3]), w('wdw_b', [16], 0.1),
    w('w3', [24, 16, 1, 1]), w('w3_b', [24], 0.1), pos('mul3', 24),
    w('w4', [16, 16, 3, 3]), w('w4_b', [16], 0.1),
    w('w5', [16, 40, 1, 1]), w('w5_b', [16], 0.1),
    w('wfc', [10, 16 * 8 * 8], 0.05), w('wfc_b', [10], 0.1),
  ];
  // the per-channel Mul constant is [24, 1, 1] (broadcast against [N, 24, H, W])
  const mul3 = initializers.find((t) => t.name === 'mul3')!;
  mul3.dims = [24, 1, 1];
  const nodes = [
    conv('conv1', 'x', 'w1', 'c1', 3),
    new Node({ name: 'bn1', opType: 'BatchNormalization', inputs: ['c1', 'bn1_scale', 'bn1_bias', 'bn1_mean', 'bn1_var'], outputs: ['b1'] }),
    new Node({ name: 'relu1', opType: 'Relu', inputs: ['b1'], outputs: ['a'] }),
    conv('conv2', 'a', 'w2', 'c2', 1),
    new Node({ name: 'residual', opType: 'Add', inputs: ['a', 'c2'], outputs: ['s'] }),
    conv('dw', 's', 'wdw', 'd0', 3, 16),
    new Node({ name: 'relu_dw', opType: 'Relu', inputs: ['d0'], outputs: ['d'] }),
    conv('conv3', 'd', 'w3', 'c3', 1),
    new Node({ name: 'mul3', opType: 'Mul', inputs: ['c3', 'mul3'], outputs: ['e'] }),
    conv('conv4', 'd', 'w4', 'f', 3),
    new Node({ name: 'cat', opType: 'Concat', inputs: ['e', 'f'], outputs: ['g0'], attributes: [int('axis', 1)] }),
    new Node({ name: 'pool', opType: 'MaxPool', inputs: ['g0'], outputs: ['g'], attributes: [ints('kernel_shape', [2, 2]), ints('strides', [2, 2])] }),
    conv('conv5', 'g', 'w5', 'h0', 1),
    new Node({ name: 'relu5', opType: 'Relu', inputs: ['h0'], outputs: ['h'] }),
    new Node({ name: 'flat', opType: 'Flatten', inputs: ['h'], outputs: ['hf'], attributes: [int('axis', 1)] }),
    new Node({ name: 'fc', opType: 'Gemm', inputs: ['hf', 'wfc', 'wfc_b'], outputs: ['y'], attributes: [int('transB', 1)] }),
  ];
  return buildModel({
    inputs: [valueInfo('x', DataType.FLOAT, INPUT_SHAPE)],
    outputs: [valueInfo('y', DataType.FLOAT, [1, 10])],
    nodes,
    initializers,
  });
}

/**
 * Reads the file back and follows channel counts from the graph input through Conv, BN, Gemm,
 * element-wise ops, pools, Concat, Flatten: any mismatch between a weight and the channels it
 * reads is returned as a message. Independent of the pruning code.
 */
export function channelMismatches(path: string, inputChannels: Record<string, number>, spatial: Record<string, number> = {}): string[] {
  const model = readOnnxFile(path);
  const g = model.graph;
  const ch = new Map<string, number>(Object.entries(inputChannels));
  const hw = new Map<string, number>(Object.entries(spatial));
  const problems: string[] = [];
  const dims = (name: string | undefined) => (name ? g.constant(name)?.dims : undefined);
  for (const n of g.topologicalOrder()) {
    const c = ch.get(n.inputs[0] ?? '');
    const label = n.label;
    const expect = (what: string, got: number | undefined, want: number | undefined) => { if (got !== want) problems.push(`${label}: ${what} ${got} ≠ ${want}`); };
    switch (n.opType) {
      case 'Conv': {
        const w = dims(n.inputs[1])!;
        expect('weight in·group vs input channels', w[1]! * n.attrInt('group', 1), c);
        if (n.inputs[2]) expect('bias', dims(n.inputs[2])?.[0], w[0]);
        ch.set(n.outputs[0]!, w[0]!);
        break;
      }
      case 'BatchNormalization':
        for (const i of [1, 2, 3, 4]) expect(`param ${i}`, dims(n.inputs[i])?.[0], c);
        ch.set(n.outputs[0]!, c!);
        break;
      case 'Gemm': {
        const w = dims(n.inputs[1])!;
        const k = n.attrInt('transB', 0) ? w[1] : w[0];
        expect('weight K vs features', k, c! * (hw.get(n.inputs[0]!) ?? 1));
        ch.set(n.outputs[0]!, n.attrInt('transB', 0) ? w[0]! : w[1]!);
        break;
      }
      case 'Concat': ch.set(n.outputs[0]!, n.inputs.reduce((a, i) => a + (ch.get(i) ?? NaN), 0)); break;
      case 'Add': case 'Mul': {
        const cs = n.inputs.map((i) => ch.get(i) ?? (dims(i)?.length === 3 ? dims(i)![0] : undefined)).filter((x) => x !== undefined && x !== 1);
        if (new Set(cs).size > 1) problems.push(`${label}: operands have ${cs.join(' vs ')} channels`);
        ch.set(n.outputs[0]!, cs[0]!);
        break;
      }
      case 'Flatten': ch.set(n.outputs[0]!, c!); hw.set(n.outputs[0]!, hw.get(n.inputs[0]!) ?? 1); break;
      default: if (c !== undefined) { ch.set(n.outputs[0]!, c); if (hw.has(n.inputs[0]!)) hw.set(n.outputs[0]!, hw.get(n.inputs[0]!)!); }
    }
  }
  return problems;
}

/** Zeroes output channel `k` of a group by hand: its convs' rows and biases, BN γ and β, the depthwise bias. */
export function zeroChannel(model: Model, k: number, rows: { tensor: string; axis: 0 }[]): void {
  for (const { tensor } of rows) {
    const t = model.graph.initializers.get(tensor)!;
    const data = t.toFloat32();
    const inner = t.elementCount / t.dims[0]!;
    data.fill(0, k * inner, (k + 1) * inner);
    t.setData(data);
  }
}
