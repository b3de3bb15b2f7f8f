/**
 * The taskbar / dock progress bar: one value for all running jobs, from the engine's pushes.
 * Each running job counts equally (their units differ: images, layers, steps), a job without a
 * known total makes the bar indeterminate, and no running job means no bar (-1).
 */

export interface TaskbarValue {
  /** BrowserWindow.setProgressBar's value: -1 none, 0..1 a fraction, 2 indeterminate. */
  progress: number;
  mode: 'none' | 'normal' | 'indeterminate';
}

export const NO_PROGRESS: TaskbarValue = { progress: -1, mode: 'none' };

interface Tracked {
  done: number;
  total: number;
}

export class TaskbarProgress {
  private readonly running = new Map<string, Tracked>();
  private last: TaskbarValue = NO_PROGRESS;

  /**
   * Feeds one push; returns the new value when the bar should change (by at least half a
   * percent, or its mode), else null, so the window is not repainted for every sample.
   */
  push(event: string, payload: unknown): TaskbarValue | null {
    const p = payload as Record<string, unknown> | null;
    if (!p || typeof p !== 'object' || typeof p.jobId !== 'string') return null;
    if (event === 'job.state') {
      if (p.status === 'running') {
        const progress = p.progress as Record<string, unknown> | null | undefined;
        const prev = this.running.get(p.jobId);
        this.running.set(p.jobId, progress && typeof progress.done === 'number' && typeof progress.total === 'number'
          ? { done: progress.done, total: progress.total }
          : prev ?? { done: 0, total: 0 });
      } else {
        this.running.delete(p.jobId);
      }
    } else if (event === 'job.progress') {
      // Progress for a job we were not told is running still means it runs (a state push may be lost
      // across an engine restart; the next state push corrects it).
      if (typeof p.done !== 'number' || typeof p.total !== 'number') return null;
      this.running.set(p.jobId, { done: p.done, total: p.total });
    } else {
      return null;
    }
    return this.update();
  }

  /** Forget every job (the engine host restarted: its jobs are gone). */
  reset(): TaskbarValue | null {
    this.running.clear();
    return this.update();
  }

  value(): TaskbarValue {
    if (this.running.size === 0) return NO_PROGRESS;
    let sum = 0;
    for (const j of this.running.values()) {
      if (!(j.total > 0) || !Number.isFinite(j.done)) return { progress: 2, mode: 'indeterminate' };
      sum += Math.min(1, Math.max(0, j.done / j.total));
    }
    return { progress: sum / this.running.size, mode: 'normal' };
  }

  private update(): TaskbarValue | null {
    const next = this.value();
    const prev = this.last;
    if (next.mode === prev.mode && (next.mode !== 'normal' || Math.abs(next.progress - prev.progress) < 0.005)) return null;
    this.last = next;
    return next;
  }
}
