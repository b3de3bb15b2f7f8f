import { resolve } from 'node:path';
import { WhittleError } from '../../../api/errors.ts';
import type { PruneStep } from '../../../api/recipe.ts';
import { openModel } from '../../../native-models/formats/index.ts';
import { writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import type { Model } from '../../../native-models/ir/model.ts';
import { modelStats } from '../../../native-models/ir/stats.ts';
import type { EpChoice } from '../../../native-models/runtimes/onnxruntime.ts';
import { modelBytes } from '../../evaluate/evaluate.ts';
import { createPassContext, type PassContext, type PassReport } from '../pass.ts';
import { magnitudePrunePass } from './magnitude.ts';
import { nmPrunePass, parseNmPattern } from './nm.ts';
import { artifactSize, deflatedSize, SPARSITY_STORAGE_NOTE } from './sparsity-report.ts';
import { extraPruneMethods } from './methods.ts';

/** The SPEC §3 prune document, plus the deflated sizes unstructured sparsity is really worth. */
export interface PruneReport {
  input: string;
  output: string;
  externalDataPath: string | null;
  method: PruneStep['method'];
  bytesBefore: number;
  bytesAfter: number;
  deflatedBytesBefore: number;
  deflatedBytesAfter: number;
  parametersBefore: number;
  parametersAfter: number;
  sparsity: number;
  seconds: number;
  peakRssBytes: number;
  nodesChanged: number;
  excluded: string[];
  warnings: string[];
  details: Record<string, unknown> | undefined;
}

/** Runs one prune step on an opened model (used by `whittle prune` and recipe steps). */
export async function applyPruneStep(model: Model, step: PruneStep, ctx: PassContext, opts: { ep?: EpChoice; baseDir?: string } = {}): Promise<PassReport> {
  const common = { exclude: step.exclude, minParameters: step.minParameters, protectFirstLast: step.protectFirstLast };
  switch (step.method) {
    case 'magnitude':
      return magnitudePrunePass.run(model, { ...common, sparsity: step.sparsity, scope: step.scope }, ctx);
    case 'nm': {
      const { n, m } = parseNmPattern(step.pattern ?? '2:4');
      return nmPrunePass.run(model, { ...common, n, m }, ctx);
    }
    default: {
      const method = extraPruneMethods[step.method];
      if (!method) throw new WhittleError('UNSUPPORTED', `prune method ${step.method} is not available in this build`);
      return method(model, step, ctx, { ep: opts.ep ?? 'cpu', baseDir: opts.baseDir ?? process.cwd() });
    }
  }
}

export interface PruneRun {
  input: string;
  output: string;
  step: PruneStep;
  ep?: EpChoice;
  seed?: number;
  signal?: AbortSignal;
  progress?: (phase: string, done: number, total: number) => void;
  baseDir?: string;
}

/** Reads a model, prunes it with one step, writes it and measures what the sparsity is worth on disk. */
export async function pruneModel(run: PruneRun): Promise<PruneReport> {
  const t0 = performance.now();
  const model = openModel(run.input);
  const before = modelStats(model);
  const bytesBefore = modelBytes(model);
  const inputFiles = [...new Set([...model.weights()].flatMap(({ tensor }) => (tensor.source.kind === 'external' ? [tensor.source.path] : [])))];
  const deflatedBytesBefore = (await deflatedSize(model.path!)) + (await Promise.all(inputFiles.map(deflatedSize))).reduce((a, b) => a + b, 0);
  const ctx = createPassContext({ ...(run.signal ? { signal: run.signal } : {}), ...(run.progress ? { progress: run.progress } : {}), seed: run.seed ?? 0 });
  const report = await applyPruneStep(model, run.step, ctx, { ...(run.ep ? { ep: run.ep } : {}), baseDir: run.baseDir ?? process.cwd() });
  ctx.checkpoint();
  const written = writeOnnxFile(model, run.output);
  const after = modelStats(model);
  const size = await artifactSize(written.path, written.externalDataPath ? [written.externalDataPath] : []);
  const warnings = [...new Set([...ctx.warnings, ...report.warnings])];
  if (run.step.method !== 'channel') warnings.push(SPARSITY_STORAGE_NOTE);
  return {
    input: resolve(run.input),
    output: written.path,
    externalDataPath: written.externalDataPath,
    method: run.step.method,
    bytesBefore,
    bytesAfter: size.bytes,
    deflatedBytesBefore,
    deflatedBytesAfter: size.deflatedBytes,
    parametersBefore: before.parameters,
    parametersAfter: after.parameters,
    sparsity: after.parameters ? 1 - after.nonzeroParameters / after.parameters : 0,
    seconds: (performance.now() - t0) / 1000,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    nodesChanged: report.nodesChanged,
    excluded: report.excluded,
    warnings,
    details: report.details,
  };
}
