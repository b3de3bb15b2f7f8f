import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Which TensorFlow.js to run TF.js models and training on (SPEC §7): `@tensorflow/tfjs-node-gpu`
 * when it is installed and loads, else `@tensorflow/tfjs-node`, else `@tensorflow/tfjs` with the
 * wasm backend (SIMD), else its pure-JS cpu backend. The native packages download libtensorflow at
 * install time, so they are never dependencies of this project: a user installs one and it is used.
 * Each package that was tried and not used is reported with the reason, never fatal.
 */

export type TfModule = typeof import('@tensorflow/tfjs');

export interface TfRuntime {
  tf: TfModule;
  /** The npm package whose API `tf` is. */
  package: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node' | '@tensorflow/tfjs';
  /** tf.getBackend() after initialisation: tensorflow, wasm or cpu. */
  backend: string;
  /** What does the arithmetic, in words: "CPU, wasm backend (SIMD, 1 thread)". */
  device: string;
  /** One line per runtime tried and skipped, with why (shown by `whittle devices` and in job logs). */
  notes: string[];
}

export type TfBackendChoice = 'auto' | 'node-gpu' | 'node' | 'wasm' | 'cpu';

let cached: { key: string; runtime: Promise<TfRuntime> } | null = null;

/**
 * Loads TF.js once per process. WHITTLE_TF_BACKEND=node-gpu|node|wasm|cpu forces a choice.
 * `training`: the wasm backend has no gradient kernels for convolutions (Conv2DBackpropFilter),
 * so training skips it and uses the cpu backend when no native package is installed.
 * TF.js has one global backend per process: asking for a different one later switches it.
 */
export function loadTf(options: { choice?: TfBackendChoice; training?: boolean } = {}): Promise<TfRuntime> {
  const choice = options.choice ?? (process.env.WHITTLE_TF_BACKEND as TfBackendChoice | undefined) ?? 'auto';
  const key = `${choice}:${options.training ? 'train' : 'infer'}`;
  if (cached?.key !== key) cached = { key, runtime: load(choice, options.training ?? false) };
  return cached.runtime;
}

const require = createRequire(import.meta.url);

function firstLine(err: unknown): string {
  return String(err instanceof Error ? err.message : err).split('\n')[0]!.slice(0, 200);
}

async function load(choice: TfBackendChoice, training: boolean): Promise<TfRuntime> {
  const notes: string[] = [];
  const wants = (c: TfBackendChoice) => choice === 'auto' || choice === c;
  for (const [pkg, c] of [['@tensorflow/tfjs-node-gpu', 'node-gpu'], ['@tensorflow/tfjs-node', 'node']] as const) {
    if (!wants(c)) continue;
    try {
      require.resolve(pkg);
    } catch {
      notes.push(`${pkg} is not installed (its install downloads libtensorflow; install it yourself to use it)`);
      continue;
    }
    try {
      const tf = (await import(pkg)) as TfModule;
      await tf.ready();
      const device = c === 'node-gpu' ? 'libtensorflow with CUDA: the GPU when TensorFlow finds one, else CPU' : 'CPU through libtensorflow';
      return { tf, package: pkg, backend: tf.getBackend(), device, notes };
    } catch (err) {
      notes.push(`${pkg} is installed but failed to load: ${firstLine(err)}`);
    }
  }
  const tf = (await import('@tensorflow/tfjs')) as TfModule;
  if (training && choice === 'auto') notes.push('wasm backend skipped for training: it has no convolution gradient kernels');
  else if (wants('wasm')) {
    try {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      const dist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
      wasm.setWasmPaths(pathToFileURL(join(dist, '/')).href.replace(/^file:\/\//, ''));
      if (await tf.setBackend('wasm')) {
        await tf.ready();
        const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
        const threads = wasm.getThreadsCount();
        const device = `CPU, wasm backend (${simd ? 'SIMD' : 'no SIMD'}, ${threads} thread${threads === 1 ? '' : 's'})`;
        return { tf, package: '@tensorflow/tfjs', backend: 'wasm', device, notes };
      }
      notes.push('@tensorflow/tfjs-backend-wasm did not initialise');
    } catch (err) {
      notes.push(`@tensorflow/tfjs-backend-wasm failed: ${firstLine(err)}`);
    }
  }
  await tf.setBackend('cpu');
  await tf.ready();
  // the cpu backend's console banner advertises tfjs-node; the notes already say what was skipped
  tf.enableProdMode();
  return { tf, package: '@tensorflow/tfjs', backend: 'cpu', device: 'CPU, plain JavaScript backend (slowest)', notes };
}
