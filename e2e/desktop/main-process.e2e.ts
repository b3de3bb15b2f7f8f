import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { register } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { CALL_CHANNEL, PUSH_CHANNEL } from '../../electron/shared/channels.ts';
import { APP_ENTRY_URL, CONTENT_SECURITY_POLICY } from '../../electron/main/security.ts';
import { currentView, waitForView } from '../lib/app.ts';
import { launchBrowser } from '../lib/browser.ts';
import { CHROMIUM, F, FIXTURES, fixturesPresent, ROOT } from '../lib/paths.ts';
import { E2E_MARKER, isAlive, markedProcesses, waitFor } from '../lib/processes.ts';
import { ensureElectronBundles, ensureRenderer } from './bundles.ts';
import type * as Fake from './fake-electron/electron.ts';

// The bundled main process (dist/electron/main.js) under Node, with a recording stand-in for the
// `electron` module (fake-electron/): its app:// protocol, IPC boundary, pushes, taskbar, menu and
// navigation hooks are exercised for real, with the real engine host in a child process. This is
// what checks main.ts's wiring on machines without an Electron binary; app.e2e.ts checks the
// same against real Electron where there is one.

let fake: typeof Fake;
let home: string;
let win: Fake.FakeBrowserWindow;
let seq = 0;

const ipc = (request: unknown, sender?: { webContents: unknown; frame: unknown }) => {
  const handler = fake.recorded.ipcHandlers.get(CALL_CHANNEL)!;
  const event = { sender: sender?.webContents ?? win.webContents, senderFrame: sender ? sender.frame : win.webContents.mainFrame };
  return handler(event, request) as Promise<{ id: unknown; ok: boolean; result?: any; error?: { code: string; message: string } }>;
};
const call = async (method: string, params: unknown = {}) => {
  const reply = await ipc({ id: ++seq, method, params });
  if (!reply.ok) throw new Error(`${method}: ${reply.error!.code} ${reply.error!.message}`);
  return reply.result;
};
const pushes = () => win.webContents.sent.filter((s) => s.channel === PUSH_CHANNEL).map((s) => s.args[0] as { event: string; payload: any });
const get = (url: string) => fake.recorded.protocolHandlers.get('app')!(new Request(url));
const menuItem = (id: string): any => {
  const walk = (items: any[]): any => {
    for (const i of items) {
      if (i.id === id) return i;
      const found = i.submenu && walk(i.submenu);
      if (found) return found;
    }
    return null;
  };
  return walk(fake.recorded.menus.at(-1)!);
};

before(async () => {
  ensureRenderer();
  ensureElectronBundles();
  home = mkdtempSync(join(tmpdir(), 'whittle-desktop-main-'));
  register('./fake-electron/hooks.mjs', import.meta.url);
  fake = await import('./fake-electron/electron.ts');
  fake.recorded.env = { WHITTLE_HOME: home, WHITTLE_FIXTURES: FIXTURES, WHITTLE_E2E: E2E_MARKER };
  await import(pathToFileURL(join(ROOT, 'dist', 'electron', 'main.js')).href);
  await waitFor('the window', () => fake.recorded.windows.length === 1 && fake.recorded.ipcHandlers.has(CALL_CHANNEL), 10_000, 20);
  win = fake.recorded.windows[0]!;
});

after(async () => {
  if (fake) {
    const quit = new Promise((resolve) => fake.app.once('quit-done', resolve));
    fake.app.quit();
    await quit;
    // Quitting closed the engine host (shutdown message, clean exit).
    for (const f of fake.recorded.forks) await waitFor(`engine host ${f.child.pid} to exit`, () => !f.child.pid || !isAlive(f.child.pid), 10_000);
  }
  await waitFor('nothing left running', () => markedProcesses(E2E_MARKER).length === 0, 15_000).catch(() => {});
  assert.deepEqual(markedProcesses(E2E_MARKER), [], 'no process of this test file outlives it');
  rmSync(home, { recursive: true, force: true });
});

