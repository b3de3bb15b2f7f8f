import { WhittleError } from '../../api/errors.ts';

export interface LatencyOptions {
  /** Untimed runs first: the first runs pay for allocation, kernel selection and cache warm-up. */
  warmup?: number;
  runs: number;
  /** Nanoseconds from an arbitrary origin; injected by tests. Defaults to process.hrtime.bigint. */
  clock?: () => bigint;
  signal?: AbortSignal;
}

export interface LatencyResult {
  runs: number;
  p50Ms: number;
  p95Ms: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
}

/**
 * The p-th percentile (0..100) of ascending `sorted` by linear interpolation between closest ranks
 * (numpy's default), so p50 of an even count is the mean of the middle two.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of no samples');
  const pos = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function summarizeLatency(samplesMs: readonly number[]): LatencyResult {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return {
    runs: sorted.length,
    p50Ms: percentile(sorted, 50),
    p95Ms: percentile(sorted, 95),
    meanMs: sorted.reduce((a, b) => a + b, 0) / sorted.length,
    minMs: sorted[0]!,
    maxMs: sorted[sorted.length - 1]!,
  };
}

/** Times `runOnce` sequentially (never overlapping: concurrent runs would share the cores). */
export async function measureLatency(runOnce: () => Promise<void>, options: LatencyOptions): Promise<LatencyResult> {
  const { warmup = 0, runs, clock = process.hrtime.bigint, signal } = options;
  if (!Number.isInteger(runs) || runs < 1) throw new WhittleError('BAD_USAGE', `latency: runs must be an integer >= 1, got ${runs}`);
  if (!Number.isInteger(warmup) || warmup < 0) throw new WhittleError('BAD_USAGE', `latency: warmup must be an integer >= 0, got ${warmup}`);
  const cancelled = () => new WhittleError('CANCELLED', 'latency measurement cancelled');
  for (let i = 0; i < warmup; i++) {
    if (signal?.aborted) throw cancelled();
    await runOnce();
  }
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    if (signal?.aborted) throw cancelled();
    const start = clock();
    await runOnce();
    samples.push(Number(clock() - start) / 1e6);
  }
  return summarizeLatency(samples);
}
