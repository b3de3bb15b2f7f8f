import { createReadStream, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { createDeflateRaw, constants as zlibConstants } from 'node:zlib';

/**
 * What unstructured sparsity buys in an artifact. The pruned tensors are still stored dense, so the
 * file on disk is as big as before; the zeros pay off once the file is compressed (a download, a
 * zip, an app bundle). onnxruntime densifies sparse initializers when it loads a model and runs
 * dense kernels, so zeros do not make inference faster: structured (channel) pruning, int8 and int4
 * do.
 */
export const SPARSITY_STORAGE_NOTE =
  'Unstructured sparsity saves storage, not time: onnxruntime densifies sparse weights at load and ' +
  'runs dense kernels, so the pruned model is as fast as the original. The saving shows after compression ' +
  '(see the deflated size); for speed use channel pruning, int8 or int4.';

export interface ArtifactSize {
  path: string;
  /** Bytes on disk: the model file plus its external data files, if any. */
  bytes: number;
  /** The same bytes after raw deflate at level 6 (what zip and gzip store, less their headers). */
  deflatedBytes: number;
  /** deflatedBytes / bytes. */
  ratio: number;
}

/**
 * Measures a written model: its size and its size after deflate, streamed (a 10 GiB model is never
 * in memory). `extraFiles` are external data files (relative to the model's folder) to count too.
 */
export async function artifactSize(path: string, extraFiles: readonly string[] = []): Promise<ArtifactSize> {
  const files = [path, ...extraFiles.map((f) => (isAbsolute(f) ? f : join(dirname(path), f)))];
  let bytes = 0;
  let deflatedBytes = 0;
  for (const file of files) {
    bytes += statSync(file).size;
    deflatedBytes += await deflatedSize(file);
  }
  return { path, bytes, deflatedBytes, ratio: bytes ? deflatedBytes / bytes : 1 };
}

/** Bytes of a file after raw deflate (zlib level 6), counted as they stream out. */
export async function deflatedSize(file: string): Promise<number> {
  let n = 0;
  const counter = new Writable({
    write(chunk: Buffer, _encoding, done) {
      n += chunk.length;
      done();
    },
  });
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), createDeflateRaw({ level: 6, strategy: zlibConstants.Z_DEFAULT_STRATEGY }), counter);
  return n;
}
