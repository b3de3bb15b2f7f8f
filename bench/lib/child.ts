/**
 * Benchmarks time each phase in a fresh child process so that its peak RSS is its own: the child
 * runs the phase and prints one JSON line last; the parent parses it.
 */
import { spawnSync } from 'node:child_process';

export const seconds = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;

/** Runs `node [nodeArgs] --import tsx script args` and returns the last stdout line parsed as JSON. */
export function runChild<T>(script: string, args: string[], opts: { nodeArgs?: string[]; label?: string } = {}): T {
  const r = spawnSync(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', script, ...args], { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`${opts.label ?? args.join(' ')} failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}):\n${r.stderr}`);
  const last = r.stdout.trim().split('\n').pop()!;
  return JSON.parse(last) as T;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export function fmt(n: number, digits = 2): string {
  return n.toFixed(digits);
}

/** A plain-text table: first column left-aligned, the others right-aligned. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
