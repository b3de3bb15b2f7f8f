import { existsSync } from 'node:fs';
import { InferenceSession, Tensor, env } from 'onnxruntime-node';
import { WhittleError } from '../../api/errors.ts';
import { cudaDeviceName, cudaStatus } from './cuda.ts';
import { cpuDeviceName } from './devices.ts';
import { adapterName, probeOrtWebGpu, probeWebGpuAdapters } from './gpu-probe.ts';
import { HOST_DTYPES, hostTensorProblem, isHostDtype, type HostTensor } from './host-tensor.ts';
import { condenseOrtMessage } from './ort-messages.ts';

/**
 * onnxruntime-node sessions with execution-provider selection that never crashes for want of a GPU:
 * an unusable GPU EP becomes CPU plus one line in `fallback` saying why.
 *
 * What onnxruntime-node 1.30 does on a machine without a GPU (checked):
 * - webgpu: session creation throws at once ("Failed to get a WebGPU adapter: No supported
 *   adapters"), and Dawn writes "Warning: Couldn't load Vulkan: libvulkan.so.1 ..." to stderr.
 *   It neither hangs nor falls back by itself. We ask a child process first (gpu-probe.ts), so the
 *   warning and any driver hang stay out of this process.
 * - cuda without the provider libraries: throws "OrtSessionOptionsAppendExecutionProvider_Cuda:
 *   Failed to load shared library" after logging C++ errors to stderr; cuda.ts checks the files
 *   first so we never ask.
 * Nodes a GPU EP has no kernel for (QLinear* on WebGPU) are placed on the CPU EP by onnxruntime
 * itself (it always appends CPU); a session that still fails on a GPU EP is retried on CPU.
 */

export type EpChoice = 'auto' | 'cpu' | 'webgpu' | 'cuda';
export type Ep = 'cpu' | 'webgpu' | 'cuda';
export const EP_CHOICES: readonly EpChoice[] = ['auto', 'cpu', 'webgpu', 'cuda'];

export interface CreateSessionOptions {
  ep?: EpChoice;
  intraOpThreads?: number;
  optimizedModelFilePath?: string;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * Skip the kernels' weight prepacking (onnxruntime's session.disable_prepacking): for a session
   * that is only created to see its optimized graph, where packing copies of every weight costs time
   * and memory for nothing.
   */
  disablePrepacking?: boolean;
  /** How error messages name an in-memory model (a path names itself). */
  label?: string;
}

export interface OpenSession {
  session: InferenceSession;
  ep: Ep;
  /** What ran it, for reports: "CPU: <model> (N threads)", the WebGPU adapter, the CUDA GPU. */
  device: string;
  /** Why the session is not on the EP asked for (one line), or null. */
  fallback: string | null;
}

interface EpVerdict { usable: boolean; reason: string | null }

async function epVerdict(ep: 'webgpu' | 'cuda', brief: boolean): Promise<EpVerdict> {
  if (ep === 'cuda') {
    const s = cudaStatus();
    return { usable: s.available, reason: brief ? s.summary : s.reason };
  }
  const s = await probeOrtWebGpu();
  return { usable: s.available, reason: s.reason };
}

async function gpuDeviceName(ep: 'webgpu' | 'cuda'): Promise<string> {
  if (ep === 'cuda') return cudaDeviceName();
  const { adapters } = await probeWebGpuAdapters();
  return adapters[0] ? `WebGPU: ${adapterName(adapters[0])}` : 'WebGPU adapter';
}

function sessionOptions(ep: Ep, o: CreateSessionOptions): InferenceSession.SessionOptions {
  const opts: InferenceSession.SessionOptions = { executionProviders: [ep] };
  if (o.intraOpThreads !== undefined) opts.intraOpNumThreads = o.intraOpThreads;
  if (o.optimizedModelFilePath !== undefined) opts.optimizedModelFilePath = o.optimizedModelFilePath;
  if (o.graphOptimizationLevel !== undefined) opts.graphOptimizationLevel = o.graphOptimizationLevel;
  if (o.disablePrepacking) opts.extra = { session: { disable_prepacking: '1' } };
  return opts;
}

function load(model: string | Uint8Array, opts: InferenceSession.SessionOptions): Promise<InferenceSession> {
  return typeof model === 'string' ? InferenceSession.create(model, opts) : InferenceSession.create(model, opts);
}

/** onnxruntime's refusal to load a model, as the user's problem with that file. */
function loadError(name: string, err: unknown): WhittleError {
  const msg = condenseOrtMessage(String((err as Error)?.message ?? err), name);
  if (/Could not find an implementation for|No Op registered for|is not a registered function\/op|Unsupported model IR version|opset \d+ is under development|Opset \d+ .*not supported/i.test(msg)) {
    return new WhittleError('UNSUPPORTED', `${name}: onnxruntime ${env.versions.common} cannot run it: ${msg}`, { file: name, cause: err });
  }
  return new WhittleError('BAD_INPUT', `${name}: onnxruntime cannot load it: ${msg}`, { file: name, cause: err });
}