test('one hardened window on app://whittle/index.html, sandbox on for every renderer', () => {
  assert.equal(fake.recorded.sandboxEnabled, true);
  assert.equal(win.loadedUrl, APP_ENTRY_URL);
  const prefs = win.options.webPreferences;
  assert.equal(prefs.contextIsolation, true);
  assert.equal(prefs.sandbox, true);
  assert.equal(prefs.nodeIntegration, false);
  assert.equal(prefs.webSecurity, true);
  assert.equal(prefs.webviewTag, false);
  assert.equal(prefs.preload, join(ROOT, 'dist', 'electron', 'preload.cjs'));
  assert.deepEqual(fake.recorded.privilegedSchemes, [{ scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true, codeCache: true } }]);
  const fork = fake.recorded.forks[0]!;
  assert.equal(fork.modulePath, join(ROOT, 'dist', 'electron', 'engine-host.js'));
  assert.match(fork.args[0]!, /^--whittle-host=/);
  assert.deepEqual(JSON.parse(fork.args[0]!.slice('--whittle-host='.length)).jobCommand, [process.execPath, join(ROOT, 'dist', 'cli', 'whittle.js')]);
});

test('app:// serves the renderer bundle with the CSP, and nothing outside it', async () => {
  const index = await get('app://whittle/index.html');
  assert.equal(index.status, 200);
  assert.equal(index.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY);
  assert.match(index.headers.get('content-type')!, /^text\/html/);
  const html = await index.text();
  const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(html)?.[1];
  assert.ok(script, 'index.html loads its bundle by a relative path');
  const js = await get(`app://whittle/${script}`);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type')!, /^text\/javascript/);
  for (const bad of ['app://whittle/../package.json', 'app://whittle/..%2f..%2fpackage.json', 'app://whittle/nope.js', 'app://other/index.html']) {
    const r = await get(bad);
    assert.equal(r.status, 404, bad);
    assert.equal(r.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY);
  }
  const post = await fake.recorded.protocolHandlers.get('app')!(new Request('app://whittle/index.html', { method: 'POST', body: 'x' }));
  assert.equal(post.status, 404);
});

test('session: every permission refused, CSP on every response', () => {
  const answers: boolean[] = [];
  fake.recorded.permissionRequest!(win.webContents, 'media', (ok: boolean) => answers.push(ok), { requestingUrl: APP_ENTRY_URL });
  assert.deepEqual(answers, [false]);
  assert.equal(fake.recorded.permissionCheck!(win.webContents, 'clipboard-read', 'app://whittle'), false);
  assert.equal(fake.recorded.devicePermission!({}), false);
  let headers: Record<string, string[]> = {};
  fake.recorded.headersReceived!({ responseHeaders: { 'content-security-policy': ['default-src *'] } }, (r: { responseHeaders: Record<string, string[]> }) => (headers = r.responseHeaders));
  assert.deepEqual(headers['Content-Security-Policy'], [CONTENT_SECURITY_POLICY]);
  assert.equal(headers['content-security-policy'], undefined);
});

test('navigation away and new windows are refused; http(s) links go to the system browser', () => {
  const contents = win.webContents;
  const navigate = (url: string) => {
    let prevented = false;
    contents.emit('will-navigate', { preventDefault: () => (prevented = true) }, url);
    return prevented;
  };
  assert.equal(navigate(`${APP_ENTRY_URL}`), false, 'reloading the app page is fine');
  assert.equal(navigate('file:///etc/passwd'), true);
  assert.equal(navigate('https://onnx.ai/'), true);
  assert.deepEqual(fake.recorded.openedExternally, ['https://onnx.ai/']);
  assert.deepEqual(contents.windowOpenHandler!({ url: 'https://github.com/onnx' }), { action: 'deny' });
  assert.deepEqual(contents.windowOpenHandler!({ url: 'javascript:alert(1)' }), { action: 'deny' });
  assert.deepEqual(fake.recorded.openedExternally, ['https://onnx.ai/', 'https://github.com/onnx']);
  let attached = true;
  contents.emit('will-attach-webview', { preventDefault: () => (attached = false) });
  assert.equal(attached, false);
});

