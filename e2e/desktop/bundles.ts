import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT } from '../lib/paths.ts';

/**
 * The bundles the desktop tests run: rebuilt when missing or older than their sources (always when
 * WHITTLE_E2E_BUILD=1 or on CI), like scripts/run-e2e.mjs does for the renderer.
 */
const SKIP = new Set(['node_modules', 'dist', '.git']);

function newest(p: string): number {
  let st;
  try {
    st = statSync(p);
  } catch {
    return 0;
  }
  if (st.isFile()) return st.mtimeMs;
  let m = st.mtimeMs;
  for (const name of readdirSync(p)) if (!SKIP.has(name)) m = Math.max(m, newest(join(p, name)));
  return m;
}

function oldest(files: string[]): number {
  let m = Infinity;
  for (const f of files) {
    try {
      m = Math.min(m, statSync(join(ROOT, f)).mtimeMs);
    } catch {
      return 0;
    }
  }
  return m;
}

function run(what: string, args: string[]): void {
  const started = Date.now();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  console.log(`  built ${what} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

const force = () => Boolean(process.env.CI) || process.env.WHITTLE_E2E_BUILD === '1';

/** dist/electron/* and dist/cli/whittle.js, from electron/, api/, core/, native-models/, cli/, server/. */
export function ensureElectronBundles(): void {
  const outputs = ['dist/electron/main.js', 'dist/electron/preload.cjs', 'dist/electron/engine-host.js', 'dist/cli/whittle.js', 'dist/package.json'];
  const sources = Math.max(...['electron', 'api', 'core', 'native-models', 'cli', 'server', 'build', 'package.json'].map((d) => newest(join(ROOT, d))));
  if (force() || oldest(outputs) < sources) run('the Electron and CLI bundles', ['build/build-electron.mjs']);
}

/** dist/renderer (the e2e runner builds it too; this makes the file runnable on its own). */
export function ensureRenderer(): void {
  const built = oldest(['dist/renderer/index.html']);
  const sources = Math.max(newest(join(ROOT, 'renderer')), newest(join(ROOT, 'api')));
  if (built === 0 || built < sources) {
    run('the renderer', [join('node_modules', 'vite', 'bin', 'vite.js'), 'build', '--config', 'renderer/vite.config.ts', '--logLevel', 'warn']);
  }
}
