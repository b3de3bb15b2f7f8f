import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { WhittleError } from '../../api/errors.ts';
import {
  CHOLESKY_BLOCK, choleskyPanel, inverseCholeskyUpper, inverseColumnRanges, lowerTriangleRanges, TASKS, triangleRanges,
  type CpuTasks, type GptqRowParams,
} from './kernels-cpu.mjs';

/**
 * The worker-thread CPU path of the compute kernels (SPEC §2, §7): kernels-cpu.mjs run in worker
 * threads over SharedArrayBuffers, each thread on its own range of the output, so results land in
 * place and are the same whatever the thread count (every output element is computed by one thread
 * in one fixed order). Small problems run inline: starting a worker costs about 30 ms.
 */

type TaskName = keyof CpuTasks;
const WORKER_SCRIPT = new URL('./cpu-worker.mjs', import.meta.url);

/** Threads for the CPU path: WHITTLE_CPU_THREADS, else the cores minus one (at least 1). */
export function defaultThreads(): number {
  const env = Number(process.env.WHITTLE_CPU_THREADS);
  if (Number.isInteger(env) && env >= 1) return env;
  return Math.max(1, availableParallelism() - 1);
}

/** A typed array over a SharedArrayBuffer (what the threads can write into). */
export function sharedArray<T extends Float64Array | Float32Array | Uint8Array | Uint32Array | Int32Array>(
  ctor: { new (buffer: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number }, length: number,
): T {
  return new ctor(new SharedArrayBuffer(length * ctor.BYTES_PER_ELEMENT));
}

/** The same values in a shared buffer (returned as is when already shared). */
export function toShared<T extends Float64Array | Float32Array | Uint8Array | Int32Array>(a: T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const ctor = a.constructor as { new (buffer: SharedArrayBuffer): T; BYTES_PER_ELEMENT: number };
  const out = sharedArray(ctor, a.length);
  out.set(a as never);
  return out;
}

interface Pending { id: number; resolve: (v: unknown) => void; reject: (e: Error) => void }

export class CpuThreads {
  readonly size: number;
  #workers: { worker: Worker; pending: Map<number, Pending> }[] = [];
  #next = 0;
  #id = 1;

  constructor(size = defaultThreads()) {
    this.size = Math.max(1, Math.floor(size));
  }

  /** Runs a kernel; `lane` picks the worker (tasks of one parallel call go to different threads). */
  run<T extends TaskName>(task: T, input: Parameters<CpuTasks[T]>[0], lane?: number): Promise<ReturnType<CpuTasks[T]>> {
    if (this.size === 1) return Promise.resolve((TASKS[task] as (i: unknown) => ReturnType<CpuTasks[T]>)(input));
    const index = (lane ?? this.#next++) % this.size;
    while (this.#workers.length <= index) this.#spawn();
    const slot = this.#workers[index]!;
    const id = this.#id++;
    slot.worker.ref();
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { id, resolve: resolve as (v: unknown) => void, reject });
      slot.worker.postMessage({ id, task, input });
    });
  }

  #spawn(): void {
    const worker = new Worker(WORKER_SCRIPT, { execArgv: [] });
    const slot = { worker, pending: new Map<number, Pending>() };
    worker.unref();
    worker.on('message', (msg: { id: number; ok: boolean; result?: unknown; message?: string }) => {
      const p = slot.pending.get(msg.id);
      if (!p) return;
      slot.pending.delete(msg.id);
      if (slot.pending.size === 0) worker.unref();
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new WhittleError('INTERNAL', `CPU kernel failed in a worker thread: ${msg.message}`));
    });
    const fail = (why: string) => {
      for (const p of slot.pending.values()) p.reject(new WhittleError('RUNTIME', `CPU worker thread ${why}`));
      slot.pending.clear();
    };
    worker.on('error', (err) => fail(`failed (${err.message})`));
    worker.on('exit', (code) => fail(`exited with code ${code}`));
    this.#workers.push(slot);
  }

  async close(): Promise<void> {
    const all = this.#workers.splice(0);
    await Promise.all(all.map((s) => s.worker.terminate()));
  }
}

/** Splits [0, n) into at most `parts` contiguous ranges of nearly equal length. */
export function evenRanges(n: number, parts: number, multipleOf = 1): [number, number][] {
  const units = Math.ceil(n / multipleOf);
  const p = Math.max(1, Math.min(parts, units));
  const out: [number, number][] = [];
  for (let i = 0; i < p; i++) {
    const a = Math.floor((units * i) / p) * multipleOf;
    const b = Math.min(n, Math.floor((units * (i + 1)) / p) * multipleOf);
    if (b > a) out.push([a, b]);
  }
  return out;
}

/**
 * acc += upper triangle of xᵀ·x for x [rows × k] (acc k×k float64, mirrored by the caller when
 * done), the triangle's rows split over the threads by equal work. Large problems run in the
 * threads: x and acc must then be shared (sharedArray / toShared).
 */
export async function xtxParallel(threads: CpuThreads, x: Float32Array | Float64Array, rows: number, k: number, acc: Float64Array): Promise<void> {
  if (threads.size === 1 || rows * k * k <= 1 << 22) { TASKS.xtx({ x, rows, k, acc, i0: 0, i1: k }); return; }
  const ranges = triangleRanges(k, threads.size);
  await Promise.all(ranges.map(([i0, i1], lane) => threads.run('xtx', { x, rows, k, acc, i0, i1 }, lane)));
}

