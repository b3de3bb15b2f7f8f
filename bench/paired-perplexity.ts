/**
 * Two language models on the same held-back windows, window by window: the ratio of their
 * perplexities with a 95 % interval from a bootstrap over windows (and the t-interval beside it), and
 * how many windows the second model predicts worse. Perplexity differences of a percent are common
 * between compression methods; this says whether one is more than the text's noise.
 *
 *   node --import tsx bench/paired-perplexity.ts A.onnx B.onnx [--data native-models/zoo/transformer/heldout.npy]
 */
import { parseArgs } from 'node:util';
import { openDataset, type HostTensor } from '../core/evaluate/data/index.ts';
import { inputSpecs } from '../core/evaluate/evaluate.ts';
import { NextTokenMetrics } from '../core/evaluate/metrics.ts';
import { readOnnxFile } from '../native-models/formats/onnx/index.ts';
import { createSession, runSession } from '../native-models/runtimes/onnxruntime.ts';
import { photoBootstrap } from './imagenet-views.ts';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { data: { type: 'string', default: 'native-models/zoo/transformer/heldout.npy' } } });
if (positionals.length !== 2) {
  console.error('usage: node --import tsx bench/paired-perplexity.ts A.onnx B.onnx [--data WINDOWS.npy]');
  process.exit(2);
}

/** Mean next-token NLL (nats) of every window, in data order: position t predicts token t + 1. */
async function windowNll(model: string): Promise<number[]> {
  const data = await openDataset(values.data!, inputSpecs(readOnnxFile(model, { lazyTensors: true })), {});
  const { session } = await createSession(model, { ep: 'cpu' });
  const out: number[] = [];
  try {
    for await (const batch of data.batches(32)) {
      const feeds = batch.inputs as Record<string, HostTensor>;
      const tokens = Object.values(feeds)[0]!.data as BigInt64Array | Int32Array;
      const logits = (await runSession(session, feeds))[session.outputNames[0]!]!;
      const [windows, positions, vocab] = logits.dims as [number, number, number];
      const scores = logits.data as Float32Array;
      for (let w = 0; w < windows; w++) {
        // evaluate's own next-token arithmetic, one window at a time
        const metrics = new NextTokenMetrics();
        metrics.update(tokens.subarray(w * positions, (w + 1) * positions), [1, positions], { dims: [1, positions, vocab], data: scores.subarray(w * positions * vocab, (w + 1) * positions * vocab) });
        out.push(metrics.result()!.nllPerToken);
      }
    }
  } finally {
    await session.release();
  }
  return out;
}

const [a, b] = positionals as [string, string];
const A = await windowNll(a);
const B = await windowNll(b);
const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
const diff = B.map((v, i) => v - A[i]!);
const d = mean(diff);
const sd = Math.sqrt(diff.reduce((s, v) => s + (v - d) ** 2, 0) / (diff.length - 1));
const [lo, hi] = photoBootstrap(diff, 1, 4000, 7); // one window per group: a plain bootstrap over windows
const half = (1.96 * sd) / Math.sqrt(diff.length);
console.log(`${A.length} windows: perplexity ${Math.exp(mean(A)).toFixed(3)} (A) vs ${Math.exp(mean(B)).toFixed(3)} (B)`);
console.log(`B / A ${Math.exp(d).toFixed(4)}, 95 % interval ${Math.exp(lo).toFixed(4)}–${Math.exp(hi).toFixed(4)} (bootstrap over windows; t-interval ${Math.exp(d - half).toFixed(4)}–${Math.exp(d + half).toFixed(4)}); B worse on ${diff.filter((x) => x > 0).length} of ${diff.length} windows`);
console.log(JSON.stringify({ bench: 'paired-perplexity', a, b, windows: A.length, perplexityA: Math.exp(mean(A)), perplexityB: Math.exp(mean(B)), ratio: Math.exp(d), interval: [Math.exp(lo), Math.exp(hi)], worseWindows: diff.filter((x) => x > 0).length }));
