import { getContext, setContext } from 'svelte';
import { createClient, type Client } from '../../../api/client.ts';
import { electronTransport, webSocketTransport } from './transport.ts';

const KEY = Symbol('whittle-client');

/** Electron when the preload bridge is there, else the server's WebSocket. */
export function connect(): { client: Client; mode: 'electron' | 'browser' } {
  if (window.whittle) return { client: createClient(electronTransport(window.whittle)), mode: 'electron' };
  return { client: createClient(webSocketTransport()), mode: 'browser' };
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