export async function createSession(model: string | Uint8Array, options: CreateSessionOptions = {}): Promise<OpenSession> {
  const name = typeof model === 'string' ? model : (options.label ?? 'model bytes');
  if (typeof model === 'string' && !existsSync(model)) throw new WhittleError('NOT_FOUND', `${model}: no such file`, { file: model });
  const asked = options.ep ?? 'auto';

  // The GPU EPs to try, best first, and why each one that was skipped is unusable.
  const candidates: ('webgpu' | 'cuda')[] = asked === 'auto' ? ['cuda', 'webgpu'] : asked === 'cpu' ? [] : [asked];
  const skipped: string[] = [];
  for (const ep of candidates) {
    const verdict = await epVerdict(ep, asked === 'auto');
    if (!verdict.usable) { skipped.push(`${ep}: ${verdict.reason}`); continue; }
    try {
      const session = await load(model, sessionOptions(ep, options));
      const device = await gpuDeviceName(ep);
      const fallback = asked === 'auto' && skipped.length ? `auto chose ${ep} (${skipped.join('; ')})` : null;
      return { session, ep, device, fallback };
    } catch (err) {
      skipped.push(`${ep}: session failed (${condenseOrtMessage(String((err as Error)?.message ?? err), name)})`);
    }
  }

  let session: InferenceSession;
  try {
    session = await load(model, sessionOptions('cpu', options));
  } catch (err) {
    throw loadError(name, err);
  }
  const fallback = skipped.length === 0 ? null : `${asked === 'auto' ? 'auto: no GPU execution provider usable — ' : ''}${skipped.join('; ')}; running on CPU`;
  return { session, ep: 'cpu', device: cpuDeviceName(options.intraOpThreads), fallback };
}

export interface IoInfo {
  name: string;
  /** onnxruntime's element type ('float32', 'int64', ...), or null for a non-tensor (sequence, map). */
  dtype: string | null;
  /** Fixed dims as numbers, named free dims as their name, unnamed ones as null. onnxruntime reports
   *  an unknown rank as [], the same as a scalar. null for a non-tensor. */
  shape: (number | string | null)[] | null;
}

export interface ModelIo { inputs: IoInfo[]; outputs: IoInfo[] }

function ioInfo(m: InferenceSession.ValueMetadata): IoInfo {
  if (!m.isTensor) return { name: m.name, dtype: null, shape: null };
  return { name: m.name, dtype: m.type, shape: m.shape.map((d) => (d === '' ? null : d)) };
}

export function modelIo(session: InferenceSession): ModelIo {
  return { inputs: session.inputMetadata.map(ioInfo), outputs: session.outputMetadata.map(ioInfo) };
}

/** Checks feeds against the model's inputs so a mismatch names the input, not a C++ frame. */
function checkFeeds(io: ModelIo, feeds: Record<string, HostTensor>): void {
  const expected = new Set(io.inputs.map((i) => i.name));
  for (const name of Object.keys(feeds)) {
    if (!expected.has(name)) throw new WhittleError('BAD_INPUT', `input "${name}" is not an input of the model (inputs: ${[...expected].join(', ')})`);
  }
  for (const input of io.inputs) {
    const t = feeds[input.name];
    if (!t) throw new WhittleError('BAD_INPUT', `input "${input.name}" is missing`);
    const problem = hostTensorProblem(t);
    if (problem) throw new WhittleError('BAD_INPUT', `input "${input.name}": ${problem}`);
    const shape = input.shape ?? [];
    const fits = input.dtype === t.dtype && (shape.length === 0 || (shape.length === t.dims.length && shape.every((d, i) => typeof d !== 'number' || d === t.dims[i])));
    if (!fits) {
      const want = `${input.dtype} [${shape.map((d) => d ?? '?').join(',')}]`;
      throw new WhittleError('BAD_INPUT', `input "${input.name}": the model expects ${want}, got ${t.dtype} [${t.dims.join(',')}]`);
    }
  }
}

function toOrtTensor(t: HostTensor): Tensor {
  return new Tensor(t.dtype, t.data, t.dims);
}

function fromOrtTensor(name: string, t: Tensor): HostTensor {
  if (!isHostDtype(t.type)) throw new WhittleError('UNSUPPORTED', `output "${name}" has element type ${t.type}, which Whittle does not read`);
  let data = t.data as HostTensor['data'];
  // With a global Float16Array, onnxruntime-common may hand back one; we carry float16 as bits.
  if (t.type === 'float16' && !(data instanceof Uint16Array)) {
    const v = data as unknown as ArrayBufferView;
    data = new Uint16Array(v.buffer, v.byteOffset, v.byteLength / 2);
  }
  const host = { dtype: t.type, dims: [...t.dims], data } as HostTensor;
  if (!(host.data instanceof HOST_DTYPES[host.dtype])) throw new WhittleError('INTERNAL', `output "${name}": unexpected ${data.constructor.name} for ${t.type}`);
  return host;
}

export async function runSession(session: InferenceSession, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  checkFeeds(modelIo(session), feeds);
  const ortFeeds: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = toOrtTensor(t);
  let results: InferenceSession.OnnxValueMapType;
  try {
    results = await session.run(ortFeeds);
  } catch (err) {
    throw new WhittleError('RUNTIME', `onnxruntime failed to run the model: ${condenseOrtMessage(String((err as Error)?.message ?? err))}`, { cause: err });
  }
  const out: Record<string, HostTensor> = {};
  for (const [name, value] of Object.entries(results)) out[name] = fromOrtTensor(name, value as Tensor);
  return out;
}
