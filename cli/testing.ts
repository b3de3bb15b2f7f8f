import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { CliIo } from './io.ts';
import { main } from './main.ts';

/** A CliIo that keeps what a command printed, for tests. */
export function captureIo(): CliIo & { out: string; err: string } {
  const io = { out: '', err: '', interactive: false, stdout: (t: string) => void (io.out += t), stderr: (t: string) => void (io.err += t) };
  return io;
}

/** Runs `whittle ...argv` in-process and returns the exit code and what it printed. */
export async function whittle(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIo();
  const code = await main(argv, io);
  return { code, out: io.out, err: io.err };
}

/**
 * Inside a describe(): a fresh WHITTLE_HOME and work folder for the suite, removed afterwards
 * (each suite gets its own store, as the app's e2e tests do).
 */
export function useTempHome(prefix: string): { home: () => string; work: () => string } {
  let home = '';
  let work = '';
  const saved = process.env.WHITTLE_HOME;
  before(() => {
    home = mkdtempSync(join(tmpdir(), 'whittle-home-'));
    work = mkdtempSync(join(tmpdir(), `whittle-${prefix}-`));
    process.env.WHITTLE_HOME = home;
  });
  after(() => {
    if (saved === undefined) delete process.env.WHITTLE_HOME;
    else process.env.WHITTLE_HOME = saved;
    rmSync(home, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
  return { home: () => home, work: () => work };
}
