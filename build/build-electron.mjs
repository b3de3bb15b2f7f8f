#!/usr/bin/env node
// Bundles the desktop app's processes and the CLI the app's job processes run (`npm run build:electron`):
//   dist/electron/main.js         main process (ESM; electron external)
//   dist/electron/preload.cjs     sandboxed preload (CommonJS, nothing but `require('electron')`)
//   dist/electron/engine-host.js  the engine, in Electron's utility process (ESM)
//   dist/cli/whittle.js           the `whittle` CLI (ESM), run by job processes as
//                                 `<Electron binary> dist/cli/whittle.js …` with ELECTRON_RUN_AS_NODE=1
// Native modules stay external (loaded from node_modules at run time; electron-builder rebuilds
// them for Electron's ABI). Files the code finds beside itself through import.meta.url (onnx.proto,
// worker scripts) are copied next to each bundle that needs them; a new import.meta.url user fails
// the build until it is listed below, because a bundle would otherwise break only at run time.
//
//   node build/build-electron.mjs             all four
//   node build/build-electron.mjs cli         only some (main, preload, engine-host, cli)
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const rel = (p) => relative(ROOT, p).split(sep).join('/');

/** Packages with native code (or native-code loaders): never bundled. */
const NATIVE = ['better-sqlite3', 'onnxruntime-node', 'onnxruntime-common', 'webgpu', '@tensorflow/*'];

/**
 * Every source file that uses import.meta.url, and the files it expects beside itself. Entries with
 * no files use it only for createRequire (package lookups, which work from any folder) or, for
 * core/version.ts, to read ../package.json: dist/package.json below answers that.
 */
const IMPORT_META_USERS = {
  'native-models/formats/onnx/schema.ts': ['native-models/formats/onnx/onnx.proto'],
  'native-models/runtimes/gpu-probe.ts': ['native-models/runtimes/gpu-probe-child.mjs'],
  'core/jobs/worker-pool.ts': ['core/jobs/pool-worker.mjs', 'core/jobs/pool-kernels.mjs', 'core/jobs/quantize-kernels.mjs', 'core/jobs/quantize-simd.mjs', 'core/jobs/wasm-assembler.mjs'],
  'native-models/gpu/device.ts': ['native-models/gpu/compute-probe-child.mjs'],
  'native-models/gpu/threads.ts': ['native-models/gpu/cpu-worker.mjs', 'native-models/gpu/kernels-cpu.mjs'],
  'core/version.ts': [],
  // REPO_ROOT: two folders up, which from dist/<bundle>/ is the checkout (or the app.asar root) again.
  'core/jobs/engine.ts': [],
  'core/testing/fixtures.ts': [],
  'native-models/runtimes/devices.ts': [],
  'native-models/runtimes/tfjs.ts': [],
  'native-models/runtimes/cuda.ts': [],
  // DEFAULT_RENDERER_DIR ('../dist/renderer/'): only `whittle serve` uses it, which job processes never
  // run; from dist/cli/ it would name dist/dist/renderer, so serve from a checkout (bin/whittle.mjs).
  'server/server.ts': [],
  // Finds its siblings (preload.cjs, engine-host.js, ../renderer, ../cli) from dist/electron/.
  'electron/main/main.ts': [],
};

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
  absWorkingDir: ROOT,
  external: ['electron', ...NATIVE],
};

// CommonJS packages bundled into an ES module still call require() for Node built-ins.
const esmRequireBanner = "import { createRequire as __whittleCreateRequire } from 'node:module';\n" +
  'const require = __whittleCreateRequire(import.meta.url);';

