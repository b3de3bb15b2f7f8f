import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WhittleError } from '../../api/errors.ts';
import { measureLatency, percentile, summarizeLatency } from './latency.ts';

/** A runner whose calls "take" the given milliseconds on a fake clock: no real time is measured. */
function fakeRunner(delaysMs: number[]) {
  let now = 1_000_000_000n;
  let calls = 0;
  return {
    clock: () => now,
    runOnce: async () => {
      const d = delaysMs[calls++];
      if (d === undefined) throw new Error('runner called too often');
      now += BigInt(Math.round(d * 1e6));
    },
    calls: () => calls,
  };
}

test('percentiles interpolate linearly between closest ranks', () => {
  const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  assert.equal(percentile(sorted, 50), 5.5);
  assert.ok(Math.abs(percentile(sorted, 95) - 9.55) < 1e-12);
  assert.equal(percentile(sorted, 0), 1);
  assert.equal(percentile(sorted, 100), 10);
  assert.equal(percentile([7], 95), 7);
});

test('measureLatency times only the measured runs, on the injected clock', async () => {
  // Two slow warm-up runs that must not count, then ten runs of 1..10 ms in shuffled order.
  const r = fakeRunner([100, 100, 5, 1, 3, 2, 4, 10, 6, 7, 9, 8]);
  const result = await measureLatency(r.runOnce, { warmup: 2, runs: 10, clock: r.clock });
  assert.equal(r.calls(), 12);
  assert.equal(result.runs, 10);
  assert.equal(result.p50Ms, 5.5);
  assert.ok(Math.abs(result.p95Ms - 9.55) < 1e-9);
  assert.equal(result.meanMs, 5.5);
  assert.equal(result.minMs, 1);
  assert.equal(result.maxMs, 10);
});

test('sub-millisecond runs keep their precision', () => {
  assert.deepEqual(summarizeLatency([0.25, 0.125]), { runs: 2, p50Ms: 0.1875, p95Ms: 0.24375, meanMs: 0.1875, minMs: 0.125, maxMs: 0.25 });
});

test('the real clock works by default', async () => {
  const result = await measureLatency(async () => {}, { runs: 3 });
  assert.equal(result.runs, 3);
  assert.ok(result.minMs >= 0);
});

test('bad counts are BAD_USAGE; an aborted signal is CANCELLED', async () => {
  await assert.rejects(measureLatency(async () => {}, { runs: 0 }), (e: unknown) => e instanceof WhittleError && e.code === 'BAD_USAGE');
  await assert.rejects(measureLatency(async () => {}, { runs: 2, warmup: -1 }), (e: unknown) => e instanceof WhittleError && e.code === 'BAD_USAGE');
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(measureLatency(async () => {}, { runs: 2, signal: ac.signal }), (e: unknown) => e instanceof WhittleError && e.code === 'CANCELLED');
});

test('a time limit stops the runs after the minimum, and says how many were asked for', async () => {
  // warm-up: 100 ms runs pass a fifth of 1 s after the third; timed: 300 ms each
  const r = fakeRunner([100, 100, 100, ...Array(50).fill(300)]);
  const result = await measureLatency(r.runOnce, { warmup: 5, runs: 50, maxSeconds: 1, clock: r.clock });
  assert.equal(r.calls(), 3 + 5, 'warm-up stops past 200 ms; timed runs stop past 1 s, but not before five');
  assert.equal(result.runs, 5);
  assert.equal(result.requestedRuns, 50);
  assert.equal(result.p50Ms, 300);
  const fast = fakeRunner(Array(60).fill(1));
  const all = await measureLatency(fast.runOnce, { warmup: 5, runs: 50, maxSeconds: 1, clock: fast.clock });
  assert.equal(all.runs, 50, 'runs that fit the limit all happen');
  assert.equal(all.requestedRuns, undefined);
  await assert.rejects(measureLatency(async () => {}, { runs: 2, maxSeconds: 0 }), (e: unknown) => e instanceof WhittleError && e.code === 'BAD_USAGE');
});
