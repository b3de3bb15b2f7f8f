import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { condenseOrtMessage } from './ort-messages.ts';

/**
 * GPU probes run in a child process with a timeout (gpu-probe-child.mjs): Dawn and the WebGPU EP
 * sit on top of the GPU driver, and a broken driver may hang or crash the process that asks. The
 * answers are cached for the life of this process, since drivers do not appear mid-run.
 */

const CHILD_SCRIPT = fileURLToPath(new URL('./gpu-probe-child.mjs', import.meta.url));

/** A healthy probe takes well under a second; first driver initialisation can take a few. */
const DEFAULT_TIMEOUT_MS = Number(process.env.WHITTLE_GPU_PROBE_TIMEOUT_MS) || 15_000;

export interface ChildProbeResult {
  /** The last stdout line parsed as JSON, or null when the child gave none. */
  answer: unknown;
  stderr: string;
  timedOut: boolean;
  exitCode: number | null;
  signal: string | null;
}

export function runChildProbe(script: string, args: string[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ChildProbeResult> {
  return new Promise((resolve) => {
    const options = {
      timeout: timeoutMs,
      killSignal: 'SIGKILL' as const,
      maxBuffer: 1 << 20,
      // Under Electron, process.execPath is the Electron binary: this makes it behave as node.
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    };
    execFile(process.execPath, [script, ...args], options, (error, stdout, stderr) => {
      const lastLine = stdout.trim().split('\n').pop() ?? '';
      let answer: unknown = null;
      try { answer = lastLine ? JSON.parse(lastLine) : null; } catch { answer = null; }
      const e = error as (NodeJS.ErrnoException & { killed?: boolean; signal?: string; code?: number | string }) | null;
      resolve({
        answer,
        stderr,
        timedOut: Boolean(e?.killed) && answer === null,
        exitCode: typeof e?.code === 'number' ? e.code : e ? null : 0,
        signal: e?.signal ?? null,
      });
    });
  });
}

/** Why a probe that gave no answer failed, in one line. */
function probeFailure(r: ChildProbeResult, timeoutMs: number): string {
  if (r.timedOut) return `GPU probe timed out after ${Math.round(timeoutMs / 1000)} s (the GPU driver may be hung)`;
  const lastErr = r.stderr.trim().split('\n').filter(Boolean).pop() ?? '';
  if (r.signal) return `GPU probe crashed (${r.signal})${lastErr ? ': ' + lastErr : ''}`;
  return `GPU probe failed (exit ${r.exitCode ?? '?'})${lastErr ? ': ' + lastErr : ''}`;
}

/**
 * Turns "no adapter" into its cause. Dawn prints the real reason (a missing Vulkan loader, a driver
 * refusing to start) as a warning on stderr while the API itself only says "no adapter".
 */
export function explainNoAdapter(stderr: string, message = ''): string {
  const loader = /Couldn't load (Vulkan|D3D12|Metal)[^:]*: ([^:\s]+)/.exec(stderr);
  if (loader) return `no GPU adapter (${loader[2]} not found)`;
  const warning = stderr.split('\n').map((l) => l.trim()).find((l) => /^(Warning|Error):/.test(l));
  if (warning) return `no GPU adapter (${warning.replace(/^(Warning|Error):\s*/, '')})`;
  if (!message || /No supported adapters|Failed to get a WebGPU adapter/i.test(message)) return 'no GPU adapter';
  return `WebGPU failed to start: ${condenseOrtMessage(message)}`;
}

export interface ProbeStatus {
  available: boolean;
  reason: string | null;
}

let ortWebGpu: Promise<ProbeStatus> | undefined;

/** Whether onnxruntime-node's WebGPU EP can start here (it is bundled; it needs an adapter). */
export function probeOrtWebGpu(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ProbeStatus> {
  ortWebGpu ??= runChildProbe(CHILD_SCRIPT, ['ort-webgpu'], timeoutMs).then((r) => {
    const a = r.answer as { ok?: boolean; message?: string } | null;
    if (a?.ok) return { available: true, reason: null };
    if (a) return { available: false, reason: explainNoAdapter(r.stderr, a.message) };
    return { available: false, reason: probeFailure(r, timeoutMs) };
  });
  return ortWebGpu;
}

export interface WebGpuAdapter {
  backend: string;
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  fallback: boolean;
}

/** The native WebGPU backends Dawn uses on each platform (what onnxruntime's WebGPU EP runs on). */
export function nativeBackends(platform: NodeJS.Platform = process.platform): string[] {
  if (platform === 'win32') return ['d3d12', 'vulkan'];
  if (platform === 'darwin') return ['metal'];
  return ['vulkan'];
}

let adapters: Promise<{ adapters: WebGpuAdapter[]; reason: string | null }> | undefined;

/** GPU adapters the npm `webgpu` package (Dawn) sees, with why there are none when there are none. */
export function probeWebGpuAdapters(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ adapters: WebGpuAdapter[]; reason: string | null }> {
  adapters ??= runChildProbe(CHILD_SCRIPT, ['adapters', ...nativeBackends()], timeoutMs).then((r) => {
    const a = r.answer as { adapters?: WebGpuAdapter[]; errors?: string[] } | null;
    if (!a?.adapters) return { adapters: [], reason: probeFailure(r, timeoutMs) };
    if (a.adapters.length > 0) return { adapters: a.adapters, reason: null };
    const backendErrors = a.errors?.length ? `; ${a.errors.join('; ')}` : '';
    return { adapters: [], reason: explainNoAdapter(r.stderr) + backendErrors };
  });
  return adapters;
}

/** A readable adapter name from Dawn's adapter info (fields are often partly empty). */
export function adapterName(a: WebGpuAdapter): string {
  return a.description || a.device || [a.vendor, a.architecture].filter(Boolean).join(' ') || 'unknown adapter';
}
