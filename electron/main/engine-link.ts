import type { ErrorCode } from '../../api/errors.ts';
import type { PushEnvelope, ReplyEnvelope, RequestEnvelope } from '../../api/envelope.ts';
import { FromHost, type ToHost } from '../shared/host-protocol.ts';

/**
 * Main's side of the engine host: forwards each request to the utility process, matches replies
 * to callers, passes pushes on, and survives the host dying. When the host exits unexpectedly,
 * every call it had been given gets an error reply (a mutation may or may not have happened, so it
 * is never silently retried), calls it never received wait for the next host, and a new host is
 * started after a short back-off. A host that keeps dying is given up on, so a broken install
 * shows one clear error instead of a restart loop. Runs that were going in the dead host are
 * marked interrupted by the store the next time it opens (SPEC §6).
 *
 * No Electron here: the process is reached through `spawn`, so tests drive it with a fake.
 */

/** What main needs of a started host process. */
export interface HostProcess {
  post(message: ToHost): void;
  kill(): void;
}

/** What the link is told about a host it started. */
export interface HostEvents {
  message(message: unknown): void;
  /** The process is gone; code null when it was killed by a signal or crashed. */
  exit(code: number | null): void;
}

export interface Notice {
  level: 'info' | 'warn' | 'error';
  message: string;
}

export interface EngineLinkOptions {
  spawn(events: HostEvents): HostProcess;
  onPush(push: PushEnvelope): void;
  onNotice?(notice: Notice): void;
  /** Called on every state change (menus, logs). */
  onState?(state: LinkState): void;
  /** Back-off before restart number `attempt` (1, 2, …). Default 250 ms doubling to 5 s. */
  restartDelayMs?(attempt: number): number;
  /** Unexpected exits in a row (without a stable run between them) before giving up. Default 5. */
  maxRestarts?: number;
  /** A host that stayed up this long has proven itself: its failure count starts again. Default 30 s. */
  stableAfterMs?: number;
  /** How long close() waits for a clean exit before killing. Default 5 s. */
  closeTimeoutMs?: number;
  now?(): number;
  schedule?(fn: () => void, ms: number): () => void;
}

export type LinkState = 'starting' | 'ready' | 'restarting' | 'failed' | 'closing' | 'closed';

export interface EngineLink {
  call(request: RequestEnvelope): Promise<ReplyEnvelope>;
  state(): LinkState;
  /** Calls given to a host that has not answered yet, and calls waiting for a host. */
  pendingCount(): number;
  /** Asks the host to shut down (the engine closes its store), kills it after closeTimeoutMs. */
  close(): Promise<void>;
}

interface Pending {
  request: RequestEnvelope;
  resolve(reply: ReplyEnvelope): void;
  /** Handed to the current host (false: waiting for a host to become ready). */
  sent: boolean;
}

export function errorReply(id: RequestEnvelope['id'] | null, code: ErrorCode, message: string): ReplyEnvelope {
  return { id, ok: false, error: { code, message } };
}

function describeExit(code: number | null): string {
  return code === null ? 'it crashed or was killed' : `exit code ${code}`;
}

