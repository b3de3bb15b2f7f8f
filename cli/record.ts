import { linkSync, mkdirSync, rmSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { sendToEngine } from '../core/jobs/channel.ts';
import { openStore, type RunHandle, type RunKind } from '../core/store/index.ts';
import type { RunEnvironment } from '../core/store/types.ts';

export interface RecordedCommand<R> {
  kind: RunKind;
  /** The command line as typed, without the program name. */
  argv: string[];
  inputs: { role: string; path: string }[];
  /** false with --no-record: the work runs and nothing is written to the store. */
  record: boolean;
  environment?: Partial<RunEnvironment>;
  /** The recipe the run follows (stored with it, so the run can be exported and redone). */
  recipe?: unknown;
  work: (run: RunHandle | null) => Promise<R>;
  /** Files the command produced, kept as the run's artifacts. */
  artifacts?: (result: R) => string[];
}

/**
 * Runs a command's work as a recorded run: inputs hashed, environment, metrics (every number in
 * the result), artifacts, and the final status. A failure is recorded as failed with its reason
 * and then re-thrown; Ctrl-C records the run as cancelled. The result gains `runId`.
 */
export async function recordCommand<R extends object>(cmd: RecordedCommand<R>): Promise<R & { runId?: string }> {
  if (!cmd.record) return cmd.work(null);
  const store = openStore();
  let run: RunHandle | null = null;
  const onSigint = () => {
    try { run?.cancel('interrupted with Ctrl-C'); } finally { store.close(); process.exit(130); }
  };
  try {
    run = await store.startRun({ kind: cmd.kind, command: cmd.argv, inputs: cmd.inputs, environment: cmd.environment ?? {}, ...(cmd.recipe !== undefined ? { recipe: cmd.recipe } : {}) });
    process.once('SIGINT', onSigint);
    // an engine running this as a job learns the run at once, so it can close it if we die
    sendToEngine({ type: 'run', runId: run.id });
    try {
      const result = await cmd.work(run);
      reportWarnings(result);
      for (const file of cmd.artifacts?.(result) ?? []) await keepArtifact(run, file);
      const withId = { ...result, runId: run.id };
      run.recordMetrics(result);
      run.succeed(withId);
      return withId;
    } catch (err) {
      if (!run.ended) run.fail(err);
      throw err;
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
    store.close();
  }
}

/** Warnings in a result (`warnings: string[]`) reach an engine as log lines while the run is still open. */
function reportWarnings(result: object): void {
  const warnings = (result as { warnings?: unknown }).warnings;
  if (!Array.isArray(warnings)) return;
  for (const w of warnings) if (typeof w === 'string') sendToEngine({ type: 'log', level: 'warn', message: w });
}

/** A hard link where the file system allows it (no second copy of a 1 GiB model), else a copy. */
async function keepArtifact(run: RunHandle, file: string): Promise<void> {
  const name = basename(file);
  const dest = run.artifactPath(name);
  if (resolve(file) === dest) {
    await run.registerArtifact(name); // written straight into the store
    return;
  }
  try {
    rmSync(dest, { force: true });
    mkdirSync(run.artifactsDir, { recursive: true });
    linkSync(file, dest);
    await run.registerArtifact(name);
  } catch {
    await run.addArtifact(name, file);
  }
}
