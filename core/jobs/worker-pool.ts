import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { WhittleError } from '../../api/errors.ts';
import type { PoolTasks } from './pool-kernels.mjs';

export type PoolTaskName = keyof PoolTasks;
export type PoolTaskInput<T extends PoolTaskName> = Parameters<PoolTasks[T]>[0];
export type PoolTaskResult<T extends PoolTaskName> = ReturnType<PoolTasks[T]>;

export interface RunOptions {
  /** Buffers moved to the worker instead of copied; they are unusable here afterwards. */
  transfer?: ArrayBuffer[];
  /** Aborting drops a queued task, and terminates (then replaces) the worker running it. */
  signal?: AbortSignal;
}

interface Pending {
  id: number;
  task: PoolTaskName;
  input: unknown;
  transfer: ArrayBuffer[];
  signal: AbortSignal | undefined;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  onAbort: (() => void) | null;
}

interface Slot {
  worker: Worker;
  busy: Pending | null;
}

const WORKER_SCRIPT = new URL('./pool-worker.mjs', import.meta.url);

/** Cores minus one for the thread that hands out the work (and the UI it may serve), at least one. */
export function defaultPoolSize(): number {
  return Math.max(1, availableParallelism() - 1);
}

function cancelled(): WhittleError {
  return new WhittleError('CANCELLED', 'cancelled');
}

/**
 * A small pool of worker threads for the engine's heavy numeric loops (SPEC §2). Workers start on
 * demand and are unref'd while idle, so an idle pool never keeps a process alive. Tasks are named
 * kernels from pool-kernels.mjs; inputs and results are structured-cloned, typed arrays given in
 * `transfer` move without a copy. A worker that crashes fails its task and is replaced.
 */
export class WorkerPool {
  readonly size: number;
  #slots: Slot[] = [];
  #queue: Pending[] = [];
  #nextId = 1;
  #closed = false;

  constructor(options: { size?: number } = {}) {
    this.size = Math.max(1, Math.floor(options.size ?? defaultPoolSize()));
  }

  /** Threads started so far (they stay until close). */
  get threads(): number {
    return this.#slots.length;
  }

  run<T extends PoolTaskName>(task: T, input: PoolTaskInput<T>, options: RunOptions = {}): Promise<PoolTaskResult<T>> {
    if (this.#closed) return Promise.reject(new WhittleError('INTERNAL', 'the worker pool is closed'));
    if (options.signal?.aborted) return Promise.reject(cancelled());
    return new Promise((resolve, reject) => {
      const job: Pending = {
        id: this.#nextId++, task, input, transfer: options.transfer ?? [], signal: options.signal,
        resolve: resolve as (v: unknown) => void, reject, onAbort: null,
      };
      if (job.signal) {
        job.onAbort = () => this.#abort(job);
        job.signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.#queue.push(job);
      this.#pump();
    });
  }

  /** Stops every worker; queued and running tasks fail. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#queue.splice(0)) this.#settle(job, new WhittleError('INTERNAL', 'the worker pool was closed'));
    const slots = this.#slots.splice(0);
    for (const slot of slots) if (slot.busy) this.#settle(slot.busy, new WhittleError('INTERNAL', 'the worker pool was closed'));
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      let slot = this.#slots.find((s) => s.busy === null);
      if (!slot && this.#slots.length < this.size) slot = this.#spawn();
      if (!slot) return;
      const job = this.#queue.shift()!;
      slot.busy = job;
      slot.worker.ref();
      slot.worker.postMessage({ id: job.id, task: job.task, input: job.input }, job.transfer);
    }
  }

  #spawn(): Slot {
    // No inherited --import/--loader flags: the worker is plain JavaScript and starts in
    // milliseconds instead of loading a TypeScript compiler.
    const worker = new Worker(WORKER_SCRIPT, { execArgv: [] });
    const slot: Slot = { worker, busy: null };
    worker.unref();
    worker.on('message', (msg: { id: number; ok: boolean; result?: unknown; message?: string }) => {
      const job = slot.busy;
      if (!job || job.id !== msg.id) return;
      slot.busy = null;
      worker.unref();
      if (msg.ok) this.#settle(job, null, msg.result);
      else this.#settle(job, new WhittleError('INTERNAL', `worker task ${job.task} failed: ${msg.message}`));
      this.#pump();
    });
    const lost = (why: string) => {
      const index = this.#slots.indexOf(slot);
      if (index < 0) return; // already replaced (terminated on purpose)
      this.#slots.splice(index, 1);
      if (slot.busy) this.#settle(slot.busy, new WhittleError('RUNTIME', `worker thread ${why} while running ${slot.busy.task}`));
      slot.busy = null;
      if (!this.#closed) this.#pump();
    };
    worker.on('error', (err) => lost(`failed (${err.message})`));
    worker.on('exit', (code) => lost(`exited with code ${code}`));
    this.#slots.push(slot);
    return slot;
  }

  #abort(job: Pending): void {
    const queued = this.#queue.indexOf(job);
    if (queued >= 0) {
      this.#queue.splice(queued, 1);
      this.#settle(job, cancelled());
      return;
    }
    const slot = this.#slots.find((s) => s.busy === job);
    if (!slot) return;
    // A running kernel cannot be interrupted: its thread is stopped and a fresh one takes its place.
    this.#slots.splice(this.#slots.indexOf(slot), 1);
    slot.busy = null;
    void slot.worker.terminate();
    this.#settle(job, cancelled());
    this.#pump();
  }

  #settle(job: Pending, err: Error | null, value?: unknown): void {
    if (job.onAbort) job.signal?.removeEventListener('abort', job.onAbort);
    job.onAbort = null;
    if (err) job.reject(err);
    else job.resolve(value);
  }
}
