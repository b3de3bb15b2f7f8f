/**
 * Which images decide a top-1 agreement figure: for each model given, the images whose top-1 class
 * differs from the fp32 model's, with the fp32 margin between its two best classes (log-probability
 * difference = logit difference) and the margin by which the quantized model prefers its own class.
 * With 100 photos one image is one point of agreement, and an image whose fp32 margin is smaller
 * than the quantized model's logit noise flips on luck.
 *
 *   node --import tsx bench/quantize-margins.ts QUANTIZED.onnx [MORE.onnx ...]
 *        [--reference squeezenet1.0_fp32.onnx] [--data imagenet-100] [--preprocess caffe]
 */
import { parseArgs } from 'node:util';
import { PRESETS } from '../api/recipe.ts';
import { fixture } from '../core/testing/fixtures.ts';
import { logOf, modelOutputs, topTwo } from './imagenet-views.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    reference: { type: 'string', default: fixture('squeezenet', 'squeezenet1.0_fp32.onnx') },
    data: { type: 'string', default: fixture('imagenet-100') },
    preprocess: { type: 'string', default: 'caffe' },
  },
});
const preset = PRESETS.find((p) => p === values.preprocess);
if (positionals.length === 0 || !preset) {
  console.error('usage: node --import tsx bench/quantize-margins.ts QUANTIZED.onnx [MORE.onnx ...] [--reference MODEL] [--data DATA] [--preprocess PRESET]');
  process.exit(2);
}

/** P(Z > z) for a standard normal Z (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7). */
function normalTail(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erfc = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-x * x);
  return z >= 0 ? erfc / 2 : 1 - erfc / 2;
}

// The outputs are probabilities (SqueezeNet ends in Softmax): log p differences are logit differences.
const outputs = (path: string) => modelOutputs(path, values.data!, preset);
const reference = await outputs(values.reference);
const margins = reference.map((v) => { const [a, b] = topTwo(v); return logOf(v[a]!) - logOf(v[b]!); });
const close = margins.map((m, i) => ({ m, i })).sort((x, y) => x.m - y.m).slice(0, 8);
console.log(`${values.reference}: ${reference.length} samples; smallest fp32 top-2 margins: ${close.map(({ m, i }) => `#${i} ${m.toFixed(3)}`).join(', ')}`);
for (const path of positionals) {
  const q = await outputs(path);
  const flips: string[] = [];
  let noise = 0;
  for (let i = 0; i < q.length; i++) {
    const [a] = topTwo(reference[i]!);
    const [qa] = topTwo(q[i]!);
    // the change of the fp32 winner's lead over the runner-up: the logit noise that matters here
    const [, b] = topTwo(reference[i]!);
    const lead = logOf(q[i]![a]!) - logOf(q[i]![b]!);
    noise += (lead - margins[i]!) ** 2;
    if (a !== qa) flips.push(`#${i} (fp32 margin ${margins[i]!.toFixed(3)}, quantized prefers its class by ${(logOf(q[i]![qa]!) - logOf(q[i]![a]!)).toFixed(3)})`);
  }
  const rms = Math.sqrt(noise / q.length);
  // were the margin changes Gaussian with that RMS, each image would flip with probability Φ(−margin/rms)
  const expected = margins.reduce((sum, m) => sum + (rms > 0 ? normalTail(m / rms) : 0), 0);
  console.log(`${path}: agreement ${q.length - flips.length}/${q.length}; RMS change of the fp32 top-2 margin ${rms.toFixed(3)} (${expected.toFixed(1)} flips expected at that noise); flipped: ${flips.join(', ') || 'none'}`);
}
