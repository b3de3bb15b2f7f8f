import { badInput, WhittleError } from '../../../api/errors.ts';
import { alreadyQuantized } from '../../../native-models/ir/quantized-ops.ts';
import type { QuantizeStep } from '../../../api/recipe.ts';
import type { Model, Node } from '../../../native-models/ir/model.ts';
import type { EpChoice } from '../../../native-models/runtimes/onnxruntime.ts';
import { calibrate, type CalibrationOptions, type CalibrationResult } from '../../calibrate/index.ts';
import { openCalibrationData } from '../../calibrate/provenance.ts';
import { batchSizeFor, inputSpecs } from '../../evaluate/evaluate.ts';
import type { PassContext, PassReport } from '../pass.ts';
import { computeFor } from '../compute.ts';
import { runStepOnFile, type StepFileReport, type StepRun } from '../run-on-file.ts';
import { dynamicQuantizePass } from './dynamic.ts';
import { isExcluded } from './graph-edit.ts';
import { FP16_CONTRIB_OPS, fp16Pass } from './fp16.ts';
import { gptqQuantizePass, type GptqChoice } from './gptq-pass.ts';
import { DEFAULT_STATIC_OP_TYPES, foldBatchNormsFor, staticQdqPass } from './static-qdq.ts';
import { biasCorrectionCandidates, channelMeans, correctableLayers, correctStaticBiases, type BiasCorrectionReport } from './static-bias-correction.ts';
import { gptqStaticWeights } from './static-gptq.ts';
import { runtimeCheckWithWarnings, type RuntimeFusion } from './runtime-check.ts';
import { weightOnlyQuantizePass } from './weight-only.ts';
import { eightBitWeightsSaturate, int8Saturation } from '../../../native-models/runtimes/cpu-int8.ts';

/** The SPEC §3 quantize document. */
export interface QuantizeReport extends StepFileReport {
  method: QuantizeStep['method'];
  calibration: {
    method: string; samples: number; seconds: number;
    /** Present when runs took fewer samples than a batch, to keep their tapped tensors in memory. */
    samplesPerRun?: number;
  } | null;
  /** With --algorithm gptq: each layer's output error ‖WX − ŴX‖²/‖WX‖² on the calibration data, GPTQ against round-to-nearest. */
  gptq?: GptqSummary | undefined;
  /** static --bias-correction: what each layer's correction removed (static-bias-correction.ts). */
  biasCorrection?: BiasCorrectionReport | undefined;
  /** What onnxruntime's CPU EP runs of the file (integer kernels, float ops between Q/DQ); null: not checked (fp16, over 256 MiB). */
  runtimeCheck?: RuntimeFusion | null | undefined;
  /** static and dynamic int8 weights: whether they were kept in 7 bits, and why. */
  reduceRange?: ReduceRangeChoice | undefined;
}

export interface ReduceRangeChoice {
  on: boolean;
  /** Chosen from the CPU (the step left it unset). */
  auto: boolean;
  reason: string;
}

/**
 * Whether a static or dynamic step keeps int8 weights in 7 bits: as the step says, or, unset, as this
 * CPU needs — onnxruntime's u8×s8 kernels saturate 8-bit weights on x86 CPUs without VNNI
 * (cpu-int8.ts), and an artifact evaluated where it was made should measure the model, not the
 * kernel's overflow.
 */
export function reduceRangeFor(step: Pick<QuantizeStep, 'reduceRange'>): ReduceRangeChoice {
  if (step.reduceRange !== undefined) {
    return { on: step.reduceRange, auto: false, reason: step.reduceRange ? 'asked for (--reduce-range on)' : 'asked for (--reduce-range off)' };
  }
  const cpu = int8Saturation();
  return cpu.saturates
    ? { on: true, auto: true, reason: `this CPU (${cpu.cpu}: ${cpu.detail}) saturates onnxruntime's u8×s8 products of 8-bit weights; --reduce-range off for a file meant for VNNI CPUs` }
    : { on: false, auto: true, reason: `this CPU (${cpu.cpu}: ${cpu.detail}) does not saturate 8-bit weights` };
}

