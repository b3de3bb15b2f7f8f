/**
 * How fast Whittle quantizes, against the anchor of a plain read+write of the same bytes measured
 * in the same run (issue 3 item 9; SPEC §9: "bound by memory bandwidth, not by JavaScript
 * overhead", peak memory under twice the model's size).
 *
 *   node --import tsx bench/quantize-speed.ts [--runs 3] [--large-runs 1] [--gib 1] [--small-layers 4] [--no-large]
 *
 * Generates (in a temp folder, removed at the end) MLPs of MatMul+Add layers of 4096×4096 float32
 * (bench/lib/mlp.ts, never the whole model in memory):
 *   small           4 layers = 67 M parameters, 256 MiB, weights inline in the .onnx file;
 *   small-external  the same weights in an external data file (the reader then reads tensors
 *                   lazily, where an inline model is read whole into memory first);
 *   large           ≥ 1 GiB (16 layers), weights in one external data file.
 * Every file is read once first, so all phases read from a warm page cache. Then, per model, each
 * phase runs in a fresh child process (its peak RSS is its own): the baseline (plain read+write of
 * the model's bytes in 16 MiB chunks, fsynced like our writer), then `quantizeModel` (what
 * `whittle quantize --no-record` runs) with dynamic int8 per-tensor and per-channel, int4 and
 * int8-weight (MatMulNBits, block 32) and fp16, its output written beside the model and removed
 * afterwards.
 * Seconds are the whole quantizeModel call (open, pass, write, fsync) and exclude process start.
 * The bar (issue 3): on the ≥ 64 M model (both forms) each method takes ≤ 3× the baseline, with
 * peak RSS ≤ 2× the model's size. Prints a table and, last, one JSON line; exit code 1 when a bar
 * is missed. `--cpu-prof DIR` runs every quantize child under node --cpu-prof, writing there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { QuantizeStep } from '../api/recipe.ts';
import { quantizeModel } from '../core/passes/quantize/quantize-model.ts';
import { fmt, median, runChild, seconds, table } from './lib/child.ts';
import { peakRssBytes } from '../core/peak-rss.ts';
import { generateMlp, layersForGiB, type GeneratedMlp } from './lib/mlp.ts';
import { copyAll, readAll } from './lib/plain-io.ts';

const HIDDEN = 4096;
const THIS_FILE = fileURLToPath(import.meta.url);
const MIB = 2 ** 20;
const TIME_BAR = 3;
const RSS_BAR = 2;

interface Method {
  label: string;
  step: Record<string, unknown>;
}

const METHODS: Method[] = [
  { label: 'dynamic per-tensor', step: { method: 'dynamic' } },
  { label: 'dynamic per-channel', step: { method: 'dynamic', perChannel: true } },
  { label: 'int4 (MatMulNBits, block 32)', step: { method: 'int4' } },
  { label: 'int8-weight (MatMulNBits, block 32)', step: { method: 'int8-weight' } },
  { label: 'fp16', step: { method: 'fp16' } },
];

interface PhaseResult {
  phase: string;
  seconds: number;
  maxRssBytes: number;
  detail?: Record<string, unknown>;
}

// ------------------------------------------------------------------ child phases

function childPhase(phase: string, values: Record<string, string | boolean | undefined>): Promise<Omit<PhaseResult, 'phase' | 'maxRssBytes'>> | Omit<PhaseResult, 'phase' | 'maxRssBytes'> {
  const dir = String(values.dir);
  const files = String(values.files ?? '').split(',').filter(Boolean);
  switch (phase) {
    case 'generate': {
      const t = process.hrtime.bigint();
      const m = generateMlp(dir, { layers: Number(values.layers), hidden: HIDDEN, externalData: values.external === true, file: String(values.file) });
      return { seconds: seconds(t), detail: { ...m } };
    }
    case 'idle':
      return { seconds: 0 };
    case 'plain read+write': {
      const out = join(dir, 'copy.bin');
      const t = process.hrtime.bigint();
      const bytes = copyAll(files, out);
      const s = seconds(t);
      rmSync(out);
      return { seconds: s, detail: { bytes } };
    }
    default: {
      const method = METHODS.find((m) => m.label === phase);
      if (!method) throw new Error(`unknown phase ${phase}`);
      return quantizePhase(files[0]!, join(dir, 'quantized.onnx'), method);
    }
  }
}

async function quantizePhase(input: string, output: string, method: Method): Promise<Omit<PhaseResult, 'phase' | 'maxRssBytes'>> {
  const step = QuantizeStep.parse(method.step);
  const t = process.hrtime.bigint();
  const r = await quantizeModel({ input, output, step });
  const s = seconds(t);
  rmSync(r.output, { force: true });
  if (r.externalDataPath) rmSync(r.externalDataPath, { force: true });
  return { seconds: s, detail: { bytesAfter: r.bytesAfter, nodesChanged: r.nodesChanged, warnings: r.warnings.length } };
}

// ------------------------------------------------------------------ the parent

interface Measured extends PhaseResult {
  allSeconds: number[];
}

function phaseInChild(phase: string, args: Record<string, string | boolean>): PhaseResult {
  const argv = ['--phase', phase];
  for (const [k, v] of Object.entries(args)) {
    if (v === true) argv.push(`--${k}`);
    else if (v !== false) argv.push(`--${k}`, v);
  }
  const prof = values['cpu-prof'] && METHODS.some((m) => m.label === phase) ? ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof']] : [];
  return runChild<PhaseResult>(THIS_FILE, argv, { label: `phase "${phase}"`, nodeArgs: prof });
}

/** A phase `runs` times, each in a fresh process: median seconds, highest peak RSS. */
function measure(phase: string, args: Record<string, string | boolean>, runs: number): Measured {
  const all = Array.from({ length: runs }, () => phaseInChild(phase, args));
  return { ...all[0]!, seconds: median(all.map((r) => r.seconds)), maxRssBytes: Math.max(...all.map((r) => r.maxRssBytes)), allSeconds: all.map((r) => r.seconds) };
}

