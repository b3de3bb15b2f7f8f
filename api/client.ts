import { WhittleError, ERROR_CODES, type ErrorCode } from './errors.ts';
import { PushEnvelope, ReplyEnvelope } from './envelope.ts';
import { EVENTS, isEventName, METHODS, type EventName, type EventPayload, type MethodInput, type MethodName, type MethodResult } from './methods.ts';

/**
 * What a transport does: send a request envelope, and hand over every reply and push that comes
 * back. Electron's preload and the browser's WebSocket both fit this; the client is the same.
 */
export interface Transport {
  send(message: { id: number; method: string; params: unknown }): void;
  /** Registers the one receiver of replies and pushes (already-parsed JSON values). */
  onMessage(receive: (message: unknown) => void): void;
  /** Optional: the transport tells the client it lost its connection; pending calls fail. */
  onClose?(closed: (reason: string) => void): void;
}

export interface Client {
  call<M extends MethodName>(method: M, params: MethodInput<M>): Promise<MethodResult<M>>;
  subscribe<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void;
}

/** An error reply, as the caller sees it: the engine's code and message. */
export class CallError extends WhittleError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'CallError';
  }
}

export function createClient(transport: Transport): Client {
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; method: MethodName }>();
  const listeners = new Map<EventName, Set<(payload: unknown) => void>>();

  transport.onMessage((message) => {
    const push = PushEnvelope.safeParse(message);
    if (push.success) {
      const { event, payload } = push.data;
      if (!isEventName(event)) return; // a newer engine's event: ignore rather than break
      const parsed = EVENTS[event].safeParse(payload);
      if (!parsed.success) return;
      for (const l of listeners.get(event) ?? []) l(parsed.data);
      return;
    }
    const reply = ReplyEnvelope.safeParse(message);
    if (!reply.success || typeof reply.data.id !== 'number') return;
    const waiting = pending.get(reply.data.id);
    if (!waiting) return;
    pending.delete(reply.data.id);
    if (reply.data.ok) {
      const out = METHODS[waiting.method].output.safeParse(reply.data.result);
      if (out.success) waiting.resolve(out.data);
      else waiting.reject(new CallError('INTERNAL', `${waiting.method}: the engine's reply breaks the contract`));
    } else {
      const code = (ERROR_CODES as readonly string[]).includes(reply.data.error.code) ? reply.data.error.code : 'INTERNAL';
      waiting.reject(new CallError(code, reply.data.error.message));
    }
  });
  transport.onClose?.((reason) => {
    for (const [id, w] of pending) {
      w.reject(new CallError('RUNTIME', `connection to the engine lost: ${reason}`));
      pending.delete(id);
    }
  });

  return {
    call(method, params) {
      const input = METHODS[method].input.safeParse(params ?? {});
      if (!input.success) return Promise.reject(new CallError('BAD_USAGE', `${method}: ${input.error.issues[0]?.message ?? 'invalid parameters'}`));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject, method });
        transport.send({ id, method, params: params ?? {} });
      });
    },
    subscribe(event, listener) {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      set.add(listener as (payload: unknown) => void);
      return () => set!.delete(listener as (payload: unknown) => void);
    },
  };
}
