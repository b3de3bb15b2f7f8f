import { getContext, setContext } from 'svelte';
import { createClient, type Client } from '../../../api/client.ts';
import { electronTransport, webSocketTransport, type ConnectionState } from './transport.ts';

const KEY = Symbol('whittle-client');

/** Whether the engine can be reached; Electron's IPC is always 'open'. */
export interface Connection {
  state(): ConnectionState;
  watch(listener: (state: ConnectionState, reason: string) => void): () => void;
}

const ALWAYS_OPEN: Connection = { state: () => 'open', watch: () => () => {} };

/** Electron when the preload bridge is there, else the server's WebSocket. */
export function connect(): { client: Client; mode: 'electron' | 'browser'; connection: Connection } {
  if (window.whittle) return { client: createClient(electronTransport(window.whittle)), mode: 'electron', connection: ALWAYS_OPEN };
  const transport = webSocketTransport();
  return { client: createClient(transport), mode: 'browser', connection: transport };
}

export function provideClient(client: Client): void {
  setContext(KEY, client);
}

/** The engine client, for any component under App. */
export function useClient(): Client {
  const client = getContext<Client | undefined>(KEY);
  if (!client) throw new Error('useClient() outside App');
  return client;
}
