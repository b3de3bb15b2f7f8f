import { WhittleError } from '../../api/errors.ts';

export interface LatencyOptions {
  /** Untimed runs first: the first runs pay for allocation, kernel selection and cache warm-up. */
  warmup?: number;
  runs: number;
  /**
   * Stop the timed runs once they have taken this long, after at least MIN_TIMED_RUNS; warm-up stops
   * after a fifth of it (at least one run). Unset: exactly `warmup` and `runs`.
   */
  maxSeconds?: number;
  /** Nanoseconds from an arbitrary origin; injected by tests. Defaults to process.hrtime.bigint. */
  clock?: () => bigint;
  signal?: AbortSignal;
}

export interface LatencyResult {
  runs: number;
  /** Runs asked for, when maxSeconds stopped the measurement before them. */
  requestedRuns?: number;
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

/** Percentiles of fewer runs than this say little: the time limit never stops before them. */
export const MIN_TIMED_RUNS = 5;

/**
 * Time spent on timed runs when the caller did not ask for a count: 50 runs of a ResNet-50 at batch
 * 32 take over a minute on a laptop CPU, and the percentiles are settled long before that.
 */
export const DEFAULT_LATENCY_SECONDS = 15;

/**
 * An evaluation's latency settings: the counts asked for are honoured; by default 5 warm-up runs and
 * 50 timed ones, or as many as fit in DEFAULT_LATENCY_SECONDS.
 */
export function evaluationLatencyOptions(opts: { warmup?: number | undefined; runs?: number | undefined; signal?: AbortSignal | undefined }): LatencyOptions {
  return {
    warmup: opts.warmup ?? 5,
    runs: opts.runs ?? 50,
    ...(opts.runs === undefined ? { maxSeconds: DEFAULT_LATENCY_SECONDS } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
}

/** Times `runOnce` sequentially (never overlapping: concurrent runs would share the cores). */
export async function measureLatency(runOnce: () => Promise<void>, options: LatencyOptions): Promise<LatencyResult> {
  const { warmup = 0, runs, clock = process.hrtime.bigint, signal, maxSeconds } = options;
  if (!Number.isInteger(runs) || runs < 1) throw new WhittleError('BAD_USAGE', `latency: runs must be an integer >= 1, got ${runs}`);
  if (!Number.isInteger(warmup) || warmup < 0) throw new WhittleError('BAD_USAGE', `latency: warmup must be an integer >= 0, got ${warmup}`);
  if (maxSeconds !== undefined && !(maxSeconds > 0)) throw new WhittleError('BAD_USAGE', `latency: maxSeconds must be > 0, got ${maxSeconds}`);
  const cancelled = () => new WhittleError('CANCELLED', 'latency measurement cancelled');
  const limitNs = maxSeconds === undefined ? Infinity : maxSeconds * 1e9;
  const warmupStart = clock();
  for (let i = 0; i < warmup; i++) {
    if (signal?.aborted) throw cancelled();
    await runOnce();
    if (Number(clock() - warmupStart) > limitNs / 5) break;
  }
  const samples: number[] = [];
  let timedNs = 0;
  for (let i = 0; i < runs; i++) {
    if (signal?.aborted) throw cancelled();
    const start = clock();
    await runOnce();
    const ns = Number(clock() - start);
    samples.push(ns / 1e6);
    timedNs += ns;
    if (samples.length >= MIN_TIMED_RUNS && timedNs > limitNs) break;
  }
  const result = summarizeLatency(samples);
  return samples.length < runs ? { ...result, requestedRuns: runs } : result;
}
