import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCode } from '../api/errors.ts';
import { contentSecurityPolicy } from './security.ts';

/**
 * Every response carries the same hardening headers; HTML also gets the CSP. There are never any
 * CORS headers: the app and its API are one origin, and nothing else may read them.
 */
export function hardeningHeaders(res: ServerResponse): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'DENY');
  // Other origins (another server on localhost, say) may not even embed our responses.
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
}

export function htmlHeaders(res: ServerResponse, req: IncomingMessage): void {
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Content-Security-Policy', contentSecurityPolicy(req.headers.host));
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A small self-contained page (no scripts, inline style allowed by the CSP) for refusals. */
export function sendPage(req: IncomingMessage, res: ServerResponse, status: number, title: string, paragraphs: string[], headers: Record<string, string> = {}): void {
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Whittle · ${escapeHtml(title)}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}code{background:#eee;padding:0 .3em}</style>
</head><body><h1>${escapeHtml(title)}</h1>
${paragraphs.map((p) => `<p>${p}</p>`).join('\n')}
</body></html>
`;
  hardeningHeaders(res);
  htmlHeaders(res, req);
  res.setHeader('Cache-Control', 'no-store');
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.writeHead(status);
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** JSON for the renderer's fetch calls (uploads): the same `{code, message}` errors the API uses. */
export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  hardeningHeaders(res);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.writeHead(status);
  res.end(JSON.stringify(value));
}

export function sendJsonError(res: ServerResponse, status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: { code, message } }, headers);
}

export const PAGE_TEXT = {
  unauthorized: [
    'This Whittle server needs the address it printed when it started: open the URL that <code>whittle serve</code> printed (it ends in <code>?token=…</code>).',
    'The token is exchanged for a session cookie on first visit; a restarted server has a new token.',
  ],
  notBuilt: [
    'The app has not been built in this checkout, so there is nothing to show yet.',
    'Run <code>npm run build</code>, then reload this page.',
  ],
} as const;
