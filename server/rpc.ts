import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { ErrorCode } from '../api/errors.ts';
import { MAX_MESSAGE_CHARS } from '../api/envelope.ts';
import type { Engine, EnginePush } from './engine.ts';

/**
 * The WebSocket transport (`/rpc`): each text frame is one request envelope, answered by one reply
 * frame; engine pushes go to every open socket. Whatever a peer sends, the worst outcome is an
 * error reply or that one socket closing — never the server. The caller has already checked the
 * session cookie, Host and Origin before handing the upgrade over.
 */
export const RPC_PATH = '/rpc';
/** Requests one socket may have running at once; more are refused rather than queued without bound. */
export const MAX_IN_FLIGHT = 64;

export interface RpcHub {
  /** Completes an upgrade the server has already authorised. */
  accept(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Open sockets, for tests and shutdown. */
  readonly clientCount: number;
  close(): Promise<void>;
}

function errorFrame(id: number | string | null, code: ErrorCode, message: string): string {
  return JSON.stringify({ id, ok: false, error: { code, message } });
}

function textOf(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function idOf(value: unknown): number | string | null {
  const id = (value as { id?: unknown } | null)?.id;
  return typeof id === 'number' || typeof id === 'string' ? id : null;
}

export function createRpcHub(engine: Engine, options: { heartbeatMs: number; log: (line: string) => void }): RpcHub {
  const wss = new WebSocketServer({
    noServer: true,
    // Compression would let a small frame inflate into a large one; envelopes are small anyway.
    perMessageDeflate: false,
    // Frames a little over the limit still get a readable error reply; far larger ones close the socket.
    maxPayload: 4 * MAX_MESSAGE_CHARS + 1024,
  });
  const alive = new WeakMap<WebSocket, boolean>();

  const send = (ws: WebSocket, frame: string) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(frame);
  };

  async function answer(ws: WebSocket, data: RawData, isBinary: boolean, inFlight: { n: number }): Promise<void> {
    if (isBinary) return send(ws, errorFrame(null, 'BAD_USAGE', 'binary frames are not accepted: send each request as a JSON text frame'));
    const text = textOf(data);
    if (text.length > MAX_MESSAGE_CHARS) return send(ws, errorFrame(null, 'BAD_USAGE', `message of ${text.length} characters is over the ${MAX_MESSAGE_CHARS} limit`));
    let request: unknown;
    try {
      request = JSON.parse(text);
    } catch {
      return send(ws, errorFrame(null, 'BAD_USAGE', 'message is not JSON'));
    }
    if (inFlight.n >= MAX_IN_FLIGHT) return send(ws, errorFrame(idOf(request), 'RUNTIME', `more than ${MAX_IN_FLIGHT} requests at once on one connection; wait for replies`));
    inFlight.n++;
    try {
      const reply = await engine.dispatch(request, { transport: 'websocket' });
      send(ws, JSON.stringify(reply));
    } catch (err) {
      // The dispatcher turns handler errors into replies; reaching here is a bug, still answered.
      options.log(`rpc: dispatch failed: ${(err as Error)?.stack ?? String(err)}`);
      send(ws, errorFrame(idOf(request), 'INTERNAL', 'the engine failed to answer'));
    } finally {
      inFlight.n--;
    }
  }

  wss.on('connection', (ws) => {
    alive.set(ws, true);
    const inFlight = { n: 0 };
    ws.on('pong', () => alive.set(ws, true));
    // ws reports protocol violations (bad UTF-8, oversized frames) here before closing the socket.
    ws.on('error', (err) => options.log(`rpc: connection error: ${err.message}`));
    ws.on('message', (data, isBinary) => void answer(ws, data, isBinary, inFlight));
  });

  const unsubscribe = engine.onPush((push: EnginePush) => {
    const frame = JSON.stringify({ event: push.event, payload: push.payload });
    for (const ws of wss.clients) send(ws, frame);
  });

  // A socket that misses a ping's pong for a whole interval is gone (sleeping laptop, dropped SSH tunnel).
  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.get(ws)) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      ws.ping();
    }
  }, options.heartbeatMs);
  heartbeat.unref();

  return {
    accept(req, socket, head) {
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    },
    get clientCount() {
      return wss.clients.size;
    },
    close() {
      clearInterval(heartbeat);
      unsubscribe();
      for (const ws of wss.clients) ws.close(1001, 'server shutting down');
      return new Promise<void>((resolve) => {
        // Sockets that do not finish the closing handshake promptly are cut.
        const cut = setTimeout(() => {
          for (const ws of wss.clients) ws.terminate();
        }, 1000);
        cut.unref();
        wss.close(() => {
          clearTimeout(cut);
          resolve();
        });
      });
    },
  };
}
