import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { WhittleError } from '../../../api/errors.ts';
import { PLAN_METHODS, type PruneStep } from '../../../api/recipe.ts';
import type { Model } from '../../../native-models/ir/model.ts';
import type { EpChoice } from '../../../native-models/runtimes/onnxruntime.ts';
import type { PassContext, PassReport } from '../pass.ts';
import { runStepOnFile, type StepFileReport, type StepRun } from '../run-on-file.ts';
import { magnitudePrunePass } from './magnitude.ts';
import { computeFor } from '../compute.ts';
import { nmPrunePass, parseNmPattern } from './nm.ts';
import { artifactSize, defaultDeflateBudget, deflatedSize, SPARSITY_STORAGE_NOTE } from './sparsity-report.ts';
import { formatBytes } from '../../format-bytes.ts';
import { extraPruneMethods, withBiasCorrection } from './methods.ts';

/** The SPEC §3 prune document, plus the deflated sizes unstructured sparsity is really worth. */
export interface PruneReport extends StepFileReport {
  method: PruneStep['method'];
  /** null when not measured (`deflateSkipped` says why). */
  deflatedBytesBefore: number | null;
  deflatedBytesAfter: number | null;
  /** Why the deflated sizes were not measured (`--deflate off`, or a model over the default budget); null when they were. */
  deflateSkipped?: string | null;
  /** Seconds spent after the write waiting for the deflated sizes (not in `seconds`). */
  deflateSeconds?: number;
  details: Record<string, unknown> | undefined;
}

/** The methods that take an N:M `pattern`. */
const PATTERN_METHODS: readonly PruneStep['method'][] = ['nm', 'wanda', 'sparsegpt'];

/** Runs one prune step on an opened model (used by `whittle prune` and recipe steps). */
export async function applyPruneStep(model: Model, step: PruneStep, ctx: PassContext, opts: { ep?: EpChoice; baseDir?: string } = {}): Promise<PassReport> {
  const common = { exclude: step.exclude, minParameters: step.minParameters, protectFirstLast: step.protectFirstLast };
  if (step.layerSparsity && !PLAN_METHODS.includes(step.method)) {
    throw new WhittleError('BAD_USAGE', `a per-layer sparsity plan applies to ${PLAN_METHODS.join(', ')} pruning, not to ${step.method}`);
  }
  // a pattern the method would silently ignore: magnitude 2:4 would be magnitude 50 %
  if (step.pattern !== undefined && !PATTERN_METHODS.includes(step.method)) {
    throw new WhittleError('BAD_USAGE', `--pattern ${step.pattern} applies to ${PATTERN_METHODS.join(', ')} pruning, not to ${step.method}${step.method === 'magnitude' ? ` (N:M by magnitude is --method nm --pattern ${step.pattern})` : ''}`);
  }
  const corrected = (prune: () => Promise<PassReport>) =>
    (step.biasCorrection ? withBiasCorrection(model, step, ctx, { ep: opts.ep ?? 'cpu', baseDir: opts.baseDir ?? process.cwd() }, prune) : prune());
  switch (step.method) {
    case 'magnitude':
      return corrected(() => magnitudePrunePass.run(model, { ...common, sparsity: step.sparsity, scope: step.scope, layerSparsity: step.layerSparsity, compute: computeFor(opts.ep) }, ctx));
    case 'nm': {
      const { n, m } = parseNmPattern(step.pattern ?? '2:4');
      return corrected(() => nmPrunePass.run(model, { ...common, n, m }, ctx));
    }
    default: {
      const method = extraPruneMethods[step.method];
      if (!method) throw new WhittleError('UNSUPPORTED', `prune method ${step.method} is not available in this build`);
      return method(model, step, ctx, { ep: opts.ep ?? 'cpu', baseDir: opts.baseDir ?? process.cwd() });
    }
  }
}

/** `--deflate`: measure the deflated sizes always, never, or (auto) when the model is within defaultDeflateBudget. */
export const DEFLATE_CHOICES = ['auto', 'on', 'off'] as const;
export type DeflateChoice = (typeof DEFLATE_CHOICES)[number];

export type PruneRun = StepRun<PruneStep> & {
  deflate?: DeflateChoice | undefined;
  /** auto's limit in bytes (default defaultDeflateBudget(): 128 MiB a core). */
  deflateBudget?: number | undefined;
};

/** Reads a model, prunes it with one step, writes it and measures what the sparsity is worth on disk. */
export async function pruneModel(run: PruneRun): Promise<PruneReport> {
  // the input's deflated size is measured on the thread pool while the pass runs (it took as long as
  // magnitude pruning itself on a 67 M-parameter model), unless the output replaces an input file
  let deflatedBefore: Promise<number> = Promise.resolve(0);
  let deflateSkipped: string | null = null;
  const { common, report, written } = await runStepOnFile(run, applyPruneStep, {
    countZerosBefore: true,
    beforeApply: async (model) => {
      const files = [model.path!, ...new Set([...model.weights()].flatMap(({ tensor }) => (tensor.source.kind === 'external' ? [tensor.source.path] : [])))];
      const bytes = files.reduce((n, f) => n + statSync(f).size, 0);
      const budget = run.deflateBudget ?? defaultDeflateBudget();
      if (run.deflate === 'off') deflateSkipped = '--deflate off';
      else if (run.deflate !== 'on' && bytes > budget) deflateSkipped = `${formatBytes(bytes)} is over the ${formatBytes(budget)} measured by default${run.deflateBudget === undefined ? ' here (128 MiB a core)' : ''}; --deflate on measures it`;
      if (deflateSkipped) return;
      deflatedBefore = Promise.all(files.map(deflatedSize)).then((sizes) => sizes.reduce((a, b) => a + b, 0));
      // a failed pass never awaits it: its own failure must not become an unhandled rejection
      deflatedBefore.catch(() => {});
      const output = resolve(run.output);
      if (files.some((f) => resolve(f) === output || resolve(f) === `${output}.data`)) await deflatedBefore;
    },
  });
  const structured = run.step.method === 'channel' || run.step.method === 'heads';
  const warnings = structured ? common.warnings : [...common.warnings, SPARSITY_STORAGE_NOTE];
  const base = { ...common, method: run.step.method, warnings, details: report.details };
  if (deflateSkipped) return { ...base, deflatedBytesBefore: null, deflatedBytesAfter: null, deflateSkipped };
  const t0 = performance.now();
  const deflatedBytesBefore = await deflatedBefore;
  const size = await artifactSize(written.path, written.externalDataPath ? [written.externalDataPath] : []);
  const deflateSeconds = (performance.now() - t0) / 1000;
  return { ...base, bytesAfter: size.bytes, deflatedBytesBefore, deflatedBytesAfter: size.deflatedBytes, deflateSkipped: null, deflateSeconds };
}
