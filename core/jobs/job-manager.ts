import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ERROR_CODES, WhittleError, type ErrorCode } from '../../api/errors.ts';
import type { EventName, EventPayload } from '../../api/methods.ts';
import type { ErrorInfo, JobInfo, JobLog, JobProgress, JobSpecParsed } from '../../api/schemas.ts';
import { newId } from '../store/ids.ts';
import type { Store } from '../store/store.ts';
import { parseChannelLine, PROGRESS_FD_ENV, type ChannelMessage } from './channel.ts';
import type { JobPlan } from './job-plan.ts';

export type PushFn = <E extends EventName>(event: E, payload: EventPayload<E>) => void;

export interface JobManagerOptions {
  /** WHITTLE_HOME: job folders go in jobs/, and job processes get it as their store. */
  home: string;
  /** The engine's store, to close runs whose process died without closing them. */
  store: Store;
  /** How to start the CLI: program and leading arguments (the job's argv follows). */
  command: string[];
  /** Extra environment for job processes. */
  env?: Record<string, string>;
  concurrency: number;
  push: PushFn;
  /** After SIGINT, how long a job gets to record itself cancelled before SIGKILL. Default 3 s. */
  killGraceMs?: number;
  /** Least time between two progress events of one job. Default 100 ms (10 a second). */
  progressIntervalMs?: number;
}

const MAX_LOGS_KEPT = 100;
const MAX_LOG_EVENTS = 2000;
const MAX_LINE_CHARS = 4000;
const MAX_STDOUT_BYTES = 64 << 20;

interface RunningJob {
  info: JobInfo;
  plan: JobPlan;
  dir: string;
  child: ChildProcess | null;
  cancelRequested: boolean;
  killTimer: NodeJS.Timeout | null;
  stdout: Buffer[];
  stdoutBytes: number;
  lastStderrLine: string;
  /** A line that says why a process died (V8's out-of-memory report), kept over later stack dumps. */
  fatalLine: string | null;
  /** Warnings already reported through the channel: their stderr copies are not logged twice. */
  warnings: Set<string>;
  logEvents: number;
  phase: { name: string; t0: number; done0: number } | null;
  lastProgressAt: number;
  progressTimer: NodeJS.Timeout | null;
  ended: Promise<void>;
  markEnded: () => void;
}

const now = () => new Date().toISOString();

/** What V8 and the C++ runtime print when a process dies of memory or a bad access; a native stack follows. */
const FATAL_LINE = /FATAL ERROR|out of memory|std::bad_alloc|Segmentation fault/i;

/** Calls `onLine` for each complete line of a stream, as it arrives. */
function eachLine(stream: Readable | null | undefined, onLine: (line: string) => void): void {
  if (!stream) return;
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (text: string) => {
    rest += text;
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      onLine(rest.slice(0, nl).replace(/\r$/, ''));
      rest = rest.slice(nl + 1);
    }
    if (rest.length > MAX_LINE_CHARS * 4) { onLine(rest); rest = ''; } // a runaway line without breaks
  });
  stream.on('end', () => { if (rest) onLine(rest); });
}

/** Why a signal ended a job, in the user's words. */
function signalHint(signal: string): string {
  switch (signal) {
    case 'SIGKILL': return ' (out of memory, or killed by another process)';
    case 'SIGSEGV': case 'SIGBUS': case 'SIGILL': return ' (a crash in native code)';
    case 'SIGABRT': return ' (aborted: out of memory or a failed check in native code)';
    default: return '';
  }
}

