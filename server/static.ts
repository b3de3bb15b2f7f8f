import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, isAbsolute, join, relative } from 'node:path';
import { contentTypeFor } from '../api/content-types.ts';
import { hardeningHeaders, htmlHeaders, PAGE_TEXT, sendPage } from './responses.ts';

/** The app as Vite builds it (index.html + hashed assets/), served read-only. */

async function fileIn(root: string, segments: string[]): Promise<{ file: string; bytes: number } | null> {
  try {
    const real = await realpath(join(root, ...segments));
    const rel = relative(root, real);
    if (rel.startsWith('..') || isAbsolute(rel)) return null;
    const st = await stat(real);
    return st.isFile() ? { file: real, bytes: st.size } : null;
  } catch {
    return null;
  }
}

export async function serveRenderer(req: IncomingMessage, res: ServerResponse, rendererDir: string, rawPath: string): Promise<void> {
  let root: string;
  try {
    root = await realpath(rendererDir);
  } catch {
    root = rendererDir;
  }
  const index = await fileIn(root, ['index.html']);
  if (!index) {
    sendPage(req, res, 503, 'The app is not built', [...PAGE_TEXT.notBuilt]);
    return;
  }
  let segments: string[];
  try {
    segments = rawPath.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
  } catch {
    sendPage(req, res, 400, 'Bad request', ['The path is not valid URL encoding.']);
    return;
  }
  if (segments.some((s) => s === '.' || s === '..' || /[/\\\0]/.test(s))) {
    sendPage(req, res, 400, 'Bad request', ['The path may not contain "..", "." or encoded separators.']);
    return;
  }
  let target = segments.length === 0 ? index : await fileIn(root, segments);
  // Paths without an extension are the app's own routes: they get the app.
  if (!target && !extname(segments[segments.length - 1] ?? '')) target = index;
  if (!target && rawPath === '/favicon.ico') {
    // Browsers ask for it whatever the page says; without one, "no content" keeps the console clean.
    hardeningHeaders(res);
    res.writeHead(204, { 'Cache-Control': 'private, max-age=86400' });
    res.end();
    return;
  }
  if (!target) {
    sendPage(req, res, 404, 'Not found', ['There is no such file in the app.']);
    return;
  }
  const type = contentTypeFor(extname(target.file));
  hardeningHeaders(res);
  if (type.startsWith('text/html')) htmlHeaders(res, req);
  else res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', String(target.bytes));
  // Vite's assets/ names carry a content hash; index.html must always be fetched fresh.
  res.setHeader('Cache-Control', segments[0] === 'assets' ? 'private, max-age=31536000, immutable' : 'no-cache');
  res.writeHead(200);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const stream = createReadStream(target.file);
  stream.on('error', () => res.destroy());
  stream.pipe(res);
}
