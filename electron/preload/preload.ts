// The sandboxed preload (bundled as CommonJS: a sandboxed preload cannot load ES modules or
// anything but this one import). It exposes exactly the PreloadBridge of api/bridge.ts.
import { contextBridge, ipcRenderer, webUtils } from 'electron';
import { createBridge } from './bridge.ts';

contextBridge.exposeInMainWorld('whittle', createBridge(ipcRenderer, (file: File) => webUtils.getPathForFile(file)));