export interface GptqSummary {
  layers: number;
  /** Means over the layers small enough to measure (null when none was). */
  meanErrorGptq: number | null;
  meanErrorRtn: number | null;
}

type StepResult = PassReport & { calibration: QuantizeReport['calibration']; gptq?: GptqSummary | undefined; biasCorrection?: BiasCorrectionReport | undefined; reduceRange?: ReduceRangeChoice | undefined };

function gptqSummary(details: Record<string, unknown> | undefined): GptqSummary {
  const d = (details ?? {}) as { layers?: unknown[]; meanErrorGptq?: number | null; meanErrorRtn?: number | null };
  return { layers: d.layers?.length ?? 0, meanErrorGptq: d.meanErrorGptq ?? null, meanErrorRtn: d.meanErrorRtn ?? null };
}

export type QuantizeRun = StepRun<QuantizeStep>;

export interface QuantizeStepOptions {
  ep?: EpChoice;
  baseDir?: string;
  /** Weight-only GPTQ: choices kept across steps on the same float model (gptq-pass.ts \`cache\`). */
  gptqCache?: Map<string, GptqChoice>;
}

/** Runs one quantize step on an opened model (used by `whittle quantize` and recipe steps). */
export async function applyQuantizeStep(model: Model, step: QuantizeStep, ctx: PassContext, opts: QuantizeStepOptions = {}): Promise<StepResult> {
  const exclude = step.exclude;
  const nodes = model.graphs().flatMap((g) => g.nodes);
  for (const entry of exclude) {
    if (!nodes.some((n) => isExcluded(n, [entry]))) ctx.warn(`--exclude ${entry}: matches no node name, op type or output name in the main graph`);
  }
  if (step.algorithm === 'gptq' && step.method !== 'int4' && step.method !== 'int8-weight' && step.method !== 'static') {
    throw new WhittleError('BAD_USAGE', `--algorithm gptq applies to static, int4 and int8-weight, not --method ${step.method}`);
  }
  if ((step.actOrder || step.percdamp !== undefined) && step.algorithm !== 'gptq') ctx.warn('--act-order and --percdamp apply to --algorithm gptq only; ignored');
  if (step.biasCorrection && step.method !== 'static') ctx.warn(`--bias-correction applies to --method static, not ${step.method}; ignored`);
  if (step.reduceRange !== undefined && step.method !== 'static' && step.method !== 'dynamic') ctx.warn(`--reduce-range applies to --method static and dynamic (int8 weights), not ${step.method}; ignored`);
  if (step.includeGather && step.method !== 'int4' && step.method !== 'int8-weight') ctx.warn(`--include-gather applies to --method int4 and int8-weight, not ${step.method}; ignored`);
  switch (step.method) {
    case 'dynamic': {
      // uint8 weights meet no saturating kernel (onnxruntime multiplies u8×u8 in 16 bits)
      const reduceRange = step.weightType === 'int8' ? reduceRangeFor(step) : undefined;
      const report = await dynamicQuantizePass.run(model, {
        perChannel: step.perChannel,
        weightType: step.weightType,
        reduceRange: reduceRange?.on ?? false,
        ...(step.symmetric !== undefined ? { symmetric: step.symmetric } : {}),
        ...(step.includeConv ? { opTypes: ['MatMul', 'Gemm', 'Conv'] } : {}),
        exclude,
      }, ctx);
      // no weight quantized, no weight bits to report (the report would describe weights that are not there)
      return { ...report, calibration: null, reduceRange: report.nodesChanged > 0 ? reduceRange : undefined };
    }
    case 'fp16':
      return { ...(await fp16Pass.run(model, { keepIoTypes: step.keepIoTypes, exclude }, ctx)), calibration: null };
    case 'int4':
    case 'int8-weight':
      if (step.algorithm === 'gptq') return applyGptq(model, step, ctx, opts);
      return {
        ...(await weightOnlyQuantizePass.run(model, {
          bits: step.method === 'int4' ? 4 : 8,
          blockSize: step.blockSize,
          ...(step.symmetric !== undefined ? { symmetric: step.symmetric } : {}),
          format: step.format,
          exclude,
          includeGather: step.includeGather,
        }, ctx)),
        calibration: null,
      };
    case 'static': {
      if (!step.calib) throw new WhittleError('BAD_USAGE', 'static quantization needs calibration data (--calib DATA)');
      const t0 = performance.now();
      const reduceRange = reduceRangeFor(step);
      // before calibrating: the ranges, GPTQ's statistics and bias correction then see the folded graph
      const batchNorms = foldBatchNormsFor(model, exclude);
      const inputs = inputSpecs(model);
      const dataset = await openCalibrationData(model, step.calib, inputs, { baseDir: opts.baseDir ?? process.cwd(), limit: step.samples ?? step.calib.limit ?? 256, seed: ctx.seed });
      for (const w of dataset.warnings) ctx.warn(w);
      const cal = await calibrate(model, dataset, {
        method: step.calibration,
        ep: opts.ep ?? 'cpu',
        batchSize: batchSizeFor(inputs, 32),
        signal: ctx.signal,
        progress: (done, total) => ctx.progress('calibrate', done, total),
        ...calibrationTuning(step, ctx),
        quantType: step.activationType,
      });
      checkCalibrationFinite(cal, dataset.path, inputs.map((i) => i.name), ctx);
      // runs smaller than the batch: its tapped tensors would not fit TAP_BYTES_PER_RUN (said, as it costs time)
      const limited = cal.samplesPerRun < Math.min(batchSizeFor(inputs, 32), cal.samples);
      const calibration = { method: step.calibration, samples: cal.samples, seconds: (performance.now() - t0) / 1000, ...(limited ? { samplesPerRun: cal.samplesPerRun } : {}) };
      ctx.checkpoint();
      const gptq = step.algorithm === 'gptq'
        ? await gptqStaticWeights(model, {
          data: dataset, samples: dataset.n, batchSize: batchSizeFor(inputs, 32), ep: opts.ep ?? 'cpu', perChannel: step.perChannel, exclude,
          opTypes: DEFAULT_STATIC_OP_TYPES, actOrder: step.actOrder, ...(step.percdamp !== undefined ? { percdamp: step.percdamp } : {}),
          reduceRange: reduceRange.on,
        }, ctx)
        : null;
      calibration.seconds = (performance.now() - t0) / 1000;
      const correction = { data: dataset, batchSize: batchSizeFor(inputs, 32), ep: opts.ep ?? 'cpu' };
      // the float model's layer outputs, measured before the pass rewrites it
      const floatMeans = step.biasCorrection ? (await channelMeans(model, biasCorrectionCandidates(model.graph), correction, ctx, 'bias correction, float model')).means : null;
      const computeOutputs = new Map<Node, string>();
      const passReport = await staticQdqPass.run(model, { ranges: cal.ranges, activationType: step.activationType, perChannel: step.perChannel, reduceRange: reduceRange.on, exclude, weightValues: gptq?.weights, computeOutputs }, ctx);
      const report = { ...passReport, details: { ...passReport.details, foldedBatchNorms: [...batchNorms, ...((passReport.details?.['foldedBatchNorms'] as string[] | undefined) ?? [])] } };
      let biasCorrection: BiasCorrectionReport | undefined;
      if (floatMeans) {
        const { targets, withoutBias } = correctableLayers(model, computeOutputs);
        // 8-bit weights on a CPU whose fused int8 kernels saturate them: measured in the model's own
        // arithmetic, or the correction would chase the saturation of the upstream layers
        biasCorrection = { ...(await correctStaticBiases(model, targets, floatMeans, { ...correction, exactInt8: eightBitWeightsSaturate(reduceRange.on) }, ctx)), withoutBias };
        calibration.method += ' + bias correction';
        calibration.seconds = (performance.now() - t0) / 1000;
      }
      if (!gptq) return { ...report, calibration, biasCorrection, reduceRange };
      const summary = { layers: gptq.layers.length, meanErrorGptq: gptq.meanErrorGptq, meanErrorRtn: gptq.meanErrorRtn };
      return {
        ...report,
        gptq: summary,
        warnings: [...gptq.warnings, ...report.warnings.filter((w) => !gptq.warnings.includes(w))],
        details: {
          ...report.details, algorithm: 'gptq', percdamp: step.percdamp ?? 0.01, actOrder: step.actOrder, calibrationSamples: gptq.samples,
          meanErrorGptq: summary.meanErrorGptq, meanErrorRtn: summary.meanErrorRtn, layers: gptq.layers,
        },
        calibration: { ...calibration, method: calibration.method.replace(step.calibration, `${step.calibration} + gptq`) },
        biasCorrection,
        reduceRange,
      };
    }
    case 'uint8':
    case 'uint16':
      throw new WhittleError('BAD_USAGE', `quantize --method ${step.method} is TF.js weight quantization (for model.json models); ONNX models take dynamic, static, fp16, int4 or int8-weight`);
  }
}

