import { existsSync } from 'node:fs';
import { WhittleError } from '../../api/errors.ts';
import { evaluate, type EvalReport } from '../../core/evaluate/evaluate.ts';
import { DEFAULT_LATENCY_SECONDS } from '../../core/evaluate/latency.ts';
import { PREDICTIONS_ARTIFACT } from '../../core/evaluate/predictions.ts';
import { PRESET_NAMES, type PresetName } from '../../core/evaluate/data/index.ts';
import { evaluateTfjs, type TfjsEvalReport } from '../../core/evaluate/tfjs-evaluate.ts';
import { sniffFormat } from '../../native-models/formats/index.ts';
import type { TfBackendChoice } from '../../native-models/runtimes/tfjs.ts';
import { EP_CHOICES, type EpChoice } from '../../native-models/runtimes/onnxruntime.ts';
import { formatBytes, formatCount, numberOption, parseCommand, requireOne, type CliIo } from '../io.ts';
import { ProgressBar } from '../progress.ts';
import { recordCommand } from '../record.ts';
import { describeRuntimeFusion } from '../../core/passes/quantize/runtime-check.ts';

export const summary = 'measure a model: accuracy, agreement with a reference, latency, size';
export const usage = `
whittle eval MODEL [--data DATA] [--preprocess PRESET] [--reference MODEL] [--ep auto|cpu|webgpu|cuda]
             [--batch N] [--limit N] [--offset N] [--warmup N] [--runs N] [--output NAME]
             [--size PX] [--layout nchw|nhwc] [--seed N] [--tf-backend auto|node-gpu|node|wasm|cpu]
             [--exact-int8] [--json] [--no-record]

DATA is an .npy/.npz file, MNIST idx files, an image folder, a single image, an ONNX test-data
folder (input_N.pb/output_N.pb), a raw tensor with a sidecar JSON, or synthetic:N (SPEC §4).
PRESET: ${PRESET_NAMES.join(', ')}. Top-1/top-5 are reported when the data has labels; --reference
adds top-1 agreement, output SQNR, cosine and max abs diff. Top-1 and agreement come with their 95 %
Wilson interval (JSON: top1Low, top1High): on 100 images one image is a point. Latency: --warmup runs, then p50/p95
over --runs runs of one batch (default: 50, or as many as fit in ${DEFAULT_LATENCY_SECONDS} s, at least 5).

A language model (one int64/int32 input [batch, positions], scores [batch, positions, vocabulary])
fed token windows (an .npy of [windows, positions]) gets next-token metrics: perplexity, nats per
token and next-token top-1 (position t predicts token t + 1 of its window); with --reference, the
reference's perplexity on the same windows and the per-position top-1 agreement.

--exact-int8 runs an int8 model with onnxruntime's graph optimizations off: each quantized op as
DequantizeLinear → float op → QuantizeLinear, the model's own arithmetic. On x86 CPUs without VNNI the
fused u8×s8 kernels saturate 8-bit weights (the eval says so); this measures the model instead (slower).

A TF.js model.json runs in TensorFlow.js: @tensorflow/tfjs-node-gpu or tfjs-node when installed,
else @tensorflow/tfjs on wasm (--tf-backend picks one; the report says which ran and why others were
skipped). Its --reference is another model.json. Photos for TF.js models usually want tf-square
(x/127.5-1 on the centre square: AutoML, TF Hub) or unit-stretch (x/255, whole photo resized).`;

function pct(x: number): string {
  return `${(x * 100).toFixed(2)} %`;
}

/** ", 95 % interval a–b %" (Wilson): one image of 100 is a point, and the figure should say so. Runs recorded before the interval existed have none. */
function interval(bounds: { top1Low?: number | null; top1High?: number | null }): string {
  const { top1Low: low, top1High: high } = bounds;
  return low != null && high != null ? `, 95 % interval ${(low * 100).toFixed(1)}–${(high * 100).toFixed(1)} %` : '';
}

