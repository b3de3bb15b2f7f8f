import { WhittleError } from '../../api/errors.ts';
import { bitsPerElement } from '../../native-models/ir/dtypes.ts';
import type { Tensor } from '../../native-models/ir/tensor.ts';
import { DECODABLE_TYPES, histogramOf, rangeOf, decodeToFloat32, type TensorPiece, type ValueRange } from './pool-kernels.mjs';
import type { WorkerPool } from './worker-pool.ts';

export interface ValueHistogram {
  /** Smallest and largest finite value (0 and 0 when there is none). */
  min: number;
  max: number;
  /** bins + 1 edges; a constant tensor gets a bin of width 1 around its value. */
  edges: number[];
  /** Finite values per bin (zeros included: `zeros` says how many of them are exactly 0). */
  counts: number[];
  zeros: number;
  nonFinite: number;
  total: number;
}

export interface HistogramOptions {
  /** Tensors of at least `parallelMinBytes` are split into pieces and spread over this pool. */
  pool?: WorkerPool | null;
  signal?: AbortSignal;
  /** Bytes per piece (a multiple of 8, so pieces start on element boundaries). Default 4 MiB. */
  pieceBytes?: number;
  /** Smaller tensors are counted on this thread: a worker round trip costs more. Default 4 MiB. */
  parallelMinBytes?: number;
}

/**
 * The tensor's bytes as element-aligned pieces (copies, so they can be transferred), read in
 * order: external data streams from disk, so a 1 GiB tensor never sits in memory whole.
 */
function* pieces(tensor: Tensor, pieceBytes: number): Generator<TensorPiece> {
  const bits = bitsPerElement(tensor.dataType);
  let elementsLeft = tensor.elementCount;
  const scratch = new Uint8Array(pieceBytes);
  for (const chunk of tensor.chunksInto(scratch)) {
    for (let off = 0; off < chunk.length && elementsLeft > 0; off += pieceBytes) {
      const bytes = Uint8Array.prototype.slice.call(chunk, off, Math.min(chunk.length, off + pieceBytes));
      const elements = Math.min(elementsLeft, Math.floor((bytes.length * 8) / bits));
      elementsLeft -= elements;
      yield { dataType: tensor.dataType, bytes, elements };
    }
  }
}

/** Runs `work` over every piece with at most `inFlight` pieces out at once (bounded memory). */
async function overPieces<R>(source: Iterable<TensorPiece>, inFlight: number, work: (piece: TensorPiece) => Promise<R>, signal?: AbortSignal): Promise<R[]> {
  const results: R[] = [];
  const running = new Set<Promise<void>>();
  for (const piece of source) {
    if (signal?.aborted) throw new WhittleError('CANCELLED', 'cancelled');
    const index = results.length;
    results.push(undefined as R);
    const p: Promise<void> = work(piece).then((r) => { results[index] = r; }).finally(() => running.delete(p));
    running.add(p);
    if (running.size >= inFlight) await Promise.race(running);
  }
  await Promise.all(running);
  return results;
}

function mergeRanges(ranges: ValueRange[]): ValueRange {
  const out: ValueRange = { min: Infinity, max: -Infinity, zeros: 0, nonFinite: 0, count: 0 };
  for (const r of ranges) {
    out.min = Math.min(out.min, r.min);
    out.max = Math.max(out.max, r.max);
    out.zeros += r.zeros;
    out.nonFinite += r.nonFinite;
    out.count += r.count;
  }
  return out;
}

function binEdges(range: ValueRange, bins: number): { lo: number; hi: number; edges: number[] } {
  let lo = Number.isFinite(range.min) ? range.min : 0;
  let hi = Number.isFinite(range.max) ? range.max : 0;
  if (hi <= lo) { lo -= 0.5; hi += 0.5; }
  const edges = Array.from({ length: bins + 1 }, (_, i) => (i === bins ? hi : lo + ((hi - lo) * i) / bins));
  return { lo, hi, edges };
}

/**
 * Value histogram of one weight tensor in two streamed passes (range, then counts). Large tensors
 * are cut into pieces counted in parallel on the worker pool; the result does not depend on how
 * the work was split.
 */
export async function weightHistogram(tensor: Tensor, bins: number, options: HistogramOptions = {}): Promise<ValueHistogram> {
  if (!DECODABLE_TYPES.includes(tensor.dataType) || tensor.source.kind === 'strings') {
    throw new WhittleError('UNSUPPORTED', `tensor ${tensor.name}: no value histogram for ${tensor.dtype} data`);
  }
  const pieceBytes = Math.max(8, Math.floor((options.pieceBytes ?? 4 << 20) / 8) * 8);
  const pool = options.pool ?? null;
  const signal = options.signal;
  const parallel = pool !== null && tensor.byteLength >= (options.parallelMinBytes ?? 4 << 20);

  // the same two passes either way; only where a piece is counted differs
  const inFlight = parallel ? pool.size * 2 : 1;
  const transfer = (p: TensorPiece) => ({ transfer: [p.bytes.buffer as ArrayBuffer], ...(signal ? { signal } : {}) });
  const rangeOfPiece = parallel ? (p: TensorPiece) => pool.run('range', p, transfer(p))
    : async (p: TensorPiece) => rangeOf(decodeToFloat32(p.dataType, p.bytes, p.elements));
  const range = mergeRanges(await overPieces(pieces(tensor, pieceBytes), inFlight, rangeOfPiece, signal));
  const { lo, hi } = binEdges(range, bins);
  const countPiece = parallel ? (p: TensorPiece) => pool.run('histogram', { ...p, lo, hi, bins }, transfer(p))
    : async (p: TensorPiece) => histogramOf(decodeToFloat32(p.dataType, p.bytes, p.elements), lo, hi, bins);
  const counts = new Float64Array(bins);
  for (const part of await overPieces(pieces(tensor, pieceBytes), inFlight, countPiece, signal)) part.forEach((c, i) => { counts[i]! += c; });
  const { edges } = binEdges(range, bins);
  return {
    min: Number.isFinite(range.min) ? range.min : 0,
    max: Number.isFinite(range.max) ? range.max : 0,
    edges,
    counts: [...counts],
    zeros: range.zeros,
    nonFinite: range.nonFinite,
    total: tensor.elementCount,
  };
}
