import { loadTf } from '../../runtimes/tfjs.ts';
import { weightBytes, type TfjsKind, type TfjsModel } from './read.ts';
import { openTfjsSession } from './session.ts';
import { describeTopology, type TensorInfo, type WeightUse } from './topology.ts';
import type { SpecLayerRow } from '../../ir/stats.ts';

/** One weight of the per-layer table (SPEC §3 `layers`, one row per weight for TF.js). */
/** `name`: the Keras layer or the graph node that uses the weight; `dtype`: the stored type (`float32`, `uint8 (quantized)`…). */
export interface TfjsLayerRow extends SpecLayerRow {
  quantization: { dtype: string; min?: number; scale?: number } | null;
  bytes: number;
  /** One row per weight: a layer's bias is a row of its own, never folded into its kernel's. */
  bias: null;
  biasParameters: 0;
}

/** The SPEC §3 inspect document for a TF.js model.json. */
export interface TfjsInspectReport {
  format: 'tfjs';
  kind: TfjsKind;
  /** model.json's own `format` field ('layers-model', 'graph-model'), null in older files. */
  modelFormat: string | null;
  path: string;
  /** model.json plus every shard. */
  bytes: number;
  weightBytes: number;
  irVersion: null;
  opsets: Record<string, number>;
  producer: string;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  parameters: number;
  nonzeroParameters: number;
  sparsity: number;
  nodes: number;
  opHistogram: Record<string, number>;
  /** Every float weight (parameters); int32 shape constants and strings are counted in `weights` only. */
  layers: TfjsLayerRow[];
  /** All weights in the manifest. */
  weights: number;
  /** Weights per stored quantization dtype, e.g. {uint8: 266}. */
  quantized: Record<string, number>;
  files: { path: string; bytes: number }[];
  metadata: Record<string, unknown>;
  warnings: string[];
}

export interface TfjsStats {
  parameters: number;
  nonzeroParameters: number;
  rows: TfjsLayerRow[];
}

function row(use: WeightUse): TfjsLayerRow {
  const w = use.weight;
  const zeros = w.countZeros();
  const q = w.quantization;
  return {
    name: use.layer,
    op: use.op,
    weight: w.name,
    shape: [...w.shape],
    parameters: w.elementCount,
    zeros,
    sparsity: w.elementCount ? zeros / w.elementCount : 0,
    dtype: w.storedDtype,
    quantization: q ? { dtype: q.dtype, ...(q.min !== undefined ? { min: q.min } : {}), ...(q.scale !== undefined ? { scale: q.scale } : {}) } : null,
    bytes: w.bytes.length,
    bias: null,
    biasParameters: 0,
  };
}

/** Parameters (float weights' elements) and how many are non-zero, with one row per float weight. */
export function tfjsStats(model: TfjsModel, uses: WeightUse[] = describeTopology(model).uses): TfjsStats {
  const rows = uses.filter((u) => u.parameter).map(row);
  const parameters = rows.reduce((n, r) => n + r.parameters, 0);
  const zeros = rows.reduce((n, r) => n + r.zeros, 0);
  return { parameters, nonzeroParameters: parameters - zeros, rows };
}

/**
 * The inspect document from the files alone. Output shapes that the topology does not state stay
 * null here; `whittle inspect` fills them in by loading the model in TF.js (see session.ts).
 */
export function inspectTfjsModel(model: TfjsModel): TfjsInspectReport {
  const topology = describeTopology(model);
  const stats = tfjsStats(model, topology.uses);
  const quantized: Record<string, number> = {};
  for (const w of model.weights) if (w.quantization) quantized[w.quantization.dtype] = (quantized[w.quantization.dtype] ?? 0) + 1;
  const meta = model.json.userDefinedMetadata;
  return {
    format: 'tfjs',
    kind: model.kind,
    modelFormat: model.json.format ?? null,
    path: model.path,
    bytes: model.files.reduce((n, f) => n + f.bytes, 0),
    weightBytes: weightBytes(model),
    irVersion: null,
    opsets: {},
    producer: topology.producer,
    inputs: topology.inputs,
    outputs: topology.outputs,
    parameters: stats.parameters,
    nonzeroParameters: stats.nonzeroParameters,
    sparsity: stats.parameters ? 1 - stats.nonzeroParameters / stats.parameters : 0,
    nodes: topology.nodes,
    opHistogram: topology.opHistogram,
    layers: stats.rows,
    weights: model.weights.length,
    quantized,
    files: model.files,
    metadata: meta && typeof meta === 'object' ? { ...meta } : {},
    warnings: [...model.warnings],
  };
}

/**
 * Fills in the shapes the files leave open (graph outputs, usually) by loading the model in TF.js:
 * layers models state them once built, graph models run one zero batch. A model TF.js cannot load
 * keeps null shapes and a warning saying why.
 */
export async function completeShapesWithRuntime(report: TfjsInspectReport, model: TfjsModel): Promise<TfjsInspectReport> {
  if (![...report.inputs, ...report.outputs].some((t) => t.shape === null)) return report;
  try {
    const runtime = await loadTf();
    const session = await openTfjsSession(model, runtime.tf);
    try {
      const shapes = await session.outputShapes();
      const outputs = session.outputs.map((name, k) => ({ name, dtype: report.outputs.find((o) => o.name === name)?.dtype ?? 'float32', shape: shapes[k] ?? null }));
      const inputs = report.inputs.map((i) => (i.shape !== null ? i : { ...i, shape: session.inputs.find((s) => s.name === i.name)?.shape ?? null }));
      return { ...report, inputs, outputs };
    } finally {
      session.dispose();
    }
  } catch (err) {
    return { ...report, warnings: [...report.warnings, `output shapes unknown: TF.js could not run the model (${(err as Error).message.split('\n')[0]})`] };
  }
}
