import { readdirSync, readFileSync } from 'node:fs';

/**
 * Process bookkeeping for the e2e run: whatever the harness starts is killed at teardown, even when
 * a test fails or throws, and at worst when the test process exits. Everything the harness starts
 * carries WHITTLE_E2E=<marker> in its environment, so scripts/run-e2e.mjs can sweep up anything a
 * crashed test file left behind.
 */

export const E2E_MARKER = `whittle-e2e-${process.env.WHITTLE_E2E_RUN ?? 'solo'}-${process.pid}`;

/** pid → parent pid for every process we can see (Linux /proc). */
function parentMap(): Map<number, number> {
  const parents = new Map<number, number>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return parents;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid … — comm may hold spaces and parentheses: split after the last ')'.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parents.set(Number(name), Number(rest[1]));
    } catch {
      /* gone */
    }
  }
  return parents;
}

/** Every descendant of pid (children, grandchildren, …), deepest last. */
export function descendants(pid: number): number[] {
  const parents = parentMap();
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parents) if (parent === p && !out.includes(child)) { out.push(child); walk(child); }
  };
  walk(pid);
  return out;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'; // a zombie has exited
  } catch {
    return false;
  }
}

/** The command line of a process, or null when it is gone. */
export function commandLine(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return null;
  }
}

/** Processes of this user whose environment carries the marker (WHITTLE_E2E=marker). */
export function markedProcesses(marker: string | null = E2E_MARKER): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      const hit = env.find((e) => e.startsWith('WHITTLE_E2E='));
      if (hit && (marker === null || hit === `WHITTLE_E2E=${marker}`)) out.push(Number(name));
    } catch {
      /* not ours, or gone */
    }
  }
  return out;
}

export function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

const exitHooks = new Set<() => void>();
let installed = false;
/** A synchronous last-resort cleanup run when the test process exits (normally or by a signal). */
export function onExit(hook: () => void): () => void {
  exitHooks.add(hook);
  if (!installed) {
    installed = true;
    const runAll = () => {
      for (const h of exitHooks) {
        try {
          h();
        } catch {
          /* keep going */
        }
      }
      exitHooks.clear();
    };
    process.on('exit', runAll);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        runAll();
        process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
      });
    }
  }
  return () => exitHooks.delete(hook);
}

export async function waitFor<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 30_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
