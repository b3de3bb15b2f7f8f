import { basename, dirname, extname, join } from 'node:path';
import { WhittleError } from '../../api/errors.ts';
import { PruneStep, QuantizeStep, type DataRef, type Recipe } from '../../api/recipe.ts';
import type { JobSpecParsed } from '../../api/schemas.ts';

/**
 * How a job runs: the `whittle` command line (after the program) and the files it needs in its
 * job folder. Each spec becomes the same command a user would type, so the store records a
 * command that reproduces the run, and the engine runs no compression code of its own.
 */
export interface JobPlan {
  argv: string[];
  /** Written into the job folder before the process starts (a recipe). */
  files: { name: string; content: string }[];
  /** One line for job lists: "quantize dynamic · mnist.onnx". */
  title: string;
}

export interface PlanOptions {
  /** The job's own folder (WHITTLE_HOME/jobs/<jobId>): outputs and written files go here. */
  jobDir: string;
  /** The model's format, as sniffed: TF.js outputs are folders. */
  modelFormat?: 'onnx' | 'tfjs';
}

/** The flags a DataRef can take on the command line; anything else needs a recipe. */
function dataFlags(command: string, ref: DataRef, flag: string, allowed: readonly (keyof DataRef)[]): string[] {
  for (const key of Object.keys(ref) as (keyof DataRef)[]) {
    if (key !== 'path' && ref[key] !== undefined && !allowed.includes(key)) {
      throw new WhittleError('BAD_USAGE', `${command} jobs cannot take ${flag.replace(/^--/, '')}.${key} (whittle ${command} has no flag for it)`);
    }
  }
  const out = [flag, ref.path];
  if (ref.preprocess) out.push('--preprocess', ref.preprocess);
  if (ref.limit !== undefined && allowed.includes('limit')) out.push('--limit', String(ref.limit));
  if (ref.offset !== undefined && allowed.includes('offset')) out.push('--offset', String(ref.offset));
  if (ref.size !== undefined && allowed.includes('size')) out.push('--size', String(ref.size));
  if (ref.layout !== undefined && allowed.includes('layout')) out.push('--layout', ref.layout);
  return out;
}

/**
 * A step's fields as flags, leaving out every value that equals the schema's default: the CLI
 * parses flags with the same schema, so the recorded command stays short and means the same.
 */
function stepFlags(step: Record<string, unknown>, defaults: Record<string, unknown>, flags: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [key, flag] of Object.entries(flags)) {
    const value = step[key];
    if (value === undefined || JSON.stringify(value) === JSON.stringify(defaults[key])) continue;
    if (typeof value === 'boolean') {
      if (value) out.push(flag);
    } else if (Array.isArray(value)) {
      if (value.length) out.push(flag, value.join(','));
    } else {
      out.push(flag, String(value));
    }
  }
  return out;
}

/** Step field → CLI flag (`symmetric` is --symmetric/--asymmetric and `reduceRange` --reduce-range on|off, handled apart). */
export const QUANTIZE_FLAGS: Record<string, string> = {
  calibration: '--calibration', samples: '--samples', percentile: '--percentile', movingAverage: '--moving-average',
  symmetricRanges: '--symmetric-ranges', bins: '--bins', perChannel: '--per-channel',
  activationType: '--activation-type', weightType: '--weight-type', blockSize: '--block-size', algorithm: '--algorithm', actOrder: '--act-order', percdamp: '--percdamp',
  biasCorrection: '--bias-correction', format: '--format', exclude: '--exclude', keepIoTypes: '--keep-io-types', includeConv: '--include-conv', includeGather: '--include-gather',
};
export const PRUNE_FLAGS: Record<string, string> = {
  sparsity: '--sparsity', scope: '--scope', pattern: '--pattern', samples: '--samples', roundTo: '--round-to',
  importance: '--importance', comparison: '--comparison', sequential: '--sequential', biasCorrection: '--bias-correction', exclude: '--exclude',
  protectFirstLast: '--protect-first-last', minParameters: '--min-parameters',
};

