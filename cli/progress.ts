import { sendProgress } from '../core/jobs/channel.ts';
import type { CliIo } from './io.ts';

/**
 * A progress bar on stderr, drawn only when stderr is a terminal and the work has lasted over a
 * second (short jobs stay quiet; logs and --json stay clean). When the command runs as an engine
 * job, every update also goes to the engine's progress channel (core/jobs/channel.ts).
 */
export class ProgressBar {
  private started = Date.now();
  private lastDraw = 0;
  private drawn = false;

  constructor(private io: CliIo, private label: string) {}

  update(done: number, total: number, phase = this.label): void {
    sendProgress(phase, done, total);
    if (!this.io.interactive) return;
    const now = Date.now();
    if (now - this.started < 1000 || now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const width = 30;
    const filled = Math.round(frac * width);
    const elapsed = (now - this.started) / 1000;
    const eta = frac > 0 ? elapsed / frac - elapsed : NaN;
    const etaText = Number.isFinite(eta) ? ` ETA ${formatSeconds(eta)}` : '';
    this.io.stderr(`\r${phase} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${etaText}   `);
    this.drawn = true;
  }

  done(): void {
    if (this.drawn) this.io.stderr('\r\x1b[K');
    this.drawn = false;
  }
}

export function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(0)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}