test('IPC: calls from our main frame reach the engine; others are refused; bad envelopes get BAD_USAGE', async () => {
  const info = await call('app.info');
  assert.equal(info.mode, 'electron');
  assert.equal(info.home, home);
  const iframe = { url: APP_ENTRY_URL, parent: win.webContents.mainFrame, detached: false, frameToken: 'child' };
  const detached = { ...win.webContents.mainFrame, detached: true };
  await assert.rejects(ipc({ id: 1, method: 'app.info', params: {} }, { webContents: win.webContents, frame: iframe }), /refused/);
  await assert.rejects(ipc({ id: 1, method: 'app.info', params: {} }, { webContents: new fake.FakeWebContents(), frame: win.webContents.mainFrame }), /refused/);
  await assert.rejects(ipc({ id: 1, method: 'app.info', params: {} }, { webContents: win.webContents, frame: detached }), /refused/);
  await assert.rejects(ipc({ id: 1, method: 'app.info', params: {} }, { webContents: win.webContents, frame: null }), /refused/);
  win.webContents.mainFrame.url = 'https://evil.example/';
  await assert.rejects(ipc({ id: 1, method: 'app.info', params: {} }), /refused/);
  win.webContents.mainFrame.url = `${APP_ENTRY_URL}#library`;
  const bad = await ipc({ id: 5, method: 'app.info', params: {}, extra: 1 });
  assert.deepEqual([bad.id, bad.ok, bad.error?.code], [5, false, 'BAD_USAGE']);
  const huge = await ipc({ id: 6, method: 'models.open', params: { path: 'x'.repeat(1 << 21) } });
  assert.match(huge.error!.message, /over the \d+ limit/);
});

test('File → Open Model… opens the model through the engine and pushes app.command', { skip: !fixturesPresent() && 'fixtures absent', timeout: 60_000 }, async () => {
  fake.recorded.openDialogAnswers.push({ canceled: false, filePaths: [F.mnist] });
  menuItem('open-model').click();
  const push = await waitFor('app.command', () => pushes().find((p) => p.event === 'app.command'), 30_000, 20);
  assert.deepEqual(push.payload, { command: 'open-model', path: F.mnist });
  assert.equal((await call('models.recent'))[0].path, F.mnist);
  // A file that is not a model: a native error box, no push.
  fake.recorded.openDialogAnswers.push({ canceled: false, filePaths: [join(ROOT, 'package.json')] });
  const before = pushes().length;
  menuItem('open-model').click();
  await waitFor('the error box', () => fake.recorded.messageBoxes.length === 1, 30_000, 20);
  assert.match(JSON.stringify(fake.recorded.messageBoxes[0]), /Could not open the model/);
  assert.equal(pushes().length, before);
});

test('a job: pushes reach the window, the taskbar bar follows, the run becomes the menu\'s selection', { skip: !fixturesPresent() && 'fixtures absent', timeout: 120_000 }, async () => {
  assert.equal(menuItem('export-run').enabled, false);
  const { jobId } = await call('jobs.start', { spec: { kind: 'eval', model: F.mnist, data: { path: F.mnistImages, preprocess: 'mnist', limit: 200 } } });
  const done = await waitFor('the job to end', () => pushes().find((p) => p.event === 'job.state' && p.payload.jobId === jobId && ['succeeded', 'failed'].includes(p.payload.status)), 90_000, 50);
  assert.equal(done.payload.status, 'succeeded', JSON.stringify(done.payload.error));
  assert.ok(win.progress.some((p) => p.value >= 0), `the taskbar showed progress: ${JSON.stringify(win.progress)}`);
  assert.equal(win.progress.at(-1)!.value, -1, 'and cleared it');
  const run = await call('experiments.get', { runId: done.payload.runId });
  assert.equal(menuItem('export-run').enabled, true, 'a run on screen enables Export');
  if (run.artifacts.length) {
    assert.equal(menuItem('reveal-run').enabled, true);
    menuItem('reveal-run').click();
    assert.equal(fake.recorded.shownInFolder.length, 1);
  }
  const destination = mkdtempSync(join(home, 'export-'));
  fake.recorded.openDialogAnswers.push({ canceled: false, filePaths: [destination] });
  menuItem('export-run').click();
  const notice = await waitFor('the export notice', () => pushes().find((p) => p.event === 'app.notice' && /Exported/.test(p.payload.message)), 30_000, 20);
  assert.equal(notice.payload.level, 'info');
  assert.ok(fake.recorded.shownInFolder.at(-1)!.startsWith(destination), 'the export is shown in its folder');
});

