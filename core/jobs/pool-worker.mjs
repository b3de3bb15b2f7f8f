// One worker of core/jobs/worker-pool.ts: runs named tasks from pool-kernels.mjs, one at a time.
// Typed arrays in a result go back as transfers (no copy).
import { parentPort } from 'node:worker_threads';
import { TASKS } from './pool-kernels.mjs';

parentPort.on('message', ({ id, task, input }) => {
  try {
    const run = TASKS[task];
    if (!run) throw new Error(`unknown pool task "${task}"`);
    const result = run(input);
    const transfer = ArrayBuffer.isView(result) ? [result.buffer] : [];
    parentPort.postMessage({ id, ok: true, result }, transfer);
  } catch (err) {
    parentPort.postMessage({ id, ok: false, message: err instanceof Error ? err.message : String(err) });
  }
});
