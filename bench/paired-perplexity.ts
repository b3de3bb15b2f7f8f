/**
 * Two language models on the same held-back windows, window by window, without recording runs: the
 * ratio of their perplexities with a 95 % interval from a bootstrap over windows, and how many windows
 * the second model predicts worse. The same arithmetic as `whittle experiments compare` of two
 * recorded evaluations (core/evaluate/predictions.ts), for scripts and tables.
 *
 *   node --import tsx bench/paired-perplexity.ts A.onnx B.onnx [--data native-models/zoo/transformer/heldout.npy]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { evaluate } from '../core/evaluate/evaluate.ts';
import { pairedPerplexities, type WindowLosses } from '../core/evaluate/predictions.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { data: { type: 'string', default: 'native-models/zoo/transformer/heldout.npy' } } });
if (positionals.length !== 2) {
  console.error('usage: node --import tsx bench/paired-perplexity.ts A.onnx B.onnx [--data WINDOWS.npy]');
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), 'whittle-paired-perplexity-'));
try {
  const losses = async (model: string, name: string): Promise<WindowLosses> => {
    const file = join(dir, name);
    await evaluate({ model, data: values.data!, ep: 'cpu', runs: 1, warmup: 0, predictionsFile: file });
    return JSON.parse(readFileSync(file, 'utf8')) as WindowLosses;
  };
  const [a, b] = positionals as [string, string];
  const [p] = pairedPerplexities([await losses(a, 'a.json'), await losses(b, 'b.json')]);
  if (!p) throw new Error(`${a} and ${b} were not scored on the same windows`);
  console.log(`${p.windows} windows: perplexity ${p.basePerplexity.toFixed(3)} (A) vs ${p.runPerplexity.toFixed(3)} (B)`);
  console.log(`B / A ${p.ratio.toFixed(4)}, 95 % interval ${p.low.toFixed(4)}–${p.high.toFixed(4)} (bootstrap over windows); B worse on ${p.worse} of ${p.windows} windows, better on ${p.better} (sign test p ${p.pValue.toPrecision(2)})`);
  console.log(JSON.stringify({ bench: 'paired-perplexity', a, b, ...p }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
