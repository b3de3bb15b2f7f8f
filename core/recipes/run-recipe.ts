import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { badInput, WhittleError } from '../../api/errors.ts';
import { Recipe } from '../../api/recipe.ts';
import { openModel } from '../../native-models/formats/index.ts';
import { writeOnnxFile } from '../../native-models/formats/onnx/index.ts';
import { modelStats } from '../../native-models/ir/stats.ts';
import { evaluate, modelBytes, type EvalReport } from '../evaluate/evaluate.ts';
import { createPassContext, type PassReport } from '../passes/pass.ts';
import { applyPruneStep } from '../passes/prune/prune-model.ts';
import { applyQuantizeStep } from '../passes/quantize/quantize-model.ts';

export interface RecipeReport {
  recipe: string;
  name: string | null;
  model: string;
  output: string;
  externalDataPath: string | null;
  bytesBefore: number;
  bytesAfter: number;
  parametersBefore: number;
  parametersAfter: number;
  steps: (PassReport & { step: string })[];
  eval: EvalReport | null;
  seconds: number;
  warnings: string[];
}

/** Reads and validates a recipe file; problems name the file and the field. */
export function loadRecipe(path: string): Recipe {
  const file = resolve(path);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new WhittleError('NOT_FOUND', `${file}: no such recipe file`, { file });
    throw badInput(file, `is not a JSON recipe (${(err as Error).message})`);
  }
  const parsed = Recipe.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw badInput(file, `${issue.path.join('.') || 'recipe'}: ${issue.message}`);
  }
  return parsed.data;
}

export interface RecipeRunOptions {
  output: string;
  signal?: AbortSignal;
  progress?: (phase: string, done: number, total: number) => void;
}

/** Runs every step of a recipe on its model, writes the result, then evaluates it (SPEC §2). */
export async function runRecipe(path: string, opts: RecipeRunOptions): Promise<RecipeReport> {
  const t0 = performance.now();
  const recipe = loadRecipe(path);
  const baseDir = dirname(resolve(path));
  const modelPath = resolve(baseDir, recipe.model);
  const model = openModel(modelPath);
  const before = modelStats(model);
  const bytesBefore = modelBytes(model);
  const ctx = createPassContext({ seed: recipe.seed, ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.progress ? { progress: opts.progress } : {}) });
  const steps: RecipeReport['steps'] = [];
  for (const step of recipe.steps) {
    ctx.checkpoint();
    if ('quantize' in step) {
      const report = await applyQuantizeStep(model, step.quantize, ctx, { baseDir });
      steps.push({ ...report, step: `quantize ${step.quantize.method}` });
    } else {
      const report = await applyPruneStep(model, step.prune, ctx, { baseDir });
      steps.push({ ...report, step: `prune ${step.prune.method}` });
    }
  }
  ctx.checkpoint();
  const written = writeOnnxFile(model, opts.output);
  const after = modelStats(model);
  let evalReport: EvalReport | null = null;
  if (recipe.eval) {
    const e = recipe.eval;
    evalReport = await evaluate({
      model: written.path,
      ...(e.data ? {
        data: e.data.path.startsWith('synthetic:') ? e.data.path : resolve(baseDir, e.data.path),
        preprocess: e.data.preprocess,
        limit: e.data.limit,
        offset: e.data.offset,
        size: e.data.size,
        layout: e.data.layout,
      } : {}),
      reference: e.reference ? modelPath : undefined,
      ep: e.ep,
      runs: e.runs,
      seed: recipe.seed,
      ...(opts.signal ? { signal: opts.signal } : {}),
      onProgress: (done, total) => opts.progress?.('eval', done, total),
    });
  }
  return {
    recipe: resolve(path),
    name: recipe.name ?? null,
    model: modelPath,
    output: written.path,
    externalDataPath: written.externalDataPath,
    bytesBefore,
    bytesAfter: written.bytes + written.externalDataBytes,
    parametersBefore: before.parameters,
    parametersAfter: after.parameters,
    steps,
    eval: evalReport,
    seconds: (performance.now() - t0) / 1000,
    warnings: [...new Set(ctx.warnings)],
  };
}
