/**
 * Inference latency on CPU of the models Whittle's quantizer produces, against their fp32 originals
 * measured in the same process (issue 3 item 9; SPEC §9: static int8 should beat fp32 on CPU, and
 * dynamic quantization of Conv — ConvInteger — is much slower than fp32).
 *
 *   node --import tsx bench/quantize-latency.ts [--runs 200] [--mnist-runs 2000] [--warmup 10] [--rounds 2]
 *
 * Quantizes, into a temp folder removed at the end:
 *   MNIST (fixtures/mnist): dynamic int8, static uint8 per-tensor and per-channel (MinMax,
 *     calibrated on the first 256 test images), fp16, int4 (MatMulNBits; MNIST has one MatMul);
 *   SqueezeNet 1.0 fp32: static uint8 per-tensor and per-channel (MinMax, calibrated on
 *     imagenet-100 with caffe preprocessing), fp16, dynamic with --include-conv (ConvInteger).
 * Then times each model with `evaluate()` on synthetic inputs (batch 1, the models' own batch) on
 * the CPU EP. fp32 and each quantized model are timed in `--rounds` alternating rounds (fp32, q,
 * fp32, q, …) in this one process, so drift in the machine's load hits both; each row reports the
 * median over rounds of each side's p50 and p95. speed-up = fp32 p50 ÷ model p50 (> 1: faster).
 * Prints a table and, last, one JSON line.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { QuantizeStep } from '../api/recipe.ts';
import { evaluate } from '../core/evaluate/evaluate.ts';
import { quantizeModel } from '../core/passes/quantize/quantize-model.ts';
import { fixture } from '../core/testing/fixtures.ts';
import { fmt, median, table } from './lib/child.ts';

interface Variant {
  label: string;
  step: Record<string, unknown>;
}

interface Suite {
  name: string;
  fp32: string;
  variants: Variant[];
  runs: number;
}

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '200' },
    'mnist-runs': { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
  },
});
const warmup = Number(values.warmup);
const rounds = Number(values.rounds);
const mnistCalib = { path: fixture('mnist', 't10k-images-idx3-ubyte.gz'), preprocess: 'mnist' };
const imagenetCalib = { path: fixture('imagenet-100'), preprocess: 'caffe' };

const SUITES: Suite[] = [
  {
    name: 'MNIST',
    fp32: fixture('mnist', 'mnist.onnx'),
    runs: Number(values['mnist-runs']),
    variants: [
      { label: 'dynamic int8', step: { method: 'dynamic' } },
      { label: 'static uint8 per-tensor', step: { method: 'static', calib: mnistCalib, samples: 256 } },
      { label: 'static uint8 per-channel', step: { method: 'static', calib: mnistCalib, samples: 256, perChannel: true } },
      { label: 'fp16', step: { method: 'fp16' } },
      { label: 'int4 (MatMulNBits)', step: { method: 'int4' } },
    ],
  },
  {
    name: 'SqueezeNet',
    fp32: fixture('squeezenet', 'squeezenet1.0_fp32.onnx'),
    runs: Number(values.runs),
    variants: [
      { label: 'static uint8 per-tensor', step: { method: 'static', calib: imagenetCalib, samples: 100 } },
      { label: 'static uint8 per-channel', step: { method: 'static', calib: imagenetCalib, samples: 100, perChannel: true } },
      { label: 'fp16', step: { method: 'fp16' } },
      { label: 'dynamic int8 --include-conv', step: { method: 'dynamic', includeConv: true } },
    ],
  },
];

interface Timing { p50Ms: number; p95Ms: number }

async function time(model: string, runs: number): Promise<Timing> {
  const r = await evaluate({ model, data: 'synthetic:4', ep: 'cpu', warmup, runs });
  return { p50Ms: r.latency.p50Ms, p95Ms: r.latency.p95Ms };
}

/** fp32 and the model in alternating rounds; medians over rounds. */
async function pair(fp32: string, model: string, runs: number): Promise<{ fp32: Timing; model: Timing }> {
  const a: Timing[] = [];
  const b: Timing[] = [];
  for (let i = 0; i < rounds; i++) {
    a.push(await time(fp32, runs));
    b.push(await time(model, runs));
  }
  const med = (t: Timing[]): Timing => ({ p50Ms: median(t.map((x) => x.p50Ms)), p95Ms: median(t.map((x) => x.p95Ms)) });
  return { fp32: med(a), model: med(b) };
}

const dir = mkdtempSync(join(tmpdir(), 'whittle-bench-latency-'));
const started = performance.now();
const rows: string[][] = [];
const results: Record<string, unknown>[] = [];
try {
  for (const suite of SUITES) {
    for (const v of suite.variants) {
      process.stderr.write(`${suite.name}: ${v.label} ...\n`);
      const out = join(dir, `${suite.name}-${v.label.replace(/\W+/g, '-')}.onnx`);
      const q = await quantizeModel({ input: suite.fp32, output: out, step: QuantizeStep.parse(v.step), ep: 'cpu' });
      const t = await pair(suite.fp32, out, suite.runs);
      const speedup = t.fp32.p50Ms / t.model.p50Ms;
      rows.push([
        `${suite.name}: ${v.label}`, fmt(t.fp32.p50Ms, 3), fmt(t.fp32.p95Ms, 3), fmt(t.model.p50Ms, 3), fmt(t.model.p95Ms, 3),
        `${fmt(speedup, 2)}×`, `${(q.bytesAfter / 1024).toFixed(0)} KiB`,
      ]);
      results.push({ model: suite.name, variant: v.label, step: v.step, runs: suite.runs, rounds, fp32: t.fp32, quantized: t.model, speedup, bytesBefore: q.bytesBefore, bytesAfter: q.bytesAfter, nodesChanged: q.nodesChanged, warnings: q.warnings });
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const totalSeconds = (performance.now() - started) / 1000;
console.log(`CPU EP, batch 1, synthetic inputs; warmup ${warmup}; ${SUITES.map((s) => `${s.name} ${s.runs} runs`).join(', ')} per measurement;`);
console.log(`fp32 and each model timed in ${rounds} alternating rounds in one process (medians over rounds); speed-up = fp32 p50 ÷ model p50\n`);
console.log(table(['model: method', 'fp32 p50 ms', 'fp32 p95 ms', 'p50 ms', 'p95 ms', 'speed-up', 'size'], rows));
console.log(`\ntotal bench time ${fmt(totalSeconds, 1)} s`);
console.log(JSON.stringify({ bench: 'quantize-latency', ep: 'cpu', warmup, rounds, totalSeconds, results }));