export function createEngineLink(options: EngineLinkOptions): EngineLink {
  const now = options.now ?? (() => Date.now());
  const schedule = options.schedule ?? ((fn, ms) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  });
  const restartDelay = options.restartDelayMs ?? ((attempt) => Math.min(250 * 2 ** (attempt - 1), 5000));
  const maxRestarts = options.maxRestarts ?? 5;
  const stableAfterMs = options.stableAfterMs ?? 30_000;
  const closeTimeoutMs = options.closeTimeoutMs ?? 5000;

  let state: LinkState = 'starting';
  let host: HostProcess | null = null;
  /** Increases with each host, so events from a dead host's handlers are ignored. */
  let generation = 0;
  let readyAt: number | null = null;
  let failures = 0;
  let lastFailure = '';
  let nextSeq = 1;
  const pending = new Map<number, Pending>();
  let cancelRestart: (() => void) | null = null;
  let closed: { promise: Promise<void>; resolve(): void } | null = null;

  const setState = (next: LinkState) => {
    if (state === next) return;
    state = next;
    options.onState?.(next);
  };
  const notice = (level: Notice['level'], message: string) => options.onNotice?.({ level, message });

  const settle = (seq: number, reply: ReplyEnvelope) => {
    const p = pending.get(seq);
    if (!p) return;
    pending.delete(seq);
    p.resolve(reply);
  };

  /** Answers the matching calls with an error: `${method}: ${text}`. */
  const failWhere = (code: ErrorCode, text: string, which: (p: Pending) => boolean) => {
    for (const [seq, p] of [...pending]) if (which(p)) settle(seq, errorReply(p.request.id, code, `${p.request.method}: ${text}`));
  };

  const post = (seq: number, p: Pending) => {
    if (!host) return;
    try {
      host.post({ type: 'call', seq, request: p.request });
      p.sent = true;
    } catch (err) {
      settle(seq, errorReply(p.request.id, 'RUNTIME', `${p.request.method}: could not reach the engine (${(err as Error)?.message ?? String(err)})`));
    }
  };

  const start = () => {
    cancelRestart = null;
    const mine = ++generation;
    readyAt = null;
    setState(failures === 0 ? 'starting' : 'restarting');
    try {
      host = options.spawn({
        message: (m) => {
          if (mine === generation) onMessage(m);
        },
        exit: (code) => {
          if (mine === generation) onExit(code);
        },
      });
    } catch (err) {
      host = null;
      // Treated like a host that died at once: same back-off, same give-up rule.
      onExit(null, `could not start the engine process: ${(err as Error)?.message ?? String(err)}`);
    }
  };

  const onMessage = (raw: unknown) => {
    const parsed = FromHost.safeParse(raw);
    if (!parsed.success) return; // a host bug must not take main down; the caller times out on its own terms
    const m = parsed.data;
    switch (m.type) {
      case 'ready': {
        readyAt = now();
        setState('ready');
        if (failures > 0) notice('info', 'The engine is running again.');
        for (const [seq, p] of pending) if (!p.sent) post(seq, p);
        return;
      }
      case 'reply': {
        const p = pending.get(m.seq);
        if (!p) return;
        // The reply answers this request whatever id the host wrote into it.
        settle(m.seq, { ...m.reply, id: p.request.id } as ReplyEnvelope);
        return;
      }
      case 'push':
        options.onPush(m.push);
        return;
      case 'fatal':
        lastFailure = m.message;
        return;
    }
  };

  const onExit = (code: number | null, why?: string) => {
    host = null;
    generation++;
    if (state === 'closing' || state === 'closed') {
      setState('closed');
      failWhere('RUNTIME', 'Whittle is closing', () => true);
      closed?.resolve();
      return;
    }
    const cause = why ?? (lastFailure ? `${lastFailure} (${describeExit(code)})` : describeExit(code));
    lastFailure = '';
    if (readyAt !== null && now() - readyAt >= stableAfterMs) failures = 0;
    failures++;
    // Calls the dead host had: their outcome is unknown, so they fail rather than run twice.
    failWhere('RUNTIME', `the engine process stopped while handling this call (${cause}); it is being restarted, try again`, (p) => p.sent);
    if (failures > maxRestarts) {
      setState('failed');
      const text = `the engine process failed ${failures} times in a row (last: ${cause}); restart Whittle`;
      failWhere('RUNTIME', text, () => true);
      notice('error', `The engine process failed ${failures} times in a row and was not restarted again (last: ${cause}). Restart Whittle; if it keeps happening, run \`whittle devices\` in a terminal to see which runtime fails.`);
      return;
    }
    notice('error', `The engine process stopped unexpectedly (${cause}). Whittle is restarting it; jobs that were running are marked interrupted.`);
    setState('restarting');
    cancelRestart = schedule(start, restartDelay(failures));
  };

  start();

  return {
    call(request) {
      if (state === 'failed') {
        return Promise.resolve(errorReply(request.id, 'RUNTIME', `${request.method}: the engine is not running (it failed repeatedly); restart Whittle`));
      }
      if (state === 'closing' || state === 'closed') return Promise.resolve(errorReply(request.id, 'RUNTIME', `${request.method}: Whittle is closing`));
      return new Promise<ReplyEnvelope>((resolve) => {
        const seq = nextSeq++;
        const p: Pending = { request, resolve, sent: false };
        pending.set(seq, p);
        if (state === 'ready') post(seq, p);
      });
    },
    state: () => state,
    pendingCount: () => pending.size,
    close() {
      if (closed) return closed.promise;
      let resolveClosed!: () => void;
      closed = { promise: new Promise<void>((r) => (resolveClosed = r)), resolve: () => resolveClosed() };
      cancelRestart?.();
      const h = host;
      setState('closing');
      failWhere('RUNTIME', 'Whittle is closing', (p) => !p.sent);
      if (!h) {
        setState('closed');
        failWhere('RUNTIME', 'Whittle is closing', () => true);
        closed.resolve();
        return closed.promise;
      }
      try {
        h.post({ type: 'shutdown' });
      } catch {
        /* already going */
      }
      const cancelKill = schedule(() => {
        try {
          h.kill();
        } catch {
          /* gone */
        }
      }, closeTimeoutMs);
      void closed.promise.then(cancelKill);
      return closed.promise;
    },
  };
}