const TARGETS = {
  main: {
    entryPoints: { main: 'electron/main/main.ts' },
    outdir: join(DIST, 'electron'),
    format: 'esm',
    outExtension: { '.js': '.js' },
    banner: { js: esmRequireBanner },
  },
  preload: {
    entryPoints: { preload: 'electron/preload/preload.ts' },
    outdir: join(DIST, 'electron'),
    format: 'cjs',
    outExtension: { '.js': '.cjs' },
    // A sandboxed preload gets a limited `require` (electron and a few polyfilled built-ins).
    external: ['electron'],
    platform: 'browser',
  },
  'engine-host': {
    entryPoints: { 'engine-host': 'electron/engine-host/host.ts' },
    outdir: join(DIST, 'electron'),
    format: 'esm',
    outExtension: { '.js': '.js' },
    banner: { js: esmRequireBanner },
  },
  cli: {
    // The same start as bin/whittle.mjs, without tsx: the sources are compiled in.
    stdin: {
      contents: "import { main } from './cli/main.ts';\nprocess.exitCode = await main(process.argv.slice(2));\n",
      resolveDir: ROOT,
      sourcefile: 'whittle-cli-entry.ts',
      loader: 'ts',
    },
    outfile: join(DIST, 'cli', 'whittle.js'),
    format: 'esm',
    banner: { js: '#!/usr/bin/env node\n' + esmRequireBanner },
  },
};

function checkImportMetaUsers(name, metafile, outDir) {
  const copied = [];
  for (const input of Object.keys(metafile.inputs)) {
    if (input.includes('node_modules/') || !/\.(ts|mjs|js)$/.test(input) || !existsSync(join(ROOT, input))) continue; // (the CLI's stdin entry has no file)
    const text = readFileSync(join(ROOT, input), 'utf8');
    if (!text.includes('import.meta.url')) continue;
    const files = IMPORT_META_USERS[input];
    if (!files) {
      throw new Error(`${name}: ${input} uses import.meta.url, which points at ${rel(outDir)}/ once bundled. ` +
        'List it in IMPORT_META_USERS in build/build-electron.mjs with the files it needs beside it.');
    }
    for (const f of files) {
      copyFileSync(join(ROOT, f), join(outDir, f.split('/').pop()));
      copied.push(f);
    }
  }
  return copied;
}

function checkPreload(metafile) {
  // Anything but electron would fail at run time in the sandbox: refuse it here.
  for (const [out, info] of Object.entries(metafile.outputs)) {
    const bad = info.imports.filter((i) => i.external && i.path !== 'electron');
    if (bad.length) throw new Error(`preload: ${out} requires ${bad.map((i) => i.path).join(', ')}; a sandboxed preload may require only electron`);
  }
}

async function buildOne(name) {
  const { external, ...target } = TARGETS[name];
  const options = { ...common, ...target, external: external ?? common.external };
  const started = Date.now();
  const result = await build(options);
  const outDir = options.outdir ?? dirname(options.outfile);
  const copied = checkImportMetaUsers(name, result.metafile, outDir);
  if (name === 'preload') checkPreload(result.metafile);
  const outputs = Object.entries(result.metafile.outputs).filter(([o]) => !o.endsWith('.map'));
  const size = outputs.reduce((s, [, o]) => s + o.bytes, 0);
  console.log(`build: ${outputs.map(([o]) => o).join(', ')} (${(size / 1024).toFixed(0)} KiB, ${Date.now() - started} ms)` +
    (copied.length ? `; beside it: ${copied.map((c) => c.split('/').pop()).join(', ')}` : ''));
}

const wanted = process.argv.slice(2);
for (const w of wanted) if (!TARGETS[w]) { console.error(`build: unknown target "${w}" (${Object.keys(TARGETS).join(', ')})`); process.exit(2); }

// Bundled code reads the version from ../package.json relative to itself (core/version.ts); this
// also marks dist/**/*.js as ES modules wherever dist/ ends up.
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
mkdirSync(DIST, { recursive: true });
writeFileSync(join(DIST, 'package.json'), JSON.stringify({ name: `${pkg.name}-dist`, version: pkg.version, private: true, type: 'module' }, null, 2) + '\n');

try {
  for (const name of wanted.length ? wanted : Object.keys(TARGETS)) await buildOne(name);
} catch (err) {
  console.error(`build: ${err?.message ?? err}`);
  process.exit(1);
}