/** GPTQ over all rows, split into ranges over the threads; returns the summed loss estimate. */
export async function gptqParallel(
  threads: CpuThreads, w: Float32Array | Float64Array, u: Float32Array | Float64Array, p: GptqRowParams, rows: number,
  q: Uint8Array, scales: Float32Array, zeros: Uint8Array,
): Promise<number> {
  if (threads.size === 1 || rows * p.K * p.K <= 1 << 24) return TASKS.gptqRows({ w, u, p, r0: 0, r1: rows, q, scales, zeros });
  const ranges = evenRanges(rows, threads.size, 16);
  const losses = await Promise.all(ranges.map(([r0, r1], lane) => threads.run('gptqRows', { w, u, p, r0, r1, q, scales, zeros }, lane)));
  return losses.reduce((a, b) => a + b, 0);
}

/**
 * The upper triangle of a feature-major chunk's Gram matrix (gramChunk) added into `acc`, split by
 * equal work between this thread and the first worker of `threads`: this thread is busy too, so
 * two cores both work where defaultThreads() would leave one idle. `b` and `acc` must be shared.
 * Small chunks (under a million multiply-adds) stay on this thread: a message costs more.
 */
export async function gramWithWorker(threads: CpuThreads | null, b: Float64Array, C: number, t: number, k: number, acc: Float64Array): Promise<void> {
  if (!threads || (k * k * t) / 2 < 1 << 20) { TASKS.gram({ b, C, t, k, acc, i0: 0, i1: k }); return; }
  const [[a0, a1], [w0, w1] = [a1, a1]] = triangleRanges(k, 2) as [[number, number], [number, number]?];
  const worker = threads.run('gram', { b, C, t, k, acc, i0: w0, i1: w1 }, 0);
  TASKS.gram({ b, C, t, k, acc, i0: a0, i1: a1 });
  await worker;
}

/** Threads for the dense factorizations: this one and cores − 1 workers (WHITTLE_CPU_THREADS: the total). */
export function factorParts(): number {
  const env = Number(process.env.WHITTLE_CPU_THREADS);
  return Number.isInteger(env) && env >= 1 ? env : availableParallelism();
}

let factorPool: CpuThreads | null = null;

/** Work (multiply-adds) under which a split costs more in messages than it saves. */
export const SPLIT_MIN_WORK = 1 << 21;

/**
 * Runs `task` over `ranges`: the first on this thread, the others on the pool's workers (idle
 * workers do not keep the process alive). Inputs the workers write must be shared arrays.
 */
export async function splitRun<T extends 'choleskyTrailing' | 'invertLowerColumns' | 'sparseGptRows' | 'quadraticFormRows'>(
  task: T, ranges: [number, number][], input: (range: [number, number]) => Parameters<CpuTasks[T]>[0],
): Promise<void> {
  if (ranges.length > 1) factorPool ??= new CpuThreads(Math.max(2, ranges.length - 1));
  const others = ranges.slice(1).map((r, lane) => factorPool!.run(task, input(r), lane));
  (TASKS[task] as (i: Parameters<CpuTasks[T]>[0]) => null)(input(ranges[0]!));
  await Promise.all(others);
}

/**
 * inverseCholeskyUpper (kernels-cpu.mjs) with the blocked Cholesky's trailing updates and the
 * triangular inverse's columns split over this thread and cores − 1 workers: the same operations on
 * every entry in the same order, so the same bits whatever the thread count. The k = 4,608 factor
 * of a 3×3 conv of 512 channels is 2·10¹⁰ multiply-adds. Returns null when H is not positive definite.
 */
export async function inverseCholeskyUpperParallel(h: Float64Array, n: number, parts = factorParts()): Promise<Float64Array | null> {
  if (parts <= 1 || n < 256) return inverseCholeskyUpper(h, n);
  // the lower triangle of P·H·P (P the order reversal: entry p of the flat array is entry n² − 1 − p)
  const l = sharedArray(Float64Array, n * n);
  const last = n * n - 1;
  for (let i = 0; i < n; i++) { const r = i * n; for (let j = 0; j <= i; j++) l[r + j] = h[last - r - j]!; }
  const panel = sharedArray(Float64Array, n * CHOLESKY_BLOCK);
  for (let kb = 0; kb < n; kb += CHOLESKY_BLOCK) {
    const ke = Math.min(kb + CHOLESKY_BLOCK, n);
    if (!choleskyPanel(l, n, kb, ke, panel)) return null;
    const m = n - ke;
    if (m === 0) break;
    const w = ke - kb;
    const ranges = (m * m * w) / 2 < SPLIT_MIN_WORK ? [[0, m] as [number, number]] : lowerTriangleRanges(m, parts);
    await splitRun('choleskyTrailing', ranges, ([i0, i1]) => ({ l, n, ke, w, panel, i0, i1 }));
  }
  const x = sharedArray(Float64Array, n * n);
  await splitRun('invertLowerColumns', inverseColumnRanges(n, parts), ([j0, j1]) => ({ l, n, x, j0, j1 }));
  return x.reverse();
}
