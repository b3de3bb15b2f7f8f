import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { badInput, WhittleError } from '../../api/errors.ts';
import { Recipe } from '../../api/recipe.ts';
import { openModel, sniffFormat } from '../../native-models/formats/index.ts';
import { readTfjsModel, tfjsStats, writeTfjsModel } from '../../native-models/formats/tfjs/index.ts';
import { evaluateTfjs } from '../evaluate/tfjs-evaluate.ts';
import { applyTfjsPruneStep, applyTfjsQuantizeStep } from '../passes/tfjs/run-on-file.ts';
import { writeOnnxFile } from '../../native-models/formats/onnx/index.ts';
import { modelStats } from '../../native-models/ir/stats.ts';
import { evaluate, modelBytes, type EvalReport } from '../evaluate/evaluate.ts';
import { createPassContext, type PassReport } from '../passes/pass.ts';
import { applyPruneStep } from '../passes/prune/prune-model.ts';
import { applyQuantizeStep, quantizedAgain, quantizedOpsFollowed, quantizedRuntime } from '../passes/quantize/quantize-model.ts';
import { alreadyQuantized } from '../../native-models/ir/quantized-ops.ts';
import type { RuntimeFusion } from '../passes/quantize/runtime-check.ts';

export interface RecipeReport {
  recipe: string;
  name: string | null;
  model: string;
  output: string;
  externalDataPath: string | null;
  /** Every file written (a TF.js model: model.json and its shards; ONNX: the model and its external data). */
  files: string[];
  bytesBefore: number;
  bytesAfter: number;
  parametersBefore: number;
  parametersAfter: number;
  steps: (PassReport & { step: string })[];
  /** What onnxruntime's CPU EP runs of a quantized ONNX result (quantize-model.ts quantizedRuntime). */
  runtimeCheck?: RuntimeFusion | null;
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
  /** Where the evaluation keeps every sample's top-1 class (predictions.ts), when the recipe evaluates. */
  predictionsFile?: string | undefined;
}

/** Runs every step of a recipe on its model, writes the result, then evaluates it (SPEC §2). */
export async function runRecipe(path: string, opts: RecipeRunOptions): Promise<RecipeReport> {
  const t0 = performance.now();
  const recipe = loadRecipe(path);
  const baseDir = dirname(resolve(path));
  const modelPath = resolve(baseDir, recipe.model);
  if (sniffFormat(modelPath) === 'tfjs') return runTfjsRecipe(recipe, path, modelPath, opts, t0);
  const model = openModel(modelPath);
  const before = modelStats(model);
  const bytesBefore = modelBytes(model);
  const ctx = createPassContext({ seed: recipe.seed, ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.progress ? { progress: opts.progress } : {}) });
  const steps: RecipeReport['steps'] = [];
  const quantizeMethods = recipe.steps.flatMap((s) => ('quantize' in s ? [s.quantize.method] : []));
  const already = quantizeMethods.length ? alreadyQuantized(model, modelPath, quantizedOpsFollowed(quantizeMethods)) : null;
  if (already) ctx.warn(quantizedAgain(already, 'the recipe'));
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
  const runtime = await quantizedRuntime(quantizeMethods, written.path, written.bytes + written.externalDataBytes);
  let evalReport: EvalReport | null = null;
  if (recipe.eval) {
    const e = recipe.eval;
    evalReport = await evaluate({
      model: written.path,
      ...evalOptions(recipe, baseDir, modelPath, opts),
      ep: e.ep,
      exactInt8: e.exactInt8,
      predictionsFile: opts.predictionsFile,
    });
  }
  return recipeReport(path, recipe, modelPath, t0, [...ctx.warnings, ...runtime.warnings], {
    output: written.path,
    externalDataPath: written.externalDataPath,
    files: [written.path, ...(written.externalDataPath ? [written.externalDataPath] : [])],
    bytesBefore,
    bytesAfter: written.bytes + written.externalDataBytes,
    parametersBefore: before.parameters,
    parametersAfter: after.parameters,
    steps,
    runtimeCheck: runtime.fusion,
    eval: evalReport,
  });
}

