/**
 * How fast Whittle reads, inspects and writes a large ONNX model with external data, against the
 * anchor of copying the same bytes with plain fs calls, measured in the same run.
 *
 *   node --import tsx bench/onnx-io.ts [--gib 1] [--runs 3]
 *
 * It generates (in a temp folder, removed at the end) an MLP of MatMul+Add layers whose weights
 * live in one external data file written by our writer, reads every file once so that all phases
 * see a warm page cache, then runs each phase in a fresh child process so that each phase's peak
 * RSS is its own, `--runs` times (the median time and the highest peak RSS are reported: writes
 * end in fsync, whose time varies). Prints a table and, last, one JSON line.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { inspectModel } from '../core/inspect.ts';
import { readOnnxFile, writeOnnxFile } from '../native-models/formats/onnx/index.ts';
import { fmt, runChild, seconds, table } from './lib/child.ts';
import { peakRssBytes } from '../core/peak-rss.ts';
import { generateMlp, layersForGiB } from './lib/mlp.ts';
import { copyAll, readAll } from './lib/plain-io.ts';

const HIDDEN = 4096; // a 4096×4096 float32 weight is 64 MiB: 16 layers make 1 GiB
const THIS_FILE = fileURLToPath(import.meta.url);
const MODEL = 'model.onnx';

interface PhaseResult {
  phase: string;
  seconds: number;
  maxRssBytes: number;
  /** Phase-specific facts (bytes moved, tensors written...), printed in the JSON line. */
  detail?: Record<string, number | string | boolean>;
}

function modelFiles(dir: string): string[] {
  return [join(dir, MODEL), join(dir, `${MODEL}.data`)];
}

// ------------------------------------------------------------------ generating the model

/**
 * Writes the weights into a scratch file chunk by chunk (never the whole model in memory), builds
 * the IR with tensors pointing into it, and has our writer produce model.onnx + model.onnx.data.
 */
function generate(dir: string, gib: number): PhaseResult['detail'] {
  const m = generateMlp(dir, { layers: layersForGiB(gib, HIDDEN), hidden: HIDDEN, externalData: true, file: MODEL });
  return { layers: m.layers, hidden: HIDDEN, modelBytes: m.modelBytes, externalTensors: m.externalTensors };
}

// ------------------------------------------------------------------ phases (each in its own process)

type Phase = (dir: string, gib: number) => Omit<PhaseResult, 'phase' | 'maxRssBytes'>;

const PHASES: Record<string, Phase> = {
  generate: (dir, gib) => {
    const t = process.hrtime.bigint();
    const detail = generate(dir, gib);
    return { seconds: seconds(t), detail };
  },
  /** A process that only loads this script: the RSS floor every phase stands on. */
  idle: () => ({ seconds: 0 }),
  'plain read': (dir) => {
    const t = process.hrtime.bigint();
    const bytes = readAll(modelFiles(dir));
    return { seconds: seconds(t), detail: { bytes } };
  },
  'plain read+write': (dir) => {
    const out = join(dir, 'copy.bin');
    const t = process.hrtime.bigint();
    const bytes = copyAll(modelFiles(dir), out);
    const s = seconds(t);
    rmSync(out);
    return { seconds: s, detail: { bytes } };
  },
  'whittle read': (dir) => {
    const t = process.hrtime.bigint();
    const model = readOnnxFile(join(dir, MODEL));
    const s = seconds(t);
    return { seconds: s, detail: { nodes: model.graph.nodes.length } };
  },
  'whittle read+inspect': (dir) => {
    const t = process.hrtime.bigint();
    const report = inspectModel(readOnnxFile(join(dir, MODEL)));
    return { seconds: seconds(t), detail: { parameters: report.parameters, layers: report.layers.length } };
  },
  'whittle read+write': (dir) => {
    const out = join(dir, 'rewritten.onnx');
    const t = process.hrtime.bigint();
    const report = writeOnnxFile(readOnnxFile(join(dir, MODEL)), out, { externalData: true });
    const s = seconds(t);
    rmSync(out);
    rmSync(report.externalDataPath!);
    return { seconds: s, detail: { bytes: report.bytes + report.externalDataBytes, externalTensors: report.externalTensors } };
  },
};

function runPhaseInChild(phase: string, dir: string, gib: number): PhaseResult {
  return runChild<PhaseResult>(THIS_FILE, ['--phase', phase, '--dir', dir, '--gib', String(gib)], { label: `phase "${phase}"` });
}

// ------------------------------------------------------------------ the report

/** Runs a phase `runs` times, each in a fresh process: median seconds, highest peak RSS. */
function measure(phase: string, dir: string, gib: number, runs: number): PhaseResult & { runs: number[] } {
  const all = Array.from({ length: runs }, () => runPhaseInChild(phase, dir, gib));
  const times = all.map((r) => r.seconds).sort((a, b) => a - b);
  const median = times.length % 2 ? times[(times.length - 1) / 2]! : (times[times.length / 2 - 1]! + times[times.length / 2]!) / 2;
  return { ...all[0]!, seconds: median, maxRssBytes: Math.max(...all.map((r) => r.maxRssBytes)), runs: all.map((r) => r.seconds) };
}

