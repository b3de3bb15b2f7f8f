/**
 * What Electron's preload puts on `window.whittle` (contextBridge): only these three functions.
 * The renderer wraps them in a Transport (api/client.ts); the server mode needs no bridge.
 */
export interface PreloadBridge {
  /** Sends one request envelope to the engine; resolves with its reply envelope (validated by the client). */
  call(request: { id: number; method: string; params: unknown }): Promise<unknown>;
  /** Receives every push envelope `{event, payload}`; returns an unsubscribe function. */
  subscribe(listener: (push: unknown) => void): () => void;
  /** The absolute path of a dropped File (webUtils.getPathForFile); '' when it has none. */
  pathForFile(file: unknown): string;
}
