import type { Graph, Node } from './model.ts';

/**
 * What the engine needs to know about an op's inputs: which one is the weight, which the bias,
 * along which weight axes output and input channels run, and which inputs are never parameters
 * (shapes, axes, indices, quantization scales and zero points).
 */
export interface WeightRole {
  /** Input index of the weight. */
  input: number;
  /** Axis of the weight along which output channels run (may depend on attributes). */
  outAxis: number;
  /** Axis along which the reduction (input channels / features) runs. */
  inAxis: number;
}

export interface OpInfo {
  weights: WeightRole[];
  /** Input indices holding biases or per-channel affine parameters. */
  biases: number[];
  /** Input indices that are shapes, axes, indices, scales or zero points: never counted as parameters. */
  nonParameters: number[];
  /** Axis of the data tensor (activations) along which channels run, where there is one. */
  dataChannelAxis?: number;
}

type Rule = (node: Node) => OpInfo;

const none = (...nonParameters: number[]): Rule => () => ({ weights: [], biases: [], nonParameters });

const RULES: Record<string, Rule> = {
  // weight [M, C/group, k...]: outputs along 0, inputs along 1
  Conv: () => ({ weights: [{ input: 1, outAxis: 0, inAxis: 1 }], biases: [2], nonParameters: [], dataChannelAxis: 1 }),
  // weight [C, M/group, k...]: inputs along 0, outputs along 1
  ConvTranspose: () => ({ weights: [{ input: 1, outAxis: 1, inAxis: 0 }], biases: [2], nonParameters: [], dataChannelAxis: 1 }),
  // B is [N, K] when transB, else [K, N]
  Gemm: (n) => ({ weights: [n.attrInt('transB', 0) ? { input: 1, outAxis: 0, inAxis: 1 } : { input: 1, outAxis: 1, inAxis: 0 }], biases: [2], nonParameters: [] }),
  // B is [..., K, N]
  MatMul: () => ({ weights: [{ input: 1, outAxis: -1, inAxis: -2 }], biases: [], nonParameters: [] }),
  BatchNormalization: () => ({ weights: [], biases: [1, 2, 3, 4], nonParameters: [], dataChannelAxis: 1 }),
  InstanceNormalization: () => ({ weights: [], biases: [1, 2], nonParameters: [], dataChannelAxis: 1 }),
  LayerNormalization: () => ({ weights: [], biases: [1, 2], nonParameters: [] }),
  GroupNormalization: () => ({ weights: [], biases: [1, 2], nonParameters: [] }),
  PRelu: () => ({ weights: [], biases: [1], nonParameters: [] }),
  // an embedding table [vocab, dim] when data is constant; indices are input 1
  Gather: () => ({ weights: [{ input: 0, outAxis: 1, inAxis: 0 }], biases: [], nonParameters: [1] }),
  // W [dirs, gates·hidden, input], R [dirs, gates·hidden, hidden], B, sequence_lens, initial states
  LSTM: () => ({ weights: [{ input: 1, outAxis: 1, inAxis: 2 }, { input: 2, outAxis: 1, inAxis: 2 }], biases: [3, 7], nonParameters: [4] }),
  GRU: () => ({ weights: [{ input: 1, outAxis: 1, inAxis: 2 }, { input: 2, outAxis: 1, inAxis: 2 }], biases: [3], nonParameters: [4] }),
  RNN: () => ({ weights: [{ input: 1, outAxis: 1, inAxis: 2 }, { input: 2, outAxis: 1, inAxis: 2 }], biases: [3], nonParameters: [4] }),
  // quantized forms: the integer weight is the parameter; scales and zero points are not
  QLinearConv: () => ({ weights: [{ input: 3, outAxis: 0, inAxis: 1 }], biases: [8], nonParameters: [1, 2, 4, 5, 6, 7], dataChannelAxis: 1 }),
  QLinearMatMul: () => ({ weights: [{ input: 3, outAxis: -1, inAxis: -2 }], biases: [], nonParameters: [1, 2, 4, 5, 6, 7] }),
  ConvInteger: () => ({ weights: [{ input: 1, outAxis: 0, inAxis: 1 }], biases: [], nonParameters: [2, 3], dataChannelAxis: 1 }),
  MatMulInteger: () => ({ weights: [{ input: 1, outAxis: -1, inAxis: -2 }], biases: [], nonParameters: [2, 3] }),
  MatMulIntegerToFloat: () => ({ weights: [{ input: 1, outAxis: -1, inAxis: -2 }], biases: [6], nonParameters: [2, 3, 4, 5] }),
  DynamicQuantizeMatMul: () => ({ weights: [{ input: 1, outAxis: -1, inAxis: -2 }], biases: [4], nonParameters: [2, 3] }),
  // B packed uint8 [N, k_blocks, blob]; outputs along 0
  MatMulNBits: () => ({ weights: [{ input: 1, outAxis: 0, inAxis: 1 }], biases: [5], nonParameters: [2, 3, 4] }),
  // a [V, D] table packed along D (uint8 [V, D·bits/8]); rows are gathered, not multiplied
  GatherBlockQuantized: () => ({ weights: [{ input: 0, outAxis: 1, inAxis: 0 }], biases: [], nonParameters: [1, 2, 3] }),
  QLinearAdd: none(1, 2, 4, 5, 6, 7),
  QLinearMul: none(1, 2, 4, 5, 6, 7),
  QLinearGlobalAveragePool: none(1, 2, 3, 4),
  QLinearAveragePool: none(1, 2, 3, 4),
  QLinearConcat: none(0, 1),
  QLinearLeakyRelu: none(1, 2, 3, 4),
  QLinearSigmoid: none(1, 2, 3, 4),
  QuantizeLinear: none(1, 2),
  // the quantized weight itself (input 0) counts as a parameter when it is stored
  DequantizeLinear: none(1, 2),
  DynamicQuantizeLinear: none(),
  Reshape: none(1),
  Expand: none(1),
  Tile: none(1),
  Slice: none(1, 2, 3, 4),
  Squeeze: none(1),
  Unsqueeze: none(1),
  Pad: none(1, 2, 3),
  Resize: none(1, 2, 3),
  Upsample: none(1),
  ConstantOfShape: none(0),
  Range: none(0, 1, 2),
  TopK: none(1),
  Split: none(1),
  ReduceSum: none(1), ReduceMean: none(1), ReduceMax: none(1), ReduceMin: none(1), ReduceProd: none(1),
  ReduceL1: none(1), ReduceL2: none(1), ReduceLogSum: none(1), ReduceLogSumExp: none(1), ReduceSumSquare: none(1),
  GatherElements: none(1),
  GatherND: none(1),
  ScatterND: none(1),
  ScatterElements: none(1),
  OneHot: none(1, 2),
  NonMaxSuppression: none(2, 3, 4),
  CumSum: none(1),
  Trilu: none(1),
  Clip: none(1, 2),
};

export function opInfo(node: Node): OpInfo {
  const rule = Object.hasOwn(RULES, node.opType) ? RULES[node.opType] : undefined;
  return rule ? rule(node) : { weights: [], biases: [], nonParameters: [] };
}

/** Normalises a possibly negative axis against a rank. */
export function normalizeAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** The constant weight of a node, if it has one stored in the model (initializer or Constant, possibly through a DequantizeLinear). */
export function weightInputs(node: Node, graph: Graph): { role: WeightRole; name: string }[] {
  const out: { role: WeightRole; name: string }[] = [];
  for (const role of opInfo(node).weights) {
    const name = node.inputs[role.input];
    if (name && graph.constant(name)) out.push({ role, name });
  }
  return out;
}
