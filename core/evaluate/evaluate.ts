import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { WhittleError } from '../../api/errors.ts';
import { openModel } from '../../native-models/formats/index.ts';
import { dtypeName, floatToHalf } from '../../native-models/ir/dtypes.ts';
import type { Model } from '../../native-models/ir/model.ts';
import { modelStats } from '../../native-models/ir/stats.ts';
import { createSession, modelIo, runSession, type EpChoice, type OpenSession } from '../../native-models/runtimes/onnxruntime.ts';
import { isHostDtype, toFloatScores, type HostTensor } from '../../native-models/runtimes/host-tensor.ts';
import { realInputs } from '../inspect.ts';
import { openDataset, tokenInputOf, type Dataset, type ModelInputSpec, type PresetName } from './data/index.ts';
import { evaluationLatencyOptions, measureLatency, type LatencyResult } from './latency.ts';
import { Agreement, classifierShape, foreignLabelsWarning, isSequenceScores, labelsFit, NextTokenMetrics, TopKAccuracy, type AgreementResult, type NextTokenResult, type TopKResult } from './metrics.ts';
import { recordedPreprocess } from '../calibrate/provenance.ts';
import { PredictionsRecorder, windowLosses, writePredictions } from './predictions.ts';
import { exactInt8Copy } from './exact-int8.ts';
import { UNFUSED_SESSION } from '../../native-models/runtimes/cpu-int8.ts';
import { hasQuantizedOps, runtimeCheckWithWarnings, type RuntimeFusion } from '../passes/quantize/runtime-check.ts';

export interface EvalOptions {
  model: string;
  /** SPEC §4 data spec; default synthetic inputs (latency and agreement only). */
  data?: string | undefined;
  preprocess?: PresetName | undefined;
  size?: number | undefined;
  layout?: 'nchw' | 'nhwc' | undefined;
  reference?: string | undefined;
  ep?: EpChoice | undefined;
  /** Batch size for models with a free batch dimension (default 32); batch-1 models run one sample at a time. */
  batch?: number | undefined;
  limit?: number | undefined;
  offset?: number | undefined;
  warmup?: number | undefined;
  runs?: number | undefined;
  /** Which output holds the scores (default: the first). */
  output?: string | undefined;
  seed?: number | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
  signal?: AbortSignal | undefined;
  /**
   * Where to write every sample's top-1 class — a language model's NLL of every window — so that
   * runs on the same samples can be compared sample by sample (predictions.ts); real data only.
   */
  predictionsFile?: string | undefined;
  /**
   * Run the model with onnxruntime's graph optimizations off: an int8 QDQ model then computes
   * DequantizeLinear → float op → QuantizeLinear, its own arithmetic, instead of the fused integer
   * kernels — which on x86 CPUs without VNNI saturate 8-bit weights (cpu-int8.ts). Slower: the
   * latency is not the fused model's.
   */
  exactInt8?: boolean | undefined;
}

export interface ExpectedOutputCheck {
  /** Largest |actual − expected| over every output of every test-data set. */
  maxAbsDiff: number;
  /** Every value within 1e-3 relative + 1e-5 absolute of the expected one (ONNX backend-test style). */
  ok: boolean;
  /** Bit-for-bit the same. */
  exact: boolean;
  /** Values that differ at all, out of how many. */
  differing: number;
  values: number;
  /** The first output's argmax equals the expected one's, for every set. */
  top1Match: boolean;
}

/** The SPEC §3 `eval` document. */
export interface EvalReport {
  model: string;
  ep: string;
  device: string;
  fallback: string | null;
  /**
   * `preprocess`: the preset the data was read with; `preprocessFrom`: 'calibration' when the model
   * recorded how its calibration data was read and no --preprocess was given (core/calibrate/provenance.ts).
   */
  data: { kind: string; path: string; n: number; synthetic: boolean; preprocess: string; preprocessFrom: 'option' | 'calibration' | 'default' };
  output: string;
  accuracy: TopKResult | null;
  agreement: (AgreementResult & { reference: string }) | null;
  /** A language model (one integer input [batch, positions], scores [batch, positions, vocabulary]) on token windows: next-token metrics, and the reference's perplexity on the same windows. */
  language: (NextTokenResult & { referencePerplexity: number | null }) | null;
  expected: ExpectedOutputCheck | null;
  latency: LatencyResult & { batch: number };
  /**
   * Present when the model ran in its own arithmetic (exactInt8: graph optimizations off, integer ops
   * in float): the accuracy is the model's, the latency not that of onnxruntime's fused kernels.
   */
  exactInt8?: true;
  /** A quantized model on the CPU EP: its integer kernels and float ops between Q/DQ pairs (runtime-check.ts). */
  runtimeCheck?: RuntimeFusion;
  bytes: number;
  parameters: number;
  nonzeroParameters: number;
  seconds: number;
  warnings: string[];
}

