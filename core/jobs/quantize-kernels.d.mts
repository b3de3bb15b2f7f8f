// Types of quantize-kernels.mjs (plain JavaScript so worker threads need no TypeScript loader).

export type QuantType = 'uint8' | 'int8' | 'uint4' | 'int4' | 'int7';

export interface QuantParams {
  /** As stored (float32). */
  scale: number;
  zeroPoint: number;
}

export function roundHalfEven(x: number): number;

export function quantParamsInto(rmin: number, rmax: number, type: QuantType, symmetric: boolean, out: QuantParams): QuantParams;

export type BlockLayout = 'kn' | 'packed';

export interface BlockQuantizerState {
  K: number;
  N: number;
  bits: 4 | 8;
  blockSize: number;
  blocks: number;
  /** [K, N] storage values ('kn') or MatMulNBits' B [N, blocks, blockSize·bits/8] ('packed'). */
  data: Uint8Array;
  /** [N, blocks]. */
  scales: Float32Array;
  /** [N, blocks], unsigned storage values. */
  zeroPoints: Uint8Array;
}

export function blockQuantizer(K: number, N: number, bits: 4 | 8, blockSize: number, symmetric: boolean, layout: BlockLayout): BlockQuantizerState;

/** Quantizes whole block-rows of the weight (SIMD kernels where the engine has them); false at a NaN or ±Infinity. */
export function quantizeBlockRows(s: BlockQuantizerState, values: Float32Array, firstRow: number): boolean;

/** quantizeBlockRows in plain JavaScript: the reference for the SIMD kernels. */
export function quantizeBlockRowsScalar(s: BlockQuantizerState, values: Float32Array, firstRow: number): boolean;

export function blockRowsPerPiece(N: number, blockSize: number): number;

export interface BlocksFromFile {
  path: string;
  offset: number;
  K: number;
  N: number;
  bits: 4 | 8;
  blockSize: number;
  symmetric: boolean;
  layout: BlockLayout;
}

export function quantizeBlocksFromFile(input: BlocksFromFile): { finite: boolean; blocks: number; data: Uint8Array; scales: Float32Array; zeroPoints: Uint8Array };
