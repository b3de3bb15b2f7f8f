import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NO_PROGRESS, TaskbarProgress } from './progress.ts';

const state = (jobId: string, status: string, progress: { done: number; total: number } | null = null) => ({ jobId, status, progress });
const progress = (jobId: string, done: number, total: number) => ({ jobId, phase: 'p', done, total, etaS: null });

test('no running job: no bar', () => {
  const t = new TaskbarProgress();
  assert.deepEqual(t.value(), NO_PROGRESS);
  assert.equal(t.push('job.state', state('a', 'queued')), null);
  assert.equal(t.push('experiments.changed', { runId: null }), null);
  assert.equal(t.push('job.progress', null), null);
});

test('running jobs average their fractions; finishing removes them', () => {
  const t = new TaskbarProgress();
  assert.deepEqual(t.push('job.state', state('a', 'running')), { progress: 2, mode: 'indeterminate' });
  assert.deepEqual(t.push('job.progress', progress('a', 25, 100)), { progress: 0.25, mode: 'normal' });
  assert.equal(t.push('job.progress', progress('a', 251, 1000)), null, 'a tiny change does not repaint');
  assert.deepEqual(t.push('job.state', state('b', 'running', { done: 3, total: 4 })), { progress: (0.251 + 0.75) / 2, mode: 'normal' });
  assert.deepEqual(t.push('job.state', state('a', 'succeeded')), { progress: 0.75, mode: 'normal' });
  assert.deepEqual(t.push('job.state', state('b', 'cancelled')), NO_PROGRESS);
});

test('a job without a total makes the bar indeterminate; fractions are clamped', () => {
  const t = new TaskbarProgress();
  t.push('job.progress', progress('a', 5, 10));
  assert.deepEqual(t.push('job.progress', progress('b', 3, 0)), { progress: 2, mode: 'indeterminate' });
  t.push('job.state', state('b', 'failed'));
  assert.deepEqual(t.push('job.progress', progress('a', 50, 10)), { progress: 1, mode: 'normal' });
});

test('a job.state for a running job keeps the progress it already had', () => {
  const t = new TaskbarProgress();
  t.push('job.progress', progress('a', 1, 2));
  assert.equal(t.push('job.state', state('a', 'running')), null);
  assert.deepEqual(t.value(), { progress: 0.5, mode: 'normal' });
});

test('reset forgets every job', () => {
  const t = new TaskbarProgress();
  t.push('job.progress', progress('a', 1, 2));
  assert.deepEqual(t.reset(), NO_PROGRESS);
  assert.equal(t.reset(), null);
});
