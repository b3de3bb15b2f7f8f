import { WhittleError } from '../../api/errors.ts';
import type { Model } from '../../native-models/ir/model.ts';

/**
 * Every compression step is a pass over the IR (SPEC §2): it changes the model in place and says
 * what it did. Recipes are lists of passes followed by evaluation; the CLI, the job engine and the
 * app all run passes through this one interface.
 */
export interface PassContext {
  /** Cancellation: passes call `ctx.checkpoint()` between units of work. */
  signal: AbortSignal;
  /** Progress of the current phase (throttling is the receiver's business). */
  progress(phase: string, done: number, total: number): void;
  /** Something the user should know that did not stop the pass (a node skipped, a clamp). */
  warn(message: string): void;
  /** Seed for anything random, so the same recipe gives byte-identical artifacts. */
  seed: number;
  /** Throws CANCELLED if the signal fired. */
  checkpoint(): void;
}

export interface PassReport {
  pass: string;
  /** Nodes added, removed or rewritten. */
  nodesChanged: number;
  /** Bytes of tensor data before and after (the file size is measured when written). */
  bytesBefore: number;
  bytesAfter: number;
  /** Nodes or layers left alone on purpose (exclusions, unsupported ops). */
  excluded: string[];
  warnings: string[];
  /** Pass-specific figures (ranges, per-layer errors...). */
  details?: Record<string, unknown>;
}

export interface Pass<Options> {
  name: string;
  run(model: Model, options: Options, ctx: PassContext): Promise<PassReport>;
}

export function createPassContext(init: Partial<Pick<PassContext, 'signal' | 'progress' | 'warn' | 'seed'>> = {}): PassContext & { warnings: string[] } {
  const warnings: string[] = [];
  const signal = init.signal ?? new AbortController().signal;
  return {
    signal,
    seed: init.seed ?? 0,
    warnings,
    progress: init.progress ?? (() => {}),
    warn: (message) => {
      warnings.push(message);
      init.warn?.(message);
    },
    checkpoint: () => {
      if (signal.aborted) throw new WhittleError('CANCELLED', 'cancelled');
    },
  };
}

/** Bytes of every stored tensor (initializers and Constant values, subgraphs included). */
export function tensorBytes(model: Model): number {
  let n = 0;
  for (const { tensor } of model.weights()) n += tensor.byteLength;
  return n;
}
