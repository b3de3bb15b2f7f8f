import { fileURLToPath } from 'node:url';
import type {} from 'webgpu';
import { explainNoAdapter, nativeBackends, runChildProbe } from '../runtimes/gpu-probe.ts';

/**
 * The GPU compute device of SPEC §7: a WebGPU device from the npm `webgpu` package (Dawn) that runs
 * the WGSL kernels of this folder (Hessians, GPTQ column updates, tensor statistics).
 *
 * Discovery runs in a child process first (compute-probe-child.mjs: it finds an adapter and runs a
 * test compute shader), so a broken driver costs a probe; only an adapter that passed is opened in
 * this process. Software adapters (Mesa llvmpipe/lavapipe, SwiftShader) are refused for real work —
 * they are slower than the CPU path — unless `allowSoftware` (or WHITTLE_GPU_SOFTWARE=1) asks for
 * them: that is how the WGSL kernels are checked on a machine without a GPU (docs/gpu.md).
 * WHITTLE_GPU=off turns the device off.
 */

export interface ComputeAdapter {
  backend: string;
  featureLevel: 'core' | 'compatibility';
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  fallback: boolean;
  software: boolean;
  /** The test compute shader ran and gave the right answer. */
  ok: boolean;
  error?: string;
  limits: Record<string, number>;
}

export interface ComputeStatus {
  /** The adapter compute work would use, or null. */
  adapter: ComputeAdapter | null;
  /** Every adapter found (usable or not). */
  adapters: ComputeAdapter[];
  /** Why there is none, when there is none. */
  reason: string | null;
}

export interface ProbeOptions {
  allowSoftware?: boolean;
  timeoutMs?: number;
}

const CHILD = fileURLToPath(new URL('./compute-probe-child.mjs', import.meta.url));

export function softwareAllowed(o: ProbeOptions = {}): boolean {
  return o.allowSoftware ?? process.env.WHITTLE_GPU_SOFTWARE === '1';
}

/** A short readable name: "NVIDIA H200 (vulkan)". */
export function computeAdapterName(a: ComputeAdapter): string {
  const name = a.description || a.device || [a.vendor, a.architecture].filter(Boolean).join(' ') || 'unknown adapter';
  return `${name} (${a.backend}${a.featureLevel === 'compatibility' ? ', compatibility mode' : ''}${a.software ? ', software' : ''})`;
}

const cache = new Map<string, Promise<ComputeStatus>>();

/** Which adapter the compute kernels can use here, and why none when none (cached per process). */
export function computeStatus(o: ProbeOptions = {}): Promise<ComputeStatus> {
  if (process.env.WHITTLE_GPU === 'off') return Promise.resolve({ adapter: null, adapters: [], reason: 'GPU compute turned off (WHITTLE_GPU=off)' });
  const software = softwareAllowed(o);
  const key = String(software);
  let p = cache.get(key);
  if (!p) {
    p = probe(software, o.timeoutMs);
    cache.set(key, p);
  }
  return p;
}

async function probe(software: boolean, timeoutMs?: number): Promise<ComputeStatus> {
  const r = await runChildProbe(CHILD, [JSON.stringify({ backends: nativeBackends(), software })], timeoutMs);
  const a = r.answer as { adapters?: ComputeAdapter[]; errors?: string[] } | null;
  if (!a?.adapters) {
    const last = r.stderr.trim().split('\n').filter(Boolean).pop() ?? '';
    const why = r.timedOut ? 'the GPU probe timed out (the driver may be hung)' : `the GPU probe failed (${r.signal ?? `exit ${r.exitCode ?? '?'}`})${last ? `: ${last}` : ''}`;
    return { adapter: null, adapters: [], reason: why };
  }
  const adapters = a.adapters;
  const usable = adapters.filter((x) => x.ok && (software || !x.software));
  if (usable[0]) return { adapter: usable[0], adapters, reason: null };
  const reasons: string[] = [];
  for (const x of adapters) {
    if (!x.ok) reasons.push(`${computeAdapterName(x)}: its test compute shader failed (${x.error ?? 'wrong result'})`);
    else if (x.software) reasons.push(`only a software adapter, ${computeAdapterName(x)}: slower than the CPU path (WHITTLE_GPU_SOFTWARE=1 uses it anyway)`);
  }
  if (adapters.length === 0) reasons.push(explainNoAdapter(r.stderr) + (a.errors?.length ? `; ${a.errors.join('; ')}` : ''));
  return { adapter: null, adapters, reason: reasons.join('; ') };
}