export function renderEval(r: EvalReport): string {
  const lines: string[] = [];
  lines.push(`model      ${r.model}`);
  lines.push(`           ${formatBytes(r.bytes)}, ${formatCount(r.parameters)} parameters${r.nonzeroParameters < r.parameters ? ` (${formatCount(r.nonzeroParameters)} non-zero)` : ''}`);
  lines.push(`ep         ${r.ep} — ${r.device}${r.exactInt8 ? '; the model\'s own int8 arithmetic (--exact-int8: graph optimizations off, latency not the fused kernels\')' : ''}`);
  const preprocess = r.data.synthetic || (r.data.preprocessFrom === 'default') ? '' : `, preprocess ${r.data.preprocess}${r.data.preprocessFrom === 'calibration' ? ' (as its calibration data was read, recorded in the model)' : ''}`;
  lines.push(`data       ${r.data.kind} ${r.data.path}, ${formatCount(r.data.n)} samples${r.data.synthetic ? ' (synthetic)' : ''}${preprocess}`);
  if (r.accuracy) lines.push(`accuracy   top-1 ${pct(r.accuracy.top1)}  top-5 ${pct(r.accuracy.top5)}  (${formatCount(r.accuracy.correct1)} / ${formatCount(r.accuracy.n)}${interval(r.accuracy)})`);
  if (r.agreement) {
    const a = r.agreement;
    const sqnr = a.identical ? 'identical outputs' : a.sqnrDb === null ? 'n/a' : `${a.sqnrDb.toFixed(1)} dB`;
    const counted = a.agreed != null && a.top1Low != null ? ` (${formatCount(a.agreed)} / ${formatCount(a.n)}${interval(a)})` : '';
    lines.push(`agreement  top-1 ${a.top1 === null ? 'n/a' : pct(a.top1)}${counted}  SQNR ${sqnr}  cosine ${a.cosine.toFixed(6)}  max |Δ| ${a.maxAbsDiff.toPrecision(3)}  vs ${a.reference}`);
  }
  if (r.language) {
    const l = r.language;
    lines.push(`language   perplexity ${l.perplexity.toFixed(3)} (${l.nllPerToken.toFixed(4)} nats/token)${l.referencePerplexity === null ? '' : `, reference ${l.referencePerplexity.toFixed(3)}`}  next-token top-1 ${pct(l.top1)}  over ${formatCount(l.tokens)} positions`);
  }
  if (r.expected) {
    const e = r.expected;
    lines.push(`expected   ${e.exact ? 'bit-identical' : e.ok ? 'within tolerance' : 'MISMATCH'}: max |Δ| ${e.maxAbsDiff.toPrecision(3)}, ${formatCount(e.differing)} of ${formatCount(e.values)} values differ, top-1 ${e.top1Match ? 'matches' : 'differs'}`);
  }
  lines.push(`latency    batch ${r.latency.batch}: p50 ${r.latency.p50Ms.toFixed(3)} ms, p95 ${r.latency.p95Ms.toFixed(3)} ms (${r.latency.runs} runs${r.latency.requestedRuns ? ` of ${r.latency.requestedRuns}: stopped after ${DEFAULT_LATENCY_SECONDS} s; --runs N to insist` : ''})`);
  if (r.runtimeCheck) lines.push(`kernels    ${describeRuntimeFusion(r.runtimeCheck)}`);
  return lines.join('\n') + '\n';
}

