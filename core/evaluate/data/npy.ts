/**
 * A .npy array whose first axis is the samples, with optional labels in `labels.npy` (or `y.npy`)
 * beside it. Samples are read from the file at their offsets, a chunk at a time.
 */
import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { badInput } from '../../../api/errors.ts';
import { tokenInputOf, type Dataset, type DatasetOptions, type ModelInputSpec } from './types.ts';
import { fileReader, type ByteReader } from './byte-reader.ts';
import { ELEM_BYTES, elemsFromBytes } from './dtypes.ts';
import { labelsFromArray } from './labels.ts';
import { readNpyHeader, type NpyHeader } from './npy-format.ts';
import { makeDataset } from './dataset.ts';
import type { SampleSource, TensorSample } from './sample.ts';

export const LABEL_NPY_NAMES = ['labels.npy', 'y.npy'];

export interface NpyArrayFile extends NpyHeader { path: string; bytes: number }

/** Reads and checks the header of a .npy file against the file's size. */
export async function readNpyFile(path: string): Promise<NpyArrayFile> {
  const { size } = await stat(path);
  const reader = await fileReader(path, 0, size);
  try {
    const header = await readNpyHeader(reader, path);
    checkNpySize(header, size - header.dataOffset, path);
    return { ...header, path, bytes: size };
  } finally {
    await reader.close();
  }
}

export function checkNpySize(h: NpyHeader, dataBytes: number, file: string): void {
  if (h.shape.length === 0) throw badInput(file, 'is a 0-d array; the first axis must be the samples');
  const need = h.shape.reduce((a, b) => a * b, 1) * ELEM_BYTES[h.dtype];
  if (need !== dataBytes) {
    throw badInput(file, `header says shape (${h.shape.join(', ')}) of ${h.dtype} = ${need} bytes, but the file holds ${dataBytes} data bytes`);
  }
}

/** Streams the samples (slices along axis 0) of an array from a reader positioned at its data. */
export async function* npySamples(h: NpyHeader, reader: ByteReader, start: number): AsyncGenerator<TensorSample> {
  const dims = h.shape.slice(1);
  const sampleBytes = dims.reduce((a, b) => a * b, 1) * ELEM_BYTES[h.dtype];
  await reader.skip(start * sampleBytes);
  for (let i = start; i < h.shape[0]!; i++) {
    const data = elemsFromBytes(h.dtype, await reader.read(sampleBytes), h.bigEndian);
    yield { kind: 'tensor', dtype: h.dtype, dims, data };
  }
}

export async function readLabelsNpy(path: string, n: number, dataFile: string): Promise<Int32Array> {
  const h = await readNpyFile(path);
  const reader = await fileReader(path, h.dataOffset, h.bytes - h.dataOffset);
  try {
    const data = elemsFromBytes(h.dtype, await reader.read(h.bytes - h.dataOffset), h.bigEndian);
    const labels = labelsFromArray(h.dtype, h.shape, data, path);
    if (labels.length !== n) throw badInput(path, `holds ${labels.length} labels but ${basename(dataFile)} holds ${n} samples`);
    return labels;
  } finally {
    await reader.close();
  }
}

/** `labels.npy` or `y.npy` beside the data file, unless that is the data file itself. */
export async function findLabelsBeside(dataFile: string): Promise<string | null> {
  for (const name of LABEL_NPY_NAMES) {
    const p = join(dirname(dataFile), name);
    if (p === dataFile) continue;
    if (await stat(p).then((s) => s.isFile(), () => false)) return p;
  }
  return null;
}

/**
 * A 1-D integer array for a token model (one integer input [batch, positions] with a fixed number of
 * positions) is a token stream: it is read as consecutive windows of that many tokens (a last,
 * shorter piece is left out). Returns the header seen that way, or null when it does not apply.
 */
function tokenWindows(h: NpyArrayFile, inputs: ModelInputSpec[]): NpyArrayFile | null {
  const positions = tokenInputOf(inputs)?.shape[1];
  if (h.shape.length !== 1 || (h.dtype !== 'int64' && h.dtype !== 'int32') || typeof positions !== 'number' || positions < 1) return null;
  return { ...h, shape: [Math.floor(h.shape[0]! / positions), positions] };
}

export async function openNpy(path: string, inputs: ModelInputSpec[], options: DatasetOptions): Promise<Dataset> {
  const file = await readNpyFile(path);
  if (inputs.length !== 1) {
    throw badInput(path, `a .npy array feeds one input, but the model takes ${inputs.length} (${inputs.map((i) => i.name).join(', ')}); use a .npz with one array per input name`);
  }
  const windows = tokenWindows(file, inputs);
  const h = windows ?? file;
  const n = h.shape[0]!;
  const labelsPath = await findLabelsBeside(path);
  const labels = labelsPath ? await readLabelsNpy(labelsPath, n, path) : null;
  const source: SampleSource = {
    total: n,
    async *read(start) {
      const reader = await fileReader(path, h.dataOffset, h.bytes - h.dataOffset);
      try {
        let i = start;
        for await (const sample of npySamples(h, reader, start)) {
          yield { inputs: [sample], label: labels ? labels[i]! : null, file: path };
          i++;
        }
      } finally {
        await reader.close();
      }
    },
  };
  const dataset = await makeDataset({ kind: 'npy', path, hasLabels: labels !== null }, source, inputs, options);
  if (windows) dataset.warnings.push(`${basename(path)}: a stream of ${file.shape[0]} tokens, read as ${n} windows of ${h.shape[1]}${file.shape[0]! % h.shape[1]! ? ` (the last ${file.shape[0]! % h.shape[1]!} tokens left out)` : ''}`);
  return dataset;
}
