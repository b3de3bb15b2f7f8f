import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { Recipe } from '../../api/recipe.ts';
import { useTempHome, whittle } from '../../cli/testing.ts';
import { openStore } from '../store/index.ts';
import { fixture } from '../testing/fixtures.ts';
import { exportRun } from './export-run.ts';
import { recipeFromRun } from './recipe-from-run.ts';

describe('a recorded recipe run can be exported and redone from anywhere', () => {
  const dirs = useTempHome('recipe-export');

  it('stores the recipe with absolute paths, and the export writes it with the report', async () => {
    const model = fixture('mnist', 'mnist.onnx');
    const recipePath = join(dirs.work(), 'r.json');
    // relative to the recipe file, as a user writes it
    writeFileSync(recipePath, JSON.stringify({ name: 'relative', model: relative(dirs.work(), model), steps: [{ quantize: { method: 'dynamic' } }] }));
    const r = await whittle('run', recipePath, '--json');
    assert.equal(r.code, 0, r.err);
    const runId = JSON.parse(r.out).runId as string;
    const store = openStore();
    const run = store.getRun(runId);
    store.close();
    const recipe = recipeFromRun(run)!;
    assert.equal(recipe.model, model);
    assert.equal(recipe.name, 'relative');
    const out = await exportRun(run, join(dirs.work(), 'export'));
    assert.deepEqual(out.files.map((f) => f.name).sort(), ['model.onnx', 'recipe.json', 'report.html', 'report.json', 'report.md']);
    assert.deepEqual(Recipe.parse(JSON.parse(readFileSync(join(out.folder, 'recipe.json'), 'utf8'))), recipe);
    const md = readFileSync(join(out.folder, 'report.md'), 'utf8');
    assert.match(md, /^# recipe · mnist\.onnx/);
    assert.match(md, /\| bytesAfter \| [\d,]+ \|/);
    assert.ok(out.files.every((f) => f.url === null && f.bytes > 0));
  });
});
