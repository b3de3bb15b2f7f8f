// The Electron main process: one hardened window, the app:// protocol that serves the renderer,
// the IPC boundary, the native menu and the engine host. Every decision here is made by the
// Electron-free modules beside it (security, engine-link, requests, selection, menu, progress);
// this file only wires them to Electron.
import {
  app, BrowserWindow, dialog, ipcMain, Menu, protocol, session, shell, utilityProcess,
  type IpcMainInvokeEvent, type MenuItemConstructorOptions, type OpenDialogOptions,
} from 'electron';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkedPush } from '../../api/dispatch.ts';
import type { ReplyEnvelope } from '../../api/envelope.ts';
import type { EventName, EventPayload } from '../../api/methods.ts';
import { CALL_CHANNEL, PUSH_CHANNEL } from '../shared/channels.ts';
import { hostConfigArg } from '../shared/host-protocol.ts';
import { createEngineLink, type EngineLink, type Notice } from './engine-link.ts';
import { buildMenuTemplate } from './menu.ts';
import { appPaths, examplesRoot } from './paths.ts';
import { TaskbarProgress } from './progress.ts';
import { parseIpcRequest } from './requests.ts';
import {
  allowPermission, APP_ENTRY_URL, APP_SCHEME, checkSender, decideNavigation, decideWindowOpen, isAppPage,
  mimeType, resolveAppFile, safeExternalUrl, securityHeaders, withSecurityHeaders,
} from './security.ts';
import { RunSelection } from './selection.ts';

const MAIN_DIR = dirname(fileURLToPath(import.meta.url));
const PATHS = appPaths(MAIN_DIR);
const APP_NAME = 'Whittle';

app.setName(APP_NAME);
// Tests (and anyone running two instances on purpose) give each run its own Chromium profile.
if (process.env.WHITTLE_ELECTRON_USER_DATA) app.setPath('userData', process.env.WHITTLE_ELECTRON_USER_DATA);
app.enableSandbox();
// standard + secure: a real origin for 'self' and module scripts. Not corsEnabled: that would make
// app:// readable from any origin without an Access-Control-Allow-Origin check.
protocol.registerSchemesAsPrivileged([
  { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, codeCache: true } },
]);

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  start();
}