// WebGPU flag values (the `webgpu` package does not put GPUBufferUsage on globalThis)
export const BufferUsage = { MAP_READ: 1, MAP_WRITE: 2, COPY_SRC: 4, COPY_DST: 8, UNIFORM: 64, STORAGE: 128 } as const;
const MAP_READ_MODE = 1;

/** One uniform slot per dispatch, at the alignment WebGPU requires for buffer offsets. */
const SLOT = 256;

interface Dispatch { pipeline: GPUComputePipeline; buffers: GPUBuffer[]; params: ArrayBuffer | null; groups: [number, number, number] }

/**
 * An open compute device: buffers, cached pipelines, and batches of dispatches encoded into one
 * compute pass (WebGPU orders the dispatches of a pass and makes each one's writes visible to the
 * next). Each dispatch's parameters live in its own slot of one uniform buffer per batch.
 */
/** The Dawn instance and adapter of each device must stay reachable: collecting them tears the device down under us. */
const keptAlive = new WeakMap<GpuDevice, unknown[]>();

export class GpuDevice {
  readonly name: string;
  readonly limits: GPUSupportedLimits;
  #pipelines = new Map<string, GPUComputePipeline>();
  #lost: string | null = null;
  #error: string | null = null;

  private constructor(readonly device: GPUDevice, readonly adapter: ComputeAdapter, keep: unknown[]) {
    keptAlive.set(this, keep);
    this.name = computeAdapterName(adapter);
    this.limits = device.limits;
    void device.lost.then((info) => { this.#lost = info.message || String(info.reason); });
    // WGSL and validation errors surface at the next read or finish, as an exception
    device.onuncapturederror = (e) => { this.#error ??= String(e.error?.message ?? e).split('\n').filter(Boolean).slice(0, 3).join(' '); };
  }

  /** Opens the adapter computeStatus chose, in this process, or says why not. */
  static async open(o: ProbeOptions = {}): Promise<GpuDevice | { reason: string }> {
    const status = await computeStatus(o);
    if (!status.adapter) return { reason: status.reason ?? 'no GPU adapter' };
    const a = status.adapter;
    const { create } = await import('webgpu');
    const gpu = create([`backend=${a.backend}`]);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance', featureLevel: a.featureLevel } as GPURequestAdapterOptions);
    if (!adapter) return { reason: `${computeAdapterName(a)} passed the probe but could not be opened in this process` };
    const want = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY', 'maxStorageBuffersPerShaderStage'] as const;
    const requiredLimits: Record<string, number> = {};
    for (const k of want) requiredLimits[k] = adapter.limits[k];
    const device = await adapter.requestDevice({ requiredLimits });
    return new GpuDevice(device, a, [gpu, adapter]);
  }

  get lost(): string | null {
    return this.#lost;
  }

  /** The pipeline of a WGSL module (cached by key), with override constants. */
  pipeline(key: string, code: string, constants: Record<string, number> = {}): GPUComputePipeline {
    let p = this.#pipelines.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ code, label: key });
      p = this.device.createComputePipeline({ layout: 'auto', label: key, compute: { module, entryPoint: 'main', constants } });
      this.#pipelines.set(key, p);
    }
    return p;
  }

  /** A storage buffer of `bytes` (rounded up to 4), optionally filled. */
  storage(bytes: number, data?: ArrayBufferView, label?: string): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 4) * 4);
    const buffer = this.device.createBuffer({ size, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST, mappedAtCreation: data !== undefined, ...(label ? { label } : {}) });
    if (data) {
      new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      buffer.unmap();
    }
    return buffer;
  }

  write(buffer: GPUBuffer, data: ArrayBufferView, offsetBytes = 0): void {
    // Dawn's binding takes no SharedArrayBuffer (what the CPU threads share): copy those first
    if (data.buffer instanceof SharedArrayBuffer) data = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    this.device.queue.writeBuffer(buffer, offsetBytes, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  }

  /** Copies `bytes` of a buffer back (waits for the queued work). */
  async read(buffer: GPUBuffer, bytes: number, offsetBytes = 0): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(buffer, offsetBytes, staging, 0, size);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(MAP_READ_MODE);
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    this.#check();
    return out;
  }

  #check(): void {
    if (this.#lost) throw new Error(`the GPU device was lost: ${this.#lost}`);
    if (this.#error) {
      const e = this.#error;
      this.#error = null;
      throw new Error(`WebGPU error: ${e}`);
    }
  }

  batch(): DispatchBatch {
    return new DispatchBatch(this);
  }

  /** Waits until the queued work is done. */
  async finish(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    this.#check();
  }

  destroy(): void {
    this.device.destroy();
  }
}

