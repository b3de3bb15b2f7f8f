import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import { deflateRaw, constants as zlibConstants, type ZlibOptions } from 'node:zlib';

const deflateRawAsync = promisify<Buffer, ZlibOptions, Buffer>(deflateRaw);

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

/**
 * How many bytes `whittle prune` deflates by default (`--deflate auto`): 128 MiB a core. Deflate at
 * level 6 runs at about 10 MB/s a core on float weights (a 256 MiB file took 13.7 s on 2 cores), and
 * the input and the output are both measured, so this keeps the measurement to about half a minute
 * on any machine; a bigger model is measured when asked (`--deflate on`).
 */
export function defaultDeflateBudget(): number {
  return 128 * 1024 * 1024 * Math.max(1, availableParallelism());
}

/** Pieces deflated on their own: deflate looks back 32 KiB, so cutting every 4 MiB costs bytes, not ratio. */
const DEFLATE_PIECE = 4 << 20;

/**
 * Bytes of a file after raw deflate (zlib level 6). A file bigger than one piece is deflated as
 * independent 4 MiB pieces on libuv's thread pool, several at once (a 256 MiB model took 8 s as one
 * stream on one core), and their sizes summed: within a few bytes a piece of the single stream, whose
 * 32 KiB window the cuts barely touch. A file of one piece gives exactly the single stream's size.
 */
export async function deflatedSize(file: string): Promise<number> {
  const size = statSync(file).size;
  const pieces = Math.max(1, Math.ceil(size / DEFLATE_PIECE));
  let next = 0;
  let total = 0;
  const handle = await open(file, 'r');
  try {
    const worker = async () => {
      const buffer = Buffer.allocUnsafe(Math.min(size, DEFLATE_PIECE));
      for (let piece = next++; piece < pieces; piece = next++) {
        const start = piece * DEFLATE_PIECE;
        const length = Math.min(DEFLATE_PIECE, size - start);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await handle.read(buffer, got, length - got, start + got);
          if (bytesRead === 0) throw new Error(`${file}: ended early while measuring its deflated size`);
          got += bytesRead;
        }
        // awaited first: `total += await …` would read total before the wait and lose the other workers' pieces
        const deflated = await deflateRawAsync(buffer.subarray(0, length), { level: 6, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
        total += deflated.length;
      }
    };
    await Promise.all(Array.from({ length: Math.min(pieces, Math.max(1, availableParallelism())) }, worker));
  } finally {
    await handle.close();
  }
  return total;
}