/**
 * The calibrator's own options a step sets (percentile, moving average, symmetric ranges, bins);
 * one that does not apply to the chosen calibrator is named in a warning and left out.
 */
export function calibrationTuning(step: Pick<QuantizeStep, 'calibration' | 'percentile' | 'movingAverage' | 'symmetricRanges' | 'bins'>, ctx: Pick<PassContext, 'warn'>): Pick<CalibrationOptions, 'percentile' | 'movingAverage' | 'symmetric' | 'bins'> {
  const histogram = step.calibration !== 'minmax';
  const ignored = (flag: string, applies: string) => ctx.warn(`${flag} applies to --calibration ${applies}, not ${step.calibration}; ignored`);
  if (step.percentile !== undefined && step.calibration !== 'percentile') ignored('--percentile', 'percentile');
  if (step.movingAverage && step.calibration !== 'minmax') ignored('--moving-average', 'minmax');
  if (step.symmetricRanges && !histogram) ignored('--symmetric-ranges', 'percentile, entropy or mse');
  if (step.bins !== undefined && !histogram) ignored('--bins', 'percentile, entropy or mse');
  return {
    ...(step.percentile !== undefined && step.calibration === 'percentile' ? { percentile: step.percentile } : {}),
    ...(step.movingAverage && step.calibration === 'minmax' ? { movingAverage: true } : {}),
    ...(step.symmetricRanges && histogram ? { symmetric: true } : {}),
    ...(step.bins !== undefined && histogram ? { bins: step.bins } : {}),
  };
}

