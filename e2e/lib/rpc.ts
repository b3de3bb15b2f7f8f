import WebSocket from 'ws';
import { createClient, type Client, type Transport } from '../../api/client.ts';

/**
 * Our own connection to the server's /rpc WebSocket, authenticated with the page's session cookie
 * and the server's own Origin, like the renderer's. The tests use it to read what the UI does not
 * show (a job's pid) and to check the store the way the app sees it.
 */
export interface RpcClient extends Client {
  close(): void;
}

export async function connectRpc(origin: string, cookie: string): Promise<RpcClient> {
  const url = origin.replace(/^http/, 'ws') + '/rpc';
  const socket = new WebSocket(url, { headers: { Cookie: cookie, Origin: origin } });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
    socket.once('unexpected-response', (_req, res) => reject(new Error(`${url} answered ${res.statusCode}`)));
  });
  let receive: (m: unknown) => void = () => {};
  let closed: (reason: string) => void = () => {};
  socket.on('message', (data) => {
    try {
      receive(JSON.parse(String(data)));
    } catch {
      /* not JSON */
    }
  });
  socket.on('close', (code, reason) => closed(reason.toString() || `closed (${code})`));
  const transport: Transport = {
    send: (m) => socket.send(JSON.stringify(m)),
    onMessage: (r) => { receive = r; },
    onClose: (c) => { closed = c; },
  };
  const client = createClient(transport);
  return Object.assign(client, { close: () => socket.terminate() });
}
