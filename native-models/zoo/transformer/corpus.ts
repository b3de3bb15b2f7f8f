import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { WhittleError } from '../../../api/errors.ts';
import { seededRandom } from '../../ir/random.ts';

/**
 * The text the transformer test bed learns: the licence texts Debian ships in every installation
 * (package base-files, /usr/share/common-licenses), a fixed list read in a fixed order. Symlinks in
 * that folder (GPL → GPL-3, …) are left out of the list so no text is counted twice. Each file is
 * split at 90 % of its characters (moved forward to the next line start): the first part is
 * training text, the rest is held back for perplexity, so both parts cover every licence.
 */
export const CORPUS_DIR = '/usr/share/common-licenses';
export const CORPUS_FILES = [
  'Apache-2.0', 'Artistic', 'BSD', 'CC0-1.0', 'GFDL-1.2', 'GFDL-1.3', 'GPL-1', 'GPL-2', 'GPL-3',
  'LGPL-2', 'LGPL-2.1', 'LGPL-3', 'MPL-1.1', 'MPL-2.0',
] as const;
export const TRAIN_SHARE = 0.9;

export interface Corpus {
  /** Characters of the vocabulary, in code point order; token i is vocab[i]. */
  vocab: string[];
  train: Int32Array;
  heldout: Int32Array;
  /** sha256 of the concatenated source text (the model card records it). */
  sha256: string;
  files: { name: string; chars: number }[];
}

/** Reads and tokenizes the corpus; throws a plain error naming the missing file. */
export function loadCorpus(dir = CORPUS_DIR): Corpus {
  const texts: { name: string; text: string }[] = [];
  for (const name of CORPUS_FILES) {
    const path = `${dir}/${name}`;
    if (!existsSync(path)) throw new WhittleError('BAD_INPUT', `${path}: not found (the transformer corpus is Debian's base-files licence texts)`);
    texts.push({ name, text: readFileSync(realpathSync(path), 'utf8') });
  }
  const hash = createHash('sha256');
  for (const t of texts) hash.update(t.text);
  const chars = new Set<string>();
  for (const t of texts) for (const ch of t.text) chars.add(ch);
  const vocab = [...chars].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  const index = new Map(vocab.map((c, i) => [c, i]));
  const train: number[] = [];
  const heldout: number[] = [];
  for (const { text } of texts) {
    const cps = [...text];
    let cut = Math.floor(cps.length * TRAIN_SHARE);
    while (cut < cps.length && cps[cut - 1] !== '\n') cut++;
    for (let i = 0; i < cps.length; i++) (i < cut ? train : heldout).push(index.get(cps[i]!)!);
  }
  return {
    vocab, train: Int32Array.from(train), heldout: Int32Array.from(heldout), sha256: hash.digest('hex'),
    files: texts.map((t) => ({ name: t.name, chars: [...t.text].length })),
  };
}

/** Tokens from text with a vocabulary (characters outside it are an error). */
export function encode(text: string, vocab: string[]): Int32Array {
  const index = new Map(vocab.map((c, i) => [c, i]));
  return Int32Array.from([...text], (ch) => {
    const i = index.get(ch);
    if (i === undefined) throw new WhittleError('BAD_INPUT', `character ${JSON.stringify(ch)} is not in the vocabulary`);
    return i;
  });
}

/**
 * Non-overlapping windows of `t + 1` tokens over a token stream (inputs are the first t, targets
 * the last t), as [windows, t] input and target arrays. The tail that does not fill a window is dropped.
 */
export function windows(tokens: Int32Array, t: number, limit = Infinity): { inputs: Int32Array; targets: Int32Array; count: number } {
  const count = Math.min(limit, Math.floor((tokens.length - 1) / t));
  const inputs = new Int32Array(count * t);
  const targets = new Int32Array(count * t);
  for (let w = 0; w < count; w++) {
    inputs.set(tokens.subarray(w * t, w * t + t), w * t);
    targets.set(tokens.subarray(w * t + 1, w * t + t + 1), w * t);
  }
  return { inputs, targets, count };
}

/** A training batch: `batch` windows at seeded random offsets of the training stream. */
export function sampleBatch(tokens: Int32Array, t: number, batch: number, random: () => number, inputs: Int32Array, targets: Int32Array): void {
  const span = tokens.length - t - 1;
  for (let b = 0; b < batch; b++) {
    const at = Math.floor(random() * span);
    inputs.set(tokens.subarray(at, at + t), b * t);
    targets.set(tokens.subarray(at + 1, at + t + 1), b * t);
  }
}

/** Calibration windows: `count` windows of t tokens at seeded offsets of the training text. */
export function calibrationWindows(tokens: Int32Array, t: number, count: number, seed: number): Int32Array {
  const random = seededRandom(seed);
  const out = new Int32Array(count * t);
  const scratch = new Int32Array(count * t);
  sampleBatch(tokens, t, count, random, out, scratch);
  return out;
}
