import { resolve } from 'node:path';
import type { DataRef } from '../../../api/recipe.ts';
import { openDataset } from './open.ts';
import type { Dataset, ModelInputSpec } from './types.ts';

/**
 * Opens a recipe's (or a command's) data reference against a model's inputs: paths relative to
 * `baseDir` (the recipe's folder, or the working directory), `synthetic:N` as is, and a sample
 * limit the caller chooses when the reference sets none.
 */
export function openDataRef(ref: DataRef, inputs: ModelInputSpec[], opts: { baseDir: string; limit?: number | undefined; seed?: number }): Promise<Dataset> {
  const path = ref.path.startsWith('synthetic:') ? ref.path : resolve(opts.baseDir, ref.path);
  const limit = opts.limit ?? ref.limit;
  return openDataset(path, inputs, {
    ...(ref.preprocess ? { preprocess: ref.preprocess } : {}),
    ...(ref.size ? { size: ref.size } : {}),
    ...(ref.layout ? { layout: ref.layout } : {}),
    ...(ref.offset !== undefined ? { offset: ref.offset } : {}),
    ...(limit !== undefined ? { limit } : {}),
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
  });
}