export function renderTfjsEval(r: TfjsEvalReport): string {
  const lines = [renderEval(r).trimEnd()];
  lines.push(`runtime    ${r.runtime.package}, ${r.runtime.backend} backend`);
  for (const note of r.runtime.notes) lines.push(`           skipped: ${note}`);
  if (r.predictedClasses && r.data.n > (r.predictions?.length ?? 0)) {
    const counts = Object.entries(r.predictedClasses).sort((a, b) => b[1] - a[1]);
    lines.push(`top-1      ${counts.map(([name, n]) => `${name} ${formatCount(n)}`).join(', ')}`);
  }
  (r.predictions ?? []).forEach((top, i) => {
    const shown = top.map((p) => `${p.label ?? `class ${p.index}`} ${p.score.toFixed(3)}`).join(', ');
    lines.push(`${i === 0 ? 'predicted ' : '          '} ${r.predictions!.length > 1 ? `#${i}: ` : ''}${shown}`);
  });
  return lines.join('\n') + '\n';
}

const TF_BACKENDS: readonly TfBackendChoice[] = ['auto', 'node-gpu', 'node', 'wasm', 'cpu'];

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('eval', argv, {
    data: { type: 'string' },
    preprocess: { type: 'string' },
    reference: { type: 'string' },
    ep: { type: 'string', default: 'auto' },
    batch: { type: 'string' },
    limit: { type: 'string' },
    offset: { type: 'string' },
    warmup: { type: 'string' },
    runs: { type: 'string' },
    output: { type: 'string' },
    size: { type: 'string' },
    layout: { type: 'string' },
    seed: { type: 'string' },
    'tf-backend': { type: 'string' },
    'exact-int8': { type: 'boolean' },
  });
  const model = requireOne('eval', positionals, 'MODEL');
  const ep = values.ep as EpChoice;
  if (!EP_CHOICES.includes(ep)) throw new WhittleError('BAD_USAGE', `whittle eval: --ep must be one of ${EP_CHOICES.join(', ')}, got "${values.ep}"`);
  if (values.preprocess !== undefined && !(PRESET_NAMES as readonly string[]).includes(values.preprocess)) {
    throw new WhittleError('BAD_USAGE', `whittle eval: --preprocess must be one of ${PRESET_NAMES.join(', ')}, got "${values.preprocess}"`);
  }
  if (values.layout !== undefined && values.layout !== 'nchw' && values.layout !== 'nhwc') {
    throw new WhittleError('BAD_USAGE', `whittle eval: --layout must be nchw or nhwc, got "${values.layout}"`);
  }
  const int = (name: string, raw: string | undefined, min: number) => numberOption('eval', name, raw, { min, integer: true });
  const bar = new ProgressBar(io, 'eval');
  const inputs = [{ role: 'model', path: model }];
  if (values.data && !values.data.startsWith('synthetic:')) inputs.push({ role: 'data', path: values.data });
  if (values.reference) inputs.push({ role: 'reference', path: values.reference });
  const tfBackend = values['tf-backend'] as TfBackendChoice | undefined;
  if (tfBackend !== undefined && !TF_BACKENDS.includes(tfBackend)) throw new WhittleError('BAD_USAGE', `whittle eval: --tf-backend must be one of ${TF_BACKENDS.join(', ')}, got "${tfBackend}"`);
  const isTfjs = sniffFormat(model) === 'tfjs';
  if (isTfjs && ep !== 'auto') throw new WhittleError('BAD_USAGE', `whittle eval: --ep chooses an onnxruntime provider; ${model} is a TF.js model: use --tf-backend ${TF_BACKENDS.join('|')}`);
  if (!isTfjs && tfBackend !== undefined) throw new WhittleError('BAD_USAGE', `whittle eval: --tf-backend applies to TF.js models; ${model} is an ONNX model (use --ep)`);
  if (isTfjs && values['exact-int8']) throw new WhittleError('BAD_USAGE', `whittle eval: --exact-int8 applies to ONNX int8 models; ${model} is a TF.js model`);
  const options = {
    model,
    data: values.data,
    preprocess: values.preprocess as PresetName | undefined,
    reference: values.reference,
    batch: int('batch', values.batch, 1),
    limit: int('limit', values.limit, 0),
    offset: int('offset', values.offset, 0),
    warmup: int('warmup', values.warmup, 0),
    runs: int('runs', values.runs, 1),
    output: values.output,
    size: int('size', values.size, 1),
    layout: values.layout as 'nchw' | 'nhwc' | undefined,
    seed: int('seed', values.seed, 0),
    onProgress: (done: number, total: number) => bar.update(done, total),
  };
  let predictionsFile: string | undefined;
  const report: (EvalReport & { format?: undefined }) | TfjsEvalReport = await recordCommand({
    kind: 'eval',
    argv: ['eval', ...argv],
    inputs,
    record: !values['no-record'],
    work: async (recorded) => {
      // every sample's top-1 class, kept with the run for sample-by-sample comparisons (predictions.ts)
      predictionsFile = recorded ? recorded.artifactPath(PREDICTIONS_ARTIFACT) : undefined;
      const r = isTfjs ? await evaluateTfjs({ ...options, backend: tfBackend, predictionsFile }) : await evaluate({ ...options, ep, predictionsFile, exactInt8: Boolean(values['exact-int8']) });
      bar.done();
      recorded?.updateEnvironment({ ep: r.ep, device: r.device, ...(values.seed ? { seed: Number(values.seed) } : {}) });
      return r;
    },
    artifacts: () => (predictionsFile && existsSync(predictionsFile) ? [predictionsFile] : []),
  });
  for (const w of report.warnings) io.stderr(`whittle: ${w}\n`);
  if (values.json) io.stdout(JSON.stringify(report) + '\n');
  else io.stdout(report.format === 'tfjs' ? renderTfjsEval(report) : renderEval(report));
  return 0;
}
