import { resolve } from 'node:path';
import { WhittleError } from '../../api/errors.ts';
import { QuantizeStep } from '../../api/recipe.ts';
import { readOnnxFile } from '../../native-models/formats/onnx/index.ts';
import type { Model, Node } from '../../native-models/ir/model.ts';
import type { EpChoice } from '../../native-models/runtimes/onnxruntime.ts';
import { calibrate, type TensorRange } from '../calibrate/index.ts';
import { openDataset, type PresetName } from '../evaluate/data/index.ts';
import { batchSizeFor, inputSpecs } from '../evaluate/evaluate.ts';
import { createPassContext } from '../passes/pass.ts';
import { isExcluded } from '../passes/quantize/graph-edit.ts';
import { foldBatchNormsFor, staticQdqPass } from '../passes/quantize/static-qdq.ts';
import { COMPUTE_OPS, DEFAULT_STATIC_OP_TYPES, QUANTIZED_ONLY_WHEN_READ } from '../passes/quantize/static-qdq-plan.ts';
import { gptqStaticWeights, type StaticGptqResult } from '../passes/quantize/static-gptq.ts';
import { applyQuantizeStep, calibrationTuning, reduceRangeFor, type ReduceRangeChoice } from '../passes/quantize/quantize-model.ts';
import { eightBitWeightsSaturate } from '../../native-models/runtimes/cpu-int8.ts';
import type { GptqChoice } from '../passes/quantize/gptq-pass.ts';
import type { PassReport } from '../passes/pass.ts';
import { loadAnalysisData, loadHeldOutData, TrialRunner, trialFigures, type TrialFigures } from './trial.ts';

/**
 * Per-layer static int8 sensitivity (issue 4 item 6): each node the static pass quantizes on its own
 * is quantized alone (every other node stays float) with ranges calibrated once on the float model,
 * and we measure how far the model output moves (SQNR, top-1 agreement; perplexity for a language
 * model) and how far the node's own output moves. Nodes are ranked by the output SQNR they cost; the
 * recommendation then greedily leaves the worst ones float in an otherwise all-int8 model until the
 * agreement target is met (or a cap).
 *
 * Not only the weight layers: the all-int8 model also quantizes every Add, Mul, Concat and pool, and
 * in a transformer those cost more than the MatMuls (the character transformer: 29.5 dB all-int8,
 * 37.7 dB with its Adds and Muls float, while no single MatMul costs more than 42.6 dB alone).
 * A ranking blind to them names the wrong culprits and an exclusion search over MatMuls cannot help.
 * Concat and the pools are not units: the static pass quantizes them only where a quantized node
 * reads them, so alone they always stay float; they go with their readers.
 */
export const ANALYZED_OPS: readonly string[] = COMPUTE_OPS.filter((op) => DEFAULT_STATIC_OP_TYPES.includes(op) && !QUANTIZED_ONLY_WHEN_READ.has(op));
/** The ops whose stored weight GPTQ may choose. */
const WEIGHT_OPS: readonly string[] = ['Conv', 'Gemm', 'MatMul'];

/** Weight-only: block size, symmetric blocks, format, GPTQ's act-order and dampening (the step's defaults otherwise). */
type WeightOnlySettings = Partial<Pick<QuantizeStep, 'blockSize' | 'symmetric' | 'format' | 'actOrder' | 'percdamp'>>;

export type QuantizeSettings = Pick<QuantizeStep, 'calibration' | 'perChannel' | 'activationType' | 'algorithm'> & WeightOnlySettings & {
  /**
   * What the trials quantize with: static int8 QDQ (default), or weight-only int4 / int8
   * (MatMulNBits: only MatMul weights, no activations — "which layer breaks int4").
   */
  method?: 'static' | 'int4' | 'int8-weight' | undefined;
  percentile?: number | undefined;
  /** Static int8 weights in 7 bits (reduce range); unset: the CPU decides, as `whittle quantize` does. */
  reduceRange?: boolean | undefined;
  /** A step's static bias correction: not applied in the trials (a warning says so). */
  biasCorrection?: boolean | undefined;
  movingAverage?: boolean | undefined;
  symmetricRanges?: boolean | undefined;
  bins?: number | undefined;
  exclude?: string[] | undefined;
  samples?: number | undefined;
};

