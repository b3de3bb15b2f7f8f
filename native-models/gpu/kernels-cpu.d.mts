// Types of kernels-cpu.mjs (plain JavaScript so worker threads need no TypeScript loader).

type Floats = Float32Array | Float64Array;

export const XTX_CHUNK: number;
export function xtxAccumulate(x: Floats, rows: number, k: number, acc: Float64Array, i0?: number, i1?: number, scratch?: Float64Array): void;
export function roundUp4(k: number): number;
export function gramChunk(b: Float64Array, C: number, t: number, k: number, acc: Float64Array, i0?: number, i1?: number): void;
export function mirrorUpper(a: Float64Array | Float32Array, k: number): void;
export function workRanges(n: number, parts: number, work: (i: number) => number): [number, number][];
export function triangleRanges(k: number, parts: number): [number, number][];

export const CHOLESKY_BLOCK: number;
export function choleskyPanel(l: Float64Array, n: number, kb: number, ke: number, panel: Float64Array): boolean;
export function choleskyTrailing(l: Float64Array, n: number, ke: number, w: number, panel: Float64Array, i0: number, i1: number): void;
export function lowerTriangleRanges(m: number, parts: number): [number, number][];
export function choleskyLower(a: Float64Array, n: number, l?: Float64Array, panel?: Float64Array): Float64Array | null;
export function invertLowerColumns(l: Float64Array, n: number, x: Float64Array, j0: number, j1: number): void;
export function inverseColumnRanges(n: number, parts: number): [number, number][];
export function invertLowerRows(l: Float64Array, n: number): Float64Array;
export function inverseCholeskyUpper(h: Float64Array, n: number): Float64Array | null;

export function nmGroup(c: number, m: number, segment: number, k: number): [number, number];
export interface NmPattern { n: number; m: number; segment: number }
export function quadraticFormRows(a: Float64Array, b: Float64Array, h: Float64Array, k: number, r0: number, r1: number, sums: Float64Array, slot: number): void;
export function sparseGptRows(w: Float64Array, u: Float64Array, mask: Uint8Array, k: number, i1: number, i2: number, r0: number, r1: number, nm: NmPattern | null): void;

export const GPTQ_ROW_TILE: number;
export function groupParams(lo: number, hi: number, qmin: number, qmax: number, symmetric: boolean, out: Float64Array): void;

export interface GptqRowParams {
  K: number;
  bits: 4 | 8;
  symmetric: boolean;
  groupSize: number;
  /** Columns per lazy batch update (a multiple of groupSize when params are computed lazily). */
  blockSize: number;
  /** Processing position → original column (act-order), or null. */
  perm: Int32Array | null;
  /** Params per (row, group) fixed beforehand (static groups), or null (computed as the loop reaches each group). */
  staticScales: Float32Array | null;
  /** Storage zero points per (row, group), with staticScales. */
  staticZeros: Uint8Array | null;
  /** Symmetric only: codes kept in [−qLimit, qLimit] (64: 7-bit weights stored in 8, reduce range). */
  qLimit?: number | undefined;
}
export function gptqRows(w: Floats, u: Floats, p: GptqRowParams, r0: number, r1: number, q: Uint8Array, scales: Float32Array, zeros: Uint8Array): number;

export function minMax(values: Floats, start?: number, end?: number): { min: number; max: number; nonFinite: number };
export function histogram(values: Floats, lo: number, hi: number, bins: number, counts: Uint32Array, start?: number, end?: number): void;
export function thresholdFromHistogram(counts: Uint32Array, max: number, keep: number): number;

export interface CpuTasks {
  xtx: (input: { x: Floats; rows: number; k: number; acc: Float64Array; i0: number; i1: number }) => null;
  gram: (input: { b: Float64Array; C: number; t: number; k: number; acc: Float64Array; i0: number; i1: number }) => null;
  gptqRows: (input: { w: Floats; u: Floats; p: GptqRowParams; r0: number; r1: number; q: Uint8Array; scales: Float32Array; zeros: Uint8Array }) => number;
  choleskyTrailing: (input: { l: Float64Array; n: number; ke: number; w: number; panel: Float64Array; i0: number; i1: number }) => null;
  invertLowerColumns: (input: { l: Float64Array; n: number; x: Float64Array; j0: number; j1: number }) => null;
  sparseGptRows: (input: { w: Float64Array; u: Float64Array; mask: Uint8Array; k: number; i1: number; i2: number; r0: number; r1: number; nm: NmPattern | null }) => null;
  quadraticFormRows: (input: { a: Float64Array; b: Float64Array; h: Float64Array; k: number; r0: number; r1: number; sums: Float64Array; slot: number }) => null;
  minMax: (input: { values: Floats; start: number; end: number }) => { min: number; max: number; nonFinite: number };
  histogram: (input: { values: Floats; lo: number; hi: number; bins: number; start: number; end: number }) => Uint32Array;
}
export const TASKS: CpuTasks;
