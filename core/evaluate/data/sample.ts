/**
 * What a source hands the encoder: one sample per model input, still in the source's own form.
 * Sources know files; the encoder knows the model. Keeping the two apart is what lets every format
 * share one implementation of presets, layout, resizing and dtype conversion.
 */
import type { ElemArray, ElemType } from './dtypes.ts';

/** 8-bit pixels, HWC, RGB (or one grey channel). */
export interface ImageSample {
  kind: 'image';
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array;
  /** Decoded from a photo file: resized and centre-cropped to the model's size as needed. */
  photo: boolean;
}

/** One sample of an array (no batch axis), in its stored dtype. */
export interface TensorSample {
  kind: 'tensor';
  dtype: ElemType;
  dims: number[];
  data: ElemArray;
}

export type Sample = ImageSample | TensorSample;

export interface SampleRecord {
  /** Aligned with the model's inputs, by position. */
  inputs: Sample[];
  label: number | null;
  /** The file this sample came from, for error messages. */
  file: string;
}

export interface SampleSource {
  /** Samples in the whole data, before offset and limit. */
  total: number;
  /** Samples from `start` on, in order. Callers may stop early; the generator cleans up in `finally`. */
  read(start: number): AsyncGenerator<SampleRecord>;
}