export interface QuantizeSensitivityOptions {
  model: string;
  data: string;
  preprocess?: PresetName | undefined;
  /** Samples used for every trial (default 32). */
  limit?: number | undefined;
  /**
   * Samples skipped before the trials' (default 0). Calibration still reads from the first sample,
   * so an offset past the calibration samples measures every trial on samples calibration never saw.
   */
  offset?: number | undefined;
  /**
   * Samples after the trials' (from offset + limit) on which the all-int8 model and the
   * recommendation are measured again (default 0: none). The search keeps whatever raises agreement
   * on the trial samples, and on a few dozen samples one flipped sample is a point: measured on
   * samples the choice never saw, a gain that was noise shows as none.
   */
  holdout?: number | undefined;
  /** Static settings (from a recipe's quantize step); default MinMax, per-tensor, uint8 activations. */
  settings?: Partial<QuantizeSettings> | undefined;
  /** Top-1 agreement with fp32 the recommendation must reach (default 0.99). */
  targetAgreement?: number | undefined;
  /** Output SQNR (dB) the recommendation must also reach (optional; agreement on few samples is coarse). */
  targetSqnrDb?: number | undefined;
  /** Most layers the recommendation may leave float, as a share of the quantizable layers (default 0.25). */
  maxExcludedShare?: number | undefined;
  /** Samples on which each layer's own output is compared (default 8). */
  layerSamples?: number | undefined;
  ep?: EpChoice | undefined;
  signal?: AbortSignal | undefined;
  progress?: ((phase: string, done: number, total: number) => void) | undefined;
}

export interface QuantizeLayerSensitivity {
  name: string;
  op: string;
  /** SPEC §3: the ranking metric and its value (model-output SQNR with only this layer int8). */
  metric: 'outputSqnrDb';
  value: number | null;
  /** 1 = most sensitive. null when the layer could not be quantized (see `skipped`). */
  rank: number | null;
  outputSqnrDb: number | null;
  top1: number | null;
  cosine: number;
  /** The layer's own output with only it quantized vs float (SQNR, dB). */
  layerSqnrDb: number | null;
  /** A language model's next-token perplexity with only this layer int8 (the float model's: `QuantizeAnalysis.language`). */
  perplexity: number | null;
  skipped: string | null;
}

/** The all-int8 model and the recommendation on samples the search did not choose on. */
export interface HeldOutCheck {
  /** Samples from offset (the first after the trials'). */
  n: number;
  offset: number;
  allInt8: TrialFigures;
  withExclusions: TrialFigures;
}

export interface ExclusionStep {
  /** The layer this step tried leaving float (null: the all-int8 model). */
  tried: string | null;
  /** Layers left float in this trial, and the node labels passed as exclusions. */
  layers: string[];
  excluded: string[];
  /** Whether the step improved on the best so far (and so was kept). */
  kept: boolean;
  sqnrDb: number | null;
  top1: number | null;
  cosine: number;
  perplexity: number | null;
  /** The trial model's size: what leaving these nodes float costs in bytes. */
  bytes: number;
}

export interface QuantizeAnalysis {
  model: string;
  for: 'quantize';
  /** The samples the trials ran on: n of them from `offset` (0: the first). */
  data: { path: string; n: number; offset: number };
  /**
   * A language model fed token windows: the float model's next-token perplexity on the analysis
   * windows (not `perplexity`: these are the analysis data, often the calibration split, and a
   * run list must not read it as the model's held-out perplexity); else null.
   */
  language: { floatPerplexity: number } | null;
  settings: {
    method: 'static' | 'int4' | 'int8-weight'; calibration: string; perChannel: boolean; activationType: string; algorithm: 'rtn' | 'gptq'; exclude: string[];
    /** Weight-only trials: the block size, symmetric blocks and format they quantize with. */
    weightOnly?: { blockSize: number; symmetric: boolean; format: 'matmulnbits' | 'dq' };
    /** The calibrator options in effect (those that apply to its method). */
    tuning: { percentile?: number; movingAverage?: boolean; symmetric?: boolean; bins?: number };
    /** The step analysed asked for bias correction: not in the trials, kept for the step applying the result. */
    biasCorrection?: boolean;
    /**
     * Static trials: int8 weights in 7 bits or 8, and why (as `whittle quantize` reports it); `exactInt8`
     * when 8-bit trials ran in their own arithmetic because this CPU's fused kernels saturate them.
     */
    reduceRange?: ReduceRangeChoice & { exactInt8: boolean };
  };
  layers: QuantizeLayerSensitivity[];
  /** All-int8 first, then with 1, 2, … of the worst layers left float. */
  steps: ExclusionStep[];
  recommendation: {
    exclude: string[];
    /** The analyzed layers left float (exclude also names their Relu/Clip). */
    layers: string[];
    targetAgreement: number;
    targetSqnrDb: number | null;
    reached: boolean;
    /** The cap on exclusions, when it stopped the search. */
    cappedAt: number | null;
    allInt8: { sqnrDb: number | null; top1: number | null; perplexity: number | null; bytes: number };
    withExclusions: { sqnrDb: number | null; top1: number | null; perplexity: number | null; bytes: number };
    /** Both measured again on the held-out samples (`holdout`), or null when none were asked for. */
    heldOut: HeldOutCheck | null;
    note: string;
  };
  warnings: string[];
  seconds: number;
}

