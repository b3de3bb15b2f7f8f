import { badInput } from '../../../api/errors.ts';
import { checkExternalLocation } from '../onnx/index.ts';

/**
 * The TF.js `model.json` document: a topology (a Keras model config for layers models, a GraphDef
 * as JSON for graph models) and a weights manifest — groups of weights whose bytes are concatenated
 * in manifest order and split across shard files. Names and layouts are those of tfjs-core's
 * `io/types.ts` (ModelJSON, WeightsManifestEntry) and of the converter's `write_weights.py`.
 */

/** Element types a manifest entry may declare (tfjs-core's DataType as stored). */
export const TFJS_DTYPES = ['float32', 'int32', 'bool', 'string', 'complex64'] as const;
export type TfjsDtype = (typeof TFJS_DTYPES)[number];

/** Storage types of TF.js weight quantization. */
export const QUANTIZATION_DTYPES = ['uint8', 'uint16', 'float16'] as const;
export type QuantizationDtype = (typeof QUANTIZATION_DTYPES)[number];

/** Bytes per stored element (tfjs-core DTYPE_VALUE_SIZE_MAP); strings are length-prefixed instead. */
export const BYTES_PER_ELEMENT: Record<Exclude<TfjsDtype, 'string'> | QuantizationDtype, number> = {
  float32: 4, int32: 4, bool: 1, complex64: 8, uint8: 1, uint16: 2, float16: 2,
};

/** Dequantized value = min + q·scale (uint8/uint16); float16 stores IEEE half bits. */
export interface WeightQuantization {
  dtype: QuantizationDtype;
  min?: number;
  scale?: number;
  /** Written by converters since 2.x; TF.js itself ignores it. */
  original_dtype?: string;
}

export interface ManifestEntry {
  name: string;
  shape: number[];
  dtype: TfjsDtype;
  quantization?: WeightQuantization;
  /** Any other field (`group: 'model'`, ...) is kept as it was. */
  [key: string]: unknown;
}

export interface ManifestGroup {
  paths: string[];
  weights: ManifestEntry[];
  [key: string]: unknown;
}

export interface ModelJson {
  modelTopology?: unknown;
  weightsManifest?: ManifestGroup[];
  /** 'layers-model' or 'graph-model' (absent in files written before TF.js 1.0). */
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  signature?: unknown;
  userDefinedMetadata?: Record<string, unknown>;
  [key: string]: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses and checks a model.json; every problem is BAD_INPUT naming the file and the weight. */
export function parseModelJson(text: string, file: string): ModelJson {
  let doc: unknown;
  try {
    doc = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (err) {
    throw badInput(file, `is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(doc)) throw badInput(file, 'is not a TF.js model.json: the document is not a JSON object');
  if (!isObject(doc.modelTopology)) throw badInput(file, 'is not a TF.js model.json: it has no modelTopology object');
  const manifest = doc.weightsManifest;
  if (manifest !== undefined && !Array.isArray(manifest)) throw badInput(file, 'weightsManifest is not a list of weight groups');
  const names = new Set<string>();
  (manifest ?? []).forEach((group: unknown, g: number) => checkGroup(group, g, file, names));
  return doc as ModelJson;
}

function checkGroup(group: unknown, g: number, file: string, names: Set<string>): asserts group is ManifestGroup {
  const where = `weightsManifest[${g}]`;
  if (!isObject(group)) throw badInput(file, `${where} is not an object with paths and weights`);
  if (!Array.isArray(group.paths) || !group.paths.every((p) => typeof p === 'string')) throw badInput(file, `${where}.paths is not a list of shard file names`);
  if (!Array.isArray(group.weights)) throw badInput(file, `${where}.weights is not a list`);
  for (const p of group.paths as string[]) checkShardPath(p, file, where);
  for (const entry of group.weights) {
    checkEntry(entry, file, where);
    if (names.has(entry.name)) throw badInput(file, `weight "${entry.name}" is listed twice in the weights manifest`);
    names.add(entry.name);
  }
}

function checkShardPath(p: string, file: string, where: string): void {
  // a shard outside the model's folder would let a model.json read any file: refuse, as ONNX external data does
  try {
    checkExternalLocation(p, file);
  } catch {
    throw badInput(file, `${where}: shard path ${JSON.stringify(p)} must be a file name relative to the model's folder (no absolute path, no "..")`);
  }
}

function checkEntry(entry: unknown, file: string, where: string): asserts entry is ManifestEntry {
  if (!isObject(entry) || typeof entry.name !== 'string' || entry.name === '') throw badInput(file, `${where}: a weight entry has no name`);
  const label = `weight "${entry.name}"`;
  if (!Array.isArray(entry.shape) || !entry.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw badInput(file, `${label} has shape ${JSON.stringify(entry.shape)}; expected a list of non-negative integers`);
  }
  if (!(TFJS_DTYPES as readonly unknown[]).includes(entry.dtype)) {
    throw badInput(file, `${label} has unknown dtype ${JSON.stringify(entry.dtype)} (TF.js weights are ${TFJS_DTYPES.join(', ')})`);
  }
  const q = entry.quantization;
  if (q === undefined) return;
  if (!isObject(q) || !(QUANTIZATION_DTYPES as readonly unknown[]).includes(q.dtype)) {
    throw badInput(file, `${label} has unknown quantization dtype ${JSON.stringify(isObject(q) ? q.dtype : q)} (TF.js dequantizes ${QUANTIZATION_DTYPES.join(', ')})`);
  }
  if (q.dtype === 'float16') {
    if (entry.dtype !== 'float32') throw badInput(file, `${label}: float16 quantization is defined for float32 weights only, not ${entry.dtype}`);
    return;
  }
  if (entry.dtype !== 'float32' && entry.dtype !== 'int32') throw badInput(file, `${label}: ${q.dtype} quantization is defined for float32 and int32 weights only, not ${entry.dtype}`);
  if (typeof q.min !== 'number' || typeof q.scale !== 'number' || !Number.isFinite(q.min) || !Number.isFinite(q.scale)) {
    throw badInput(file, `${label}: ${q.dtype} quantization needs finite numbers min and scale, got min ${JSON.stringify(q.min)}, scale ${JSON.stringify(q.scale)}`);
  }
}

/** How many elements a shape holds (a scalar, shape [], holds one). */
export function elementCountOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
