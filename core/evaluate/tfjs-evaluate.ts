import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { WhittleError } from '../../api/errors.ts';
import { sniffFormat } from '../../native-models/formats/index.ts';
import { openTfjsSession, readTfjsModel, tfjsStats, type TfjsSession } from '../../native-models/formats/tfjs/index.ts';
import { isHostDtype, toFloatScores, type HostTensor } from '../../native-models/runtimes/host-tensor.ts';
import { loadTf, type TfBackendChoice, type TfRuntime } from '../../native-models/runtimes/tfjs.ts';
import type { ModelInputSpec } from './data/index.ts';
import { batchSizeFor, openEvaluationData, type EvalOptions, type EvalReport } from './evaluate.ts';
import { evaluationLatencyOptions, measureLatency } from './latency.ts';
import { Agreement, classifierShape, foreignLabelsWarning, labelsFit, TopKAccuracy } from './metrics.ts';
import { PredictionsRecorder, writePredictions } from './predictions.ts';

/**
 * `whittle eval model.json`: a TF.js model run by TensorFlow.js (loadTf: tfjs-node-gpu, tfjs-node,
 * then @tensorflow/tfjs on wasm or cpu), fed by the same data sources and scored by the same
 * metrics as the ONNX evaluation, in the same document plus which TF.js ran it.
 */

export interface TfjsEvalOptions extends Omit<EvalOptions, 'ep'> {
  /** Which TF.js backend (default auto; WHITTLE_TF_BACKEND does the same). */
  backend?: TfBackendChoice | undefined;
}

export interface Prediction {
  index: number;
  label: string | null;
  score: number;
}

/** The eval document (SPEC §3) for a TF.js model: `ep` is `tfjs-<backend>`, `runtime` says what ran. */
export interface TfjsEvalReport extends EvalReport {
  format: 'tfjs';
  runtime: { package: TfRuntime['package']; backend: string; notes: string[] };
  /** Top-5 classes of each sample, when the data holds at most PREDICTION_SAMPLES samples (one image, say). */
  predictions: Prediction[][] | null;
  /** How often each class came out top-1 (by name when the model ships its class names). */
  predictedClasses: Record<string, number> | null;
}

const PREDICTION_SAMPLES = 16;

/** Class names shipped beside a TF.js model (AutoML's dict.txt, or labels.txt / classes.txt): one per line. */
function classNamesBeside(modelPath: string): string[] | null {
  for (const name of ['dict.txt', 'labels.txt', 'classes.txt']) {
    const file = join(dirname(modelPath), name);
    if (existsSync(file)) return readFileSync(file, 'utf8').split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  }
  return null;
}

function inputSpecsOf(session: TfjsSession, path: string): ModelInputSpec[] {
  return session.inputs.map((i) => {
    if (!isHostDtype(i.dtype)) throw new WhittleError('UNSUPPORTED', `${path}: input ${i.name} is ${i.dtype}, which evaluation cannot feed`);
    return { name: i.name, dtype: i.dtype, shape: i.shape ?? [] };
  });
}

function topFive(scores: { dims: readonly number[]; data: Float32Array | Float64Array }, names: string[] | null): Prediction[][] {
  const shape = classifierShape(scores.dims);
  if (!shape) return [];
  const out: Prediction[][] = [];
  for (let b = 0; b < shape.batch; b++) {
    const row = Array.from(scores.data.subarray(b * shape.classes, (b + 1) * shape.classes), (score, index) => ({ index, score }));
    row.sort((x, y) => y.score - x.score || x.index - y.index);
    out.push(row.slice(0, 5).map(({ index, score }) => ({ index, label: names && names.length === shape.classes ? names[index]! : null, score })));
  }
  return out;
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new WhittleError('CANCELLED', 'evaluation cancelled');
}

