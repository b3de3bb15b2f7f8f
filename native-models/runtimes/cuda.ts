import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * Whether onnxruntime-node's CUDA EP can load here, decided from files on disk so we never ask
 * onnxruntime for it when it cannot work (a failed attempt prints C++ error logs on stderr).
 *
 * onnxruntime-node ships without the CUDA EP; its install script downloads the provider libraries
 * from NuGet (Microsoft.ML.OnnxRuntime.Gpu.Linux, built for CUDA 12 + cuDNN 9) into the folder of
 * the native binding, bin/napi-v6/<platform>/<arch>/, which is where onnxruntime loads them from:
 * "Failed to load library .../bin/napi-v6/linux/x64/libonnxruntime_providers_shared.so".
 */

/**
 * This repository's .npmrc sets onnxruntime-node-install=skip; a flag on the command line wins over
 * it (npm passes it to the install script as npm_config_onnxruntime_node_install). The script also
 * reads ONNXRUNTIME_NODE_INSTALL=cuda12 from the environment.
 */
export const CUDA_OPT_IN = 'npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12';

const PROVIDER_LIBRARIES = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'];

/** What the provider library links against (CUDA 12 + cuDNN 9 build), and the driver. */
const SYSTEM_LIBRARIES: [soname: string, what: string][] = [
  ['libcudart.so.12', 'CUDA 12 runtime'],
  ['libcublas.so.12', 'cuBLAS 12'],
  ['libcudnn.so.9', 'cuDNN 9'],
  ['libcuda.so.1', 'NVIDIA driver'],
];

/** The folder onnxruntime-node loads its binding from (mirrors its dist/binding.js). */
export function ortBindingDir(): string {
  const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
  return join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
}

let ldCache: Map<string, string> | undefined;

/** soname → path from the dynamic loader's cache (`ldconfig -p`). */
function loaderCache(): Map<string, string> {
  if (ldCache) return ldCache;
  ldCache = new Map();
  for (const bin of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    const r = spawnSync(bin, ['-p'], { encoding: 'utf8', timeout: 3000 });
    if (r.status !== 0 || !r.stdout) continue;
    for (const line of r.stdout.split('\n')) {
      const m = /^\s*(\S+) \(([^)]*)\) => (\S+)$/.exec(line);
      if (m && !ldCache.has(m[1]!) && (process.arch !== 'x64' || m[2]!.includes('x86-64'))) ldCache.set(m[1]!, m[3]!);
    }
    break;
  }
  return ldCache;
}

function searchDirs(): string[] {
  const fromEnv = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  const defaults = ['/lib64', '/usr/lib64', '/lib', '/usr/lib', '/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu'];
  return [...fromEnv, ortBindingDir(), ...defaults];
}

/** Where the dynamic loader would find `soname`, or null. */
export function findSharedLibrary(soname: string): string | null {
  for (const dir of searchDirs()) if (existsSync(join(dir, soname))) return join(dir, soname);
  return loaderCache().get(soname) ?? null;
}

/** Other major versions of a library that are present, e.g. libcudart.so.13 when .12 is wanted. */
function otherVersions(soname: string): string[] {
  const stem = soname.replace(/\.so\.\d+$/, '.so.');
  const found = new Set<string>();
  for (const name of loaderCache().keys()) if (name.startsWith(stem) && name !== soname) found.add(name);
  for (const dir of (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean)) {
    try {
      for (const name of readdirSync(dir)) if (/^\S+\.so\.\d+$/.test(name) && name.startsWith(stem) && name !== soname) found.add(name);
    } catch { /* an unreadable folder on the path is not our problem */ }
  }
  return [...found].sort();
}

export interface CudaStatus {
  available: boolean;
  /** Every blocker, most fundamental first, in one line; null when available. */
  reason: string | null;
  /** The most fundamental blocker alone, for messages that list several EPs. */
  summary: string | null;
}

let cached: CudaStatus | undefined;

export function cudaStatus(): CudaStatus {
  cached ??= computeCudaStatus();
  return cached;
}

function computeCudaStatus(): CudaStatus {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    const reason = `onnxruntime-node provides its CUDA EP for Linux x64 only (this is ${process.platform}/${process.arch})`;
    return { available: false, reason, summary: reason };
  }
  const problems: string[] = [];
  const dir = ortBindingDir();
  const missing = PROVIDER_LIBRARIES.filter((f) => !existsSync(join(dir, f)));
  if (missing.length > 0) {
    problems.push(`CUDA EP binaries not installed (${missing.join(', ')} missing in ${dir}); opt in with: ${CUDA_OPT_IN}`);
  }
  for (const [soname, what] of SYSTEM_LIBRARIES) {
    if (findSharedLibrary(soname)) continue;
    const others = otherVersions(soname);
    problems.push(`${what} not found (${soname}${others.length ? `; found ${others.join(', ')}` : ''})`);
  }
  if (problems.length === 0) return { available: true, reason: null, summary: null };
  const summary = missing.length ? `CUDA EP binaries not installed (opt in: ${CUDA_OPT_IN})` : problems[0]!;
  return { available: false, reason: problems.join('; '), summary };
}

/** The first GPU's name for reports; nvidia-smi comes with the driver. */
export function cudaDeviceName(): string {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader', '-i', '0'], { encoding: 'utf8', timeout: 5000 });
  const name = r.status === 0 ? r.stdout.trim().split('\n')[0] : '';
  return name ? `CUDA: ${name}` : 'CUDA device 0';
}
