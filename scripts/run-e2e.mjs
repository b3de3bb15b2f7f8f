#!/usr/bin/env node
// The e2e run (`npm run e2e`): builds the renderer when dist/renderer is older than its sources (always
// in CI), then runs every e2e/browser/*.e2e.ts and e2e/desktop/*.e2e.ts with node's test runner, one
// file at a time (Node 20 has no glob support in --test). Pass files or folders to narrow the run:
//   node scripts/run-e2e.mjs e2e/browser/library.e2e.ts
// Afterwards it kills anything a crashed test file left running (processes carrying WHITTLE_E2E).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const skip = new Set(['node_modules', 'dist', '.git']);

function newest(p) {
  let st;
  try { st = statSync(p); } catch { return 0; }
  if (st.isFile()) return st.mtimeMs;
  let m = st.mtimeMs;
  for (const name of readdirSync(p)) if (!skip.has(name)) m = Math.max(m, newest(join(p, name)));
  return m;
}

// 1. The renderer bundle `whittle serve` hands out.
const built = (() => { try { return statSync('dist/renderer/index.html').mtimeMs; } catch { return 0; } })();
const sources = Math.max(newest('renderer'), newest('api'), newest('package-lock.json'));
const ci = Boolean(process.env.CI) || process.env.WHITTLE_E2E_BUILD === '1';
if (ci || built === 0 || sources > built) {
  console.log(`e2e: building the renderer (${ci ? 'CI' : built === 0 ? 'no dist/renderer' : 'sources newer than dist/renderer'})`);
  const b = spawnSync(process.execPath, [join('node_modules', 'vite', 'bin', 'vite.js'), 'build', '--config', 'renderer/vite.config.ts', '--logLevel', 'warn'], { stdio: 'inherit' });
  if (b.status !== 0) { console.error('e2e: the renderer build failed'); process.exit(b.status ?? 1); }
} else {
  console.log('e2e: dist/renderer is up to date');
}

// 2. The test files.
const args = process.argv.slice(2);
const roots = args.length ? args : ['e2e/browser', 'e2e/desktop'];
const files = [];
function walk(p) {
  let st;
  try { st = statSync(p); } catch { return; }
  if (st.isFile()) { if (p.endsWith('.e2e.ts')) files.push(p); return; }
  for (const name of readdirSync(p).sort()) if (!skip.has(name)) walk(join(p, name));
}
roots.forEach(walk);
if (files.length === 0) { console.error('e2e: no *.e2e.ts files under', roots.join(' ')); process.exit(1); }

const started = Date.now();
const result = spawnSync(process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files.map((f) => relative(root, f))],
  { stdio: 'inherit', env: { ...process.env, WHITTLE_TEST: '1', WHITTLE_E2E_RUN: String(process.pid) } });
console.log(`e2e: ${files.length} file(s) in ${((Date.now() - started) / 1000).toFixed(1)} s`);

// 3. Nothing may outlive the run: sweep processes this run's harness marked (WHITTLE_E2E=whittle-e2e-<this pid>-…).
const strays = [];
for (const name of readdirSync('/proc')) {
  if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
  try {
    const env = readFileSync(`/proc/${name}/environ`, 'utf8');
    if (!env.includes(`\0WHITTLE_E2E=whittle-e2e-${process.pid}-`) && !env.startsWith(`WHITTLE_E2E=whittle-e2e-${process.pid}-`)) continue;
    const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ').trim();
    strays.push(`${name} ${cmd.slice(0, 120)}`);
    process.kill(Number(name), 'SIGKILL');
  } catch { /* not ours, or gone */ }
}
if (strays.length) {
  console.error(`e2e: killed ${strays.length} process(es) a test left running:\n  ${strays.join('\n  ')}`);
  process.exit(result.status || 1);
}
process.exit(result.status ?? 1);
