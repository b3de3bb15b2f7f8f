import { z } from 'zod';
import { ErrorInfo } from './schemas.ts';

/**
 * The three messages every transport carries (SPEC §5): a request, its reply, and pushes.
 * Sizes are bounded so a hostile or broken peer cannot make the other side parse megabytes of
 * nonsense: parameters are small (paths, options); files travel by path or upload, never inline.
 */
export const MAX_MESSAGE_CHARS = 1 << 20;

export const RequestEnvelope = z.object({
  id: z.union([z.number().int().nonnegative(), z.string().min(1).max(64)]),
  method: z.string().min(1).max(64),
  params: z.unknown().optional(),
}).strict();
export type RequestEnvelope = z.infer<typeof RequestEnvelope>;

export const ReplyEnvelope = z.union([
  z.object({ id: z.union([z.number(), z.string()]), ok: z.literal(true), result: z.unknown() }).strict(),
  z.object({ id: z.union([z.number(), z.string()]).nullable(), ok: z.literal(false), error: ErrorInfo }).strict(),
]);
export type ReplyEnvelope = z.infer<typeof ReplyEnvelope>;

export const PushEnvelope = z.object({ event: z.string().min(1), payload: z.unknown() }).strict();
export type PushEnvelope = z.infer<typeof PushEnvelope>;

/** Parses one text frame into a request; throws a BAD_USAGE-style message for anything else. */
export function parseRequestText(text: string): RequestEnvelope {
  if (text.length > MAX_MESSAGE_CHARS) throw new Error(`message of ${text.length} characters is over the ${MAX_MESSAGE_CHARS} limit`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error('message is not JSON');
  }
  const parsed = RequestEnvelope.safeParse(value);
  if (!parsed.success) throw new Error(`not a request envelope: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}
