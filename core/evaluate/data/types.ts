/**
 * The shapes shared by every data source (SPEC §4). A dataset is opened against the model's input
 * specs, so what it yields is already shaped, laid out and typed for that model.
 */
import type { HostDtype, HostTensor } from '../../../native-models/runtimes/host-tensor.ts';

/** Host tensors are the runtime layer's (float16 as IEEE bits in a Uint16Array, bool as 0/1 bytes). */
export type { HostTensor };
export type HostDType = HostDtype;

/** A model input as the model declares it; a string or null dimension is free (usually the batch). */
export interface ModelInputSpec {
  name: string;
  dtype: HostDType;
  shape: (number | string | null)[];
}

/**
 * The input of a token model (a language model): the model's only input, integer, [batch, positions].
 * Evaluation scores it as next-token prediction; a 1-D token stream is cut into windows of its
 * positions when they are fixed.
 */
export function tokenInputOf(inputs: readonly ModelInputSpec[]): ModelInputSpec | null {
  const only = inputs.length === 1 ? inputs[0]! : null;
  return only && (only.dtype === 'int64' || only.dtype === 'int32') && only.shape.length === 2 ? only : null;
}

export const PRESET_NAMES = ['none', 'unit', 'mnist', 'torch', 'caffe', 'tf', 'imagenet', 'tf-square', 'unit-stretch'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export interface DatasetOptions {
  /** Pixel preprocessing; default `none` (values as stored). */
  preprocess?: PresetName;
  /** Crop size for decoded images when the model's spatial dims are free (default 224). */
  size?: number;
  /** Overrides the layout guessed from the model's input shape. */
  layout?: 'nchw' | 'nhwc';
  /** At most this many samples (after `offset`). */
  limit?: number;
  /** Seed for `synthetic:N` (default 0). */
  seed?: number;
  /** Skip this many samples first (calibrate on the first 256, evaluate on the rest). */
  offset?: number;
}

export interface Batch {
  inputs: Record<string, HostTensor>;
  labels: Int32Array | null;
  count: number;
  /** Index of the batch's first sample, counted from the start of the data (offset included). */
  index: number;
  /** ONNX test data only: the outputs this batch's set expects, by position. */
  expectedOutputs?: HostTensor[];
}

export type DatasetKind =
  | 'npy' | 'npz' | 'mnist-idx' | 'image-folder' | 'image' | 'onnx-test-data' | 'raw-tensor' | 'synthetic';

export interface Dataset {
  kind: DatasetKind;
  /** The file or folder actually read (absolute), or `synthetic:N`. */
  path: string;
  /** Samples that `batches()` yields: after `offset` and `limit`. */
  n: number;
  synthetic: boolean;
  hasLabels: boolean;
  classNames?: string[];
  /** ONNX test data with a single set: its expected outputs, by position. */
  expectedOutputs?: HostTensor[];
  /** Things the user should know that did not stop the read (skipped files, ignored options). */
  warnings: string[];
  /** Each call starts again from the first sample; memory does not grow with the number of samples. */
  batches(batchSize: number): AsyncIterable<Batch>;
}
