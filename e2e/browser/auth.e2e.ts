import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchBrowser, VIEWPORT } from '../lib/browser.ts';
import { markedProcesses, E2E_MARKER } from '../lib/processes.ts';
import { startServer, type ServerHandle } from '../lib/server.ts';

// The server's refusals are unit-tested in server/; here a real browser meets them.
let server: ServerHandle;
let browser: Browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
  assert.deepEqual(markedProcesses(E2E_MARKER), [], 'no process of this test file outlives it');
});

test('the bare URL without the token shows the 401 page, a wrong token too', { timeout: 60_000 }, async () => {
  const context = await browser.newContext({ viewport: VIEWPORT });
  try {
    const page = await context.newPage();
    const bare = await page.goto(server.origin + '/');
    assert.equal(bare?.status(), 401);
    assert.match(await page.locator('h1').innerText(), /sign in/i);
    assert.match(await page.locator('body').innerText(), /token=/, 'the page says to open the printed URL with its token');
    assert.equal((await context.cookies(server.origin)).length, 0, 'no cookie without the token');

    const wrong = await page.goto(server.origin + '/?token=' + 'f'.repeat(server.token.length));
    assert.equal(wrong?.status(), 401);
    assert.equal((await context.cookies(server.origin)).length, 0, 'no cookie for a wrong token');

    // The renderer's own files are refused too, not only the page.
    const asset = await context.request.get(server.origin + '/index.html', { failOnStatusCode: false });
    assert.equal(asset.status(), 401);
  } finally {
    await context.close();
  }
});

test('the printed URL swaps the token for an HttpOnly cookie and lands on the app without the token', { timeout: 60_000 }, async () => {
  const context = await browser.newContext({ viewport: VIEWPORT });
  try {
    const page = await context.newPage();
    const response = await page.goto(server.url);
    assert.equal(response?.status(), 200);
    assert.equal(new URL(page.url()).search, '', 'the token is gone from the address bar');
    const cookies = await context.cookies(server.origin);
    assert.equal(cookies.length, 1);
    assert.equal(cookies[0]!.httpOnly, true);
    assert.equal(await page.evaluate(() => document.cookie), '', 'the page script cannot read the session cookie');
    // A WebSocket from the page itself is accepted (the app connects): the status shows connected.
    const opened = await page.evaluate(() => new Promise<string>((resolve) => {
      const ws = new WebSocket(`ws://${location.host}/rpc`);
      ws.onopen = () => { ws.close(); resolve('open'); };
      ws.onerror = () => resolve('error');
    }));
    assert.equal(opened, 'open');
  } finally {
    await context.close();
  }
});
