/**
 * Calibration memory must not grow with the number of samples (SPEC §4, §9): peak RSS and time of
 * calibrating MNIST on 100 and on 1,000 test images, for every method, each run in a fresh child
 * process so that each peak is its own.
 *
 *   node --import tsx bench/calibration-memory.ts [--runs 2] [--small 100] [--large 1000] [--plateau 3000]
 *
 * Two regimes, because a plain process's peak RSS also holds garbage: every batch's tapped outputs
 * are new ArrayBuffers from onnxruntime, freed only when V8 next collects, and V8 lets a few tens of
 * MiB of them pile up before it does. So the plain peak rises from 100 to ~1,000 samples and then
 * stays put (the `--plateau` column, one plain run at 3,000 samples, shows it). What calibration
 * itself retains is measured with a garbage collection every 10 samples (children started with
 * --expose-gc): that peak must be flat. Each configuration runs `--runs` times; the table shows the
 * highest peak and the median time, and "flat" means the larger run's collected peak exceeds the
 * smaller's by no more than the run-to-run spread plus 4 MiB. Prints a table and, last, one JSON line.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { calibrate, type CalibrationMethod } from '../core/calibrate/index.ts';
import { openDataset } from '../core/evaluate/data/index.ts';
import { inputSpecs } from '../core/evaluate/evaluate.ts';
import { fixture } from '../core/testing/fixtures.ts';
import { readOnnxFile } from '../native-models/formats/onnx/index.ts';
import { peakRssBytes } from '../core/peak-rss.ts';

const THIS_FILE = fileURLToPath(import.meta.url);
const METHODS: CalibrationMethod[] = ['minmax', 'percentile', 'entropy', 'mse'];
const MIB = 2 ** 20;
const NOISE_ALLOWANCE = 4 * MIB;

interface RunResult {
  method: CalibrationMethod;
  samples: number;
  collected: boolean;
  seconds: number;
  maxRssBytes: number;
  tensors: number;
}

/** The child: one calibration, then its own peak RSS (core/peak-rss.ts) as the last stdout line. */
async function child(method: CalibrationMethod, samples: number, collected: boolean): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (collected && !gc) throw new Error('--collect needs node --expose-gc');
  const model = readOnnxFile(fixture('mnist', 'mnist.onnx'));
  const data = await openDataset(fixture('mnist', 't10k-images-idx3-ubyte.gz'), inputSpecs(model), { preprocess: 'mnist', limit: samples });
  const started = process.hrtime.bigint();
  const progress = collected ? (done: number) => { if (done % 10 === 0) gc!(); } : undefined;
  const r = await calibrate(model, data, { method, progress });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.samples !== samples) throw new Error(`calibrated on ${r.samples} samples, asked for ${samples}`);
  const result: RunResult = { method, samples, collected, seconds, maxRssBytes: peakRssBytes(), tensors: r.ranges.size };
  console.log(JSON.stringify(result));
}

function runChild(method: CalibrationMethod, samples: number, collected = false): RunResult {
  const args = [...(collected ? ['--expose-gc'] : []), '--import', 'tsx', THIS_FILE, '--child', '--method', method, '--samples', String(samples), ...(collected ? ['--collect'] : [])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`${method} on ${samples} samples failed (exit ${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as RunResult;
}

function summarise(runs: RunResult[]): { seconds: number; maxRssBytes: number; spreadBytes: number } {
  const times = runs.map((r) => r.seconds).sort((a, b) => a - b);
  const rss = runs.map((r) => r.maxRssBytes);
  return { seconds: times[times.length >> 1]!, maxRssBytes: Math.max(...rss), spreadBytes: Math.max(...rss) - Math.min(...rss) };
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'boolean', default: false },
      collect: { type: 'boolean', default: false },
      method: { type: 'string', default: 'minmax' },
      samples: { type: 'string', default: '100' },
      runs: { type: 'string', default: '2' },
      small: { type: 'string', default: '100' },
      large: { type: 'string', default: '1000' },
      plateau: { type: 'string', default: '3000' },
    },
  });
  if (values.child) return child(values.method as CalibrationMethod, Number(values.samples), values.collect);
  const runs = Math.max(1, Number(values.runs));
  const [small, large, plateau] = [Number(values.small), Number(values.large), Number(values.plateau)];
  const repeat = (method: CalibrationMethod, samples: number, collected: boolean) => summarise(Array.from({ length: runs }, () => runChild(method, samples, collected)));
  const mib = (bytes: number) => (bytes / MIB).toFixed(1);
  const rows: string[][] = [];
  const results: Record<string, unknown>[] = [];
  let allFlat = true;
  for (const method of METHODS) {
    const plain = { small: repeat(method, small, false), large: repeat(method, large, false), plateau: runChild(method, plateau) };
    const collected = { small: repeat(method, small, true), large: repeat(method, large, true) };
    const growth = collected.large.maxRssBytes - collected.small.maxRssBytes;
    const noise = Math.max(collected.small.spreadBytes, collected.large.spreadBytes) + NOISE_ALLOWANCE;
    const flat = growth <= noise;
    allFlat &&= flat;
    rows.push([
      method, mib(plain.small.maxRssBytes), mib(plain.large.maxRssBytes), mib(plain.plateau.maxRssBytes),
      mib(collected.small.maxRssBytes), mib(collected.large.maxRssBytes), mib(growth), mib(noise), flat ? 'yes' : 'NO',
      plain.small.seconds.toFixed(2), plain.large.seconds.toFixed(2), ((plain.large.seconds / large) * 1000).toFixed(2),
    ]);
    results.push({
      method,
      plain: { [small]: plain.small, [large]: plain.large, [plateau]: { seconds: plain.plateau.seconds, maxRssBytes: plain.plateau.maxRssBytes } },
      collected: { [small]: collected.small, [large]: collected.large },
      rssGrowthBytes: growth, noiseBytes: noise, flat,
    });
  }
  console.log(`Calibration on MNIST: peak RSS (MiB) of a fresh process, highest of ${runs} runs (plateau: 1 run); time: median, plain runs.\n`);
  console.log(table(
    ['method', `plain@${small}`, `plain@${large}`, `plain@${plateau}`, `gc@${small}`, `gc@${large}`, 'growth', 'noise', 'flat', `s@${small}`, `s@${large}`, `ms/sample`],
    rows,
  ));
  console.log(`\nWith garbage collected, peak RSS at ${large} samples ${allFlat ? 'is' : 'is NOT'} within noise of ${small} for every method (growth ≤ run-to-run spread + ${NOISE_ALLOWANCE / MIB} MiB).`);
  console.log(`Plain peaks include garbage awaiting V8's collection; they stop rising by ${large} samples (compare plain@${large} with plain@${plateau}).`);
  console.log(JSON.stringify({ bench: 'calibration-memory', model: 'mnist', runs, results, flat: allFlat }));
  if (!allFlat) process.exitCode = 1;
}

await main();
