import { DataType } from '../../native-models/ir/dtypes.ts';
import { AttrType, Graph, Model, Node, type Attribute, type ValueInfo } from '../../native-models/ir/model.ts';
import { seededGaussian } from '../../native-models/ir/random.ts';
import { Tensor } from '../../native-models/ir/tensor.ts';

/**
 * A ResNet-50-shaped ONNX model with seeded random weights (He, BatchNorm folded into the conv
 * biases as inference graphs have it): conv 7×7/2, max pool, bottleneck stages [3, 4, 6, 3] of
 * widths 64–2048, global average pool, a 1000-way Gemm; 25.5 M parameters, input [batch, 3, 224,
 * 224]. Used to time onnxruntime's CPU and WebGPU execution providers on a model of the real size
 * without carrying 100 MB of weights to the GPU machine. `scale` < 1 narrows every layer and
 * `blocks` shortens the stages (the smoke run of the device check).
 */
export function resnet50Model(opts: { scale?: number; blocks?: number[]; size?: number; seed?: number } = {}): Model {
  const scale = opts.scale ?? 1;
  const blocks = opts.blocks ?? [3, 4, 6, 3];
  const size = opts.size ?? 224;
  let seed = opts.seed ?? 50;
  const w = (c: number) => Math.max(4, Math.round(c * scale));
  const g = new Graph();
  g.name = 'resnet50_random';
  const nodes: Node[] = [];
  const ints = (name: string, v: number[]): Attribute => ({ name, type: AttrType.INTS, value: v.map(BigInt), extra: {} });
  const int = (name: string, v: number): Attribute => ({ name, type: AttrType.INT, value: BigInt(v), extra: {} });
  const conv = (x: string, cin: number, cout: number, k: number, stride: number, name: string, gain = 1): string => {
    const std = gain * Math.sqrt(2 / (cin * k * k));
    const wt = seededGaussian(cout * cin * k * k, seed++).map((v) => v * std);
    g.initializers.set(`${name}.weight`, Tensor.fromTypedArray(`${name}.weight`, DataType.FLOAT, [cout, cin, k, k], wt));
    g.initializers.set(`${name}.bias`, Tensor.fromTypedArray(`${name}.bias`, DataType.FLOAT, [cout], seededGaussian(cout, seed++).map((v) => 0.01 * v)));
    const p = (k - 1) >> 1;
    nodes.push(new Node({ name, opType: 'Conv', inputs: [x, `${name}.weight`, `${name}.bias`], outputs: [`${name}.out`], attributes: [ints('kernel_shape', [k, k]), ints('strides', [stride, stride]), ints('pads', [p, p, p, p])] }));
    return `${name}.out`;
  };
  const relu = (x: string) => {
    nodes.push(new Node({ name: `${x}.relu`, opType: 'Relu', inputs: [x], outputs: [`${x}.relu`] }));
    return `${x}.relu`;
  };
  let x = relu(conv('input', 3, w(64), 7, 2, 'conv1'));
  nodes.push(new Node({ name: 'pool1', opType: 'MaxPool', inputs: [x], outputs: ['pool1.out'], attributes: [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), ints('pads', [1, 1, 1, 1])] }));
  x = 'pool1.out';
  let cin = w(64);
  const stages: [number, number][] = [[64, 256], [128, 512], [256, 1024], [512, 2048]];
  stages.forEach(([mid, out], s) => {
    for (let b = 0; b < blocks[s]!; b++) {
      const stride = b === 0 && s > 0 ? 2 : 1;
      const n = `layer${s + 1}.${b}`;
      const a = relu(conv(x, cin, w(mid), 1, 1, `${n}.conv1`));
      const c = relu(conv(a, w(mid), w(mid), 3, stride, `${n}.conv2`));
      // the residual branch's last conv starts small (as zero-init-gamma does), so 16 random blocks stay bounded
      const d = conv(c, w(mid), w(out), 1, 1, `${n}.conv3`, 0.2);
      const short = b === 0 ? conv(x, cin, w(out), 1, stride, `${n}.downsample`) : x;
      nodes.push(new Node({ name: `${n}.add`, opType: 'Add', inputs: [d, short], outputs: [`${n}.sum`] }));
      x = relu(`${n}.sum`);
      cin = w(out);
    }
  });
  nodes.push(new Node({ name: 'gap', opType: 'GlobalAveragePool', inputs: [x], outputs: ['gap.out'] }));
  nodes.push(new Node({ name: 'flatten', opType: 'Flatten', inputs: ['gap.out'], outputs: ['flat'], attributes: [int('axis', 1)] }));
  const fcW = seededGaussian(1000 * cin, seed++).map((v) => v * Math.sqrt(1 / cin));
  g.initializers.set('fc.weight', Tensor.fromTypedArray('fc.weight', DataType.FLOAT, [1000, cin], fcW));
  g.initializers.set('fc.bias', Tensor.fromTypedArray('fc.bias', DataType.FLOAT, [1000], new Float32Array(1000)));
  nodes.push(new Node({ name: 'fc', opType: 'Gemm', inputs: ['flat', 'fc.weight', 'fc.bias'], outputs: ['logits'], attributes: [int('transB', 1)] }));
  g.nodes = nodes;
  const info = (name: string, shape: (number | string)[]): ValueInfo => ({ name, type: { kind: 'tensor', elemType: DataType.FLOAT, shape }, extra: {} });
  g.inputs = [info('input', ['batch', 3, size, size])];
  g.outputs = [info('logits', ['batch', 1000])];
  const m = new Model();
  m.irVersion = 8;
  m.opsets = [{ domain: '', version: 13 }];
  m.producerName = 'whittle';
  m.producerVersion = 'bench/gpu/resnet50';
  m.graph = g;
  return m;
}