/**
 * A step the CLI's flags cannot say exactly: calibration data with an offset, a size or a layout
 * (only a recipe's DataRef carries them), an excluded node whose name has a comma (--exclude
 * splits on commas), or a per-layer sparsity plan (the CLI reads it from a file, --plan). Such a step
 * runs as a one-step recipe instead.
 */
function needsRecipe(step: QuantizeStep | PruneStep): boolean {
  if ('layerSparsity' in step && step.layerSparsity) return true;
  const calib = step.calib;
  if (calib && (calib.offset !== undefined || calib.size !== undefined || calib.layout !== undefined)) return true;
  return step.exclude.some((e) => e.includes(','));
}

/** The calibration flags; a limit on the data means "the first N samples", which is --samples. */
function calibFlags(step: QuantizeStep | PruneStep): string[] {
  if (!step.calib) return [];
  const out = ['--calib', step.calib.path];
  if (step.calib.preprocess) out.push('--preprocess', step.calib.preprocess);
  if (step.samples === undefined && step.calib.limit !== undefined) out.push('--samples', String(step.calib.limit));
  return out;
}

/** Where a step writes: `<model stem>.<method>.onnx`, or a folder for a TF.js model. */
export function outputPath(model: string, method: string, options: PlanOptions): string {
  if (options.modelFormat === 'tfjs') {
    // model.json says nothing; its folder names the model
    const stem = basename(model) === 'model.json' ? basename(dirname(model)) : basename(model, extname(model));
    return join(options.jobDir, `${stem}.${method}`);
  }
  return join(options.jobDir, `${basename(model, extname(model))}.${method}.onnx`);
}

function recipePlan(recipe: Recipe, title: string, jobDir: string): JobPlan {
  const name = 'recipe.json';
  return { argv: ['run', join(jobDir, name), '--json'], files: [{ name, content: JSON.stringify(recipe, null, 2) + '\n' }], title };
}