/** int4 / int8-weight with GPTQ: calibration data through the model, then the weight-only layout. */
async function applyGptq(model: Model, step: QuantizeStep, ctx: PassContext, opts: QuantizeStepOptions): Promise<StepResult> {
  if (!step.calib) throw new WhittleError('BAD_USAGE', 'GPTQ needs calibration data (--calib DATA)');
  const t0 = performance.now();
  const inputs = inputSpecs(model);
  const data = await openCalibrationData(model, step.calib, inputs, { baseDir: opts.baseDir ?? process.cwd(), limit: step.samples ?? step.calib.limit ?? 128, seed: ctx.seed });
  for (const w of data.warnings) ctx.warn(w);
  const report = await gptqQuantizePass.run(model, {
    bits: step.method === 'int4' ? 4 : 8,
    blockSize: step.blockSize,
    ...(step.symmetric !== undefined ? { symmetric: step.symmetric } : {}),
    format: step.format,
    exclude: step.exclude,
    includeGather: step.includeGather,
    data,
    samples: data.n,
    batchSize: batchSizeFor(inputs, 32),
    ep: opts.ep ?? 'cpu',
    actOrder: step.actOrder,
    // the GPTQ math follows the execution provider asked for
    compute: computeFor(opts.ep),
    ...(step.percdamp !== undefined ? { percdamp: step.percdamp } : {}),
    cache: opts.gptqCache,
  }, ctx);
  const samples = Number(report.details?.calibrationSamples ?? data.n);
  return { ...report, calibration: { method: 'gptq', samples, seconds: (performance.now() - t0) / 1000 }, gptq: gptqSummary(report.details) };
}