export async function evaluateTfjs(opts: TfjsEvalOptions): Promise<TfjsEvalReport> {
  const t0 = performance.now();
  const model = readTfjsModel(opts.model);
  const stats = tfjsStats(model);
  const runtime = await loadTf(opts.backend ? { choice: opts.backend } : {});
  const warnings = [...model.warnings];
  const main = await openTfjsSession(model, runtime.tf);
  let reference: TfjsSession | null = null;
  try {
    if (opts.reference) {
      if (sniffFormat(opts.reference) !== 'tfjs') throw new WhittleError('BAD_USAGE', `--reference ${opts.reference}: a TF.js model is compared with another TF.js model (model.json), not an ONNX one`);
      reference = await openTfjsSession(readTfjsModel(opts.reference), runtime.tf);
      const want = main.inputs.map((i) => i.name).sort().join(',');
      const have = reference.inputs.map((i) => i.name).sort().join(',');
      if (want !== have) throw new WhittleError('BAD_INPUT', `${opts.reference}: the reference model's inputs (${have}) differ from the model's (${want})`);
    }
    const outputName = opts.output ?? main.outputs[0];
    if (!outputName || !main.outputs.includes(outputName)) throw new WhittleError('BAD_USAGE', `--output ${opts.output}: the model's outputs are ${main.outputs.join(', ')}`);
    const inputs = inputSpecsOf(main, model.path);
    const dataset = await openEvaluationData(opts, inputs, warnings);

    const batch = batchSizeFor(inputs, opts.batch);
    // a quantized or pruned copy usually lives without the original's dict.txt: its reference has it
    const names = dataset.classNames ?? classNamesBeside(model.path) ?? (opts.reference ? classNamesBeside(resolve(opts.reference)) : null);
    const agreement = reference ? new Agreement() : null;
    const predictions: Prediction[][] | null = dataset.n <= PREDICTION_SAMPLES ? [] : null;
    const predictedClasses = new Map<string, number>();
    let topk = dataset.hasLabels ? new TopKAccuracy() : null;
    const kept = opts.predictionsFile && !dataset.synthetic ? new PredictionsRecorder() : null;
    let firstFeeds: Record<string, HostTensor> | null = null;
    let done = 0;
    for await (const b of dataset.batches(batch)) {
      checkAborted(opts.signal);
      const feeds = b.inputs as Record<string, HostTensor>;
      firstFeeds ??= feeds;
      const out = await main.run(feeds);
      const scores = toFloatScores(out[outputName]!);
      const classes = classifierShape(scores.dims)?.classes ?? 0;
      if (topk && b.labels && !labelsFit(b.labels, classes)) {
        warnings.push(foreignLabelsWarning(dataset.path, classes));
        topk = null;
      }
      if (topk && b.labels) topk.update(scores, b.labels);
      for (const top of topFive(scores, names)) {
        const key = top[0]?.label ?? String(top[0]?.index);
        predictedClasses.set(key, (predictedClasses.get(key) ?? 0) + 1);
      }
      let refFloat: ReturnType<typeof toFloatScores> | null = null;
      if (agreement && reference) {
        const ref = await reference.run(feeds);
        const refScores = ref[outputName] ?? Object.values(ref)[0];
        if (!refScores) throw new WhittleError('BAD_INPUT', `${opts.reference}: the reference model produced no output`);
        refFloat = toFloatScores(refScores);
        agreement.update(refFloat, scores);
      }
      kept?.add(scores, topk ? b.labels : null, refFloat);
      predictions?.push(...topFive(scores, names));
      done += b.count;
      opts.onProgress?.(done, dataset.n);
    }

    checkAborted(opts.signal);
    const keptPredictions = kept?.result({ path: dataset.path, offset: opts.offset ?? 0, n: done, preprocess: opts.preprocess ?? 'none' }, opts.reference ?? null);
    if (keptPredictions) await writePredictions(opts.predictionsFile!, keptPredictions);
    const feeds = firstFeeds!;
    const latency = await measureLatency(async () => { await main.run(feeds); }, evaluationLatencyOptions(opts));
    const firstInput = inputs[0] ? feeds[inputs[0].name] : undefined;
    return {
      format: 'tfjs',
      model: model.path,
      ep: `tfjs-${runtime.backend}`,
      device: runtime.device,
      fallback: null,
      runtime: { package: runtime.package, backend: runtime.backend, notes: runtime.notes },
      data: { kind: dataset.kind, path: dataset.path, n: done, synthetic: dataset.synthetic, preprocess: opts.preprocess ?? 'none', preprocessFrom: opts.preprocess ? 'option' : 'default' },
      output: outputName,
      accuracy: topk ? topk.result() : null,
      agreement: agreement ? { ...agreement.result()!, reference: resolve(opts.reference!) } : null,
      // next-token metrics are measured for ONNX language models only
      language: null,
      expected: null,
      predictions: predictions?.length ? predictions : null,
      predictedClasses: predictedClasses.size ? Object.fromEntries(predictedClasses) : null,
      latency: { ...latency, batch: firstInput?.dims[0] ?? batch },
      bytes: model.files.reduce((n, f) => n + f.bytes, 0),
      parameters: stats.parameters,
      nonzeroParameters: stats.nonzeroParameters,
      seconds: (performance.now() - t0) / 1000,
      warnings,
    };
  } finally {
    main.dispose();
    reference?.dispose();
  }
}