/** The CLI's `--json` error document `{error: {code, message}}`, when that is what it printed. */
function errorDocument(doc: unknown): ErrorInfo | null {
  const error = (doc as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (!error || typeof error.message !== 'string') return null;
  const code = (ERROR_CODES as readonly unknown[]).includes(error.code) ? (error.code as ErrorCode) : 'INTERNAL';
  return { code, message: error.message };
}

/**
 * The job queue (SPEC §5): each job is a child process running the `whittle` CLI, so a runtime
 * that crashes or runs out of memory takes down its job, never the engine. At most `concurrency`
 * run at once; the rest wait in order. A job reports over the channel of core/jobs/channel.ts,
 * prints its result on stdout, and its stderr lines become log events.
 */
export class JobManager {
  #jobs = new Map<string, RunningJob>();
  #queue: RunningJob[] = [];
  #running = new Set<RunningJob>();
  #concurrency: number;
  #closed = false;
  readonly #options: JobManagerOptions;

  constructor(options: JobManagerOptions) {
    this.#options = options;
    this.#concurrency = Math.max(1, options.concurrency);
  }

  get concurrency(): number {
    return this.#concurrency;
  }

  /** Takes effect at once: a higher limit starts waiting jobs now; a lower one lets running jobs finish. */
  setConcurrency(n: number): void {
    this.#concurrency = Math.max(1, Math.floor(n));
    this.#pump();
  }

  /**
   * Queues a job; its state changes arrive as `job.state` events. `plan` gets the job's folder
   * (named after its id) and may throw: a spec that cannot run is refused before it is queued.
   */
  submit(spec: JobSpecParsed, plan: (jobDir: string) => JobPlan): JobInfo {
    if (this.#closed) throw new WhittleError('INTERNAL', 'the engine is shutting down; no new jobs');
    const jobId = newId('j');
    const dir = join(this.#options.home, 'jobs', jobId);
    const planned = plan(dir);
    let markEnded!: () => void;
    const ended = new Promise<void>((resolve) => { markEnded = resolve; });
    const job: RunningJob = {
      info: {
        jobId, kind: spec.kind, title: planned.title, spec, status: 'queued', createdAt: now(), startedAt: null, finishedAt: null,
        progress: null, runId: null, pid: null, error: null, logs: [],
      },
      plan: planned, dir, child: null, cancelRequested: false, killTimer: null,
      stdout: [], stdoutBytes: 0, lastStderrLine: '', fatalLine: null, warnings: new Set(), logEvents: 0, phase: null, lastProgressAt: 0,
      progressTimer: null, ended, markEnded,
    };
    this.#jobs.set(jobId, job);
    this.#queue.push(job);
    this.#pushState(job);
    this.#pump();
    return this.#snapshot(job);
  }

  /** This session's jobs, newest first. */
  list(): JobInfo[] {
    return [...this.#jobs.values()].reverse().map((j) => this.#snapshot(j));
  }

  get(jobId: string): JobInfo {
    const job = this.#jobs.get(jobId);
    if (!job) throw new WhittleError('NOT_FOUND', `no job with id "${jobId}" in this session`);
    return this.#snapshot(job);
  }

  /** Resolves when the job has ended (whatever the outcome). */
  async waitFor(jobId: string): Promise<JobInfo> {
    const job = this.#jobs.get(jobId);
    if (!job) throw new WhittleError('NOT_FOUND', `no job with id "${jobId}" in this session`);
    await job.ended;
    return this.#snapshot(job);
  }

  /** Store runs that jobs of this session are recording right now (not to be deleted). */
  activeRunIds(): Set<string> {
    return new Set([...this.#running].map((j) => j.info.runId).filter((id): id is string => id !== null));
  }

  /**
   * A queued job is dropped; a running one gets SIGINT (the CLI then records its run cancelled
   * and exits) and SIGKILL if it is still there after the grace period. False once it has ended.
   */
  cancel(jobId: string): boolean {
    const job = this.#jobs.get(jobId);
    if (!job) throw new WhittleError('NOT_FOUND', `no job with id "${jobId}" in this session`);
    if (job.info.status === 'queued') {
      this.#queue.splice(this.#queue.indexOf(job), 1);
      this.#finish(job, 'cancelled', { code: 'CANCELLED', message: 'cancelled before it started' });
      return true;
    }
    if (job.info.status !== 'running') return false;
    if (job.cancelRequested) return true;
    job.cancelRequested = true;
    this.#log(job, 'info', 'cancelling: asked the job process to stop');
    const child = job.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      job.killTimer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) {
          this.#log(job, 'warn', `the job process did not stop within ${(this.#grace / 1000).toFixed(0)} s of SIGINT; killing it`);
          child.kill('SIGKILL');
        }
      }, this.#grace);
    }
    return true;
  }

  /** Cancels everything and waits for the job processes to end. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const job of [...this.#queue]) this.cancel(job.info.jobId);
    const running = [...this.#running];
    for (const job of running) this.cancel(job.info.jobId);
    await Promise.all(running.map((j) => j.ended));
  }

  get #grace(): number {
    return this.#options.killGraceMs ?? 3000;
  }

  #pump(): void {
    while (!this.#closed && this.#running.size < this.#concurrency && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      this.#running.add(job);
      this.#launch(job);
    }
  }

  #launch(job: RunningJob): void {
    job.info.status = 'running';
    job.info.startedAt = now();
    let child: ChildProcess;
    try {
      mkdirSync(job.dir, { recursive: true });
      for (const file of job.plan.files) writeFileSync(join(job.dir, file.name), file.content);
      const [program, ...lead] = this.#options.command;
      child = spawn(program!, [...lead, ...job.plan.argv], {
        cwd: job.dir,
        env: { ...process.env, ...this.#options.env, WHITTLE_HOME: this.#options.home, [PROGRESS_FD_ENV]: '3' },
        // stdin closed, stdout the result, stderr logs, fd 3 the progress channel
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (err) {
      this.#settle(job, null, null, `could not start the job process: ${(err as Error).message}`);
      return;
    }
    job.child = child;
    job.info.pid = child.pid ?? null;
    this.#pushState(job);

    child.stdout?.on('data', (chunk: Buffer) => {
      if (job.stdoutBytes + chunk.length > MAX_STDOUT_BYTES) return;
      job.stdout.push(chunk);
      job.stdoutBytes += chunk.length;
    });
    eachLine(child.stderr, (line) => this.#onStderr(job, line));
    eachLine(child.stdio[3] as Readable | null, (line) => {
      const message = parseChannelLine(line);
      if (message) this.#onChannel(job, message);
    });

    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    let closeTimer: NodeJS.Timeout | null = null;
    const done = () => {
      if (closeTimer) clearTimeout(closeTimer);
      if (exit) this.#settle(job, exit.code, exit.signal, null);
    };
    child.on('error', (err) => {
      // spawn failures (no such program) come here; a process that did start ends through 'exit'
      if (job.info.pid === null || child.pid === undefined) this.#settle(job, null, null, `could not start the job process: ${err.message}`);
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // 'close' follows once stdout and the channel are drained; a grandchild holding a pipe
      // open must not keep the job running forever
      closeTimer = setTimeout(done, 2000);
    });
    child.on('close', (code, signal) => {
      exit ??= { code, signal };
      done();
    });
  }

  #onStderr(job: RunningJob, line: string): void {
    if (!line.trim()) return;
    job.lastStderrLine = line.length > MAX_LINE_CHARS ? line.slice(0, MAX_LINE_CHARS) + '…' : line;
    if (FATAL_LINE.test(line)) job.fatalLine = job.lastStderrLine.trim();
    const warning = /^whittle: warning: (.*)$/.exec(line);
    if (warning) {
      if (!job.warnings.has(warning[1]!)) this.#log(job, 'warn', warning[1]!);
      return;
    }
    const error = /^whittle: (.*)$/.exec(line);
    this.#log(job, error ? 'error' : 'info', error ? error[1]! : line);
  }

  #onChannel(job: RunningJob, message: ChannelMessage): void {
    if (job.info.status !== 'running') return;
    switch (message.type) {
      case 'run':
        job.info.runId = message.runId;
        this.#pushState(job);
        this.#options.push('experiments.changed', { runId: message.runId });
        return;
      case 'log':
        if (message.level === 'warn') job.warnings.add(message.message);
        this.#log(job, message.level, message.message);
        return;
      case 'progress':
        this.#onProgress(job, message.phase, message.done, message.total);
        return;
    }
  }

  /** Progress with an ETA from the rate since the phase began; at most one event per interval. */
  #onProgress(job: RunningJob, phase: string, done: number, total: number): void {
    const t = Date.now();
    if (!job.phase || job.phase.name !== phase || done < job.phase.done0) job.phase = { name: phase, t0: t, done0: done };
    const elapsed = t - job.phase.t0;
    const rate = elapsed > 0 ? (done - job.phase.done0) / elapsed : 0;
    const etaS = done >= total ? 0 : rate > 0 && elapsed >= 200 ? (total - done) / rate / 1000 : null;
    const changedPhase = job.info.progress?.phase !== phase;
    job.info.progress = { jobId: job.info.jobId, phase, done, total, etaS };
    const interval = this.#options.progressIntervalMs ?? 100;
    if (changedPhase || t - job.lastProgressAt >= interval) {
      this.#emitProgress(job);
    } else if (!job.progressTimer) {
      // the latest value goes out at the end of the interval, so a burst never hides the last step
      job.progressTimer = setTimeout(() => this.#emitProgress(job), interval - (t - job.lastProgressAt));
    }
  }

  #emitProgress(job: RunningJob): void {
    if (job.progressTimer) clearTimeout(job.progressTimer);
    job.progressTimer = null;
    if (!job.info.progress || job.info.status !== 'running') return;
    job.lastProgressAt = Date.now();
    this.#options.push('job.progress', { ...job.info.progress } satisfies JobProgress);
  }

  #log(job: RunningJob, level: JobLog['level'], message: string): void {
    const entry: JobLog = { jobId: job.info.jobId, level, message, at: now() };
    job.info.logs.push(entry);
    if (job.info.logs.length > MAX_LOGS_KEPT) job.info.logs.splice(0, job.info.logs.length - MAX_LOGS_KEPT);
    job.logEvents++;
    if (job.logEvents < MAX_LOG_EVENTS) this.#options.push('job.log', entry);
    else if (job.logEvents === MAX_LOG_EVENTS) this.#options.push('job.log', { ...entry, level: 'warn', message: 'further output is not shown (the job prints too much)' });
  }

  /** The process ended (or never started): decide the outcome from its exit, stdout and whether it was cancelled. */
  #settle(job: RunningJob, code: number | null, signal: NodeJS.Signals | null, startError: string | null): void {
    if (job.info.status !== 'running') return;
    if (job.killTimer) clearTimeout(job.killTimer);
    let result: unknown;
    const text = Buffer.concat(job.stdout).toString('utf8').trim();
    const lastLine = text.slice(text.lastIndexOf('\n') + 1);
    try {
      result = lastLine ? JSON.parse(lastLine) : undefined;
    } catch {
      result = undefined;
    }
    const cliError = errorDocument(result);
    const reason = job.fatalLine ?? job.lastStderrLine;
    const last = reason ? `: ${reason}` : '';
    if (startError !== null) {
      this.#finish(job, 'failed', { code: 'RUNTIME', message: startError });
    } else if (code === 0 && result !== undefined && !cliError) {
      job.info.result = result;
      const runId = (result as { runId?: unknown }).runId;
      if (typeof runId === 'string' && runId) job.info.runId = runId;
      this.#finish(job, 'succeeded', null);
    } else if (job.cancelRequested) {
      this.#finish(job, 'cancelled', { code: 'CANCELLED', message: 'cancelled by the user' });
    } else if (cliError) {
      this.#finish(job, 'failed', cliError);
    } else if (signal) {
      this.#finish(job, 'failed', { code: 'RUNTIME', message: `the job process was killed by ${signal}${signalHint(signal)}${last}` });
    } else if (code !== 0) {
      this.#finish(job, 'failed', { code: 'RUNTIME', message: `the job process exited with code ${code}${last}` });
    } else {
      this.#finish(job, 'failed', { code: 'INTERNAL', message: `the job process ended without printing a result${last}` });
    }
  }

  #finish(job: RunningJob, status: 'succeeded' | 'failed' | 'cancelled', error: ErrorInfo | null): void {
    if (job.progressTimer) clearTimeout(job.progressTimer);
    job.progressTimer = null;
    job.info.status = status;
    job.info.error = error;
    job.info.finishedAt = now();
    job.info.pid = null;
    if (error) this.#log(job, status === 'cancelled' ? 'info' : 'error', error.message);
    this.#closeStoreRun(job, error);
    // the CLI has hard-linked (or copied) its outputs into the store by now
    try {
      rmSync(job.dir, { recursive: true, force: true });
    } catch {
      // a folder left behind costs disk, not correctness
    }
    this.#running.delete(job);
    this.#pushState(job);
    job.markEnded();
    this.#pump();
  }

  /**
   * A process that died cannot close its run: the engine does, so the store never shows a run
   * `running` that nothing is running. A run started but not yet announced on the channel is
   * caught by the store's own dead-process check.
   */
  #closeStoreRun(job: RunningJob, error: ErrorInfo | null): void {
    try {
      let changed = false;
      if (job.info.runId && error) changed = this.#options.store.failRun(job.info.runId, error.code, error.message);
      changed = this.#options.store.markInterruptedRuns().length > 0 || changed;
      if (job.info.runId || changed) this.#options.push('experiments.changed', { runId: job.info.runId });
    } catch {
      // the store being unreadable must not take the engine down with the job
    }
  }

  #pushState(job: RunningJob): void {
    this.#options.push('job.state', this.#snapshot(job));
  }

  #snapshot(job: RunningJob): JobInfo {
    return { ...job.info, logs: [...job.info.logs], progress: job.info.progress ? { ...job.info.progress } : null };
  }
}