/**
 * NaN or Infinity in calibration data: left out of the ranges, said once (naming the data and the
 * tensors). A tensor that held nothing else has no range, so its nodes stay float (the static pass
 * names them); a model input with nothing else means the data is unusable: an error.
 */
function checkCalibrationFinite(cal: CalibrationResult, data: string, inputs: string[], ctx: PassContext): void {
  const deadInput = inputs.find((name) => cal.noFinite.includes(name));
  if (deadInput) throw badInput(data, `every value of model input ${deadInput} in the ${cal.samples} calibration samples is NaN or Infinity`);
  if (cal.nonFinite.length === 0) return;
  const list = (names: string[]) => `${names.slice(0, 6).join(', ')}${names.length > 6 ? `, … ${names.length - 6} more` : ''}`;
  const n = cal.nonFinite.length;
  let message = `${data}: NaN or Infinity in ${n} tensor${n === 1 ? '' : 's'} (${list(cal.nonFinite)}) during calibration; those values were left out of the ranges`;
  if (cal.noFinite.length > 0) message += `; ${cal.noFinite.length} of them (${list(cal.noFinite)}) held no finite value, so they get no range and the nodes using them stay float`;
  ctx.warn(message);
  for (const name of cal.noFinite) cal.ranges.delete(name);
}

/** Reads a model, quantizes it with one step, writes the result: what `whittle quantize` does. */
export async function quantizeModel(run: QuantizeRun): Promise<QuantizeReport> {
  // the passes stream weights through reused buffers: an inline model's big weights need not be read whole first
  let already: string | null = null;
  const { common, report } = await runStepOnFile(run, applyQuantizeStep, { lazyTensors: true, beforeApply: async (model) => { already = alreadyQuantized(model, run.input, quantizedOpsFollowed([run.step.method])); } });
  const runtime = await quantizedRuntime([run.step.method], common.output, common.bytesAfter);
  return {
    ...common,
    warnings: [...(already ? [quantizedAgain(already, run.step.method)] : []), ...common.warnings, ...runtime.warnings],
    method: run.step.method,
    calibration: report.calibration,
    ...(report.gptq ? { gptq: report.gptq } : {}),
    ...(report.biasCorrection ? { biasCorrection: report.biasCorrection } : {}),
    ...(report.reduceRange ? { reduceRange: report.reduceRange } : {}),
    runtimeCheck: runtime.fusion,
  };
}

/**
 * The quantized ops quantize steps of these methods are meant to follow, for alreadyQuantized: fp16
 * after int4/int8-weight is the usual way to ship weight-only models, and their ops convert with it
 * (FP16_CONTRIB_OPS), so that is no reason for a warning.
 */
export function quantizedOpsFollowed(methods: readonly QuantizeStep['method'][]): { except?: ReadonlySet<string> } {
  return methods.length > 0 && methods.every((m) => m === 'fp16') ? { except: FP16_CONTRIB_OPS } : {};
}

/** The warning for quantizing a model that holds quantized ops already (alreadyQuantized's words first). */
export function quantizedAgain(already: string, what: string): string {
  return `${already}: ${what} changes only its float parts, the quantized ops stay as they are; to quantize the whole model another way, start from its float original`;
}

/**
 * What onnxruntime's CPU EP makes of a written model (runtime-check.ts), when one of the quantize
 * methods that made it leaves integer kernels to fuse (fp16 has none). `bytes`: the file's size with
 * its external data (RUNTIME_CHECK_LIMIT_BYTES).
 */
export async function quantizedRuntime(methods: readonly QuantizeStep['method'][], output: string, bytes: number): Promise<{ fusion: RuntimeFusion | null; warnings: string[] }> {
  if (!methods.some((m) => m !== 'fp16')) return { fusion: null, warnings: [] };
  return runtimeCheckWithWarnings(output, bytes);
}
