import { WhittleError, type ErrorCode } from './errors.ts';
import { RequestEnvelope, type ReplyEnvelope } from './envelope.ts';
import { EVENTS, isMethodName, METHODS, type EventName, type EventPayload, type MethodName, type MethodParams, type MethodResult } from './methods.ts';

/** Context of one call: which transport it came through (for path policies and logs). */
export interface CallContext {
  transport: 'electron' | 'websocket' | 'test';
}

/** What an engine implements: one function per method, receiving validated parameters. */
export type Handlers = { [M in MethodName]: (params: MethodParams<M>, ctx: CallContext) => Promise<MethodResult<M>> | MethodResult<M> };

export type Dispatch = (request: unknown, ctx: CallContext) => Promise<ReplyEnvelope>;

function errorReply(id: ReplyEnvelope['id'], code: ErrorCode, message: string): ReplyEnvelope {
  return { id, ok: false, error: { code, message } };
}

function issueText(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  const first = issues[0];
  if (!first) return 'invalid';
  return `${first.path.map(String).join('.') || '(root)'}: ${first.message}`;
}

/**
 * Turns handlers into the one function both transports call with whatever arrived. The request,
 * its parameters and the handler's result are all validated; errors come back as `{code, message}`
 * (a WhittleError's own code, INTERNAL for anything unexpected — never a stack).
 */
export function createDispatcher(handlers: Handlers, options: { onInternalError?: (method: string, err: unknown) => void } = {}): Dispatch {
  return async (request, ctx) => {
    const envelope = RequestEnvelope.safeParse(request);
    if (!envelope.success) {
      const id = typeof (request as { id?: unknown })?.id === 'number' || typeof (request as { id?: unknown })?.id === 'string' ? (request as { id: number | string }).id : null;
      return errorReply(id, 'BAD_USAGE', `not a request envelope: ${issueText(envelope.error.issues)}`);
    }
    const { id, method, params } = envelope.data;
    if (!isMethodName(method)) return errorReply(id, 'BAD_USAGE', `unknown method "${method}"`);
    const def = METHODS[method];
    const input = def.input.safeParse(params ?? {});
    if (!input.success) return errorReply(id, 'BAD_USAGE', `${method}: ${issueText(input.error.issues)}`);
    let result: unknown;
    try {
      const handler = handlers[method] as (p: unknown, c: CallContext) => unknown;
      result = await handler(input.data, ctx);
    } catch (err) {
      if (err instanceof WhittleError) return errorReply(id, err.code, err.message);
      options.onInternalError?.(method, err);
      return errorReply(id, 'INTERNAL', `${method} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    const output = def.output.safeParse(result);
    if (!output.success) {
      options.onInternalError?.(method, output.error);
      return errorReply(id, 'INTERNAL', `${method} produced a result that breaks the contract: ${issueText(output.error.issues)}`);
    }
    return { id, ok: true, result: output.data };
  };
}

/** Validates a push before it leaves the engine; a malformed one is a bug, so it throws. */
export function checkedPush<E extends EventName>(event: E, payload: EventPayload<E>): { event: E; payload: EventPayload<E> } {
  const parsed = EVENTS[event].safeParse(payload);
  if (!parsed.success) throw new Error(`push ${event} breaks the contract: ${issueText(parsed.error.issues)}`);
  return { event, payload: parsed.data as EventPayload<E> };
}
