/**
 * Calibration memory on a model with a free batch axis: a generated ResNet-50-sized network (25.5 M
 * parameters, bench/gpu/resnet50.ts) calibrated on imagenet-100 photos read 32 at a time. Every
 * intermediate tensor is tapped, about 100 MiB a photo, so running the whole batch at once holds
 * gigabytes; tap.ts measures one sample and runs the rest in parts under TAP_BYTES_PER_RUN. Each
 * configuration runs in a fresh child process (its own peak RSS); the baseline — whole batches, as
 * before the budget — is measured in the same run.
 *
 *   node --import tsx bench/calibration-batches.ts [--samples 32] [--batch 32] [--method minmax] [--scale 1]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { calibrate, TAP_BYTES_PER_RUN, type CalibrationMethod } from '../core/calibrate/index.ts';
import { openDataset } from '../core/evaluate/data/index.ts';
import { inputSpecs } from '../core/evaluate/evaluate.ts';
import { fixture } from '../core/testing/fixtures.ts';
import { readOnnxFile, writeOnnxFile } from '../native-models/formats/onnx/index.ts';
import { resnet50Model } from './gpu/resnet50.ts';
import { peakRssBytes } from '../core/peak-rss.ts';

const THIS_FILE = fileURLToPath(import.meta.url);
const MIB = 2 ** 20;

interface RunResult { budget: string; seconds: number; maxRssBytes: number; samplesPerRun: number; samples: number }

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    model: { type: 'string' },
    budget: { type: 'string' },
    samples: { type: 'string', default: '32' },
    batch: { type: 'string', default: '32' },
    method: { type: 'string', default: 'minmax' },
    scale: { type: 'string', default: '1' },
  },
});

async function child(): Promise<void> {
  const model = readOnnxFile(values.model!);
  const data = await openDataset(fixture('imagenet-100'), inputSpecs(model), { preprocess: 'caffe', limit: Number(values.samples) });
  const budget = values.budget === 'whole' ? Infinity : Number(values.budget);
  const started = performance.now();
  const r = await calibrate(model, data, { method: values.method as CalibrationMethod, batchSize: Number(values.batch), maxBytesPerRun: budget });
  const result: RunResult = { budget: values.budget!, seconds: (performance.now() - started) / 1000, maxRssBytes: peakRssBytes(), samplesPerRun: r.samplesPerRun, samples: r.samples };
  console.log(JSON.stringify(result));
}

function runChild(model: string, budget: string): RunResult {
  const args = ['--import', 'tsx', THIS_FILE, '--child', '1', '--model', model, '--budget', budget, '--samples', values.samples!, '--batch', values.batch!, '--method', values.method!];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`calibration with budget ${budget} failed (exit ${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as RunResult;
}

async function main(): Promise<void> {
  if (values.child) return child();
  const dir = mkdtempSync(join(tmpdir(), 'whittle-calib-batches-'));
  try {
    const model = join(dir, 'resnet50.onnx');
    writeOnnxFile(resnet50Model({ scale: Number(values.scale) }), model);
    const whole = runChild(model, 'whole');
    const budgets = [String(TAP_BYTES_PER_RUN), String(4 * TAP_BYTES_PER_RUN)];
    const rows = [whole, ...budgets.map((b) => runChild(model, b))];
    console.log(`Calibration (${values.method}) of a generated ResNet-50-sized model on ${values.samples} imagenet-100 photos read ${values.batch} at a time; peak RSS of a fresh process.\n`);
    console.log('tapped bytes a run may return   samples per run   peak RSS    time      RSS vs whole   time vs whole');
    for (const r of rows) {
      const label = r.budget === 'whole' ? 'no limit (whole batch, before)' : `${(Number(r.budget) / MIB).toFixed(0)} MiB${Number(r.budget) === TAP_BYTES_PER_RUN ? ' (default)' : ''}`;
      console.log(`${label.padEnd(32)}${String(r.samplesPerRun).padStart(15)}   ${((r.maxRssBytes / MIB).toFixed(0) + ' MiB').padStart(9)}   ${(r.seconds.toFixed(1) + ' s').padStart(7)}   ${(r.maxRssBytes / whole.maxRssBytes).toFixed(2).padStart(12)}×   ${(r.seconds / whole.seconds).toFixed(2).padStart(12)}×`);
    }
    console.log(JSON.stringify({ bench: 'calibration-batches', samples: Number(values.samples), batch: Number(values.batch), method: values.method, rows }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
