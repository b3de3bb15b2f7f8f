import type { PreloadBridge } from '../../../api/bridge.ts';
import type { Transport } from '../../../api/client.ts';

/**
 * The two ways the renderer reaches the engine. Everything above this file sees only a Client
 * (api/client.ts), so the views do not know whether they run in Electron or in a browser.
 */

declare global {
  interface Window {
    whittle?: PreloadBridge;
  }
}

/** Electron: the preload's bridge; replies come back as the promise's value. */
export function electronTransport(bridge: PreloadBridge): Transport {
  let receive: (message: unknown) => void = () => {};
  return {
    send(message) {
      bridge.call(message).then(receive, (err: unknown) => {
        receive({ id: message.id, ok: false, error: { code: 'RUNTIME', message: `engine unreachable: ${String(err)}` } });
      });
    },
    onMessage(r) {
      receive = r;
      bridge.subscribe((push) => receive(push));
    },
  };
}

/**
 * Browser mode: one WebSocket to /rpc on the page's own origin (the session cookie authenticates
 * it). Messages sent before it opens wait; when it drops, pending calls fail and it reconnects.
 */
export type ConnectionState = 'connecting' | 'open' | 'closed';

export function webSocketTransport(url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/rpc`): Transport & {
  state(): ConnectionState;
  /** Calls back on every change of state (for the app's connection banner); returns a stop function. */
  watch(listener: (state: ConnectionState, reason: string) => void): () => void;
} {
  let receive: (message: unknown) => void = () => {};
  let closed: (reason: string) => void = () => {};
  const watchers = new Set<(state: ConnectionState, reason: string) => void>();
  const notify = (state: ConnectionState, reason = '') => {
    for (const w of watchers) w(state, reason);
  };
  let socket: WebSocket;
  let queue: string[] = [];
  let retry = 250;
  const connect = () => {
    socket = new WebSocket(url);
    notify('connecting');
    socket.onopen = () => {
      retry = 250;
      notify('open');
      for (const m of queue) socket.send(m);
      queue = [];
    };
    socket.onmessage = (e) => {
      try {
        receive(JSON.parse(String(e.data)));
      } catch {
        /* not JSON: ignore */
      }
    };
    socket.onclose = (e) => {
      const reason = e.reason || `WebSocket closed (${e.code})`;
      closed(reason);
      notify('closed', reason);
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 5000);
    };
  };
  connect();
  return {
    send(message) {
      const text = JSON.stringify(message);
      if (socket.readyState === WebSocket.OPEN) socket.send(text);
      else queue.push(text);
    },
    onMessage(r) {
      receive = r;
    },
    onClose(c) {
      closed = c;
    },
    watch(listener) {
      watchers.add(listener);
      return () => watchers.delete(listener);
    },
    state: () => (socket.readyState === WebSocket.OPEN ? 'open' : socket.readyState === WebSocket.CONNECTING ? 'connecting' : 'closed'),
  };
}
