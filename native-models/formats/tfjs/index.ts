/** TF.js models: model.json + weight shards, layers (Keras) and graph (GraphDef) models. */
export { readTfjsModel, weightBytes, modelKind, type TfjsModel, type TfjsKind } from './read.ts';
export { writeTfjsModel, tfjsOutputPath, DEFAULT_SHARD_BYTES, type TfjsWriteOptions, type TfjsWriteReport } from './write.ts';
export { TfjsWeight } from './weight.ts';
export { describeTopology, type KernelLayout, type TensorInfo, type TopologySummary, type WeightUse } from './topology.ts';
export { inspectTfjsModel, completeShapesWithRuntime, tfjsStats, type TfjsInspectReport, type TfjsLayerRow, type TfjsStats } from './inspect.ts';
export { openTfjsSession, tfjsArtifacts, type TfjsSession } from './session.ts';
export {
  BYTES_PER_ELEMENT, QUANTIZATION_DTYPES, TFJS_DTYPES, elementCountOf, parseModelJson,
  type ManifestEntry, type ManifestGroup, type ModelJson, type QuantizationDtype, type TfjsDtype, type WeightQuantization,
} from './manifest.ts';
