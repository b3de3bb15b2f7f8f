// Types of pool-kernels.mjs (plain JavaScript so worker threads need no TypeScript loader).
import type { BlocksFromFile, quantizeBlocksFromFile } from './quantize-kernels.mjs';

export const DECODABLE_TYPES: readonly number[];

export function decodeToFloat32(dataType: number, bytes: Uint8Array, elements?: number): Float32Array;

export interface ValueRange {
  /** Infinity when there is no finite value. */
  min: number;
  /** −Infinity when there is no finite value. */
  max: number;
  zeros: number;
  nonFinite: number;
  count: number;
}
export function rangeOf(values: Float32Array): ValueRange;

export function histogramOf(values: Float32Array, lo: number, hi: number, bins: number): Float64Array;

export function spin(ms: number): number;

export interface TensorPiece {
  dataType: number;
  bytes: Uint8Array;
  /** Elements in the piece (bounds 4-bit data). */
  elements?: number;
}
export interface PoolTasks {
  range: (input: TensorPiece) => ValueRange;
  histogram: (input: TensorPiece & { lo: number; hi: number; bins: number }) => Float64Array;
  spin: (input: { ms: number }) => number;
  quantizeBlocks: (input: { weights: BlocksFromFile[] }) => ReturnType<typeof quantizeBlocksFromFile>[];
}
export const TASKS: PoolTasks;