/**
 * A quantizable layer: a Conv/Gemm/MatMul (or an Add or Mul) plus the Relu/Clip that alone reads its output. They go
 * together: the static pass quantizes such a pair at the activation's output (its range clipped at
 * zero), so leaving only the Conv float would put a Q/DQ on the unclipped Conv output instead,
 * with a coarser scale than the all-int8 model had there.
 */
export interface QuantLayer {
  node: Node;
  /** The node's label and, when present, its activation's. */
  labels: string[];
  /** The value downstream layers read: the activation's output, else the node's. */
  output: string;
}

const ACTIVATIONS = new Set(['Relu', 'Clip']);

/** The nodes of the main graph the static pass would quantize on their own (ANALYZED_OPS), in graph order. */
export function quantizableLayers(model: Model, exclude: readonly string[] = []): QuantLayer[] {
  const g = model.graph;
  const readers = g.consumers();
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const layers: QuantLayer[] = [];
  for (const n of g.nodes) {
    if (n.domain !== '' || !ANALYZED_OPS.includes(n.opType) || isExcluded(n, exclude)) continue;
    const out = n.outputs[0]!;
    const r = readers.get(out) ?? [];
    const act = r.length === 1 && !graphOutputs.has(out) && ACTIVATIONS.has(r[0]!.opType) && r[0]!.domain === '' && !isExcluded(r[0]!, exclude) ? r[0]! : null;
    layers.push({ node: n, labels: act ? [n.label, act.label] : [n.label], output: act ? act.outputs[0]! : out });
  }
  return layers;
}

