import type { Dispatch } from '../../api/dispatch.ts';
import type { ReplyEnvelope } from '../../api/envelope.ts';
import { ToHost, type FromHost } from '../shared/host-protocol.ts';

/**
 * The engine host's loop, without Electron: requests from main go to the engine's dispatcher,
 * replies and pushes go back. `port` is process.parentPort in the utility process.
 */
export interface ParentPortLike {
  on(event: 'message', listener: (messageEvent: { data: unknown }) => void): unknown;
  postMessage(message: FromHost): void;
}

export interface EngineLike {
  dispatch: Dispatch;
  onPush(listener: (push: { event: string; payload: unknown }) => void): () => void;
  close(): Promise<void>;
}

export function serveEngine(port: ParentPortLike, engine: EngineLike, exit: (code: number) => void): void {
  let shuttingDown = false;
  engine.onPush((push) => {
    if (!shuttingDown) port.postMessage({ type: 'push', push });
  });
  port.on('message', ({ data }) => {
    const parsed = ToHost.safeParse(data);
    if (!parsed.success) return; // only main can write here; a bad message is a bug, not an attack
    const m = parsed.data;
    if (m.type === 'shutdown') {
      if (shuttingDown) return;
      shuttingDown = true;
      engine.close().then(() => exit(0), () => exit(1));
      return;
    }
    const { seq, request } = m;
    engine.dispatch(request, { transport: 'electron' }).then(
      (reply) => port.postMessage({ type: 'reply', seq, reply }),
      (err: unknown): void => {
        const reply: ReplyEnvelope = { id: request.id, ok: false, error: { code: 'INTERNAL', message: `${request.method} failed: ${(err as Error)?.message ?? String(err)}` } };
        port.postMessage({ type: 'reply', seq, reply });
      },
    );
  });
  port.postMessage({ type: 'ready', pid: process.pid });
}

/**
 * Why the engine did not start, in one line for the user. The usual cause in a checkout is
 * better-sqlite3 compiled for Node's ABI while the utility process runs Electron's (npm start
 * without a rebuild); packaged builds are rebuilt for Electron by electron-builder.
 */
export function startFailureMessage(err: unknown): string {
  const text = String((err as Error)?.message ?? err).split('\n')[0]!.slice(0, 400);
  if (/NODE_MODULE_VERSION|was compiled against a different Node\.js version/i.test(String((err as Error)?.message ?? err))) {
    return `the engine did not start: a native module was built for another Node.js ABI (${text}). ` +
      'Rebuild it for Electron (`npx @electron/rebuild -f -w better-sqlite3`; `npm rebuild better-sqlite3` switches the CLI back), or use a packaged build.';
  }
  return `the engine did not start: ${text}`;
}
