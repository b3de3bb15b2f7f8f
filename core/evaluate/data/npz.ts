/**
 * An .npz (np.savez / np.savez_compressed): one array per model input, named after the input, plus
 * an optional `labels` array (or labels.npy beside the file). A single-input model also accepts an
 * archive holding exactly one other array, whatever its name (np.savez(path, x) names it arr_0).
 * Each array is streamed from its own zip entry.
 */
import { stat } from 'node:fs/promises';
import { badInput } from '../../../api/errors.ts';
import type { Dataset, DatasetOptions, ModelInputSpec } from './types.ts';
import type { ByteReader } from './byte-reader.ts';
import { elemsFromBytes, ELEM_BYTES } from './dtypes.ts';
import { labelsFromArray } from './labels.ts';
import { readNpyHeader, type NpyHeader } from './npy-format.ts';
import { checkNpySize, findLabelsBeside, npySamples, readLabelsNpy } from './npy.ts';
import { openZipEntry, readZipDirectory, type ZipEntry } from './zip.ts';
import { makeDataset } from './dataset.ts';
import type { SampleSource, TensorSample } from './sample.ts';

const LABEL_ARRAYS = ['labels'];

async function entryHeader(path: string, entry: ZipEntry): Promise<NpyHeader> {
  const reader = await openZipEntry(path, entry);
  try {
    const h = await readNpyHeader(reader, `${path} (${entry.name})`);
    checkNpySize(h, entry.uncompressedSize - h.dataOffset, `${path} (${entry.name})`);
    return h;
  } finally {
    await reader.close();
  }
}

export async function openNpz(path: string, inputs: ModelInputSpec[], options: DatasetOptions): Promise<Dataset> {
  const { size } = await stat(path);
  const entries = (await readZipDirectory(path, size)).filter((e) => e.name.endsWith('.npy'));
  const byName = new Map(entries.map((e) => [e.name.slice(0, -4), e]));
  const dataNames = [...byName.keys()].filter((k) => !LABEL_ARRAYS.includes(k));
  const chosen: ZipEntry[] = inputs.map((spec) => {
    const exact = byName.get(spec.name);
    if (exact) return exact;
    if (inputs.length === 1 && dataNames.length === 1) return byName.get(dataNames[0]!)!;
    throw badInput(path, `has no array named ${spec.name} (it holds: ${[...byName.keys()].join(', ') || 'no .npy arrays'}); name the arrays after the model inputs: ${inputs.map((i) => i.name).join(', ')}`);
  });
  const headers = await Promise.all(chosen.map((e) => entryHeader(path, e)));
  const n = headers[0]!.shape[0]!;
  headers.forEach((h, k) => {
    if (h.shape[0] !== n) throw badInput(path, `array ${chosen[k]!.name} has ${h.shape[0]} samples, ${chosen[0]!.name} has ${n}`);
  });

  let labels: Int32Array | null = null;
  const labelEntry = LABEL_ARRAYS.map((k) => byName.get(k)).find((e) => e !== undefined);
  if (labelEntry) {
    const h = await entryHeader(path, labelEntry);
    const reader = await openZipEntry(path, labelEntry);
    try {
      await reader.skip(h.dataOffset);
      const bytes = await reader.read(h.shape.reduce((a, b) => a * b, 1) * ELEM_BYTES[h.dtype]);
      labels = labelsFromArray(h.dtype, h.shape, elemsFromBytes(h.dtype, bytes, h.bigEndian), `${path} (${labelEntry.name})`);
    } finally {
      await reader.close();
    }
    if (labels.length !== n) throw badInput(path, `array labels holds ${labels.length} labels but the inputs hold ${n} samples`);
  } else {
    const beside = await findLabelsBeside(path);
    if (beside) labels = await readLabelsNpy(beside, n, path);
  }

  const source: SampleSource = {
    total: n,
    async *read(start) {
      const readers: ByteReader[] = [];
      try {
        const streams: AsyncGenerator<TensorSample>[] = [];
        for (let k = 0; k < chosen.length; k++) {
          const reader = await openZipEntry(path, chosen[k]!);
          readers.push(reader);
          await reader.skip(headers[k]!.dataOffset);
          streams.push(npySamples(headers[k]!, reader, start));
        }
        for (let i = start; i < n; i++) {
          const samples: TensorSample[] = [];
          for (const s of streams) samples.push((await s.next()).value as TensorSample);
          yield { inputs: samples, label: labels ? labels[i]! : null, file: path };
        }
      } finally {
        await Promise.all(readers.map((r) => r.close()));
      }
    },
  };
  return makeDataset({ kind: 'npz', path, hasLabels: labels !== null }, source, inputs, options);
}
