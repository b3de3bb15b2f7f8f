import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { descendants, E2E_MARKER, isAlive, killQuietly, onExit } from './processes.ts';
import { FIXTURES, ROOT, WHITTLE_BIN } from './paths.ts';

/** `whittle serve` started for a test: its URL, its folders, and a stop that always kills it. */
export interface ServerHandle {
  /** The line's URL, token included: http://127.0.0.1:PORT/?token=… */
  url: string;
  origin: string;
  token: string;
  /** WHITTLE_HOME of this server (a temp folder). */
  home: string;
  /** A temp workspace folder the server may read (corrupt files and the like go here). */
  work: string;
  proc: ChildProcess;
  /** stdout + stderr so far (for failure messages). */
  output(): string;
  /** Runs the CLI against this server's store: `whittle ARGS --json`, parsed. */
  cli(args: string[]): unknown;
  stop(): Promise<void>;
}

export interface ServerOptions {
  /** Extra folders besides the fixtures and the temp workspace. */
  workspaces?: string[];
  extraArgs?: string[];
  startTimeoutMs?: number;
}

const URL_LINE = /Whittle is serving on (https?:\/\/\S+)/;

export async function startServer(options: ServerOptions = {}): Promise<ServerHandle> {
  const base = mkdtempSync(join(tmpdir(), 'whittle-e2e-'));
  const home = join(base, 'home');
  const work = join(base, 'work');
  spawnSync('mkdir', ['-p', home, work]);
  const args = [WHITTLE_BIN, 'serve', '--port', '0', '--workspace', FIXTURES, '--workspace', work];
  for (const w of options.workspaces ?? []) args.push('--workspace', w);
  args.push(...(options.extraArgs ?? []));
  const env: NodeJS.ProcessEnv = { ...process.env, WHITTLE_HOME: home, WHITTLE_E2E: E2E_MARKER, NO_COLOR: '1' };
  delete env.WHITTLE_DEBUG;
  // Its own process group: stop() kills the server and every job process it started in one go.
  const proc = spawn(process.execPath, args, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const append = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  proc.stdout!.on('data', append);
  proc.stderr!.on('data', append);

  let stopped = false;
  const killAll = () => {
    if (proc.pid === undefined) return;
    const tree = descendants(proc.pid);
    killQuietly(-proc.pid, 'SIGKILL');
    for (const p of tree) killQuietly(p, 'SIGKILL');
  };
  const removeHook = onExit(() => {
    killAll();
    rmSync(base, { recursive: true, force: true });
  });

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      killAll();
      reject(new Error(`whittle serve printed no URL within ${options.startTimeoutMs ?? 60_000} ms; output:\n${out}`));
    }, options.startTimeoutMs ?? 60_000);
    const check = () => {
      const m = URL_LINE.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.stdout!.off('data', check);
        resolve(m[1]!);
      }
    };
    proc.stdout!.on('data', check);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`whittle serve exited (${code ?? signal}) before printing its URL; output:\n${out}`));
    });
  });
  const parsed = new URL(url);
  const token = parsed.searchParams.get('token') ?? '';

  const handle: ServerHandle = {
    url,
    origin: parsed.origin,
    token,
    home,
    work,
    proc,
    output: () => out,
    cli(cliArgs) {
      const r = spawnSync(process.execPath, [WHITTLE_BIN, ...cliArgs, '--json'], {
        cwd: ROOT,
        env: { ...process.env, WHITTLE_HOME: home, WHITTLE_E2E: E2E_MARKER },
        encoding: 'utf8',
        timeout: 60_000,
      });
      if (r.status !== 0) throw new Error(`whittle ${cliArgs.join(' ')} failed (${r.status}): ${r.stderr}`);
      return JSON.parse(r.stdout);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null) {
        const tree = descendants(proc.pid);
        killQuietly(-proc.pid, 'SIGTERM');
        const exited = await Promise.race([
          new Promise<boolean>((r) => proc.once('exit', () => r(true))),
          new Promise<boolean>((r) => setTimeout(() => r(false), 5_000)),
        ]);
        killQuietly(-proc.pid, 'SIGKILL');
        for (const p of tree) killQuietly(p, 'SIGKILL');
        if (!exited) await new Promise((r) => setTimeout(r, 200));
        const left = tree.filter(isAlive);
        if (left.length) throw new Error(`processes left after stopping the server: ${left.join(', ')}`);
      }
      removeHook();
      rmSync(base, { recursive: true, force: true });
    },
  };
  return handle;
}
