import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PruneStep, QuantizeStep, Recipe, type DataRef } from '../../api/recipe.ts';
import type { RunDetail } from '../store/types.ts';
import { PRUNE_FLAGS, QUANTIZE_FLAGS } from './job-plan.ts';

const BOOLEAN_FIELDS = new Set(['perChannel', 'movingAverage', 'symmetricRanges', 'actOrder', 'keepIoTypes', 'includeConv', 'includeGather', 'sequential', 'biasCorrection', 'protectFirstLast']);
const NUMBER_FIELDS = new Set(['samples', 'percentile', 'bins', 'percdamp', 'blockSize', 'sparsity', 'roundTo', 'minParameters']);

/** A data reference with an absolute path (paths in a recipe are relative to the recipe file). */
function absoluteData(ref: DataRef | undefined, baseDir: string): DataRef | undefined {
  if (!ref || ref.path.startsWith('synthetic:') || isAbsolute(ref.path)) return ref;
  return { ...ref, path: resolve(baseDir, ref.path) };
}

/** The same recipe with every path absolute, so it means the same from any folder it is copied to. */
export function absoluteRecipe(recipe: Recipe, baseDir: string): Recipe {
  return {
    ...recipe,
    model: resolve(baseDir, recipe.model),
    steps: recipe.steps.map((s) => ('quantize' in s
      ? { quantize: { ...s.quantize, calib: absoluteData(s.quantize.calib, baseDir) } }
      : { prune: { ...s.prune, calib: absoluteData(s.prune.calib, baseDir) } })),
    ...(recipe.eval ? { eval: { ...recipe.eval, data: absoluteData(recipe.eval.data, baseDir) } } : {}),
  };
}

/**
 * The step a recorded `quantize` or `prune` command line ran, read back from its flags (the
 * inverse of job-plan.ts), or null when the command is not one.
 */
function stepFromCommand(kind: 'quantize' | 'prune', argv: string[], calibPath: string | null): QuantizeStep | PruneStep | null {
  const fields = kind === 'quantize' ? QUANTIZE_FLAGS : PRUNE_FLAGS;
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    output: { type: 'string', short: 'o' }, method: { type: 'string' }, calib: { type: 'string' }, preprocess: { type: 'string' },
    symmetric: { type: 'boolean' }, asymmetric: { type: 'boolean' }, ep: { type: 'string' }, seed: { type: 'string' },
  };
  for (const [field, flag] of Object.entries(fields)) options[flag.slice(2)] = { type: BOOLEAN_FIELDS.has(field) ? 'boolean' : 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options, allowPositionals: true, strict: false }).values as Record<string, string | boolean | undefined>;
  } catch {
    return null;
  }
  const raw: Record<string, unknown> = { method: values.method };
  for (const [field, flag] of Object.entries(fields)) {
    const v = values[flag.slice(2)];
    if (v === undefined) continue;
    if (field === 'exclude') raw[field] = String(v).split(',').map((x) => x.trim()).filter(Boolean);
    else if (NUMBER_FIELDS.has(field)) raw[field] = Number(v);
    else raw[field] = v;
  }
  if (kind === 'quantize' && (values.symmetric || values.asymmetric)) raw.symmetric = Boolean(values.symmetric);
  const calib = calibPath ?? (typeof values.calib === 'string' ? values.calib : null);
  if (calib) raw.calib = { path: calib, ...(typeof values.preprocess === 'string' ? { preprocess: values.preprocess } : {}) };
  const parsed = (kind === 'quantize' ? QuantizeStep : PruneStep).safeParse(raw);
  return parsed.success ? parsed.data : null;
}

/**
 * A recipe that redoes a recorded run: the one it ran, or for a `quantize`/`prune` command the
 * one-step recipe its flags describe (paths as the store recorded them, absolute). Null for runs
 * that compress nothing (eval, analyze).
 */
export function recipeFromRun(run: RunDetail): Recipe | null {
  const stored = Recipe.safeParse(run.recipe);
  if (stored.success) return stored.data;
  if (run.kind !== 'quantize' && run.kind !== 'prune') return null;
  const [command, ...argv] = run.command;
  if (command !== run.kind) return null;
  const model = run.inputs.find((i) => i.role === 'model')?.path;
  if (!model) return null;
  const calib = run.inputs.find((i) => i.role === 'calib')?.path ?? null;
  const step = stepFromCommand(run.kind, argv, calib);
  if (!step) return null;
  const seedFlag = argv.indexOf('--seed');
  const seed = seedFlag >= 0 ? Number(argv[seedFlag + 1]) : 0;
  const recipe = {
    name: `${run.kind} ${step.method} (run ${run.id})`,
    model,
    seed: Number.isInteger(seed) ? seed : 0,
    steps: [run.kind === 'quantize' ? { quantize: step as QuantizeStep } : { prune: step as PruneStep }],
  };
  const parsed = Recipe.safeParse(recipe);
  return parsed.success ? parsed.data : null;
}
