/**
 * MNIST's idx format: `*-idx3-ubyte[.gz]` images paired with `*-idx1-ubyte[.gz]` labels. Plain files
 * are read at offsets; gzipped ones are inflated once (MNIST's test set is 7.8 MB inflated), which is
 * simpler than streaming and bounded by the format's practical sizes.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { badInput, WhittleError } from '../../../api/errors.ts';
import type { Dataset, DatasetOptions, ModelInputSpec } from './types.ts';
import { fileReader, memoryReader, type ByteReader } from './byte-reader.ts';
import { makeDataset } from './dataset.ts';
import type { SampleSource } from './sample.ts';

export const IDX_IMAGES = /idx3-ubyte(\.gz)?$/i;

interface IdxHeader { dims: number[]; dataOffset: number }

/** Validates magic (two zero bytes, type 0x08 = unsigned byte, rank) and the data length. */
function parseIdxHeader(head: Uint8Array, dataLength: number, file: string, rank: number[]): IdxHeader {
  if (head.length < 4 || head[0] !== 0 || head[1] !== 0) {
    throw badInput(file, `not an idx file (bad magic ${[...head.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join('')})`);
  }
  if (head[2] !== 0x08) throw new WhittleError('UNSUPPORTED', `${file}: idx element type 0x${head[2]!.toString(16)} is not supported (only unsigned bytes, as MNIST uses)`, { file });
  const r = head[3]!;
  if (!rank.includes(r)) throw badInput(file, `idx rank is ${r}, expected ${rank.join(' or ')} (${rank[0] === 1 ? 'a labels file, idx1' : 'an images file, idx3'})`);
  const view = new DataView(head.buffer, head.byteOffset, head.length);
  if (head.length < 4 + 4 * r) throw badInput(file, 'idx header is truncated');
  const dims = Array.from({ length: r }, (_, i) => view.getUint32(4 + 4 * i, false));
  const dataOffset = 4 + 4 * r;
  const need = dims.reduce((a, b) => a * b, 1);
  if (dataLength - dataOffset !== need) throw badInput(file, `idx header says [${dims.join(',')}] = ${need} bytes, the file holds ${dataLength - dataOffset}`);
  return { dims, dataOffset };
}

function gunzip(bytes: Uint8Array, file: string): Uint8Array {
  try {
    return gunzipSync(bytes);
  } catch (e) {
    throw badInput(file, `is not valid gzip (${(e as Error).message})`);
  }
}

/** An idx file's header plus a way to read from its data start: gz inflated in memory, else from disk. */
async function openIdx(file: string, rank: number[]): Promise<{ header: IdxHeader; open(): Promise<ByteReader> }> {
  if (file.toLowerCase().endsWith('.gz')) {
    const bytes = gunzip(await readFile(file), file);
    const header = parseIdxHeader(bytes.subarray(0, 20), bytes.length, file, rank);
    return { header, open: async () => memoryReader(bytes.subarray(header.dataOffset), file) };
  }
  const { size } = await stat(file);
  const head = await fileReader(file, 0, Math.min(size, 20));
  const headBytes = await head.read(Math.min(size, 20)).finally(() => head.close());
  const header = parseIdxHeader(headBytes, size, file, rank);
  return { header, open: () => fileReader(file, header.dataOffset, size - header.dataOffset) };
}

/** t10k-images-idx3-ubyte.gz → t10k-labels-idx1-ubyte.gz (with or without .gz). */
export async function findIdxLabels(imagesFile: string): Promise<string | null> {
  const name = basename(imagesFile).replace(/idx3/i, 'idx1').replace(/images/i, 'labels').replace(/\.gz$/i, '');
  for (const candidate of [name, `${name}.gz`]) {
    const p = join(dirname(imagesFile), candidate);
    if (await stat(p).then((s) => s.isFile(), () => false)) return p;
  }
  return null;
}

export async function openMnistIdx(imagesFile: string, inputs: ModelInputSpec[], options: DatasetOptions): Promise<Dataset> {
  if (inputs.length !== 1) throw badInput(imagesFile, `idx images feed one input, but the model takes ${inputs.length}`);
  const images = await openIdx(imagesFile, [3, 4]);
  const [n, h, w, c = 1] = images.header.dims as [number, number, number, number?];
  if (c !== 1 && c !== 3) throw badInput(imagesFile, `idx images have ${c} channels; expected 1 or 3`);
  const labelsFile = await findIdxLabels(imagesFile);
  let labels: Uint8Array | null = null;
  if (labelsFile) {
    const l = await openIdx(labelsFile, [1]);
    if (l.header.dims[0] !== n) throw badInput(labelsFile, `holds ${l.header.dims[0]} labels but ${basename(imagesFile)} holds ${n} images`);
    const r = await l.open();
    labels = await r.read(n).finally(() => r.close());
  }
  const source: SampleSource = {
    total: n,
    async *read(start) {
      const reader = await images.open();
      try {
        const px = h * w * c;
        await reader.skip(start * px);
        for (let i = start; i < n; i++) {
          const data = (await reader.read(px)).slice(); // own the pixels: reads are views into a shared chunk
          yield {
            inputs: [{ kind: 'image', width: w, height: h, channels: c as 1 | 3, data, photo: false }],
            label: labels ? labels[i]! : null,
            file: imagesFile,
          };
        }
      } finally {
        await reader.close();
      }
    },
  };
  return makeDataset({ kind: 'mnist-idx', path: imagesFile, hasLabels: labels !== null }, source, inputs, options);
}
