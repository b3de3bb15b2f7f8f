import { fstatSync, writeSync } from 'node:fs';
import { z } from 'zod';

/**
 * The side channel between a job process (the `whittle` CLI run by the engine) and the engine.
 * stdout stays the command's `--json` document and stderr its human messages; what the engine
 * needs while the job runs (progress, the store run it started, warnings) travels as JSON lines
 * on an extra pipe whose descriptor the engine names in WHITTLE_PROGRESS_FD.
 */
export const PROGRESS_FD_ENV = 'WHITTLE_PROGRESS_FD';

export const ChannelMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('progress'), phase: z.string(), done: z.number(), total: z.number() }),
  z.object({ type: z.literal('run'), runId: z.string().min(1) }),
  z.object({ type: z.literal('log'), level: z.enum(['info', 'warn', 'error']), message: z.string() }),
]);
export type ChannelMessage = z.infer<typeof ChannelMessage>;

/** One line of the channel, or null for anything else (a job must not be able to break the engine). */
export function parseChannelLine(line: string): ChannelMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  const parsed = ChannelMessage.safeParse(value);
  return parsed.success ? parsed.data : null;
}

/**
 * The descriptor, taken out of the environment as this module loads: processes the CLI starts
 * (GPU probes, onnxruntime helpers) must not inherit a number that means something else to them.
 * Only a pipe or socket is accepted, so a stale variable cannot make us write into a file.
 */
function takeDescriptor(): number | null {
  const raw = process.env[PROGRESS_FD_ENV];
  if (raw === undefined) return null;
  delete process.env[PROGRESS_FD_ENV];
  const fd = Number(raw);
  if (!Number.isInteger(fd) || fd < 3) return null;
  try {
    const st = fstatSync(fd);
    return st.isFIFO() || st.isSocket() ? fd : null;
  } catch {
    return null;
  }
}

let descriptor = takeDescriptor();
let lastProgressAt = 0;
let lastPhase = '';

/** True when this process runs as an engine job and has someone to report to. */
export function jobChannelActive(): boolean {
  return descriptor !== null;
}

/**
 * Writes one message, synchronously, so that nothing is lost when the process exits right after
 * (Ctrl-C handling calls process.exit). The engine reads continuously, so the write does not wait
 * long; if the engine is gone (EPIPE) the channel closes and the job carries on.
 */
export function sendToEngine(message: ChannelMessage): void {
  if (descriptor === null) return;
  const line = Buffer.from(JSON.stringify(message) + '\n');
  try {
    for (let off = 0; off < line.length;) off += writeSync(descriptor, line, off);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') descriptor = null;
  }
}

/**
 * Progress, thinned out here already (at most 20 lines a second): a per-sample callback over
 * 10,000 samples should not become 10,000 lines. A new phase and the last step always go out.
 */
export function sendProgress(phase: string, done: number, total: number): void {
  if (descriptor === null) return;
  const now = Date.now();
  const important = phase !== lastPhase || done >= total;
  if (!important && now - lastProgressAt < 50) return;
  lastProgressAt = now;
  lastPhase = phase;
  sendToEngine({ type: 'progress', phase, done, total });
}

/** For tests: point the channel at another descriptor (null closes it). */
export function setChannelDescriptorForTest(fd: number | null): void {
  descriptor = fd;
  lastProgressAt = 0;
  lastPhase = '';
}
