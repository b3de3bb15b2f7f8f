import { formatBytes } from '../io.ts';

/** A metric as a person reads it: integers whole, fractions to 6 significant digits. */
export function formatNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
}

/** `-0.0033, -0.43%`: the change against the first run, with its relative size when that means something. */
export function formatDelta(delta: number, base: number): string {
  const sign = delta > 0 ? '+' : '';
  const rel = base !== 0 ? `, ${sign}${(delta / Math.abs(base) * 100).toFixed(2)}%` : '';
  return `${sign}${formatNumber(delta)}${rel}`;
}

export function formatPercent(fraction: number | undefined): string {
  return fraction === undefined ? '' : `${(fraction * 100).toFixed(2)}%`;
}

export function formatSize(bytes: number | undefined): string {
  return bytes === undefined ? '' : formatBytes(bytes);
}

/** Local wall-clock time to the minute: what `list` needs to tell runs apart at a glance. */
export function formatTime(iso: string | null): string {
  if (iso === null) return '';
  const d = new Date(iso);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

export function formatDuration(startIso: string | null, endIso: string | null): string {
  if (startIso === null || endIso === null) return '';
  const s = (Date.parse(endIso) - Date.parse(startIso)) / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : s < 3600 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${(s / 3600).toFixed(1)} h`;
}
