import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EventName } from '../../api/methods.ts';
import type { JobInfo } from '../../api/schemas.ts';
import { openStore } from '../store/index.ts';
import { tempHome } from '../store/test-home.ts';
import { JobManager } from './job-manager.ts';

/**
 * The queue against processes that misbehave in ways the CLI never does on purpose: plain
 * `node -e` scripts stand in for a job, so these run in a second.
 */
async function managerRunning(script: string[], options: { killGraceMs?: number } = {}) {
  const home = await tempHome('jobs');
  const store = openStore({ home });
  const states: JobInfo[] = [];
  const manager = new JobManager({
    home, store, command: [process.execPath, ...script], concurrency: 1, ...options,
    push: (event: EventName, payload: unknown) => { if (event === 'job.state') states.push(payload as JobInfo); },
  });
  const job = manager.submit({ kind: 'sleep', seconds: 1, crash: 'none' }, () => ({ argv: [], files: [], title: 'misbehaving' }));
  return { manager, store, states, jobId: job.jobId };
}

test('a job that runs out of memory fails naming the signal and V8\'s own words', async () => {
  const { manager, store, jobId } = await managerRunning(['--max-old-space-size=16', '-e', 'const a = []; for (;;) a.push(new Array(1e5).fill(1));']);
  const job = await manager.waitFor(jobId);
  store.close();
  assert.equal(job.status, 'failed');
  assert.equal(job.error?.code, 'RUNTIME');
  assert.match(job.error!.message, /killed by SIGABRT .*out of memory.*: FATAL ERROR: .*heap out of memory/);
});

test('a job that ignores SIGINT is killed after the grace period and counts as cancelled', async () => {
  const { manager, store, states, jobId } = await managerRunning(
    ['-e', `process.on('SIGINT', () => console.error('not stopping')); console.error('ready'); setInterval(() => {}, 1000);`], { killGraceMs: 300 });
  await new Promise<void>((resolve) => { const t = setInterval(() => { if (manager.get(jobId).logs.some((l) => l.message === 'ready')) { clearInterval(t); resolve(); } }, 20); });
  assert.equal(manager.cancel(jobId), true);
  const job = await manager.waitFor(jobId);
  store.close();
  assert.equal(job.status, 'cancelled');
  assert.ok(job.logs.some((l) => /did not stop within/.test(l.message)), JSON.stringify(job.logs));
  assert.deepEqual(states.map((s) => s.status), ['queued', 'running', 'cancelled']);
  assert.equal(job.pid, null);
});

test('a job whose stdout is not a result fails; one that prints a CLI error keeps its code', async () => {
  const silent = await managerRunning(['-e', 'console.log("hello, not JSON")']);
  const a = await silent.manager.waitFor(silent.jobId);
  silent.store.close();
  assert.equal(a.status, 'failed');
  assert.equal(a.error?.code, 'INTERNAL');
  const refused = await managerRunning(['-e', `console.log(JSON.stringify({ error: { code: 'BAD_INPUT', message: 'x.onnx: truncated' } })); process.exit(2);`]);
  const b = await refused.manager.waitFor(refused.jobId);
  refused.store.close();
  assert.deepEqual(b.error, { code: 'BAD_INPUT', message: 'x.onnx: truncated' });
});