/**
 * Dispatches recorded in order and submitted together. A kernel's bindings are: 0 = its uniform
 * parameters (when it has any), then the buffers in the order given.
 */
export class DispatchBatch {
  #list: Dispatch[] = [];
  constructor(readonly gpu: GpuDevice) {}

  get size(): number {
    return this.#list.length;
  }

  dispatch(pipeline: GPUComputePipeline, buffers: GPUBuffer[], params: ArrayBuffer | null, groups: [number, number?, number?]): this {
    const [x, y = 1, z = 1] = groups;
    if (x > 0 && y > 0 && z > 0) this.#list.push({ pipeline, buffers, params, groups: [x, y, z] });
    return this;
  }

  /** Encodes and submits everything recorded (one uniform buffer, one compute pass). */
  submit(): void {
    if (this.#list.length === 0) return;
    const device = this.gpu.device;
    const withParams = this.#list.filter((d) => d.params);
    let uniforms: GPUBuffer | null = null;
    if (withParams.length) {
      uniforms = device.createBuffer({ size: withParams.length * SLOT, usage: BufferUsage.UNIFORM, mappedAtCreation: true });
      const bytes = new Uint8Array(uniforms.getMappedRange());
      withParams.forEach((d, i) => bytes.set(new Uint8Array(d.params!), i * SLOT));
      uniforms.unmap();
    }
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    let slot = 0;
    for (const d of this.#list) {
      const entries: GPUBindGroupEntry[] = [];
      let b = 0;
      if (d.params) entries.push({ binding: b++, resource: { buffer: uniforms!, offset: slot++ * SLOT, size: d.params.byteLength } });
      for (const buf of d.buffers) entries.push({ binding: b++, resource: { buffer: buf } });
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, device.createBindGroup({ layout: d.pipeline.getBindGroupLayout(0), entries }));
      pass.dispatchWorkgroups(...d.groups);
    }
    pass.end();
    device.queue.submit([enc.finish()]);
    this.#list = [];
  }
}

/** Packs u32 / f32 parameter fields (in WGSL struct order, 4 bytes each) into a uniform block. */
export function params(fields: (number | { f32: number })[]): ArrayBuffer {
  const size = Math.max(16, Math.ceil((fields.length * 4) / 16) * 16);
  const buf = new ArrayBuffer(size);
  const view = new DataView(buf);
  fields.forEach((v, i) => {
    if (typeof v === 'number') view.setUint32(i * 4, v >>> 0, true);
    else view.setFloat32(i * 4, v.f32, true);
  });
  return buf;
}
