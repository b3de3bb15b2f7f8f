import { statSync } from 'node:fs';
import { dtypeName } from '../native-models/ir/dtypes.ts';
import type { Dim, Model, ValueInfo } from '../native-models/ir/model.ts';
import { modelStats, type LayerRow } from '../native-models/ir/stats.ts';
import { findAttentionBlocks } from './passes/prune/attention.ts';

/** The SPEC §3 `inspect` document. */
export interface InspectReport {
  format: 'onnx';
  path: string;
  bytes: number;
  externalDataBytes: number;
  irVersion: number;
  opsets: Record<string, number>;
  producer: string;
  inputs: { name: string; dtype: string; shape: Dim[] | null }[];
  outputs: { name: string; dtype: string; shape: Dim[] | null }[];
  parameters: number;
  nonzeroParameters: number;
  sparsity: number;
  nodes: number;
  opHistogram: Record<string, number>;
  layers: LayerRow[];
  /** Multi-head attention blocks `prune --method heads` can prune: heads, head size, and their q/k/v/o layers. */
  attention: { block: string; heads: number; headDim: number; kvHeads?: number; layers: string[] }[];
  metadata: Record<string, string>;
}

function describeValue(v: ValueInfo): { name: string; dtype: string; shape: Dim[] | null } {
  if (!v.type) return { name: v.name, dtype: 'unknown', shape: null };
  if (v.type.kind !== 'tensor') return { name: v.name, dtype: 'non-tensor', shape: null };
  return { name: v.name, dtype: dtypeName(v.type.elemType), shape: v.type.shape };
}

/** Graph inputs that are really inputs (old models also list every initializer as an input). */
export function realInputs(model: Model): ValueInfo[] {
  return model.graph.inputs.filter((v) => !model.graph.initializers.has(v.name));
}

export function inspectModel(model: Model): InspectReport {
  const stats = modelStats(model);
  const external = new Map<string, number>();
  for (const { tensor } of model.weights()) if (tensor.source.kind === 'external' && !tensor.source.inModelFile) external.set(tensor.source.path, 0);
  let externalDataBytes = 0;
  for (const p of external.keys()) externalDataBytes += statSync(p).size;
  const metadata = Object.fromEntries(model.metadataEntries());
  return {
    format: 'onnx',
    path: model.path ?? '',
    bytes: model.path ? statSync(model.path).size + externalDataBytes : 0,
    externalDataBytes,
    irVersion: model.irVersion,
    opsets: Object.fromEntries(model.opsets.map((o) => [o.domain || 'ai.onnx', o.version])),
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    inputs: realInputs(model).map(describeValue),
    outputs: model.graph.outputs.map(describeValue),
    parameters: stats.parameters,
    nonzeroParameters: stats.nonzeroParameters,
    sparsity: stats.parameters ? 1 - stats.nonzeroParameters / stats.parameters : 0,
    nodes: stats.nodes,
    opHistogram: stats.opHistogram,
    layers: stats.layers,
    attention: model.graphs().flatMap((g) => findAttentionBlocks(g, model.opsetVersion('') ?? 13).blocks).map((b) => ({
      block: b.name, heads: b.heads, headDim: b.headDim, ...(b.kvHeads !== b.heads ? { kvHeads: b.kvHeads } : {}),
      // a fused q/k/v projection is one layer
      layers: [...new Set([b.q.matmul, b.k.matmul, b.v.matmul, b.out.matmul])].map((n) => n.name || n.outputs[0]!),
    })),
    metadata,
  };
}
