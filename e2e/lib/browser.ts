import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM, SCREENSHOTS } from './paths.ts';
import { E2E_MARKER } from './processes.ts';

export const VIEWPORT = { width: 1280, height: 800 };

/** Debian chromium through playwright-core (no downloaded browser). */
export async function launchBrowser(): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--font-render-hinting=none'],
    // The marker lets scripts/run-e2e.mjs sweep up a browser a killed test file left behind;
    // playwright-core itself kills the browser when this process exits.
    env: { ...process.env, WHITTLE_E2E: E2E_MARKER },
  });
  return browser;
}

export interface AppPage {
  context: BrowserContext;
  page: Page;
  /** Uncaught exceptions in the page so far (`pageerror`): a test asserts there are none. */
  errors: string[];
  /** Console errors (failed loads with their URL, console.error): reported, not asserted. */
  consoleErrors: string[];
}

/** A fresh context (no cookies) at 1280×800 that opens the server's token URL. */
export async function openApp(browser: Browser, url: string, opts: { colorScheme?: 'light' | 'dark' } = {}): Promise<AppPage> {
  const context = await browser.newContext({ viewport: VIEWPORT, colorScheme: opts.colorScheme ?? 'light', deviceScaleFactor: 1, acceptDownloads: true });
  const page = await context.newPage();
  const errors: string[] = [];
  const consoleErrors: string[] = [];
  page.on('pageerror', (e) => errors.push(`${e.name}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${m.text()}${m.location().url ? ` (${m.location().url})` : ''}`);
  });
  const response = await page.goto(url, { waitUntil: 'domcontentloaded' });
  if (!response || response.status() >= 400) throw new Error(`opening ${url} answered ${response?.status()}: ${await page.content()}`);
  return { context, page, errors, consoleErrors };
}

/**
 * docs/screenshots/<name>.png at the viewport size. Notices (toasts) are dismissed and the focus
 * ring removed first; `top` scrolls the view back to its start.
 */
export async function screenshot(page: Page, name: string, opts: { top?: boolean } = {}): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  for (const close of await page.getByRole('button', { name: 'Dismiss notice' }).all()) await close.click().catch(() => {});
  await page.evaluate(`(() => {
    document.activeElement?.blur?.();
    ${opts.top ? "document.getElementById('main')?.scrollTo(0, 0);" : ''}
    return document.fonts?.ready;
  })()`);
  // Let charts and fonts settle before the picture.
  await page.waitForTimeout(300);
  await page.screenshot({ path, fullPage: false, animations: 'disabled' });
  return path;
}

/** The session cookie the page holds, as a Cookie header (for our own WebSocket client). */
export async function cookieHeader(context: BrowserContext, origin: string): Promise<string> {
  const cookies = await context.cookies(origin);
  return cookies.map((c) => `${c.name}=${c.value}`).join('; ');
}
