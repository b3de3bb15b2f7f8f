// One worker thread of threads.ts: runs named kernels from kernels-cpu.mjs. Inputs are typed arrays
// over SharedArrayBuffers, so kernels write their outputs in place and nothing is copied.
import { parentPort } from 'node:worker_threads';
import { TASKS } from './kernels-cpu.mjs';

parentPort.on('message', ({ id, task, input }) => {
  try {
    const run = TASKS[task];
    if (!run) throw new Error(`unknown CPU kernel "${task}"`);
    parentPort.postMessage({ id, ok: true, result: run(input) });
  } catch (err) {
    parentPort.postMessage({ id, ok: false, message: err instanceof Error ? err.message : String(err) });
  }
});
