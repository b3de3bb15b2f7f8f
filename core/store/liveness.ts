import type Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * When the OS started process `pid`, as an opaque string, or null where we cannot tell. On Linux
 * it is field 22 of /proc/PID/stat (clock ticks since boot), which tells a reused pid from the
 * process that started a run: containers restart with the same small pids.
 */
export function processStartTime(pid: number): string | null {
  if (process.platform !== 'linux') return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null; // field 22 overall = index 19 after pid and comm
  } catch {
    return null;
  }
}

export function isProcessAlive(pid: number, startedAt: string | null): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to another user; only ESRCH means it is gone.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (startedAt === null) return true;
  const now = processStartTime(pid);
  return now === null || now === startedAt;
}

interface RunningRow {
  id: string;
  pid: number | null;
  process_started: string | null;
}

/**
 * Marks runs left `running` by a process that has died (a crash, kill -9, a power cut) as
 * `interrupted`, so they stop looking alive. Only runs started on this host are judged: a store
 * on a shared drive may hold runs that are alive elsewhere.
 */
export function markInterruptedRuns(db: Database.Database, host: string = hostname()): string[] {
  const rows = db.prepare(`SELECT id, pid, process_started FROM runs WHERE status = 'running' AND hostname = ?`).all(host) as RunningRow[];
  const dead = rows.filter((r) => r.pid === null || !isProcessAlive(r.pid, r.process_started));
  if (dead.length === 0) return [];
  const now = new Date().toISOString();
  const mark = db.prepare(`UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?, error_code = 'INTERRUPTED'
    WHERE id = ? AND status = 'running'`);
  db.transaction(() => {
    for (const r of dead) {
      mark.run(now, `interrupted: the process running it (pid ${r.pid ?? '?'} on ${host}) ended without finishing it`, r.id);
    }
  }).immediate();
  return dead.map((r) => r.id);
}