test('the engine host dying is survived: notice pushed, host restarted, calls answered', { timeout: 60_000 }, async () => {
  const first = fake.recorded.forks.at(-1)!.child;
  first.kill('SIGKILL');
  const notice = await waitFor('the notice', () => pushes().find((p) => p.event === 'app.notice' && p.payload.level === 'error'), 20_000, 20);
  assert.match(notice.payload.message, /stopped unexpectedly/);
  const info = await waitFor('a new host answering', async () => {
    const r = await ipc({ id: ++seq, method: 'app.info', params: {} });
    return r.ok ? r.result : null;
  }, 30_000, 100);
  assert.equal(info.mode, 'electron');
  assert.equal(fake.recorded.forks.length, 2);
});

test('the renderer bundle boots under the app\'s CSP and talks to main through the Electron transport', {
  skip: (!existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM}`) || (!fixturesPresent() && 'fixtures absent'),
  timeout: 120_000,
}, async () => {
  // Chromium cannot load app:// without Electron, so main's own protocol handler answers on a
  // loopback port (same files, same headers, same CSP), and a stand-in preload forwards
  // window.whittle calls to main's IPC handler as if they came from the window's main frame.
  const server = createServer((req, res) => {
    void fake.recorded.protocolHandlers.get('app')!(new Request(`app://whittle${req.url}`)).then(async (r) => {
      const headers: Record<string, string> = {};
      r.headers.forEach((value, name) => (headers[name] = value));
      res.writeHead(r.status, headers);
      res.end(Buffer.from(await r.arrayBuffer()));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const browser = await launchBrowser();
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      // 404s are listed by URL below (Chromium asks for /favicon.ico; Electron does not).
      if ((m.type() === 'error' && !/status of 404/.test(m.text())) || /Content Security Policy/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) problems.push(`${r.status()}: ${r.url()}`);
    });
    await page.exposeBinding('__whittleCall', (_source, request: unknown) => ipc(request));
    // A string, not a function: tsx's compiled functions reference helpers the page does not have.
    await page.addInitScript(`(() => {
      const listeners = new Set();
      window.__whittlePush = (push) => listeners.forEach((l) => l(push));
      window.whittle = Object.freeze({
        call: (request) => window.__whittleCall(request),
        subscribe: (l) => { listeners.add(l); return () => { listeners.delete(l); }; },
        pathForFile: () => '',
      });
    })();`);
    // Pushes main sends to the window go to the page too.
    const send = win.webContents.send.bind(win.webContents);
    win.webContents.send = (channel: string, ...args: unknown[]) => {
      send(channel, ...args);
      if (channel === PUSH_CHANNEL) void page.evaluate((p) => (window as unknown as { __whittlePush: (p: unknown) => void }).__whittlePush(p), args[0]).catch(() => {});
    };
    try {
      const { port } = server.address() as AddressInfo;
      await page.goto(`http://127.0.0.1:${port}/index.html`);
      await waitForView(page, 'library', 30_000);
      await page.getByTestId('example-mnist').getByRole('button', { name: /Open example/ }).click();
      await waitForView(page, 'model', 30_000);
      await currentView(page).locator('h1#model-title', { hasText: 'mnist.onnx' }).waitFor({ timeout: 30_000 });
      await currentView(page).getByRole('table', { name: 'Layers' }).waitFor({ timeout: 30_000 });
      // File → Open Model… with another file: main's push reaches the renderer.
      const handled = page.evaluate(() => new Promise<unknown>((resolve) => {
        (window as unknown as { whittle: { subscribe(l: (p: unknown) => void): void } }).whittle.subscribe((p) => {
          if ((p as { event?: string }).event === 'app.command') resolve(p);
        });
      }));
      fake.recorded.openDialogAnswers.push({ canceled: false, filePaths: [join(FIXTURES, 'iris', 'iris_network.onnx')] });
      menuItem('open-model').click();
      assert.equal(((await handled) as { payload: { path: string } }).payload.path, join(FIXTURES, 'iris', 'iris_network.onnx'));
      const shown = await currentView(page).locator('h1#model-title', { hasText: 'iris_network.onnx' }).waitFor({ timeout: 10_000 }).then(() => true, () => false);
      if (!shown) console.log('  note: the renderer does not act on app.command {open-model} yet (the push arrived)');
      assert.deepEqual(problems, [], 'no CSP violation or error while the renderer ran');
    } finally {
      win.webContents.send = send;
    }
  } finally {
    await browser.close();
    server.close();
  }
});
