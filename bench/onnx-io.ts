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
import { spawnSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { inspectModel } from '../core/inspect.ts';
import { readOnnxFile, writeOnnxFile } from '../native-models/formats/onnx/index.ts';
import { DataType } from '../native-models/ir/dtypes.ts';
import { Model, Node, type ValueInfo } from '../native-models/ir/model.ts';
import { Tensor } from '../native-models/ir/tensor.ts';

const CHUNK = 16 << 20;
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

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;
const maxRss = () => process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB

function modelFiles(dir: string): string[] {
  return [join(dir, MODEL), join(dir, `${MODEL}.data`)];
}

// ------------------------------------------------------------------ plain fs: the anchor

/** Reads every byte of the files in 16 MiB chunks into one reused buffer; returns the byte count. */
function readAll(files: string[]): number {
  const buf = Buffer.allocUnsafe(CHUNK);
  let total = 0;
  for (const file of files) {
    const fd = openSync(file, 'r');
    try {
      for (let n; (n = readSync(fd, buf, 0, CHUNK, null)) > 0;) total += n;
    } finally {
      closeSync(fd);
    }
  }
  return total;
}

/** Copies the files' bytes into one new file in 16 MiB chunks, fsynced like our writer's output. */
function copyAll(files: string[], out: string): number {
  const buf = Buffer.allocUnsafe(CHUNK);
  const outFd = openSync(out, 'w');
  let total = 0;
  try {
    for (const file of files) {
      const fd = openSync(file, 'r');
      try {
        for (let n; (n = readSync(fd, buf, 0, CHUNK, null)) > 0;) {
          for (let off = 0; off < n;) off += writeSync(outFd, buf, off, n - off);
          total += n;
        }
      } finally {
        closeSync(fd);
      }
    }
    fsyncSync(outFd);
  } finally {
    closeSync(outFd);
  }
  return total;
}

// ------------------------------------------------------------------ generating the model

/** xorshift32 floats in [-0.05, 0.05): cheap, deterministic, and never NaN. */
function fillRandom(out: Float32Array, state: { s: number }): void {
  let s = state.s;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 8) / 16777216 - 0.5) * 0.1;
  }
  state.s = s;
}

/**
 * Writes the weights into a scratch file chunk by chunk (never the whole model in memory), builds
 * the IR with tensors pointing into it, and has our writer produce model.onnx + model.onnx.data.
 */
function generate(dir: string, gib: number): PhaseResult['detail'] {
  const layerBytes = 4 * HIDDEN * HIDDEN + 4 * HIDDEN;
  const layers = Math.max(1, Math.ceil((gib * 2 ** 30) / layerBytes));
  const scratch = join(dir, 'scratch.bin');
  const fd = openSync(scratch, 'w');
  const chunk = new Float32Array(CHUNK / 4);
  const state = { s: 0x9e3779b9 };
  let offset = 0;
  const model = new Model();
  model.irVersion = 8;
  model.opsets = [{ domain: '', version: 17 }];
  model.producerName = 'whittle-bench';
  const g = model.graph;
  g.name = 'mlp';
  const f32 = (name: string): ValueInfo => ({ name, type: { kind: 'tensor', elemType: DataType.FLOAT, shape: [1, HIDDEN] }, extra: {} });
  g.inputs = [f32('x')];
  const external = (name: string, dims: number[]): Tensor => {
    const length = dims.reduce((a, b) => a * b, 4);
    for (let done = 0; done < length;) {
      const n = Math.min(CHUNK, length - done);
      const view = chunk.subarray(0, n / 4);
      fillRandom(view, state);
      const bytes = new Uint8Array(view.buffer, 0, n);
      for (let off = 0; off < n;) off += writeSync(fd, bytes, off, n - off);
      done += n;
    }
    const t = new Tensor({ name, dataType: DataType.FLOAT, dims, source: { kind: 'external', path: scratch, offset, length } });
    offset += length;
    return t;
  };
  let h = 'x';
  for (let i = 0; i < layers; i++) {
    g.initializers.set(`w${i}`, external(`w${i}`, [HIDDEN, HIDDEN]));
    g.initializers.set(`b${i}`, external(`b${i}`, [HIDDEN]));
    g.nodes.push(new Node({ name: `matmul${i}`, opType: 'MatMul', inputs: [h, `w${i}`], outputs: [`mm${i}`] }));
    g.nodes.push(new Node({ name: `add${i}`, opType: 'Add', inputs: [`mm${i}`, `b${i}`], outputs: [`h${i}`] }));
    h = `h${i}`;
  }
  g.outputs = [f32(h)];
  closeSync(fd);
  const report = writeOnnxFile(model, join(dir, MODEL), { externalData: true });
  rmSync(scratch);
  return { layers, hidden: HIDDEN, modelBytes: report.bytes + report.externalDataBytes, externalTensors: report.externalTensors };
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
  const r = spawnSync(process.execPath, ['--import', 'tsx', THIS_FILE, '--phase', phase, '--dir', dir, '--gib', String(gib)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`phase "${phase}" failed (exit ${r.status}):\n${r.stderr}`);
  const last = r.stdout.trim().split('\n').pop()!;
  return JSON.parse(last) as PhaseResult;
}

// ------------------------------------------------------------------ the report

function fmt(n: number, digits = 2): string {
  return n.toFixed(digits);
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

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
  const result: PhaseResult = { phase: values.phase, ...r, maxRssBytes: maxRss() };
  process.stdout.write(JSON.stringify(result) + '\n');
} else {
  orchestrate(gib, runs);
}
