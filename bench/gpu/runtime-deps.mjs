// Prints the node_modules folders the device check needs at run time: the packages the engine
// loads on the paths it takes (CLI eval/devices/quantize, the GPU kernels, onnxruntime, tsx to run
// TypeScript) and everything they depend on, for pack.sh. TF.js, Electron, Vite and the other
// app and build packages stay behind (the bundle must fit the device tool's 64 MiB).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const roots = ['tsx', 'onnxruntime-node', 'webgpu', 'zod', 'protobufjs', 'better-sqlite3', 'jpeg-js', 'pngjs', 'ws'];
const seen = new Set();
function visit(name) {
  if (seen.has(name)) return;
  const dir = join('node_modules', name);
  if (!existsSync(join(dir, 'package.json'))) return;
  seen.add(name);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  // optional dependencies are platform binaries (esbuild's @esbuild/linux-x64): only those present
  for (const d of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) visit(d);
}
roots.forEach(visit);
// build-time helpers of native packages are not needed to load them
for (const skip of ['prebuild-install', 'node-abi', 'tar-fs', 'simple-get', 'detect-libc', 'napi-build-utils', 'pump', 'rc', 'tunnel-agent', 'expand-template', 'github-from-package', 'mkdirp-classic']) seen.delete(skip);
console.log([...seen].sort().map((n) => join('node_modules', n)).join('\n'));