interface ModelRun {
  name: string;
  model: GeneratedMlp;
  runs: number;
  baselineSeconds: number;
  idleRssBytes: number;
  phases: Measured[];
}

function benchModel(name: string, dir: string, layers: number, external: boolean, runs: number): ModelRun {
  process.stderr.write(`${name}: generating ${layers} layers of ${HIDDEN}×${HIDDEN}${external ? ' with external data' : ' inline'} ...\n`);
  const gen = phaseInChild('generate', { dir, layers: String(layers), file: `${name}.onnx`, external });
  const model = gen.detail as unknown as GeneratedMlp;
  readAll(model.files); // warm the page cache: every phase reads from memory, none pays for the disk first
  const args = { dir, files: model.files.join(',') };
  const idle = measure('idle', args, 1);
  const phases = [measure('plain read+write', args, runs)];
  for (const m of METHODS) {
    process.stderr.write(`${name}: ${m.label} ...\n`);
    phases.push(measure(m.label, args, runs));
  }
  for (const f of model.files) rmSync(f, { force: true });
  return { name, model, runs, baselineSeconds: phases[0]!.seconds, idleRssBytes: idle.maxRssBytes, phases };
}

function report(runs: ModelRun[], totalSeconds: number): boolean {
  const out: string[] = [];
  const rows: string[][] = [];
  const json: Record<string, unknown>[] = [];
  let allPass = true;
  for (const r of runs) {
    const size = r.model.modelBytes;
    const gated = r.name.startsWith('small');
    for (const p of r.phases) {
      const ratio = p.seconds / r.baselineSeconds;
      const rssOverModel = p.maxRssBytes / size;
      const isBaseline = p.phase === 'plain read+write';
      const pass = ratio <= TIME_BAR && rssOverModel <= RSS_BAR;
      if (gated && !isBaseline) allPass &&= pass;
      rows.push([
        `${r.name}: ${p.phase}`, fmt(p.seconds, 3), fmt(ratio, 2), fmt(p.maxRssBytes / MIB, 0), fmt(rssOverModel, 2),
        fmt((p.maxRssBytes - r.idleRssBytes) / size, 2), isBaseline ? '' : gated ? (pass ? 'yes' : 'NO') : '(none)',
      ]);
      json.push({ model: r.name, phase: p.phase, seconds: p.seconds, allSeconds: p.allSeconds, ratioToBaseline: ratio, maxRssBytes: p.maxRssBytes, rssOverModel, rssAboveIdleOverModel: (p.maxRssBytes - r.idleRssBytes) / size, ...(p.detail ? { detail: p.detail } : {}) });
    }
  }
  for (const r of runs) {
    out.push(`${r.name}: ${r.model.layers} MatMul+Add layers of ${HIDDEN}×${HIDDEN} float32, ${(r.model.parameters / 1e6).toFixed(1)} M parameters, ${fmt(r.model.modelBytes / MIB, 0)} MiB ${r.model.files.length > 1 ? 'with external data' : 'inline'}; ${r.runs} run(s) a phase, idle child ${fmt(r.idleRssBytes / MIB, 0)} MiB RSS`);
  }
  out.push('baseline = plain read+write of the model\'s bytes (16 MiB chunks, fsynced); warm page cache; seconds exclude process start');
  out.push(`bar (the 64 M models): seconds ≤ ${TIME_BAR}× baseline and peak RSS ≤ ${RSS_BAR}× model size`);
  out.push('');
  out.push(table(['phase', 'seconds', '× baseline', 'peak RSS MiB', 'RSS / model', '(RSS − idle) / model', 'bar met'], rows));
  out.push('');
  out.push(`all methods ${allPass ? 'meet' : 'do NOT meet'} the bar on the 64 M models; total bench time ${fmt(totalSeconds, 1)} s`);
  process.stdout.write(out.join('\n') + '\n');
  process.stdout.write(JSON.stringify({
    bench: 'quantize-speed', hidden: HIDDEN, timeBar: TIME_BAR, rssBar: RSS_BAR, pass: allPass, totalSeconds,
    models: runs.map((r) => ({ name: r.name, layers: r.model.layers, parameters: r.model.parameters, modelBytes: r.model.modelBytes, externalData: r.model.files.length > 1, runs: r.runs, baselineSeconds: r.baselineSeconds, idleRssBytes: r.idleRssBytes })),
    phases: json,
  }) + '\n');
  return allPass;
}

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    'large-runs': { type: 'string', default: '1' },
    gib: { type: 'string', default: '1' },
    'small-layers': { type: 'string', default: '4' },
    'no-large': { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    phase: { type: 'string' },
    dir: { type: 'string' },
    files: { type: 'string' },
    layers: { type: 'string' },
    file: { type: 'string' },
    external: { type: 'boolean', default: false },
  },
});

if (values.phase) {
  const r = await childPhase(values.phase, values);
  process.stdout.write(JSON.stringify({ phase: values.phase, ...r, maxRssBytes: peakRssBytes() }) + '\n');
} else {
  const runs = Number(values.runs);
  const largeRuns = Number(values['large-runs']);
  const gib = Number(values.gib);
  const smallLayers = Number(values['small-layers']);
  if (![runs, largeRuns, smallLayers].every((n) => Number.isInteger(n) && n >= 1) || !(gib > 0)) throw new Error('--runs, --large-runs and --small-layers take positive integers, --gib a positive number');
  const dir = mkdtempSync(join(tmpdir(), 'whittle-bench-quantize-'));
  const started = process.hrtime.bigint();
  try {
    const results = [benchModel('small', dir, smallLayers, false, runs), benchModel('small-external', dir, smallLayers, true, runs)];
    if (!values['no-large']) results.push(benchModel('large', dir, layersForGiB(gib, HIDDEN), true, largeRuns));
    if (!report(results, seconds(started))) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
