import { readFileSync } from 'node:fs';

/**
 * This process's peak resident set size in bytes. On Linux it is the kernel's high-water mark of
 * this program's own memory (VmHWM in /proc/self/status), not `process.resourceUsage().maxRSS`:
 * Linux carries ru_maxrss across fork and exec, so a job worker or a benchmark child started by a
 * 600 MiB parent reports 600 MiB however little it uses (measured: 604 MiB maxRSS, 39 MiB VmHWM).
 * Elsewhere (no /proc) maxRSS is what there is.
 */
export function peakRssBytes(): number {
  try {
    const kib = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kib) return Number(kib) * 1024;
  } catch {
    // not Linux, or /proc not mounted
  }
  return process.resourceUsage().maxRSS * 1024;
}
