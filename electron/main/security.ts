import { extname, isAbsolute, relative, resolve, sep } from 'node:path';
import { contentTypeFor } from '../../api/content-types.ts';

/**
 * The shell's security decisions, as plain functions of URLs and names so they can be tested without
 * Electron (electron/main/main.ts only wires them to Electron's hooks). The renderer is served from
 * our own `app://whittle/` origin (a standard, secure scheme backed by dist/renderer), which gives
 * the CSP's 'self' a real meaning and lets every check compare origins exactly.
 */

export const APP_SCHEME = 'app';
export const APP_HOST = 'whittle';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
/** The one page the window may show. */
export const APP_ENTRY_URL = `${APP_ORIGIN}/index.html`;

/**
 * The renderer's Content-Security-Policy: only our own bundle runs, nothing is fetched from
 * anywhere else, no plugins, no <base> tricks, no form posts, no framing. 'unsafe-inline' for
 * styles only (Svelte's transitions and style: directives write style attributes).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers every response of ours carries (protocol handler and onHeadersReceived). */
export function securityHeaders(): Record<string, string> {
  return {
    'Content-Security-Policy': CONTENT_SECURITY_POLICY,
    'X-Content-Type-Options': 'nosniff',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Referrer-Policy': 'no-referrer',
  };
}

/**
 * Response headers with our CSP put in place of any the response had (header names compare
 * case-insensitively, and a second, weaker CSP must not survive beside ours).
 */
export function withSecurityHeaders(headers: Record<string, string[] | string> | undefined): Record<string, string[]> {
  const ours = securityHeaders();
  const lower = new Set(Object.keys(ours).map((k) => k.toLowerCase()));
  const out: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (lower.has(name.toLowerCase())) continue;
    out[name] = Array.isArray(value) ? value : [value];
  }
  for (const [name, value] of Object.entries(ours)) out[name] = [value];
  return out;
}

function parse(url: string): URL | null {
  try {
    return new URL(url);
  } catch {
    return null;
  }
}

/** A URL on our own origin (any path: the protocol handler decides what exists). */
export function isAppOrigin(url: string): boolean {
  const u = parse(url);
  return u !== null && u.protocol === `${APP_SCHEME}:` && u.host === APP_HOST && u.username === '' && u.password === '';
}

/** The renderer's page itself (a fragment or query is still the same page). */
export function isAppPage(url: string): boolean {
  const u = parse(url);
  return u !== null && isAppOrigin(url) && (u.pathname === '/index.html' || u.pathname === '/');
}

export function mimeType(file: string): string {
  return contentTypeFor(extname(file));
}

/**
 * Which file under `root` an app:// request means, or null when it means none we serve: another
 * host, encoded separators or dot segments that would climb out of the folder, NUL bytes. `/` is
 * index.html. The answer is always inside root (checked after resolving, not by string tricks).
 */
export function resolveAppFile(root: string, url: string): string | null {
  const u = parse(url);
  if (!u || u.protocol !== `${APP_SCHEME}:` || u.host !== APP_HOST || u.username || u.password) return null;
  let pathname: string;
  try {
    pathname = decodeURIComponent(u.pathname);
  } catch {
    return null;
  }
  if (pathname.includes('\0') || pathname.includes('\\') || /%2f|%5c/i.test(u.pathname)) return null;
  if (pathname.split('/').some((segment) => segment === '..' || segment === '.')) return null;
  if (pathname === '/' || pathname === '') pathname = '/index.html';
  const base = resolve(root);
  const file = resolve(base, '.' + pathname);
  const rel = relative(base, file);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel) || rel.split(sep).includes('..')) return null;
  return file;
}

/**
 * Where a link may go. The window never leaves our page: a navigation to it (a reload) is allowed,
 * an http(s) link goes to the system browser after `safeExternalUrl` approves it, anything else
 * (file:, javascript:, data:, other schemes, our own other paths) is refused.
 */
export type NavigationDecision = 'allow' | 'external' | 'deny';

export function decideNavigation(url: string): NavigationDecision {
  if (isAppPage(url)) return 'allow';
  return safeExternalUrl(url) ? 'external' : 'deny';
}

/** For window.open / target=_blank: never a new window; an approved http(s) link opens outside. */
export function decideWindowOpen(url: string): 'external' | 'deny' {
  return safeExternalUrl(url) ? 'external' : 'deny';
}

/**
 * An http(s) URL that is reasonable to hand to the system browser: parseable, no embedded
 * credentials (phishing-style `https://good@evil`), a real host name, not absurdly long. Returns
 * the normalised URL to open, or null.
 */
export function safeExternalUrl(url: string): string | null {
  if (url.length > 2048) return null;
  const u = parse(url);
  if (!u) return null;
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return null;
  if (u.username !== '' || u.password !== '') return null;
  if (u.hostname === '' || /[\s<>"]/.test(url)) return null;
  return u.href;
}

/**
 * Permissions: the app needs none (no camera, microphone, notifications, geolocation, MIDI, HID,
 * serial, clipboard reads, fullscreen requests…), so every request and every check is refused,
 * whoever asks. A function rather than a constant so the wiring stays one line per hook.
 */
export function allowPermission(_permission: string, _requestingUrl: string): boolean {
  return false;
}

/**
 * Whether an IPC message may be answered: it must come from our window's own web contents, from
 * its main frame (not an iframe, even a same-origin one), and that frame must show our page.
 */
export interface SenderFacts {
  /** event.sender is our BrowserWindow's webContents. */
  fromOurWindow: boolean;
  /** event.senderFrame is that webContents' mainFrame (null when the frame is gone). */
  isMainFrame: boolean;
  /** event.senderFrame.url (null when the frame is gone or navigated away). */
  frameUrl: string | null;
}

export function checkSender(facts: SenderFacts): { ok: true } | { ok: false; reason: string } {
  if (!facts.fromOurWindow) return { ok: false, reason: 'the message does not come from the Whittle window' };
  if (!facts.isMainFrame) return { ok: false, reason: 'the message comes from a subframe' };
  if (facts.frameUrl === null) return { ok: false, reason: 'the sending frame is gone' };
  if (!isAppPage(facts.frameUrl)) return { ok: false, reason: `the sending frame shows ${facts.frameUrl.slice(0, 200)}, not the app` };
  return { ok: true };
}
