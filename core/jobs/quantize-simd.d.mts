// Types of quantize-simd.mjs (plain JavaScript so worker threads need no TypeScript loader).
import type { BlockQuantizerState } from './quantize-kernels.mjs';

/** The per-column min/max function's WAT text ("minmax"), shared with dynamic int8's kernels. */
export const COLUMN_MINMAX: string;

/** The kernels' WAT text (assembled by wasm-assembler.mjs on first use). */
export const KERNELS: string;

/** Whether this thread runs the SIMD kernels (false where the engine has no WebAssembly SIMD). */
export function simdAvailable(): boolean;

/** Where quantizeBlockRowsSimd reads `rows` rows of s's weight: fill it and pass it, no copy made. Valid until the next call. */
export function simdInput(s: BlockQuantizerState, rows: number): Float32Array;

/** quantizeBlockRows on the SIMD kernels: the same contract and the same bytes. */
export function quantizeBlockRowsSimd(s: BlockQuantizerState, values: Float32Array, firstRow: number): boolean;
