import { WhittleError } from '../../api/errors.ts';
import { GpuDevice } from '../../native-models/gpu/device.ts';
import type { EpChoice } from '../../native-models/runtimes/onnxruntime.ts';

/**
 * Where a pass's own arithmetic runs (GPTQ, SparseGPT, magnitude thresholds) — apart from the
 * execution provider that runs the model for its calibration data: 'cpu', 'gpu' (the WebGPU compute
 * device; an error when there is none) or 'auto' (the GPU when usable, else the CPU with a warning).
 */
export type ComputeChoice = 'cpu' | 'gpu' | 'auto';

/**
 * The compute choice that follows the execution provider asked for: --ep webgpu puts the math on
 * the WebGPU compute device too, auto (and cuda, whose kernels Whittle has none of) use it when there
 * is one; WHITTLE_GPU=off keeps it on the CPU.
 */
export function computeFor(ep: EpChoice | undefined): ComputeChoice {
  return ep === 'webgpu' ? 'gpu' : ep === 'auto' || ep === 'cuda' ? 'auto' : 'cpu';
}

/**
 * The WebGPU compute device `compute` asks for: null for 'cpu' (or unset); for 'gpu' an UNSUPPORTED
 * error saying why there is none; for 'auto' null with a warning saying so. `what` names the work
 * ("GPTQ") in both.
 */
export async function openComputeDevice(what: string, compute: ComputeChoice | undefined, warn: (message: string) => void): Promise<GpuDevice | null> {
  if ((compute ?? 'cpu') === 'cpu') return null;
  if (compute !== 'gpu' && compute !== 'auto') throw new WhittleError('BAD_USAGE', `${what}: compute must be 'cpu', 'gpu' or 'auto', got ${String(compute)}`);
  const opened = await GpuDevice.open();
  if (!('reason' in opened)) return opened;
  if (compute === 'gpu') throw new WhittleError('UNSUPPORTED', `${what} on the GPU: ${opened.reason}`);
  warn(`${what} runs on the CPU: ${opened.reason}`);
  return null;
}
