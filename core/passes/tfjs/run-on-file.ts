import { WhittleError } from '../../../api/errors.ts';
import type { PruneStep } from '../../../api/recipe.ts';
import { readTfjsModel, tfjsStats, weightBytes, writeTfjsModel, type TfjsKind, type TfjsModel, type TfjsWriteReport } from '../../../native-models/formats/tfjs/index.ts';
import { createPassContext, type PassContext, type PassReport } from '../pass.ts';
import { deflatedSize } from '../prune/sparsity-report.ts';
import { parseNmPattern } from '../prune/nm.ts';
import { stepMeasures, type StepFileReport } from '../run-on-file.ts';
import { tfjsMagnitudePrunePass, tfjsNmPrunePass, TFJS_SPARSITY_NOTE } from './prune.ts';
import { tfjsQuantizePass, type TfjsQuantizeDtype } from './quantize.ts';

/** Quantize methods that exist for TF.js models, and the storage type each writes. */
export const TFJS_QUANTIZE_METHODS = { uint8: 'uint8', uint16: 'uint16', fp16: 'float16' } as const satisfies Record<string, TfjsQuantizeDtype>;
export type TfjsQuantizeMethod = keyof typeof TFJS_QUANTIZE_METHODS;
export const TFJS_PRUNE_METHODS = ['magnitude', 'nm'] as const;

export function isTfjsQuantizeMethod(method: string): method is TfjsQuantizeMethod {
  return Object.hasOwn(TFJS_QUANTIZE_METHODS, method);
}

export interface TfjsStepRun {
  input: string;
  /** A model.json path, or a folder that gets one. */
  output: string;
  shardBytes?: number | undefined;
  seed?: number | undefined;
  signal?: AbortSignal | undefined;
  progress?: ((phase: string, done: number, total: number) => void) | undefined;
}

/** The SPEC §3 quantize/prune fields, for a model.json and its shards. */
export interface TfjsStepFileReport extends StepFileReport {
  format: 'tfjs';
  kind: TfjsKind;
  /** Every file written: model.json and the shards. */
  files: string[];
  /** Bytes of weight data alone (the shards), before and after. */
  weightBytesBefore: number;
  weightBytesAfter: number;
}

/**
 * Reads model.json, applies one pass, writes the result and measures it: the TF.js counterpart of
 * runStepOnFile. `beforeApply` sees the untouched model.
 */
export async function runTfjsStepOnFile(
  run: TfjsStepRun,
  apply: (model: TfjsModel, ctx: PassContext) => Promise<PassReport>,
  options: { beforeApply?: (model: TfjsModel) => Promise<void> } = {},
): Promise<{ common: TfjsStepFileReport; report: PassReport; written: TfjsWriteReport }> {
  const t0 = performance.now();
  const model = readTfjsModel(run.input);
  const before = tfjsStats(model);
  const bytesBefore = model.files.reduce((n, f) => n + f.bytes, 0);
  const weightBytesBefore = weightBytes(model);
  await options.beforeApply?.(model);
  const ctx = createPassContext({ ...(run.signal ? { signal: run.signal } : {}), ...(run.progress ? { progress: run.progress } : {}), seed: run.seed ?? 0 });
  for (const w of model.warnings) ctx.warn(w);
  const report = await apply(model, ctx);
  ctx.checkpoint();
  ctx.progress('write', 0, 1);
  const written = writeTfjsModel(model, run.output, { ...(run.shardBytes ? { shardBytes: run.shardBytes } : {}) });
  const after = tfjsStats(model);
  const common: TfjsStepFileReport = {
    format: 'tfjs',
    kind: model.kind,
    input: model.path,
    output: written.path,
    externalDataPath: null,
    files: written.files,
    bytesBefore,
    bytesAfter: written.bytes,
    weightBytesBefore,
    weightBytesAfter: written.weightBytes,
    ...stepMeasures(before, after, report, ctx.warnings, t0),
  };
  return { common, report, written };
}

/** The quantize document for a TF.js model (the ONNX one's fields, calibration always null). */
export interface TfjsQuantizeReport extends TfjsStepFileReport {
  method: TfjsQuantizeMethod;
  calibration: null;
  details: Record<string, unknown> | undefined;
}

/** One quantize step on an opened TF.js model (`whittle quantize` and recipe steps). */
export function applyTfjsQuantizeStep(model: TfjsModel, method: string, exclude: readonly string[] | undefined, ctx: PassContext): Promise<PassReport> {
  if (!isTfjsQuantizeMethod(method)) throw new WhittleError('BAD_USAGE', `TF.js models quantize with ${Object.keys(TFJS_QUANTIZE_METHODS).join(', ')}, not ${method}`);
  return tfjsQuantizePass.run(model, { dtype: TFJS_QUANTIZE_METHODS[method], exclude }, ctx);
}

/** One prune step on an opened TF.js model (`whittle prune` and recipe steps). */
export function applyTfjsPruneStep(model: TfjsModel, step: PruneStep, ctx: PassContext): Promise<PassReport> {
  const common = { exclude: step.exclude, minParameters: step.minParameters, protectFirstLast: step.protectFirstLast };
  if (step.layerSparsity) throw new WhittleError('BAD_USAGE', 'a per-layer sparsity plan comes from `whittle analyze`, which runs ONNX models; TF.js pruning takes one sparsity');
  switch (step.method) {
    case 'magnitude': return tfjsMagnitudePrunePass.run(model, { ...common, sparsity: step.sparsity, scope: step.scope }, ctx);
    case 'nm': return tfjsNmPrunePass.run(model, { ...common, ...parseNmPattern(step.pattern ?? '2:4') }, ctx);
    default: throw new WhittleError('BAD_USAGE', `prune --method ${step.method} works on ONNX models only; TF.js models take ${TFJS_PRUNE_METHODS.join(', ')}`);
  }
}

/** `whittle quantize model.json -o OUT --method uint8|uint16|fp16`. */
export async function quantizeTfjsModel(run: TfjsStepRun & { method: TfjsQuantizeMethod; exclude?: readonly string[] }): Promise<TfjsQuantizeReport> {
  const { common, report } = await runTfjsStepOnFile(run, (model, ctx) => applyTfjsQuantizeStep(model, run.method, run.exclude, ctx));
  return { ...common, method: run.method, calibration: null, details: report.details };
}

/** The prune document for a TF.js model, with the deflated sizes unstructured sparsity is worth. */
export interface TfjsPruneReport extends TfjsStepFileReport {
  method: PruneStep['method'];
  deflatedBytesBefore: number;
  deflatedBytesAfter: number;
  details: Record<string, unknown> | undefined;
}

async function deflatedTotal(files: readonly string[]): Promise<number> {
  return (await Promise.all(files.map(deflatedSize))).reduce((a, b) => a + b, 0);
}

/** `whittle prune model.json -o OUT --method magnitude|nm`. */
export async function pruneTfjsModel(run: TfjsStepRun & { step: PruneStep }): Promise<TfjsPruneReport> {
  const { step } = run;
  let deflatedBytesBefore = 0;
  const result = await runTfjsStepOnFile(run, (model, ctx) => applyTfjsPruneStep(model, step, ctx), {
    beforeApply: async (model) => { deflatedBytesBefore = await deflatedTotal(model.files.map((f) => f.path)); },
  });
  return {
    ...result.common,
    method: step.method,
    deflatedBytesBefore,
    deflatedBytesAfter: await deflatedTotal(result.written.files),
    warnings: [...result.common.warnings, TFJS_SPARSITY_NOTE],
    details: result.report.details,
  };
}