/** File size of a model plus the external data files it reads. */
export function modelBytes(model: Model): number {
  const files = new Set<string>();
  for (const { tensor } of model.weights()) if (tensor.source.kind === 'external' && !tensor.source.inModelFile) files.add(tensor.source.path);
  let bytes = model.path ? statSync(model.path).size : 0;
  for (const f of files) bytes += statSync(f).size;
  return bytes;
}

export function inputSpecs(model: Model): ModelInputSpec[] {
  return realInputs(model).map((v) => {
    if (!v.type || v.type.kind !== 'tensor') throw new WhittleError('UNSUPPORTED', `${model.path}: input ${v.name} is not a tensor`);
    const dtype = dtypeName(v.type.elemType);
    if (!isHostDtype(dtype)) throw new WhittleError('UNSUPPORTED', `${model.path}: input ${v.name} is ${dtype}, which evaluation cannot feed`);
    return { name: v.name, dtype, shape: v.type.shape ?? [] };
  });
}

/** Batch-1 models (batch dimension fixed) run one sample at a time; free batch dimensions take --batch. */
export function batchSizeFor(inputs: ModelInputSpec[], requested: number | undefined): number {
  const first = inputs[0]?.shape[0];
  if (typeof first === 'number' && first > 0) return first;
  return requested ?? 32;
}

/**
 * Feeds for a reference model whose inputs are typed differently (an fp16 model checked against
 * its fp32 original): float inputs are converted, anything else must already match.
 */
function feedsFor(session: OpenSession, feeds: Record<string, HostTensor>, label: string): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const info of modelIo(session.session).inputs) {
    const t = feeds[info.name];
    if (!t) throw new WhittleError('BAD_INPUT', `${label}: needs input ${info.name}, which the model does not have`);
    out[info.name] = info.dtype && info.dtype !== t.dtype ? castFloat(t, info.dtype, label) : t;
  }
  return out;
}

function castFloat(t: HostTensor, dtype: string, label: string): HostTensor {
  const values = toFloatScores(t).data;
  switch (dtype) {
    case 'float32': return { dtype: 'float32', dims: t.dims, data: Float32Array.from(values) };
    case 'float64': return { dtype: 'float64', dims: t.dims, data: Float64Array.from(values) };
    case 'float16': return { dtype: 'float16', dims: t.dims, data: Uint16Array.from(values, floatToHalf) };
    default: throw new WhittleError('BAD_INPUT', `${label}: input is ${dtype}, the model's is ${t.dtype}; only float inputs are converted`);
  }
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new WhittleError('CANCELLED', 'evaluation cancelled');
}

function compareExpected(check: { maxAbsDiff: number; ok: boolean; exact: boolean; differing: number; values: number; top1Match: boolean }, actual: HostTensor[], expected: HostTensor[]): void {
  for (let k = 0; k < expected.length; k++) {
    const e = toFloatScores(expected[k]!).data;
    const a = actual[k] ? toFloatScores(actual[k]!).data : null;
    if (!a || a.length !== e.length) {
      check.ok = check.exact = check.top1Match = false;
      continue;
    }
    let argA = 0;
    let argE = 0;
    for (let i = 0; i < e.length; i++) {
      const d = Math.abs(a[i]! - e[i]!);
      if (a[i] !== e[i]) { check.differing++; check.exact = false; }
      if (d > check.maxAbsDiff) check.maxAbsDiff = d;
      if (!(d <= 1e-3 * Math.abs(e[i]!) + 1e-5)) check.ok = false;
      if (a[i]! > a[argA]!) argA = i;
      if (e[i]! > e[argE]!) argE = i;
    }
    check.values += e.length;
    if (k === 0 && argA !== argE) check.top1Match = false;
  }
}

/**
 * The evaluation data (synthetic:8 when none is given), opened against the model's inputs with
 * the options both runtimes take; its warnings go to `warnings`; no sample left is an error.
 */