function start(): void {
  let win: BrowserWindow | null = null;
  let link: EngineLink | null = null;
  let quitting = false;
  const selection = new RunSelection();
  const taskbar = new TaskbarProgress();
  let menuCalls = 0;

  const send = <E extends EventName>(event: E, payload: EventPayload<E>) => {
    const push = checkedPush(event, payload);
    if (win && !win.isDestroyed()) win.webContents.send(PUSH_CHANNEL, push);
  };
  const notify = (notice: Notice) => {
    (notice.level === 'error' ? console.error : console.log)(`whittle: ${notice.message}`);
    send('app.notice', notice);
  };
  const setTaskbar = (value: ReturnType<TaskbarProgress['value']> | null) => {
    if (value && win && !win.isDestroyed()) win.setProgressBar(value.progress, { mode: value.mode });
  };
  const refreshMenu = () => {
    const template = buildMenuTemplate(
      {
        platform: process.platform,
        appName: APP_NAME,
        runSelected: selection.current() !== null,
        canReveal: selection.revealTarget() !== null,
        developer: !app.isPackaged || process.env.WHITTLE_DEVTOOLS === '1',
      },
      { openModel: guarded('Open Model', openModel), exportRun: guarded('Export', exportRun), revealRun },
    );
    // The assignment is the check that menu.ts's Electron-free item type fits Electron's own.
    const electronTemplate: MenuItemConstructorOptions[] = template;
    Menu.setApplicationMenu(Menu.buildFromTemplate(electronTemplate));
  };

  /** A call main itself makes (menu commands); the reply is the engine's, like the renderer's. */
  const callEngine = async (method: string, params: unknown): Promise<ReplyEnvelope> => {
    if (!link) return { id: null, ok: false, error: { code: 'RUNTIME', message: 'the engine is not running' } };
    return link.call({ id: `menu-${++menuCalls}`, method, params });
  };
  const showError = async (message: string, detail: string) => {
    const options = { type: 'error' as const, title: APP_NAME, message, detail };
    if (win && !win.isDestroyed()) await dialog.showMessageBox(win, options);
    else await dialog.showMessageBox(options);
  };

  /** A menu command's unexpected failure (a dialog that throws) is shown, not left unhandled. */
  function guarded(what: string, action: () => Promise<void>): () => void {
    return () => {
      action().catch((err: unknown) => {
        console.error(`whittle: ${what} failed`, err);
        void showError(`${what} failed`, (err as Error)?.message ?? String(err));
      });
    };
  }

  async function openModel(): Promise<void> {
    const options: OpenDialogOptions = {
      title: 'Open Model',
      properties: ['openFile'],
      filters: [
        { name: 'Models (ONNX, TF.js model.json)', extensions: ['onnx', 'json'] },
        { name: 'ONNX', extensions: ['onnx'] },
        { name: 'TF.js model.json', extensions: ['json'] },
        { name: 'All files', extensions: ['*'] },
      ],
    };
    const picked = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
    const path = picked.filePaths[0];
    if (picked.canceled || !path) return;
    const reply = await callEngine('models.open', { path });
    if (!reply.ok) return showError('Could not open the model', reply.error.message);
    const model = reply.result as { path?: unknown };
    send('app.command', { command: 'open-model', path: typeof model.path === 'string' ? model.path : path });
  }

  async function exportRun(): Promise<void> {
    const run = selection.current();
    if (!run) return;
    const options: OpenDialogOptions = { title: 'Export Run To…', buttonLabel: 'Export Here', properties: ['openDirectory', 'createDirectory'] };
    const picked = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
    const destination = picked.filePaths[0];
    if (picked.canceled || !destination) return;
    const reply = await callEngine('artifacts.export', { runId: run.runId, destination });
    if (!reply.ok) return showError('Could not export the run', reply.error.message);
    const result = reply.result as { folder: string; files: { path: string }[] };
    notify({ level: 'info', message: `Exported ${result.files.length} file${result.files.length === 1 ? '' : 's'} to ${result.folder}` });
    shell.showItemInFolder(result.files[0]?.path ?? result.folder);
  }

  function revealRun(): void {
    const target = selection.revealTarget();
    if (target) shell.showItemInFolder(target);
  }

  const startEngine = () => {
    const examples = examplesRoot({ mainDir: MAIN_DIR, env: process.env, packaged: app.isPackaged, resourcesPath: process.resourcesPath, exists: existsSync });
    const config = hostConfigArg({ jobCommand: [process.execPath, PATHS.cli], ...(examples ? { examplesRoot: examples } : {}) });
    link = createEngineLink({
      spawn(events) {
        const child = utilityProcess.fork(PATHS.engineHost, [config], { serviceName: 'Whittle engine', stdio: 'inherit' });
        child.on('message', (message) => events.message(message));
        child.on('exit', (code) => events.exit(code));
        return { post: (message) => child.postMessage(message), kill: () => void child.kill() };
      },
      onPush(push) {
        if (win && !win.isDestroyed()) win.webContents.send(PUSH_CHANNEL, push);
        setTaskbar(taskbar.push(push.event, push.payload));
      },
      onNotice: notify,
      onState(state) {
        // A dead host's jobs are gone: clear the bar rather than leave it stuck.
        if (state === 'restarting' || state === 'failed') setTaskbar(taskbar.reset());
      },
    });
  };

  const createWindow = () => {
    win = new BrowserWindow({
      width: 1320,
      height: 860,
      minWidth: 900,
      minHeight: 600,
      show: false,
      title: APP_NAME,
      backgroundColor: '#1e1f22',
      webPreferences: {
        preload: PATHS.preload,
        contextIsolation: true,
        sandbox: true,
        nodeIntegration: false,
        nodeIntegrationInWorker: false,
        nodeIntegrationInSubFrames: false,
        webSecurity: true,
        allowRunningInsecureContent: false,
        webviewTag: false,
        navigateOnDragDrop: false,
        spellcheck: false,
        safeDialogs: true,
      },
    });
    win.once('ready-to-show', () => win?.show());
    win.on('closed', () => {
      win = null;
    });
    // A crashed renderer leaves a blank window: reload it, but not in a loop.
    let lastReload = 0;
    win.webContents.on('render-process-gone', (_event, details) => {
      console.error(`whittle: the window's renderer is gone (${details.reason})`);
      if (details.reason === 'clean-exit' || Date.now() - lastReload < 10_000 || !win || win.isDestroyed()) return;
      lastReload = Date.now();
      void win.loadURL(APP_ENTRY_URL);
    });
    void win.loadURL(APP_ENTRY_URL);
  };

  // Every web contents, present or future: no navigation away, no new windows, no webviews.
  app.on('web-contents-created', (_event, contents) => {
    contents.on('will-navigate', (event, url) => {
      const decision = decideNavigation(url);
      if (decision === 'allow') return;
      event.preventDefault();
      const external = decision === 'external' ? safeExternalUrl(url) : null;
      if (external) void shell.openExternal(external);
    });
    contents.on('will-redirect', (event, url) => {
      if (!isAppPage(url)) event.preventDefault();
    });
    contents.on('will-attach-webview', (event) => event.preventDefault());
    contents.setWindowOpenHandler(({ url }) => {
      const external = decideWindowOpen(url) === 'external' ? safeExternalUrl(url) : null;
      if (external) void shell.openExternal(external);
      return { action: 'deny' };
    });
  });

  app.on('second-instance', () => {
    if (!win) return;
    if (win.isMinimized()) win.restore();
    win.focus();
  });

  app.whenReady().then(() => {
    const ses = session.defaultSession;
    ses.setPermissionRequestHandler((_contents, permission, callback, details) => callback(allowPermission(permission, details.requestingUrl)));
    ses.setPermissionCheckHandler((_contents, permission, requestingOrigin) => allowPermission(permission, requestingOrigin));
    ses.setDevicePermissionHandler(() => false);
    ses.webRequest.onHeadersReceived((details, callback) => callback({ responseHeaders: withSecurityHeaders(details.responseHeaders) }));

    protocol.handle(APP_SCHEME, async (request) => {
      const file = request.method === 'GET' ? resolveAppFile(PATHS.renderer, request.url) : null;
      const headers = securityHeaders();
      if (!file) return new Response('not found', { status: 404, headers });
      try {
        const body = await readFile(file);
        return new Response(body, { status: 200, headers: { ...headers, 'Content-Type': mimeType(file) } });
      } catch {
        return new Response('not found', { status: 404, headers });
      }
    });

    ipcMain.handle(CALL_CHANNEL, async (event: IpcMainInvokeEvent, raw: unknown) => {
      const frame = event.senderFrame;
      const ours = win !== null && !win.isDestroyed() ? win.webContents : null;
      const main = ours?.mainFrame ?? null;
      const sender = checkSender({
        fromOurWindow: ours !== null && event.sender === ours,
        // The same frame whether or not Electron handed out the same WebFrameMain object for it.
        isMainFrame: frame !== null && main !== null && frame.parent === null && !frame.detached &&
          (frame === main || frame.frameToken === main.frameToken),
        frameUrl: frame && !frame.detached ? frame.url : null,
      });
      if (!sender.ok) {
        console.error(`whittle: refused an IPC call: ${sender.reason}`);
        throw new Error('refused');
      }
      const parsed = parseIpcRequest(raw);
      if (!parsed.ok) return parsed.reply;
      if (!link) return { id: parsed.request.id, ok: false, error: { code: 'RUNTIME', message: 'the engine is not running' } };
      const reply = await link.call(parsed.request);
      if (selection.observe(parsed.request, reply)) refreshMenu();
      return reply;
    });

    startEngine();
    refreshMenu();
    createWindow();
  }).catch((err: unknown) => {
    console.error('whittle: could not start', err);
    app.exit(1);
  });

  app.on('activate', () => {
    if (!win && app.isReady()) createWindow();
  });
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  // Let the engine close its store (and stop its jobs) before the app goes.
  app.on('before-quit', (event) => {
    if (quitting || !link) return;
    event.preventDefault();
    quitting = true;
    void link.close().finally(() => app.quit());
  });
}
