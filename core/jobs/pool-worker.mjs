// One worker of core/jobs/worker-pool.ts: runs named tasks from pool-kernels.mjs, one at a time.
// Typed arrays in a result (or among its fields) go back as transfers (no copy).
import { parentPort } from 'node:worker_threads';
import { TASKS } from './pool-kernels.mjs';

/** Typed arrays in a result, in its arrays and objects too (a few levels): they move, uncopied. */
function viewsIn(value, depth) {
  if (ArrayBuffer.isView(value)) return [value];
  if (depth === 0 || !value || typeof value !== 'object') return [];
  return Object.values(value).flatMap((v) => viewsIn(v, depth - 1));
}

parentPort.on('message', ({ id, task, input }) => {
  try {
    const run = TASKS[task];
    if (!run) throw new Error(`unknown pool task "${task}"`);
    const result = run(input);
    const transfer = [...new Set(viewsIn(result, 3).map((v) => v.buffer))];
    parentPort.postMessage({ id, ok: true, result }, transfer);
  } catch (err) {
    parentPort.postMessage({ id, ok: false, message: err instanceof Error ? err.message : String(err) });
  }
});