export async function openEvaluationData(opts: Pick<EvalOptions, 'data' | 'preprocess' | 'size' | 'layout' | 'limit' | 'offset' | 'seed'>, inputs: ModelInputSpec[], warnings: string[]): Promise<Dataset> {
  const dataset = await openDataset(opts.data ?? 'synthetic:8', inputs, {
    ...(opts.preprocess ? { preprocess: opts.preprocess } : {}),
    ...(opts.size ? { size: opts.size } : {}),
    ...(opts.layout ? { layout: opts.layout } : {}),
    ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
    ...(opts.offset !== undefined ? { offset: opts.offset } : {}),
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
  });
  warnings.push(...dataset.warnings);
  if (dataset.n === 0) throw new WhittleError('BAD_INPUT', `${dataset.path}: no samples to evaluate (after --offset/--limit)`);
  return dataset;
}

/** Whether a model's output comes out of a Softmax: next-token metrics then read probabilities, not logits. */
export function outputIsProbabilities(model: Model, output: string): boolean {
  return model.graph.producers().get(output)?.opType === 'Softmax';
}

/**
 * The preprocessing to read evaluation data with: the one asked for, else the one the model's
 * calibration data was read with (a quantized model's ranges fit only that), else none. Asking for
 * another than the recorded one is allowed (other data, another convention) but warned about.
 */
function preprocessFor(model: Model, asked: PresetName | undefined, warnings: string[]): { preset: PresetName; from: EvalReport['data']['preprocessFrom'] } {
  const recorded = recordedPreprocess(model);
  if (asked === undefined) return recorded ? { preset: recorded, from: 'calibration' } : { preset: 'none', from: 'default' };
  if (recorded && asked !== recorded) {
    warnings.push(`${model.path}: its calibration data was read with --preprocess ${recorded}, this evaluation reads with --preprocess ${asked}: ranges and weights calibrated on the one may not fit the other`);
  }
  return { preset: asked, from: 'option' };
}

