#!/usr/bin/env node
// Finds every *.test.ts beside the code and runs them with node's test runner (Node 20 has no glob
// support in --test). Pass folders or files to narrow the run: node scripts/run-tests.mjs core/store
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

// renderer/src: unit tests of the renderer's pure modules (no DOM, no Svelte runtime)
const roots = process.argv.slice(2).length ? process.argv.slice(2) : ['api', 'native-models', 'core', 'cli', 'server', 'bench', 'electron', 'renderer/src'];
const skip = new Set(['node_modules', 'dist', '.git']);
const files = [];
function walk(p) {
  let st;
  try { st = statSync(p); } catch { return; }
  if (st.isFile()) { if (p.endsWith('.test.ts')) files.push(p); return; }
  for (const name of readdirSync(p).sort()) if (!skip.has(name)) walk(join(p, name));
}
roots.forEach(walk);
if (files.length === 0) { console.error('no test files found under', roots.join(' ')); process.exit(1); }
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
const result = spawnSync(process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit', env: { ...process.env, WHITTLE_TEST: '1' } });
process.exit(result.status ?? 1);
