import { WhittleError } from '../../../api/errors.ts';
import type { TfjsModel, WeightUse } from '../../../native-models/formats/tfjs/index.ts';
import type { PassContext, PassReport } from '../pass.ts';

/** A pass over a TF.js model: the same contract as the ONNX passes (core/passes/pass.ts). */
export interface TfjsPass<Options> {
  name: string;
  run(model: TfjsModel, options: Options, ctx: PassContext): Promise<PassReport>;
}

/**
 * Weights a user leaves alone with `--exclude`: an entry matches a weight name, the layer or node
 * using it, or its layer class / op type. Entries that match nothing are warned about (a typo
 * should not pass silently).
 */
export function exclusionMatcher(uses: readonly WeightUse[], exclude: readonly string[] | undefined, ctx: PassContext): (use: WeightUse) => boolean {
  const entries = exclude ?? [];
  const matches = (use: WeightUse, entry: string) => entry === use.weight.name || entry === use.layer || entry === use.op;
  for (const entry of entries) {
    if (!uses.some((u) => matches(u, entry))) ctx.warn(`--exclude ${entry}: matches no weight, layer, node or op of the model`);
  }
  return (use) => entries.some((e) => matches(use, e));
}

/** True when every value is finite; quantization and pruning ranges are meaningless otherwise. */
export function allFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return false;
  return true;
}

export function checkNonNegativeInteger(passName: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new WhittleError('BAD_USAGE', `${passName}: ${name} must be a whole number ≥ 0, got ${String(v)}`);
  return v;
}