export async function evaluate(opts: EvalOptions): Promise<EvalReport> {
  const t0 = performance.now();
  const model = openModel(opts.model);
  const stats = modelStats(model);
  const inputs = inputSpecs(model);
  const warnings: string[] = [];

  // --exact-int8: unoptimized, with MatMulInteger/ConvInteger computed in float (exact-int8.ts)
  const exactCopy = opts.exactInt8 ? exactInt8Copy(model.path!) : null;
  let main: OpenSession;
  try {
    main = await createSession(exactCopy?.path ?? model.path!, { ep: opts.ep ?? 'auto', ...(opts.exactInt8 ? UNFUSED_SESSION : {}) });
  } finally {
    // the session holds what it needs once created
    exactCopy?.dispose();
  }
  if (main.fallback) warnings.push(main.fallback);
  let reference: OpenSession | null = null;
  if (opts.reference) {
    reference = await createSession(opts.reference, { ep: main.ep });
    const want = modelIo(main.session).inputs.map((i) => i.name).sort().join(',');
    const have = modelIo(reference.session).inputs.map((i) => i.name).sort().join(',');
    if (want !== have) throw new WhittleError('BAD_INPUT', `${opts.reference}: the reference model's inputs (${have}) differ from the model's (${want})`);
  }
  const outputs = modelIo(main.session).outputs.map((o) => o.name);
  const outputName = opts.output ?? outputs[0];
  if (!outputName || !outputs.includes(outputName)) {
    throw new WhittleError('BAD_USAGE', `--output ${opts.output}: the model's outputs are ${outputs.join(', ')}`);
  }

  const preprocess = preprocessFor(model, opts.preprocess, warnings);
  const dataset = await openEvaluationData({ ...opts, preprocess: preprocess.preset }, inputs, warnings);

  const batch = batchSizeFor(inputs, opts.batch);
  let topk = dataset.hasLabels ? new TopKAccuracy() : null;
  const agreement = reference ? new Agreement() : null;
  // token windows into a language model: every position predicts the next token of its window
  const tokenInput = tokenInputOf(inputs)?.name ?? null;
  const nextToken = tokenInput ? new NextTokenMetrics(outputIsProbabilities(model, outputName)) : null;
  const referenceNextToken = tokenInput && reference ? new NextTokenMetrics(outputIsProbabilities(openModel(opts.reference!, { lazyTensors: true }), outputName)) : null;
  const predictions = opts.predictionsFile && !dataset.synthetic && !tokenInput ? new PredictionsRecorder() : null;
  const expected = { maxAbsDiff: 0, ok: true, exact: true, differing: 0, values: 0, top1Match: true };
  let sawExpected = false;
  let firstFeeds: Record<string, HostTensor> | null = null;
  let done = 0;
  for await (const b of dataset.batches(batch)) {
    checkAborted(opts.signal);
    const feeds = b.inputs as Record<string, HostTensor>;
    firstFeeds ??= feeds;
    const out = await runSession(main.session, feeds);
    const scores = toFloatScores(out[outputName]!);
    const classes = topk && b.labels ? classifierShape(scores.dims)?.classes : undefined;
    if (classes !== undefined && !labelsFit(b.labels!, classes)) {
      warnings.push(foreignLabelsWarning(dataset.path, classes));
      topk = null;
    }
    if (topk && b.labels) topk.update(scores, b.labels);
    const tokens = tokenInput ? feeds[tokenInput] : undefined;
    const lm = nextToken && isSequenceScores(tokens, scores) ? tokens!.data as ArrayLike<number | bigint> : null;
    if (lm) nextToken!.update(lm, tokens!.dims, scores);
    let refFloat: ReturnType<typeof toFloatScores> | null = null;
    if (agreement && reference) {
      const ref = await runSession(reference.session, feedsFor(reference, feeds, opts.reference!));
      const refScores = ref[outputName] ?? Object.values(ref)[0];
      if (!refScores) throw new WhittleError('BAD_INPUT', `${opts.reference}: the reference model produced no output`);
      refFloat = toFloatScores(refScores);
      agreement.update(refFloat, scores);
      if (lm && isSequenceScores(tokens, refFloat)) referenceNextToken!.update(lm, tokens!.dims, refFloat);
    }
    predictions?.add(scores, b.labels, refFloat);
    const exp = b.expectedOutputs ?? (dataset.expectedOutputs && b.index === 0 ? dataset.expectedOutputs : undefined);
    if (exp) {
      sawExpected = true;
      compareExpected(expected, outputs.map((name) => out[name]!), exp as HostTensor[]);
    }
    done += b.count;
    opts.onProgress?.(done, dataset.n);
  }

  checkAborted(opts.signal);
  const evaluated = { path: dataset.path, offset: opts.offset ?? 0, n: done, preprocess: preprocess.preset };
  const kept = predictions?.result(evaluated, opts.reference ?? null) ??
    (opts.predictionsFile && !dataset.synthetic && nextToken ? windowLosses(nextToken, evaluated) : null);
  if (kept) await writePredictions(opts.predictionsFile!, kept);
  const feeds = firstFeeds!;
  const latency = await measureLatency(async () => { await runSession(main.session, feeds); }, evaluationLatencyOptions(opts));
  const firstInput = inputs[0] ? feeds[inputs[0].name] : undefined;
  const bytes = modelBytes(model);
  const runtimeCheck = opts.exactInt8 ? null : await cpuRuntimeCheck(model, main.ep, bytes, warnings);

  return {
    model: model.path!,
    ep: main.ep,
    device: main.device,
    fallback: main.fallback,
    data: { kind: dataset.kind, path: dataset.path, n: done, synthetic: dataset.synthetic, preprocess: preprocess.preset, preprocessFrom: preprocess.from },
    output: outputName,
    accuracy: topk ? topk.result() : null,
    agreement: agreement ? { ...agreement.result()!, reference: resolve(opts.reference!) } : null,
    language: languageResult(nextToken, referenceNextToken),
    expected: sawExpected ? expected : null,
    latency: { ...latency, batch: firstInput?.dims[0] ?? batch },
    bytes,
    parameters: stats.parameters,
    nonzeroParameters: stats.nonzeroParameters,
    ...(runtimeCheck ? { runtimeCheck } : {}),
    ...(opts.exactInt8 ? { exactInt8: true as const } : {}),
    seconds: (performance.now() - t0) / 1000,
    warnings,
  };
}

/**
 * A quantized model evaluated on the CPU EP: what onnxruntime runs of it (runtime-check.ts), so a
 * latency figure comes with its reason — the integer kernels, and the float ops between Q/DQ pairs
 * (named in a warning). Not for float models or other EPs.
 */
async function cpuRuntimeCheck(model: Model, ep: string, bytes: number, warnings: string[]): Promise<RuntimeFusion | null> {
  if (ep !== 'cpu' || !hasQuantizedOps(model)) return null;
  const check = await runtimeCheckWithWarnings(model.path!, bytes);
  warnings.push(...check.warnings);
  return check.fusion;
}

function languageResult(model: NextTokenMetrics | null, reference: NextTokenMetrics | null): EvalReport['language'] {
  const r = model?.result();
  if (!r) return null;
  return { ...r, referencePerplexity: reference?.result()?.perplexity ?? null };
}
