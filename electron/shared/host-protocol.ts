import { z } from 'zod';
import { PushEnvelope, ReplyEnvelope, RequestEnvelope } from '../../api/envelope.ts';

/**
 * Messages between the main process and the engine host (the utility process that runs the
 * engine). Main numbers each forwarded call itself (`seq`): the renderer's own ids restart at 1
 * when the page reloads, so they cannot tell two in-flight calls apart across a reload.
 */
export const ToHost = z.discriminatedUnion('type', [
  z.object({ type: z.literal('call'), seq: z.number().int().nonnegative(), request: RequestEnvelope }).strict(),
  z.object({ type: z.literal('shutdown') }).strict(),
]);
export type ToHost = z.infer<typeof ToHost>;

export const FromHost = z.discriminatedUnion('type', [
  /** The engine is created and takes calls. */
  z.object({ type: z.literal('ready'), pid: z.number().int() }).strict(),
  z.object({ type: z.literal('reply'), seq: z.number().int().nonnegative(), reply: ReplyEnvelope }).strict(),
  z.object({ type: z.literal('push'), push: PushEnvelope }).strict(),
  /** The host cannot go on (the engine failed to start); it exits right after this. */
  z.object({ type: z.literal('fatal'), message: z.string() }).strict(),
]);
export type FromHost = z.infer<typeof FromHost>;

/** The host's start-up settings, passed by main as one JSON argument (`--whittle-host=<json>`). */
export const HostConfig = z.object({
  /** The command that runs the CLI in a job process: [Electron binary, dist/cli/whittle.js]. */
  jobCommand: z.array(z.string().min(1)).min(1),
  /** Where the built-in example models live, when this build ships or can see any. */
  examplesRoot: z.string().min(1).optional(),
}).strict();
export type HostConfig = z.infer<typeof HostConfig>;

export const HOST_CONFIG_FLAG = '--whittle-host=';

export function hostConfigArg(config: HostConfig): string {
  return HOST_CONFIG_FLAG + JSON.stringify(config);
}

/** The config from the host's argv, or an error message naming what is wrong. */
export function parseHostConfig(argv: readonly string[]): HostConfig | string {
  const arg = argv.find((a) => a.startsWith(HOST_CONFIG_FLAG));
  if (!arg) return `missing ${HOST_CONFIG_FLAG}<json> argument`;
  let value: unknown;
  try {
    value = JSON.parse(arg.slice(HOST_CONFIG_FLAG.length));
  } catch {
    return `${HOST_CONFIG_FLAG} is not JSON`;
  }
  const parsed = HostConfig.safeParse(value);
  return parsed.success ? parsed.data : `${HOST_CONFIG_FLAG}: ${parsed.error.issues[0]?.message ?? 'invalid'}`;
}