function orchestrate(gib: number, runs: number): void {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-bench-onnx-io-'));
  const started = process.hrtime.bigint();
  try {
    process.stderr.write(`generating a ${gib} GiB MLP with external data in ${dir} ...\n`);
    const gen = runPhaseInChild('generate', dir, gib);
    const modelBytes = modelFiles(dir).reduce((n, f) => n + statSync(f).size, 0);

    // Warm-up: one read of every file, so that the baseline and Whittle both read from the page
    // cache and neither pays for the disk first (the generator just wrote them, but say so anyway).
    const warm = process.hrtime.bigint();
    readAll(modelFiles(dir));
    const warmSeconds = seconds(warm);

    const order = ['idle', 'plain read', 'plain read+write', 'whittle read', 'whittle read+inspect', 'whittle read+write'];
    const results = new Map(order.map((p) => [p, measure(p, dir, gib, runs)]));
    const at = (p: string) => results.get(p)!;
    const baseline = at('plain read+write').seconds;
    const plainRead = at('plain read').seconds;
    const idleRss = at('idle').maxRssBytes;

    const rows = order.filter((p) => p !== 'idle').map((p) => {
      const r = at(p);
      return [p, fmt(r.seconds, 3), fmt(r.seconds / baseline, 2), fmt(r.maxRssBytes / 2 ** 20, 0), fmt(r.maxRssBytes / modelBytes, 3), fmt((r.maxRssBytes - idleRss) / modelBytes, 3)];
    });
    const readVsTwice = at('whittle read').seconds / (2 * plainRead);
    const inspectVsRead = at('whittle read+inspect').seconds / plainRead;

    const out: string[] = [];
    out.push(`model: ${layersOf(gen)} MatMul+Add layers of ${HIDDEN}×${HIDDEN} float32, ${fmt(modelBytes / 2 ** 30, 3)} GiB (${modelBytes} bytes: ${MODEL} + ${MODEL}.data), generated in ${fmt(gen.seconds, 1)} s`);
    out.push(`page cache: every file was read once (${fmt(warmSeconds, 2)} s) before any timing, so all phases read from a warm cache`);
    out.push(`each phase ran ${runs}× in fresh child processes (median seconds, highest peak RSS); seconds exclude process start; an idle child peaks at ${fmt(idleRss / 2 ** 20, 0)} MiB RSS`);
    out.push(`baseline = plain read+write (16 MiB chunks, output fsynced like the writer's)`);
    out.push('');
    out.push(table(['phase', 'seconds', '× baseline', 'peak RSS MiB', 'RSS / model', '(RSS − idle) / model'], rows));
    out.push('');
    out.push(`whittle read ÷ (2 × plain read of all bytes): ${fmt(readVsTwice, 4)}  (reading is lazy: external tensors stay on disk until used)`);
    out.push(`whittle read+inspect ÷ plain read: ${fmt(inspectVsRead, 2)}  (inspect reads every tensor to count zeros)`);
    out.push(`total bench time: ${fmt(seconds(started), 1)} s`);
    process.stdout.write(out.join('\n') + '\n');

    const json = {
      bench: 'onnx-io',
      gib,
      runs,
      modelBytes,
      layers: layersOf(gen),
      hidden: HIDDEN,
      generateSeconds: gen.seconds,
      warmCache: true,
      baselineSeconds: baseline,
      idleRssBytes: idleRss,
      phases: Object.fromEntries([...results].map(([p, r]) => [p, { seconds: r.seconds, allSeconds: r.runs, ratioToBaseline: r.seconds / baseline, maxRssBytes: r.maxRssBytes, rssOverModel: r.maxRssBytes / modelBytes, ...(r.detail ? { detail: r.detail } : {}) }])),
      readVsTwicePlainRead: readVsTwice,
      inspectVsPlainRead: inspectVsRead,
      totalSeconds: seconds(started),
    };
    process.stdout.write(JSON.stringify(json) + '\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function layersOf(r: PhaseResult): number {
  return Number(r.detail?.layers ?? 0);
}

const { values } = parseArgs({ options: { gib: { type: 'string', default: '1' }, runs: { type: 'string', default: '3' }, phase: { type: 'string' }, dir: { type: 'string' } } });
const gib = Number(values.gib);
const runs = Number(values.runs);
if (!(gib > 0)) throw new Error(`--gib must be a positive number, got ${values.gib}`);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${values.runs}`);
if (values.phase) {
  const phase = PHASES[values.phase];
  if (!phase || !values.dir) throw new Error(`unknown phase ${values.phase} or no --dir`);
  const r = phase(values.dir, gib);
  const result: PhaseResult = { phase: values.phase, ...r, maxRssBytes: peakRssBytes() };
  process.stdout.write(JSON.stringify(result) + '\n');
} else {
  orchestrate(gib, runs);
}
