import { resolve } from 'node:path';
import { openModel } from '../../native-models/formats/index.ts';
import { writeOnnxFile, type WriteReport } from '../../native-models/formats/onnx/index.ts';
import type { Model } from '../../native-models/ir/model.ts';
import { modelStats } from '../../native-models/ir/stats.ts';
import type { EpChoice } from '../../native-models/runtimes/onnxruntime.ts';
import { modelBytes } from '../evaluate/evaluate.ts';
import { createPassContext, type PassContext, type PassReport } from './pass.ts';
import { peakRssBytes } from '../peak-rss.ts';

/** One step (`whittle quantize` or `whittle prune`) applied to a model file and written out. */
export interface StepRun<Step> {
  input: string;
  output: string;
  step: Step;
  ep?: EpChoice;
  seed?: number;
  signal?: AbortSignal;
  progress?: (phase: string, done: number, total: number) => void;
  /** Folder that relative data paths are resolved against (a recipe's folder; default the cwd). */
  baseDir?: string;
}

/** The fields SPEC §3 gives every quantize/prune document. */
export interface StepFileReport {
  input: string;
  output: string;
  externalDataPath: string | null;
  bytesBefore: number;
  bytesAfter: number;
  parametersBefore: number;
  parametersAfter: number;
  sparsity: number;
  seconds: number;
  peakRssBytes: number;
  nodesChanged: number;
  excluded: string[];
  warnings: string[];
}

export type ApplyStep<Step, R extends PassReport> = (model: Model, step: Step, ctx: PassContext, opts: { ep?: EpChoice; baseDir?: string }) => Promise<R>;

/** The fields of a step's file report every format measures the same way (parameters, time, memory, outcome). */
export function stepMeasures(
  before: { parameters: number }, after: { parameters: number; nonzeroParameters: number }, report: PassReport, warnings: readonly string[], t0: number,
): Pick<StepFileReport, 'parametersBefore' | 'parametersAfter' | 'sparsity' | 'seconds' | 'peakRssBytes' | 'nodesChanged' | 'excluded' | 'warnings'> {
  return {
    parametersBefore: before.parameters,
    parametersAfter: after.parameters,
    sparsity: after.parameters ? 1 - after.nonzeroParameters / after.parameters : 0,
    seconds: (performance.now() - t0) / 1000,
    peakRssBytes: peakRssBytes(),
    nodesChanged: report.nodesChanged,
    excluded: report.excluded,
    warnings: [...new Set([...warnings, ...report.warnings])],
  };
}

/**
 * Opens the model, applies the step, writes the result and measures before/after: what quantize
 * and prune share. `beforeApply` sees the untouched model (prune measures its deflated size there).
 */
export async function runStepOnFile<Step, R extends PassReport>(
  run: StepRun<Step>,
  apply: ApplyStep<Step, R>,
  options: { countZerosBefore?: boolean; beforeApply?: (model: Model) => Promise<void>; lazyTensors?: boolean } = {},
): Promise<{ common: StepFileReport; report: R; written: WriteReport }> {
  const t0 = performance.now();
  // lazyTensors: big inline weights stay in the file until the pass streams them (see ReadOptions)
  const model = openModel(run.input, { lazyTensors: options.lazyTensors ?? false });
  const before = modelStats(model, { countZeros: options.countZerosBefore ?? false });
  const bytesBefore = modelBytes(model);
  await options.beforeApply?.(model);
  const ctx = createPassContext({ ...(run.signal ? { signal: run.signal } : {}), ...(run.progress ? { progress: run.progress } : {}), seed: run.seed ?? 0 });
  const report = await apply(model, run.step, ctx, { ...(run.ep ? { ep: run.ep } : {}), baseDir: run.baseDir ?? process.cwd() });
  ctx.checkpoint();
  ctx.progress('write', 0, 1);
  // Measured after writing, when the writer has computed the quantized weights (and counted their
  // zeros) once; but before, when the output replaces a file that tensors are still read from
  // (writing a model over itself): afterwards those bytes would be gone.
  const replaced = new Set([resolve(run.output), `${resolve(run.output)}.data`]);
  const readsReplaced = [...model.weights()].some(({ tensor }) => tensor.source.kind === 'external' && replaced.has(resolve(tensor.source.path)));
  let after = readsReplaced ? modelStats(model) : null;
  const written = writeOnnxFile(model, run.output);
  after ??= modelStats(model);
  const common: StepFileReport = {
    input: resolve(run.input),
    output: written.path,
    externalDataPath: written.externalDataPath,
    bytesBefore,
    bytesAfter: written.bytes + written.externalDataBytes,
    ...stepMeasures(before, after, report, ctx.warnings, t0),
  };
  return { common, report, written };
}
