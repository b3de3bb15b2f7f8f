import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WhittleError } from '../../../api/errors.ts';
import { loadCorpus, windows } from './corpus.ts';
import type { TransformerSpec } from './model.ts';

/**
 * The saved test bed in this folder: the trained model, its model card and the token windows the
 * benchmarks use (calibration from the training text, perplexity on the held-back text), so a
 * machine without Debian's licence files (the GPU machine) can still run them.
 */
export const ZOO_DIR = dirname(fileURLToPath(import.meta.url));
export const MODEL_FILE = 'char-transformer.onnx';
export const CARD_FILE = 'card.json';
export const CALIB_FILE = 'calib.npy';
export const HELDOUT_FILE = 'heldout.npy';

export interface ModelCard {
  name: string;
  spec: TransformerSpec;
  parameters: number;
  vocab: string[];
  corpus: { source: string; files: { name: string; chars: number }[]; sha256: string; trainTokens: number; heldoutTokens: number; split: string };
  training: Record<string, unknown> & { command: string; seconds: number; finalLoss: number };
  perplexity: { heldoutTokens: number; js: number; onnxruntime: number; relativeDifference: number };
  calibration: { windows: number; seed: number; file: string };
  sha256: string;
}

export interface TestBed {
  dir: string;
  model: string;
  card: ModelCard;
  /** [windows·context] input tokens and next-token targets of the held-back text. */
  heldout: { inputs: Int32Array; targets: Int32Array; count: number };
  /** Path of the int64 [windows, context] calibration .npy (for `--calib`). */
  calibPath: string;
  calib: Int32Array;
}

/** Reads the saved test bed; says how to make it when it is missing. */
export function loadTestBed(dir = ZOO_DIR): TestBed {
  const model = join(dir, MODEL_FILE);
  if (!existsSync(model) || !existsSync(join(dir, CARD_FILE))) {
    throw new WhittleError('NOT_FOUND', `${model}: the transformer test bed is not built (node --import tsx native-models/zoo/transformer/build.ts)`);
  }
  const card = JSON.parse(readFileSync(join(dir, CARD_FILE), 'utf8')) as ModelCard;
  const T = card.spec.context;
  const held = readNpyInt64(join(dir, HELDOUT_FILE));
  const calib = readNpyInt64(join(dir, CALIB_FILE));
  // heldout.npy holds the whole held-back stream (1-D); the windows are cut here
  return { dir, model, card, heldout: windows(held.data, T), calibPath: join(dir, CALIB_FILE), calib: calib.data };
}

/** Held-back tokens straight from the corpus (tests compare them with the saved file). */
export function heldoutFromCorpus(): Int32Array {
  return loadCorpus().heldout;
}

/** An int64 little-endian C-order .npy. */
export function writeNpyInt64(path: string, shape: number[], data: Int32Array): void {
  let header = `{'descr': '<i8', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + data.length * 8);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  out.set(new TextEncoder().encode(header), 10);
  const view = new DataView(out.buffer, 10 + header.length);
  for (let i = 0; i < data.length; i++) view.setBigInt64(i * 8, BigInt(data[i]!), true);
  writeFileSync(path, out);
}

export function readNpyInt64(path: string): { shape: number[]; data: Int32Array } {
  const bytes = readFileSync(path);
  const len = bytes[8]! | (bytes[9]! << 8);
  const header = bytes.subarray(10, 10 + len).toString('latin1');
  if (!header.includes("'<i8'")) throw new WhittleError('BAD_INPUT', `${path}: expected an int64 .npy`);
  const shape = (/\(([^)]*)\)/.exec(header)?.[1] ?? '').split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset + 10 + len, n * 8);
  return { shape, data: Int32Array.from({ length: n }, (_, i) => Number(view.getBigInt64(i * 8, true))) };
}
