import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { hardeningHeaders, sendPage } from './responses.ts';

/**
 * Downloads: `GET /files/<path relative to WHITTLE_HOME>`, for files the engine wrote and the user
 * asked for (artifacts, exported reports). Only WHITTLE_HOME/artifacts and WHITTLE_HOME/exports are
 * served, checked after resolving symlinks, so neither `..` nor a link can reach anything else.
 */
export const DOWNLOAD_FOLDERS = ['artifacts', 'exports'] as const;
export const FILES_PREFIX = '/files/';

function inside(root: string, path: string): string | null {
  const rel = relative(root, path);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return null;
  return rel;
}

/** The download URL of a file under artifacts/ or exports/ (URL-encoded segments); null for anything else. */
export function fileUrlFor(home: string, absolutePath: string): string | null {
  const path = resolve(absolutePath);
  for (const folder of DOWNLOAD_FOLDERS) {
    const rel = inside(join(home, folder), path);
    if (rel !== null) return FILES_PREFIX + [folder, ...rel.split(sep)].map(encodeURIComponent).join('/');
  }
  return null;
}

export type DownloadTarget = { ok: true; file: string; bytes: number } | { ok: false; status: number; message: string };

/**
 * Maps the raw request path (as sent, never normalised by a URL parser, which would turn `..` into
 * a different path before this check could see it) to a file that may be downloaded.
 */
export async function resolveDownload(home: string, rawPath: string): Promise<DownloadTarget> {
  if (!rawPath.startsWith(FILES_PREFIX)) return { ok: false, status: 404, message: 'not a download path' };
  let segments: string[];
  try {
    segments = rawPath.slice(FILES_PREFIX.length).split('/').map((s) => decodeURIComponent(s));
  } catch {
    return { ok: false, status: 400, message: 'the path is not valid URL encoding' };
  }
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..' || /[/\\\0]/.test(s)) return { ok: false, status: 400, message: 'the path must name a file inside artifacts/ or exports/, without "..", empty or encoded separators' };
  }
  const folder = segments[0] as (typeof DOWNLOAD_FOLDERS)[number];
  if (!DOWNLOAD_FOLDERS.includes(folder) || segments.length < 2) return { ok: false, status: 404, message: 'only files under artifacts/ and exports/ can be downloaded' };
  let real: string;
  let root: string;
  try {
    root = await realpath(join(home, folder));
    real = await realpath(join(home, ...segments));
  } catch {
    return { ok: false, status: 404, message: 'no such file' };
  }
  // A symlink inside artifacts/ that points elsewhere ends up here.
  if (inside(root, real) === null) return { ok: false, status: 403, message: 'the file is outside artifacts/ and exports/' };
  const st = await stat(real).catch(() => null);
  if (!st?.isFile()) return { ok: false, status: 404, message: 'no such file' };
  return { ok: true, file: real, bytes: st.size };
}

/** RFC 6266: a plain ASCII fallback plus the exact UTF-8 name. */
export function attachmentDisposition(name: string): string {
  const fallback = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

export async function serveDownload(req: IncomingMessage, res: ServerResponse, home: string, rawPath: string): Promise<void> {
  const target = await resolveDownload(home, rawPath);
  if (!target.ok) {
    sendPage(req, res, target.status, target.status === 404 ? 'Not found' : 'Refused', [target.message]);
    return;
  }
  hardeningHeaders(res);
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Content-Length', String(target.bytes));
  res.setHeader('Content-Disposition', attachmentDisposition(target.file.split(sep).pop()!));
  res.setHeader('Cache-Control', 'no-store');
  res.writeHead(200);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const stream = createReadStream(target.file);
  // Headers are already out; a read error can only cut the response short.
  stream.on('error', () => res.destroy());
  stream.pipe(res);
}