/** The command line and files for a job whose paths the engine has already checked and made absolute. */
export function planJob(spec: JobSpecParsed, options: PlanOptions): JobPlan {
  switch (spec.kind) {
    case 'quantize': {
      const step = spec.step;
      const title = `quantize ${step.method}${step.method === 'static' ? ` ${step.calibration}` : ''}${step.algorithm === 'gptq' ? ' gptq' : ''} · ${basename(spec.model)}`;
      if (needsRecipe(step)) return recipePlan({ name: title, model: spec.model, seed: spec.seed, steps: [{ quantize: step }] }, title, options.jobDir);
      const defaults = QuantizeStep.parse({ method: step.method }) as Record<string, unknown>;
      const argv = ['quantize', spec.model, '-o', outputPath(spec.model, step.method, options), '--method', step.method, ...calibFlags(step),
        ...stepFlags(step, defaults, QUANTIZE_FLAGS)];
      if (step.symmetric !== undefined) argv.push(step.symmetric ? '--symmetric' : '--asymmetric');
      // unset: the CLI's auto (this CPU decides), so nothing to say
      if (step.reduceRange !== undefined) argv.push('--reduce-range', step.reduceRange ? 'on' : 'off');
      argv.push('--ep', spec.ep, '--seed', String(spec.seed), '--json');
      return { argv, files: [], title };
    }
    case 'prune': {
      const step = spec.step;
      const title = `prune ${step.method} ${step.layerSparsity ? '(per-layer plan)' : `${Math.round(step.sparsity * 100)} %`} · ${basename(spec.model)}`;
      if (needsRecipe(step)) return recipePlan({ name: title, model: spec.model, seed: spec.seed, steps: [{ prune: step }] }, title, options.jobDir);
      const defaults = PruneStep.parse({ method: step.method }) as Record<string, unknown>;
      const argv = ['prune', spec.model, '-o', outputPath(spec.model, step.method, options), '--method', step.method, ...calibFlags(step),
        ...stepFlags(step, defaults, PRUNE_FLAGS), '--ep', spec.ep, '--seed', String(spec.seed), '--json'];
      return { argv, files: [], title };
    }
    case 'eval': {
      const argv = ['eval', spec.model];
      if (spec.data) argv.push(...dataFlags('eval', spec.data, '--data', ['preprocess', 'limit', 'offset', 'size', 'layout']));
      if (spec.reference) argv.push('--reference', spec.reference);
      if (spec.runs !== undefined) argv.push('--runs', String(spec.runs));
      if (spec.exactInt8) argv.push('--exact-int8');
      argv.push('--ep', spec.ep, '--json');
      const on = spec.data ? ` on ${basename(spec.data.path)}` : '';
      return { argv, files: [], title: `eval · ${basename(spec.model)}${on}` };
    }
    case 'analyze': {
      const argv = ['analyze', spec.model, '--for', spec.for, ...dataFlags('analyze', spec.data, '--data', ['preprocess', 'limit', 'offset'])];
      if (spec.targetAgreement !== undefined) argv.push('--target-agreement', String(spec.targetAgreement));
      if (spec.holdout !== undefined) argv.push('--holdout', String(spec.holdout));
      if (spec.budgetRatio !== undefined) argv.push('--budget-ratio', String(spec.budgetRatio));
      const files: JobPlan['files'] = [];
      if (spec.steps) {
        // the settings travel as a recipe (whittle analyze --recipe); the analysis reads spec.data,
        // never a step's calibration data, so none is written
        const steps = spec.steps.map((s) => ('quantize' in s ? { quantize: { ...s.quantize, calib: undefined } } : { prune: { ...s.prune, calib: undefined } }));
        const name = 'analyze-recipe.json';
        files.push({ name, content: JSON.stringify({ name: `settings for analyze --for ${spec.for}`, model: spec.model, steps }, null, 2) + '\n' });
        argv.push('--recipe', join(options.jobDir, name));
      }
      argv.push('--ep', spec.ep, '--json');
      return { argv, files, title: `analyze for ${spec.for} · ${basename(spec.model)}` };
    }
    case 'recipe': {
      const r = spec.recipe;
      const steps = r.steps.map((s) => ('quantize' in s ? `quantize ${s.quantize.method}` : `prune ${s.prune.method}`)).join(' + ');
      return recipePlan(r, `${r.name ? `${r.name}: ` : ''}${steps} · ${basename(r.model)}`, options.jobDir);
    }
    case 'demo': {
      // `whittle demo NAME [options] --json`: the experiment's own command, so the run it records
      // is the command a user would type (and the app recognises it by that command).
      const argv = ['demo', spec.demo];
      const opt = (flag: string, value: number | string | undefined) => { if (value !== undefined) argv.push(flag, String(value)); };
      opt('--seeds', spec.seeds);
      if (spec.demo === 'game-of-life') {
        opt('--steps', spec.steps);
        opt('--multiplier', spec.multiplier);
        opt('--max-epochs', spec.maxEpochs);
        if (spec.prune === false) argv.push('--no-prune');
      } else {
        opt('--rounds', spec.rounds);
        opt('--epochs', spec.epochs);
        opt('--data', spec.data);
      }
      argv.push('--json');
      const options = argv.slice(2, -1).join(' ');
      return { argv, files: [], title: `demo ${spec.demo === 'game-of-life' ? 'Game of Life' : 'lottery ticket on digits'}${options ? ` (${options})` : ''}` };
    }
    case 'sleep': {
      const argv = ['__sleep', String(spec.seconds), '--json'];
      if (spec.crash !== 'none') argv.push('--crash', spec.crash);
      return { argv, files: [], title: `sleep ${spec.seconds} s${spec.crash !== 'none' ? ` (crash: ${spec.crash})` : ''}` };
    }
  }
}