export async function analyzeQuantizeSensitivity(o: QuantizeSensitivityOptions): Promise<QuantizeAnalysis> {
  const t0 = performance.now();
  const progress = o.progress ?? (() => {});
  const target = o.targetAgreement ?? 0.99;
  if (!(target > 0 && target <= 1)) throw new WhittleError('BAD_USAGE', `--target-agreement must be in (0, 1], got ${target}`);
  const share = o.maxExcludedShare ?? 0.25;
  const method = o.settings?.method ?? 'static';
  const settings = {
    calibration: o.settings?.calibration ?? 'minmax',
    perChannel: o.settings?.perChannel ?? false,
    activationType: o.settings?.activationType ?? 'uint8',
    algorithm: o.settings?.algorithm ?? 'rtn',
    exclude: o.settings?.exclude ?? [],
  } as const;
  const ep = o.ep ?? 'cpu';
  const warnings: string[] = [];
  // static int8 weights in 7 or 8 bits as the step says (or as this CPU decides); 8-bit trials on a CPU
  // whose fused kernels saturate them run unfused, so the ranking measures the model, not the overflow
  const reduceRange = method === 'static' ? reduceRangeFor({ reduceRange: o.settings?.reduceRange }) : null;
  const exactInt8 = reduceRange !== null && eightBitWeightsSaturate(reduceRange.on);
  // one more pass over the data per layer depth in every trial: the ranking would cost dozens of them
  if (o.settings?.biasCorrection) warnings.push('bias correction: the trials quantize without it (the analysis ranks what rounding breaks; correcting every trial would repeat the data once per layer depth)');
  const modelPath = resolve(o.model);
  // static: BatchNormalizations folded into their Convs as the quantize step does, so that the
  // layers, taps and GPTQ's weights of every trial are those of the float model analysed
  const fresh = () => {
    const m = readOnnxFile(modelPath);
    if (method === 'static') foldBatchNormsFor(m, settings.exclude);
    return m;
  };
  const floatModel = fresh();
  // weight-only trials quantize MatMul weights and nothing else
  // (unset fields take the step's defaults; GPTQ's Hessians come from the analysis data)
  const weightStep = method === 'static' ? null : QuantizeStep.parse({
    method, algorithm: settings.algorithm, exclude: [],
    blockSize: o.settings?.blockSize, symmetric: o.settings?.symmetric, format: o.settings?.format,
    actOrder: o.settings?.actOrder, percdamp: o.settings?.percdamp, samples: o.settings?.samples,
    calib: settings.algorithm === 'gptq' ? { path: o.data, ...(o.preprocess ? { preprocess: o.preprocess } : {}) } : undefined,
  });
  // (weight-only: MatMuls with a stored weight; those of two activations, like attention's, have none)
  const candidates = quantizableLayers(floatModel, settings.exclude).filter((l) => !weightStep || (l.node.opType === 'MatMul' && floatModel.graph.constant(l.node.inputs[1]!) !== null));
  if (candidates.length === 0) throw new WhittleError('BAD_INPUT', `${modelPath}: no node to quantize (${weightStep ? 'MatMul' : ANALYZED_OPS.join(', ')})`);
  const outputs = candidates.map((l) => l.output);
  // every Relu/Clip: those outside the layer under trial stay float with the other layers
  const activations = weightStep ? [] : floatModel.graph.nodes.filter((n) => n.domain === '' && ACTIVATIONS.has(n.opType)).map((n) => n.label);

  // static: calibrate once on the float model; every trial reuses these ranges
  const inputs = inputSpecs(floatModel);
  const tuning = weightStep ? {} : calibrationTuning({ calibration: settings.calibration, percentile: o.settings?.percentile, movingAverage: o.settings?.movingAverage, symmetricRanges: o.settings?.symmetricRanges, bins: o.settings?.bins }, { warn: (m) => warnings.push(m) });
  let ranges = new Map<string, TensorRange>();
  let weightValues: StaticGptqResult['weights'] | undefined;
  if (!weightStep) {
    progress('calibrate', 0, 1);
    const calibData = await openDataset(o.data, inputs, {
      ...(o.preprocess ? { preprocess: o.preprocess } : {}),
      limit: o.settings?.samples ?? o.limit ?? 32,
    });
    const cal = await calibrate(floatModel, calibData, {
      method: settings.calibration,
      ep,
      batchSize: batchSizeFor(inputs, 32),
      ...(o.signal ? { signal: o.signal } : {}),
      ...tuning,
      quantType: settings.activationType,
      progress: (d, t) => progress('calibrate', d, t),
    });
    for (const name of cal.noFinite) cal.ranges.delete(name);
    ranges = cal.ranges;

    // GPTQ weights depend only on each layer's own inputs in the float model: chosen once, every
    // trial (a layer alone, or the all-int8 model with exclusions) stores the same integers
    if (settings.algorithm === 'gptq') {
      const gptq = await gptqStaticWeights(floatModel, {
        data: calibData, samples: calibData.n, batchSize: batchSizeFor(inputs, 32), ep, perChannel: settings.perChannel,
        exclude: settings.exclude, opTypes: WEIGHT_OPS,
      }, createPassContext({ ...(o.signal ? { signal: o.signal } : {}), progress }));
      warnings.push(...gptq.warnings);
      weightValues = gptq.weights;
    }
  }

  const data = await loadAnalysisData(floatModel, o.data, { preprocess: o.preprocess, limit: o.limit ?? 32, offset: o.offset });
  warnings.push(...data.warnings);
  // read before the trials, so that a data set with nothing left after the trial samples fails now
  const heldOutData = await loadHeldOutData(floatModel, o.data, data, o, warnings);
  const runner = await TrialRunner.create(floatModel, data, { taps: outputs, tapSamples: o.layerSamples ?? 8, ep, signal: o.signal, exactInt8 });
  // weight-only GPTQ chooses each weight from the float model's statistics: once, for every trial
  const gptqCache = new Map<string, GptqChoice>();
  const quantize = async (model: Model, options: { opTypes?: string[]; exclude: string[] }): Promise<PassReport> => {
    const ctx = createPassContext({ ...(o.signal ? { signal: o.signal } : {}) });
    if (weightStep) return applyQuantizeStep(model, { ...weightStep, exclude: options.exclude }, ctx, { ep, gptqCache });
    return staticQdqPass.run(model, { ranges, activationType: settings.activationType, perChannel: settings.perChannel, reduceRange: reduceRange?.on, weightValues, ...options }, ctx);
  };
  /** Whether a trial's report says it quantized `node` (static: by op count, the others excluded; weight-only: by name). */
  const quantizedIn = (report: PassReport, node: Node) => (weightStep
    ? ((report.details?.quantized as string[] | undefined) ?? []).includes(node.label)
    : ((report.details?.quantizedOps as Record<string, number> | undefined)?.[node.opType] ?? 0) > 0);

  try {
    const total = candidates.length;
    const layers: QuantizeLayerSensitivity[] = [];
    for (let i = 0; i < total; i++) {
      progress('layers', i, total);
      const unit = candidates[i]!;
      const layer = unit.node;
      const model = fresh();
      const others = [
        ...candidates.filter((l) => l !== unit).map((l) => l.node.label),
        ...activations.filter((a) => !unit.labels.includes(a)),
      ];
      const opTypes = [...new Set([layer.opType, ...[...ACTIVATIONS]])];
      const report = await quantize(model, { opTypes, exclude: [...others, ...settings.exclude] });
      if (!quantizedIn(report, layer)) {
        const why = (report.details?.skipped as { node: string; reason: string }[] | undefined)?.find((s) => s.node === layer.label)?.reason ?? `the ${weightStep ? weightStep.method : 'static'} pass left it float`;
        layers.push({ name: layer.label, op: layer.opType, metric: 'outputSqnrDb', value: null, rank: null, outputSqnrDb: null, top1: null, cosine: 1, layerSqnrDb: null, perplexity: null, skipped: why });
        continue;
      }
      const r = await runner.measure(model, [outputs[i]!]);
      layers.push({
        name: layer.label,
        op: layer.opType,
        metric: 'outputSqnrDb',
        value: r.output.sqnrDb,
        rank: null,
        outputSqnrDb: r.output.sqnrDb,
        top1: r.output.top1,
        cosine: r.output.cosine,
        // a unit that writes the model's output is its own tap
        layerSqnrDb: outputs[i] === runner.outputName ? r.output.sqnrDb : r.taps[outputs[i]!] ?? null,
        perplexity: r.language?.perplexity ?? null,
        skipped: null,
      });
    }
    progress('layers', total, total);
    rankLayers(layers);
    for (const l of layers) if (l.skipped) warnings.push(`${l.name} (${l.op}) not analyzed: ${l.skipped}`);

    // greedy exclusion from an all-int8 model, worst-ranked layers first. A layer left float still
    // reads and writes quantized activations (its neighbours are int8), so leaving it float does not
    // always help: a candidate is kept only when it raises output SQNR (or agreement).
    const unitOf = new Map(candidates.map((l) => [l.node.label, l]));
    const ranked = layers.filter((l) => l.rank !== null).sort((a, b) => a.rank! - b.rank!);
    const cap = Math.max(1, Math.floor(share * ranked.length));
    const maxTrials = Math.min(ranked.length, 2 * cap);
    const steps: ExclusionStep[] = [];
    const targetSqnr = o.targetSqnrDb ?? null;
    const meets = (r: ExclusionStep) => (r.top1 ?? r.cosine) >= target && (targetSqnr === null || (r.sqnrDb ?? Number.POSITIVE_INFINITY) >= targetSqnr);
    const better = (x: ExclusionStep, y: ExclusionStep) => {
      const sx = x.sqnrDb ?? Number.POSITIVE_INFINITY;
      const sy = y.sqnrDb ?? Number.POSITIVE_INFINITY;
      return (x.top1 ?? 0) > (y.top1 ?? 0) || ((x.top1 ?? 0) === (y.top1 ?? 0) && sx > sy);
    };
    const trialModel = async (excluded: string[]): Promise<Model> => {
      const model = fresh();
      await quantize(model, { exclude: [...excluded, ...settings.exclude] });
      return model;
    };
    const trial = async (layersFloat: string[], tried: string | null): Promise<ExclusionStep> => {
      const excluded = layersFloat.flatMap((l) => unitOf.get(l)!.labels);
      const r = await runner.measure(await trialModel(excluded));
      return { tried, layers: layersFloat, excluded, ...trialFigures(r), cosine: r.output.cosine, bytes: r.bytes, kept: true };
    };
    progress('recommend', 0, maxTrials + 1);
    let best = await trial([], null);
    steps.push(best);
    let reached = meets(best);
    for (let i = 0; i < maxTrials && !reached && best.layers.length < cap; i++) {
      progress('recommend', i + 1, maxTrials + 1);
      const step = await trial([...best.layers, ranked[i]!.name], ranked[i]!.name);
      step.kept = better(step, best);
      steps.push(step);
      if (step.kept) {
        best = step;
        reached = meets(best);
      }
    }
    progress('recommend', maxTrials + 1, maxTrials + 1);
    const last = best;
    const first = steps[0]!;
    let heldOut: HeldOutCheck | null = null;
    if (heldOutData) {
      const check = await TrialRunner.create(floatModel, heldOutData, { ep, signal: o.signal, exactInt8 });
      try {
        const measure = async (excluded: string[]) => trialFigures(await check.measure(await trialModel(excluded)));
        const allInt8 = await measure([]);
        heldOut = { n: heldOutData.n, offset: heldOutData.offset, allInt8, withExclusions: last.excluded.length ? await measure(last.excluded) : allInt8 };
      } finally {
        check.close();
      }
    }
    const metricName = (first.top1 === null ? `output cosine similarity ${target}` : `top-1 agreement ${target}`) + (targetSqnr === null ? '' : ` and output SQNR ${targetSqnr} dB`);
    const note = reached
      ? (last.excluded.length === 0
        ? `the all-${method === 'static' ? 'int8' : method} model already reaches ${metricName} on ${data.n} samples; nothing needs to stay float`
        : `leaving ${last.layers.length} layer(s) float reaches ${metricName} on ${data.n} samples`)
      : `not reached: ${last.layers.length} layer(s) left float (cap ${cap}, ${Math.round(share * 100)} % of ${ranked.length}; ${steps.length - 1} candidate(s) tried) without reaching ${metricName}; the exclusions listed are the best found`;
    const measured = (x: TrialFigures) => `${x.sqnrDb === null ? 'identical' : `${x.sqnrDb.toFixed(2)} dB`}${x.top1 === null ? '' : `, top-1 ${x.top1.toFixed(3)}`}${x.perplexity === null ? '' : `, perplexity ${x.perplexity.toFixed(3)}`}`;
    const heldOutNote = !heldOut ? '' : last.excluded.length
      ? `. On ${heldOut.n} held-out samples: all-${method === 'static' ? 'int8' : method} ${measured(heldOut.allInt8)} → ${measured(heldOut.withExclusions)} with the exclusions`
      : `. On ${heldOut.n} held-out samples: ${measured(heldOut.allInt8)}`;
    return {
      model: modelPath,
      for: 'quantize',
      data: { path: data.path, n: data.n, offset: o.offset ?? 0 },
      language: runner.language ? { floatPerplexity: runner.language.perplexity } : null,
      settings: {
        method, ...settings, exclude: [...settings.exclude], tuning,
        // not applied in the trials (see the warning), but the step applying the recommendation keeps it
        ...(o.settings?.biasCorrection && method === 'static' ? { biasCorrection: true } : {}),
        ...(weightStep ? { weightOnly: { blockSize: weightStep.blockSize, symmetric: weightStep.symmetric ?? false, format: weightStep.format } } : {}),
        ...(reduceRange ? { reduceRange: { ...reduceRange, exactInt8 } } : {}),
      },
      layers,
      steps,
      recommendation: {
        exclude: last.excluded,
        layers: last.layers,
        targetAgreement: target,
        targetSqnrDb: targetSqnr,
        reached,
        cappedAt: reached ? null : cap,
        allInt8: { sqnrDb: first.sqnrDb, top1: first.top1, perplexity: first.perplexity, bytes: first.bytes },
        withExclusions: { sqnrDb: last.sqnrDb, top1: last.top1, perplexity: last.perplexity, bytes: last.bytes },
        heldOut,
        note: note + heldOutNote,
      },
      warnings,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    runner.close();
  }
}

/** Rank 1 = lowest output SQNR (ties: lower agreement first, then graph order); skipped layers get none. */
function rankLayers(layers: QuantizeLayerSensitivity[]): void {
  const scored = layers.filter((l) => !l.skipped);
  const sqnr = (l: QuantizeLayerSensitivity) => (l.outputSqnrDb ?? Number.POSITIVE_INFINITY);
  const cmp = (x: number, y: number) => (x < y ? -1 : x > y ? 1 : 0);
  const order = [...scored].sort((a, b) => cmp(sqnr(a), sqnr(b)) || cmp(a.top1 ?? 1, b.top1 ?? 1) || layers.indexOf(a) - layers.indexOf(b));
  order.forEach((l, i) => { l.rank = i + 1; });
}
