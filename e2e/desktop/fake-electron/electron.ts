import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Just enough of Electron's main-process API for dist/electron/main.js to run under Node, recording
 * what it is asked to do so tests can check the wiring (main-process.e2e.ts). Utility processes are
 * real: child_process.fork of host-shim.mjs, which gives the engine host its parentPort.
 */

const SHIM = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'host-shim.mjs');

type Handler = (...args: any[]) => any;

export const recorded = {
  privilegedSchemes: [] as unknown[],
  protocolHandlers: new Map<string, (request: Request) => Promise<Response>>(),
  ipcHandlers: new Map<string, Handler>(),
  windows: [] as FakeBrowserWindow[],
  menus: [] as any[][],
  permissionRequest: null as Handler | null,
  permissionCheck: null as Handler | null,
  devicePermission: null as Handler | null,
  headersReceived: null as Handler | null,
  openedExternally: [] as string[],
  shownInFolder: [] as string[],
  openDialogAnswers: [] as { canceled: boolean; filePaths: string[] }[],
  messageBoxes: [] as unknown[],
  forks: [] as { modulePath: string; args: string[]; options: unknown; child: ChildProcess }[],
  sandboxEnabled: false,
  quitCalls: 0,
  exitCode: null as number | null,
  env: {} as Record<string, string>,
};

class FakeApp extends EventEmitter {
  isPackaged = false;
  name = 'electron';
  readonly paths = new Map<string, string>();
  private ready = false;
  setName(n: string) {
    this.name = n;
  }
  setPath(name: string, p: string) {
    this.paths.set(name, p);
  }
  enableSandbox() {
    recorded.sandboxEnabled = true;
  }
  requestSingleInstanceLock() {
    return true;
  }
  isReady() {
    return this.ready;
  }
  whenReady() {
    this.ready = true;
    return Promise.resolve();
  }
  quit() {
    recorded.quitCalls++;
    const event = { defaultPrevented: false, preventDefault() { this.defaultPrevented = true; } };
    this.emit('before-quit', event);
    if (!event.defaultPrevented) this.emit('quit-done');
  }
  exit(code: number) {
    recorded.exitCode = code;
  }
}
export const app = new FakeApp();

export class FakeWebContents extends EventEmitter {
  static nextId = 1;
  readonly id = FakeWebContents.nextId++;
  readonly sent: { channel: string; args: unknown[] }[] = [];
  readonly mainFrame: { url: string; parent: null; detached: boolean; frameToken: string };
  windowOpenHandler: Handler | null = null;
  constructor() {
    super();
    this.mainFrame = { url: '', parent: null, detached: false, frameToken: `frame-${this.id}` };
  }
  send(channel: string, ...args: unknown[]) {
    this.sent.push({ channel, args });
  }
  setWindowOpenHandler(h: Handler) {
    this.windowOpenHandler = h;
  }
}

export class FakeBrowserWindow extends EventEmitter {
  readonly webContents = new FakeWebContents();
  readonly progress: { value: number; options: unknown }[] = [];
  loadedUrl = '';
  destroyed = false;
  constructor(readonly options: any) {
    super();
    recorded.windows.push(this);
    app.emit('web-contents-created', {}, this.webContents);
  }
  loadURL(url: string) {
    this.loadedUrl = url;
    this.webContents.mainFrame.url = url;
    return Promise.resolve();
  }
  show() {}
  isDestroyed() {
    return this.destroyed;
  }
  isMinimized() {
    return false;
  }
  restore() {}
  focus() {}
  setProgressBar(value: number, options: unknown) {
    this.progress.push({ value, options });
  }
}
export const BrowserWindow = FakeBrowserWindow;

export const protocol = {
  registerSchemesAsPrivileged(schemes: unknown[]) {
    recorded.privilegedSchemes.push(...schemes);
  },
  handle(scheme: string, handler: (request: Request) => Promise<Response>) {
    recorded.protocolHandlers.set(scheme, handler);
  },
};

export const ipcMain = {
  handle(channel: string, handler: Handler) {
    recorded.ipcHandlers.set(channel, handler);
  },
};

export const session = {
  defaultSession: {
    setPermissionRequestHandler: (h: Handler) => void (recorded.permissionRequest = h),
    setPermissionCheckHandler: (h: Handler) => void (recorded.permissionCheck = h),
    setDevicePermissionHandler: (h: Handler) => void (recorded.devicePermission = h),
    webRequest: { onHeadersReceived: (h: Handler) => void (recorded.headersReceived = h) },
  },
};

export const shell = {
  openExternal: (url: string) => {
    recorded.openedExternally.push(url);
    return Promise.resolve();
  },
  showItemInFolder: (p: string) => void recorded.shownInFolder.push(p),
};

export const dialog = {
  showOpenDialog: async () => recorded.openDialogAnswers.shift() ?? { canceled: true, filePaths: [] },
  showMessageBox: async (...args: unknown[]) => {
    recorded.messageBoxes.push(args.at(-1));
    return { response: 0 };
  },
};

export const Menu = {
  buildFromTemplate: (template: any[]) => ({ template }),
  setApplicationMenu: (menu: { template: any[] }) => void recorded.menus.push(menu.template),
};

class FakeUtilityProcess extends EventEmitter {
  constructor(readonly child: ChildProcess) {
    super();
    child.on('message', (m) => this.emit('message', m));
    child.on('exit', (code) => this.emit('exit', code ?? 1));
  }
  postMessage(m: unknown) {
    this.child.send(m as never);
  }
  kill() {
    return this.child.kill('SIGKILL');
  }
}

export const utilityProcess = {
  fork(modulePath: string, args: string[], options: unknown) {
    const child = fork(SHIM, [modulePath, ...args], { execArgv: [], env: { ...process.env, ...recorded.env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    recorded.forks.push({ modulePath, args, options, child });
    return new FakeUtilityProcess(child);
  },
};

export default { app, BrowserWindow, protocol, ipcMain, session, shell, dialog, Menu, utilityProcess };
