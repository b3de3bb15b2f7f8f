import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Model, Node } from '../../../native-models/ir/model.ts';
import { findConstantWeight, materialise } from './constant-weight.ts';
import { addInitializer, removeUnread, type NameAllocator } from './graph-edit.ts';

/**
 * Conv → BatchNormalization (inference form) as one Conv: W'[m] = W[m]·γ[m]/√(σ²[m]+ε) and
 * B'[m] = (B[m] − μ[m])·γ[m]/√(σ²[m]+ε) + β[m], the arithmetic of onnxruntime's ConvBNFusion, in
 * float64 and stored float32. Many exported CNNs keep their BatchNormalization nodes (the ONNX model
 * zoo's ResNet, MobileNet and DenseNet; PyTorch exports in training mode). Quantized as they stand, the
 * BatchNormalization is a float op between the Conv and everything after it: the Conv's output is not
 * quantized, so onnxruntime cannot fuse it into QLinearConv and the "int8" model runs float. Folded
 * first, as onnxruntime's own quantizer does through its graph optimizer, every Conv fuses.
 *
 * The Conv then writes the BatchNormalization's output, so calibration ranges taken on the unfolded
 * graph still name the right value. A Conv whose output anything else reads, a BatchNormalization in
 * training mode or with extra outputs, and non-constant parameters are left as they are.
 */
export interface FoldedBatchNorm {
  conv: Node;
  batchNorm: Node;
}

export function foldBatchNorms(model: Model, names: NameAllocator, eligible: (n: Node) => boolean = () => true): FoldedBatchNorm[] {
  const g = model.graph;
  const folded: FoldedBatchNorm[] = [];
  const unread = { nodes: new Set<Node>(), names: new Set<string>() };
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  let producers = g.producers();
  let consumers = g.consumers();
  for (const bn of [...g.nodes]) {
    if (bn.opType !== 'BatchNormalization' || bn.domain !== '' || !eligible(bn)) continue;
    if (bn.outputs.slice(1).some(Boolean) || bn.attrInt('training_mode', 0) !== 0) continue;
    const x = bn.inputs[0];
    const conv = x ? producers.get(x) : undefined;
    if (!x || !conv || conv.opType !== 'Conv' || conv.domain !== '' || !eligible(conv)) continue;
    if (graphOutputs.has(x) || (consumers.get(x) ?? []).length !== 1) continue;
    const params = bn.inputs.slice(1, 5).map((name) => (name ? g.constant(name) : null));
    if (params.some((p) => !p || p.dataType !== DataType.FLOAT)) continue;
    const weight = conv.inputs[1] ? findConstantWeight(g, conv.inputs[1], producers) : null;
    if (!weight || 'problem' in weight || weight.source.dataType !== DataType.FLOAT) continue;
    const channels = weight.dims[0]!;
    const [gamma, beta, mean, variance] = params.map((p) => p!.toFloat32());
    if ([gamma, beta, mean, variance].some((p) => p!.length !== channels)) continue;
    const bias = conv.inputs[2] ? findConstantWeight(g, conv.inputs[2], producers) : null;
    if (conv.inputs[2] && (!bias || 'problem' in bias || bias.source.dataType !== DataType.FLOAT)) continue;

    const epsilon = bn.attrFloat('epsilon', 1e-5);
    const w = materialise(g, weight);
    const b = bias && !('problem' in bias) ? materialise(g, bias) : new Float32Array(channels);
    const perChannel = w.length / channels;
    const wOut = new Float32Array(w.length);
    const bOut = new Float32Array(channels);
    for (let m = 0; m < channels; m++) {
      const s = gamma![m]! / Math.sqrt(variance![m]! + epsilon);
      for (let i = m * perChannel; i < (m + 1) * perChannel; i++) wOut[i] = w[i]! * s;
      bOut[m] = (b[m]! - mean![m]!) * s + beta![m]!;
    }
    const base = conv.name || x;
    const wName = names.fresh(`${base}_bn_folded_weight`);
    const bName = names.fresh(`${base}_bn_folded_bias`);
    addInitializer(g, wName, DataType.FLOAT, weight.dims, wOut);
    addInitializer(g, bName, DataType.FLOAT, [channels], bOut);
    for (const name of [...conv.inputs.slice(1), ...bn.inputs.slice(1)]) if (name) unread.names.add(name);
    for (const c of [weight, bias]) if (c && !('problem' in c)) for (const n of c.chain) unread.nodes.add(n);
    conv.inputs = [conv.inputs[0]!, wName, bName];
    conv.outputs[0] = bn.outputs[0]!;
    g.nodes.splice(g.nodes.indexOf(bn), 1);
    g.valueInfo = g.valueInfo.filter((v) => v.name !== x);
    folded.push({ conv, batchNorm: bn });
    producers = g.producers();
    consumers = g.consumers();
  }
  // the float weights, biases and statistics the folds replaced (a weight another node reads stays)
  removeUnread(model, unread);
  return folded;
}
