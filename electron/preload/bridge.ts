import type { PreloadBridge } from '../../api/bridge.ts';
import { CALL_CHANNEL, PUSH_CHANNEL } from '../shared/channels.ts';

/**
 * The object the preload exposes as `window.whittle` (api/bridge.ts), built over the two IPC calls
 * it needs. Nothing of ipcRenderer leaks: the page can send only `whittle:call` requests and hear
 * only the payload of `whittle:push` messages (never the IPC event, whose `sender` would hand it
 * ipcRenderer itself).
 */
export interface IpcRendererLike {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  on(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
  removeListener(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
}

export function createBridge(ipc: IpcRendererLike, getPathForFile: (file: never) => string): PreloadBridge {
  return {
    call(request) {
      return ipc.invoke(CALL_CHANNEL, request);
    },
    subscribe(listener) {
      if (typeof listener !== 'function') throw new TypeError('subscribe needs a function');
      const wrapped = (_event: unknown, push: unknown) => listener(push);
      ipc.on(PUSH_CHANNEL, wrapped);
      let subscribed = true;
      return () => {
        if (!subscribed) return;
        subscribed = false;
        ipc.removeListener(PUSH_CHANNEL, wrapped);
      };
    },
    pathForFile(file) {
      try {
        return getPathForFile(file as never) || '';
      } catch {
        return ''; // not a File (or one made in the page, with no path on disk)
      }
    },
  };
}
