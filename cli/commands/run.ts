import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { absoluteRecipe } from '../../core/jobs/recipe-from-run.ts';
import { loadRecipe, runRecipe, type RecipeReport } from '../../core/recipes/run-recipe.ts';
import { PREDICTIONS_ARTIFACT } from '../../core/evaluate/predictions.ts';
import { sniffFormat } from '../../native-models/formats/index.ts';
import { formatBytes, parseCommand, requireOne, type CliIo } from '../io.ts';
import { ProgressBar } from '../progress.ts';
import { recordCommand } from '../record.ts';
import { describeRuntimeFusion } from '../../core/passes/quantize/runtime-check.ts';
import type { TfjsEvalReport } from '../../core/evaluate/tfjs-evaluate.ts';
import { renderEval, renderTfjsEval } from './eval.ts';

export const summary = 'run a recipe (compression steps, then evaluation) and record it as an experiment';
export const usage = `
whittle run RECIPE [-o OUT] [--json] [--no-record]

RECIPE is a JSON file: {"name", "model", "seed", "steps": [{"quantize": {...}}], "eval": {"data": {...}}}
(schema in api/recipe.ts; paths are relative to the recipe). A TF.js model.json takes the TF.js steps
(quantize uint8|uint16|fp16, prune magnitude|nm) and is evaluated in TensorFlow.js. The compressed model is kept as the
run's artifact in the store (and written to -o OUT when given); the run id is printed.`;

export function renderRecipe(r: RecipeReport & { runId?: string }): string {
  const lines = [
    `${r.name ?? r.recipe}${r.runId ? `  (run ${r.runId})` : ''}`,
    ...r.steps.map((s) => `  ${s.step.padEnd(22)} ${s.nodesChanged} nodes changed${s.excluded.length ? `, ${s.excluded.length} left float` : ''}`),
    `  size ${formatBytes(r.bytesBefore)} → ${formatBytes(r.bytesAfter)}   ${r.output}`,
    ...(r.runtimeCheck ? [`  ${describeRuntimeFusion(r.runtimeCheck)}`] : []),
  ];
  const e = r.eval as (RecipeReport['eval'] & { format?: string }) | null;
  return lines.join('\n') + '\n' + (e ? (e.format === 'tfjs' ? renderTfjsEval(e as TfjsEvalReport) : renderEval(e)) : '');
}

export async function run(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('run', argv, { output: { type: 'string', short: 'o' } });
  const recipePath = requireOne('run', positionals, 'RECIPE');
  const recipe = loadRecipe(recipePath); // validate before anything is recorded
  const modelPath = resolve(dirname(resolve(recipePath)), recipe.model);
  const bar = new ProgressBar(io, 'run');
  let predictionsFile: string | undefined;
  const report = await recordCommand({
    kind: 'recipe',
    argv: ['run', ...argv],
    inputs: [{ role: 'recipe', path: recipePath }, { role: 'model', path: modelPath }],
    record: !values['no-record'],
    environment: { seed: recipe.seed },
    // stored with absolute paths: the recipe file may be temporary (an engine job's folder)
    recipe: absoluteRecipe(recipe, dirname(resolve(recipePath))),
    work: async (recorded) => {
      if (recorded) mkdirSync(recorded.artifactsDir, { recursive: true });
      const name = sniffFormat(modelPath) === 'tfjs' ? 'model.json' : 'model.onnx';
      const output = values.output ?? (recorded ? recorded.artifactPath(name) : join(mkdtempSync(join(tmpdir(), 'whittle-run-')), name));
      predictionsFile = recorded ? recorded.artifactPath(PREDICTIONS_ARTIFACT) : undefined;
      const r = await runRecipe(recipePath, { output, predictionsFile, progress: (phase, done, total) => bar.update(done, total, phase) });
      bar.done();
      if (recorded && r.eval) recorded.updateEnvironment({ ep: r.eval.ep, device: r.eval.device });
      return r;
    },
    artifacts: (r) => [...r.files, ...(predictionsFile && existsSync(predictionsFile) ? [predictionsFile] : [])],
  });
  for (const w of report.warnings) io.stderr(`whittle: warning: ${w}\n`);
  if (values.json) io.stdout(JSON.stringify(report) + '\n');
  else io.stdout(renderRecipe(report));
  return 0;
}
