import { int8Saturation, type Int8Saturation } from './cpu-int8.ts';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { cudaDeviceName, cudaStatus } from './cuda.ts';
import { adapterName, probeOrtWebGpu, probeWebGpuAdapters } from './gpu-probe.ts';

/**
 * What can actually run models here (`whittle devices`, and the environment recorded with a run).
 * Nothing in this file loads a runtime: GPU questions go to child processes, CUDA and TF.js are
 * answered from files on disk, so a broken driver or a heavy native module cannot take the CLI down.
 */

export interface ProviderInfo {
  name: string;
  runtime: 'onnxruntime' | 'tfjs';
  available: boolean;
  /** Why it is unavailable, with the fix where there is one; null when available. */
  reason: string | null;
  /** What it runs on, when known and available. */
  device?: string;
  /** The installed package version, for TF.js backends. */
  version?: string;
}

export interface AdapterInfo {
  backend: string;
  vendor: string;
  name: string;
  description?: string;
  architecture?: string;
  /** A software (CPU) adapter such as SwiftShader. */
  fallback?: boolean;
}

export interface DeviceReport {
  providers: ProviderInfo[];
  adapters: AdapterInfo[];
  /** Why there are no adapters, when there are none. */
  adaptersReason: string | null;
  onnxruntimeNode: string | null;
  /** onnxruntime's int8 CPU kernels on this CPU (cpu-int8.ts). */
  int8?: Int8Saturation;
}

export function cpuDeviceName(threads?: number): string {
  const list = cpus();
  const model = list[0]?.model.trim() || 'unknown CPU';
  return `CPU: ${model} (${threads !== undefined ? `${threads} threads` : `${list.length} logical cores`})`;
}

const requireHere = createRequire(import.meta.url);

function packageVersion(pkg: string): string | null {
  try {
    const json = JSON.parse(readFileSync(requireHere.resolve(`${pkg}/package.json`), 'utf8')) as { version?: string };
    return json.version ?? null;
  } catch {
    return null;
  }
}

/** TF.js backends, best first, with how to get each one. Resolving a path loads nothing. */
const TFJS_BACKENDS: [name: string, pkg: string, note: string | null][] = [
  ['tfjs-node-gpu', '@tensorflow/tfjs-node-gpu', 'Linux x64 with CUDA only'],
  ['tfjs-node', '@tensorflow/tfjs-node', null],
  ['tfjs', '@tensorflow/tfjs', 'pure JavaScript, slowest'],
];

export function tfjsProviders(): ProviderInfo[] {
  return TFJS_BACKENDS.map(([name, pkg, note]) => {
    let installed = false;
    try { requireHere.resolve(pkg); installed = true; } catch { installed = false; }
    const version = installed ? packageVersion(pkg) : null;
    const info: ProviderInfo = { name, runtime: 'tfjs', available: installed, reason: installed ? null : `not installed (npm install ${pkg}${note ? `; ${note}` : ''})` };
    if (version) info.version = version;
    return info;
  });
}

export async function listDevices(): Promise<DeviceReport> {
  const [webgpu, probe] = await Promise.all([probeOrtWebGpu(), probeWebGpuAdapters()]);
  const cuda = cudaStatus();
  const adapters: AdapterInfo[] = probe.adapters.map((a) => ({
    backend: a.backend,
    vendor: a.vendor,
    name: adapterName(a),
    description: a.description,
    architecture: a.architecture,
    fallback: a.fallback,
  }));

  const cpu: ProviderInfo = { name: 'cpu', runtime: 'onnxruntime', available: true, reason: null, device: cpuDeviceName() };
  const gpu: ProviderInfo = { name: 'webgpu', runtime: 'onnxruntime', available: webgpu.available, reason: webgpu.reason };
  if (webgpu.available && adapters[0]) gpu.device = adapters[0].name;
  const nv: ProviderInfo = { name: 'cuda', runtime: 'onnxruntime', available: cuda.available, reason: cuda.reason };
  if (cuda.available) nv.device = cudaDeviceName();

  return {
    providers: [cpu, gpu, nv, ...tfjsProviders()],
    adapters,
    adaptersReason: adapters.length ? null : probe.reason,
    onnxruntimeNode: packageVersion('onnxruntime-node'),
    int8: int8Saturation(),
  };
}
