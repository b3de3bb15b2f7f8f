/**
 * Number formatting shared by every view, so sizes, counts and times read the same everywhere.
 * All functions take plain numbers (or null/undefined → '—') and never throw.
 */

const DASH = '—';

function missing(n: number | null | undefined): n is null | undefined {
  return n === null || n === undefined || Number.isNaN(n);
}

/** 1536 → "1.5 KiB"; binary units, as file managers on Linux show them. */
export function formatBytes(n: number | null | undefined, digits = 1): string {
  if (missing(n)) return DASH;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const sign = n < 0 ? '−' : '';
  return u === 0 ? `${sign}${v} B` : `${sign}${v.toFixed(v >= 100 ? 0 : digits)} ${units[u]}`;
}

/**
 * 1234567 → "1,234,567", without Intl: the first toLocaleString() of a page loads ICU data for
 * ~90 ms on the main thread, which shows as a long task while a job streams progress.
 */
export function groupDigits(n: number): string {
  const s = String(Math.round(Math.abs(n))).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return n < 0 ? `−${s}` : s;
}

/** 1234567 → "1,234,567". */
export function formatCount(n: number | null | undefined): string {
  if (missing(n)) return DASH;
  return groupDigits(n);
}

/** 1234567 → "1.23 M"; for tight places (cards, chart labels). */
export function formatCompact(n: number | null | undefined): string {
  if (missing(n)) return DASH;
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)} k`;
  return formatCount(n);
}

/** A fraction 0..1 → "12.3 %". Tiny non-zero values are shown as "<0.1 %" rather than "0.0 %". */
export function formatPercent(fraction: number | null | undefined, digits = 1): string {
  if (missing(fraction)) return DASH;
  const p = fraction * 100;
  const min = 10 ** -digits;
  if (p > 0 && p < min) return `<${min.toFixed(digits)} %`;
  return `${p.toFixed(digits)} %`;
}

/** Seconds → "850 ms", "12.4 s", "3 min 05 s", "1 h 02 min". */
export function formatDuration(seconds: number | null | undefined): string {
  if (missing(seconds)) return DASH;
  const s = Math.max(0, seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** Milliseconds → "0.42 ms" / "12.3 ms" / "1.20 s"; for latencies. */
export function formatMs(ms: number | null | undefined): string {
  if (missing(ms)) return DASH;
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 100 ? 1 : 0)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** ISO time → local "2024-05-01 14:03" (no seconds); invalid → the input. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return DASH;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (x: number) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** ISO time → "just now", "5 min ago", "3 h ago", else the date. */
export function formatAgo(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return DASH;
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const s = (now - t) / 1000;
  if (s < 45) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return formatTime(iso);
}

/** A shape [1, 3, 224, 224] → "1×3×224×224"; symbolic dims kept; null → "?". */
export function formatShape(shape: ReadonlyArray<number | string | null> | null | undefined): string {
  if (!shape) return '?';
  if (shape.length === 0) return 'scalar';
  return shape.map((d) => (d === null ? '?' : String(d))).join('×');
}

/** The last path segment, for both / and \ separators. */
export function baseName(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1] || path;
}

/** A signed number for deltas: "+1.20", "−0.30". */
export function formatSigned(n: number | null | undefined, digits = 2): string {
  if (missing(n)) return DASH;
  const s = Math.abs(n).toFixed(digits);
  return n > 0 ? `+${s}` : n < 0 ? `−${s}` : s;
}
