import type { DataRef, RecipeStep } from '../../../api/recipe.ts';

/**
 * Steps for the Compress view to start from, handed over by another view (an analysis run's
 * recommendation: a per-layer sparsity plan, or the layers to keep float); taken once.
 */
export interface CompressDraft {
  model: string;
  steps: RecipeStep[];
  calib: DataRef | null;
  /** Node names to add to the exclusions. */
  exclude: string[];
  /** Indices of steps the exclusions do not apply to (they take what the others left float). */
  skipExclusions?: number[];
  /** The run name to suggest. */
  name: string;
}