type RecipeOutcome = Omit<RecipeReport, 'recipe' | 'name' | 'model' | 'seconds' | 'warnings'>;

function recipeReport(path: string, recipe: Recipe, modelPath: string, t0: number, warnings: readonly string[], outcome: RecipeOutcome): RecipeReport {
  return { recipe: resolve(path), name: recipe.name ?? null, model: modelPath, ...outcome, seconds: (performance.now() - t0) / 1000, warnings: [...new Set(warnings)] };
}

/** The evaluation options of a recipe's eval block, for either runtime (its \`ep\` aside). */
function evalOptions(recipe: Recipe, baseDir: string, modelPath: string, opts: RecipeRunOptions) {
  const e = recipe.eval!;
  return {
    ...(e.data ? {
      data: e.data.path.startsWith('synthetic:') ? e.data.path : resolve(baseDir, e.data.path),
      preprocess: e.data.preprocess,
      limit: e.data.limit,
      offset: e.data.offset,
      size: e.data.size,
      layout: e.data.layout,
    } : {}),
    reference: e.reference ? modelPath : undefined,
    runs: e.runs,
    seed: recipe.seed,
    ...(opts.signal ? { signal: opts.signal } : {}),
    onProgress: (done: number, total: number) => opts.progress?.('eval', done, total),
  };
}

/**
 * A recipe on a TF.js model: its steps are the TF.js passes (quantize uint8|uint16|fp16, prune
 * magnitude|nm), the result is a model.json with its shards (the output: a model.json path or a
 * folder), evaluated with TensorFlow.js.
 */
async function runTfjsRecipe(recipe: Recipe, path: string, modelPath: string, opts: RecipeRunOptions, t0: number): Promise<RecipeReport> {
  const baseDir = dirname(resolve(path));
  const model = readTfjsModel(modelPath);
  const before = tfjsStats(model);
  const bytesBefore = model.files.reduce((n, f) => n + f.bytes, 0);
  const ctx = createPassContext({ seed: recipe.seed, ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.progress ? { progress: opts.progress } : {}) });
  for (const w of model.warnings) ctx.warn(w);
  const steps: RecipeReport['steps'] = [];
  for (const step of recipe.steps) {
    ctx.checkpoint();
    if ('quantize' in step) {
      const q = step.quantize;
      if (q.calib || q.algorithm !== 'rtn') ctx.warn(`quantize ${q.method}: TF.js weight quantization uses no calibration data or GPTQ; ignored`);
      steps.push({ ...(await applyTfjsQuantizeStep(model, q.method, q.exclude, ctx)), step: `quantize ${q.method}` });
    } else {
      steps.push({ ...(await applyTfjsPruneStep(model, step.prune, ctx)), step: `prune ${step.prune.method}` });
    }
  }
  ctx.checkpoint();
  const written = writeTfjsModel(model, opts.output);
  const after = tfjsStats(model);
  let evalReport: EvalReport | null = null;
  if (recipe.eval) {
    if (recipe.eval.exactInt8) ctx.warn('eval exactInt8: applies to ONNX int8 models; a TF.js model is evaluated in TensorFlow.js as it is');
    if (recipe.eval.ep !== undefined && recipe.eval.ep !== 'auto' && recipe.eval.ep !== 'cpu') ctx.warn(`eval ep ${recipe.eval.ep}: a TF.js model runs in TensorFlow.js, whose backend is chosen on its own (tfjs-node-gpu > tfjs-node > wasm > cpu)`);
    evalReport = await evaluateTfjs({ model: written.path, ...evalOptions(recipe, baseDir, modelPath, opts), predictionsFile: opts.predictionsFile });
  }
  return recipeReport(path, recipe, modelPath, t0, ctx.warnings, {
    output: written.path,
    externalDataPath: null,
    files: written.files,
    bytesBefore,
    bytesAfter: written.bytes,
    parametersBefore: before.parameters,
    parametersAfter: after.parameters,
    steps,
    eval: evalReport,
  });
}
