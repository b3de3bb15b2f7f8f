import { MAX_MESSAGE_CHARS, RequestEnvelope, type ReplyEnvelope } from '../../api/envelope.ts';
import { errorReply } from './engine-link.ts';

/**
 * The boundary check for what the renderer sends through `whittle:call`: a request envelope of
 * bounded size, or an error reply saying why not (the renderer's client shows it like any other
 * error). IPC delivers structured-cloned values, not text, so the size is measured as the JSON the
 * engine would otherwise have parsed; values JSON cannot carry (cycles, BigInt) are refused.
 */
export function parseIpcRequest(value: unknown): { ok: true; request: RequestEnvelope } | { ok: false; reply: ReplyEnvelope } {
  const rawId = (value as { id?: unknown } | null)?.id;
  const id = typeof rawId === 'number' || (typeof rawId === 'string' && rawId.length <= 64) ? rawId : null;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    return { ok: false, reply: errorReply(id, 'BAD_USAGE', 'request is not plain JSON data') };
  }
  if (text === undefined) return { ok: false, reply: errorReply(id, 'BAD_USAGE', 'request is empty') };
  if (text.length > MAX_MESSAGE_CHARS) {
    return { ok: false, reply: errorReply(id, 'BAD_USAGE', `request of ${text.length} characters is over the ${MAX_MESSAGE_CHARS} limit`) };
  }
  // Parse the JSON form, so what travels on is plain data whatever the renderer cloned in.
  const parsed = RequestEnvelope.safeParse(JSON.parse(text));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.map(String).join('.') || '(root)';
    return { ok: false, reply: errorReply(id, 'BAD_USAGE', `not a request envelope: ${where}: ${issue?.message ?? 'invalid'}`) };
  }
  return { ok: true, request: parsed.data };
}
