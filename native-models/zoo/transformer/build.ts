/**
 * Builds the transformer test bed: trains the character-level LM on Debian's licence texts,
 * exports it to ONNX with the project's writer, checks that onnxruntime's perplexity on the
 * held-back text matches the JavaScript forward pass, and writes the model, its card and the
 * token windows into this folder (or --out DIR).
 *
 *   node --import tsx native-models/zoo/transformer/build.ts [--out DIR] [--steps N] [--quick]
 *
 * --quick trains a tiny model for a few steps (tests and smoke runs; not the saved test bed).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { CORPUS_DIR, loadCorpus, TRAIN_SHARE, windows } from './corpus.ts';
import { onnxPerplexity, writeTransformer } from './export.ts';
import { parameterCount } from './model.ts';
import { CALIB_FILE, CARD_FILE, HELDOUT_FILE, MODEL_FILE, writeNpyInt64, ZOO_DIR, type ModelCard } from './testbed.ts';
import { calibrationSet, DEFAULT_TRAIN, jsPerplexity, train, type TrainOptions } from './train.ts';

export const QUICK_TRAIN: TrainOptions = { ...DEFAULT_TRAIN, spec: { context: 16, dModel: 32, heads: 2, layers: 1, ffn: 64 }, steps: 30, batch: 4 };

/** Largest relative gap allowed between onnxruntime's and the JavaScript perplexity. */
export const PERPLEXITY_TOLERANCE = 1e-3;

export async function buildTestBed(out: string, o: TrainOptions, command: string, log: (l: string) => void): Promise<ModelCard> {
  mkdirSync(out, { recursive: true });
  const corpus = loadCorpus();
  log(`corpus: ${corpus.files.length} files from ${CORPUS_DIR}, ${corpus.train.length.toLocaleString('en-US')} training and ${corpus.heldout.length.toLocaleString('en-US')} held-back characters, vocabulary ${corpus.vocab.length}`);
  const r = train(corpus, o, log);
  const js = jsPerplexity(r.spec, r.params, corpus.heldout);
  log(`held-back perplexity (JavaScript forward): ${js.perplexity.toFixed(4)} over ${js.tokens} tokens`);
  const modelPath = join(out, MODEL_FILE);
  writeTransformer(r.spec, r.params, modelPath, { vocab: JSON.stringify(corpus.vocab), corpus_sha256: corpus.sha256 });
  const T = r.spec.context;
  writeNpyInt64(join(out, HELDOUT_FILE), [corpus.heldout.length], corpus.heldout);
  const calibWindows = 128;
  const calibSeed = 7;
  writeNpyInt64(join(out, CALIB_FILE), [calibWindows, T], calibrationSet(corpus, T, calibWindows, calibSeed));
  const w = windows(corpus.heldout, T);
  const ort = await onnxPerplexity(modelPath, w.inputs, w.targets, T);
  const gap = Math.abs(ort.perplexity - js.perplexity) / js.perplexity;
  log(`held-back perplexity (onnxruntime, ${modelPath}): ${ort.perplexity.toFixed(4)} (relative difference ${gap.toExponential(2)})`);
  if (!(gap < PERPLEXITY_TOLERANCE)) throw new Error(`onnxruntime perplexity ${ort.perplexity} differs from the JavaScript one ${js.perplexity} by ${gap} (tolerance ${PERPLEXITY_TOLERANCE})`);
  const card: ModelCard = {
    name: 'char-transformer',
    spec: r.spec,
    parameters: parameterCount(r.spec),
    vocab: corpus.vocab,
    corpus: {
      source: `${CORPUS_DIR} (Debian package base-files)`, files: corpus.files, sha256: corpus.sha256,
      trainTokens: corpus.train.length, heldoutTokens: corpus.heldout.length,
      split: `first ${TRAIN_SHARE * 100} % of each file (to a line start) trains, the rest is held back`,
    },
    training: {
      command, seconds: Math.round(r.seconds), finalLoss: r.curve[r.curve.length - 1]![1],
      steps: o.steps, batch: o.batch, learningRate: o.learningRate, warmup: o.warmup, seed: o.seed,
      optimizer: 'AdamW β1 0.9 β2 0.99, weight decay 0.01 (matrices), clip 1, cosine to 0.1×', curve: r.curve,
    },
    perplexity: { heldoutTokens: js.tokens, js: js.perplexity, onnxruntime: ort.perplexity, relativeDifference: gap },
    calibration: { windows: calibWindows, seed: calibSeed, file: CALIB_FILE },
    sha256: createHash('sha256').update(readFileSync(modelPath)).digest('hex'),
  };
  writeFileSync(join(out, CARD_FILE), JSON.stringify(card, null, 1) + '\n');
  return card;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, steps: { type: 'string' }, quick: { type: 'boolean' } } });
  const o: TrainOptions = values.quick ? QUICK_TRAIN : { ...DEFAULT_TRAIN };
  if (values.steps) o.steps = Number(values.steps);
  const out = values.out ?? ZOO_DIR;
  const command = `node --import tsx native-models/zoo/transformer/build.ts${values.quick ? ' --quick' : ''}${values.steps ? ` --steps ${values.steps}` : ''}${values.out ? ` --out ${relative(process.cwd(), out) || '.'}` : ''}`;
  const card = await buildTestBed(out, o, command, (l) => console.log(l));
  console.log(`wrote ${join(out, MODEL_FILE)} (${card.parameters.toLocaleString('en-US')} parameters), ${CARD_FILE}, ${CALIB_FILE}, ${HELDOUT_FILE}`);
}
