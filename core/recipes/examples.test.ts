/**
 * The recipes the README runs (core/recipes/examples): each is a valid recipe whose model and data
 * files exist where it says (paths relative to the recipe file), so `whittle run FILE` starts.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { Recipe } from '../../api/recipe.ts';

const folder = join(import.meta.dirname, 'examples');

describe('example recipes', () => {
  const files = readdirSync(folder).filter((f) => f.endsWith('.json'));

  it('there are some', () => {
    assert.ok(files.includes('mnist-static-int8.json') && files.includes('transformer-heads-int4.json'), files.join(', '));
  });

  for (const file of files) {
    it(`${file}: a valid recipe whose files exist`, () => {
      const recipe = Recipe.parse(JSON.parse(readFileSync(join(folder, file), 'utf8')));
      const at = (p: string) => resolve(dirname(join(folder, file)), p);
      const paths = [recipe.model, ...recipe.steps.flatMap((s) => ('quantize' in s ? [s.quantize.calib?.path] : [s.prune.calib?.path])), recipe.eval?.data?.path];
      for (const p of paths) if (p) assert.ok(existsSync(at(p)), `${file}: ${p} → ${at(p)} is missing`);
    });
  }
});
