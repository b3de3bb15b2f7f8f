import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, unlink } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { sendJson, sendJsonError } from './responses.ts';
import { uploadGroupProblem, uploadNameProblem } from './security.ts';

/**
 * `POST /upload?name=<file name>&group=<id>`: the browser's stand-in for Electron's "path of the
 * dropped file". The raw body is streamed (never buffered) to WHITTLE_HOME/uploads/<group>/<name>;
 * files of one group share a folder, so a TF.js model.json finds its weight shards beside it.
 * The caller (server.ts) has already checked the session cookie and the Origin.
 */
export const UPLOAD_HEADER = 'x-whittle-upload';
export const DEFAULT_MAX_UPLOAD_BYTES = 8 * 1024 ** 3;

export interface UploadConfig {
  uploadsDir: string;
  maxBytes: number;
  log: (line: string) => void;
}

class TooLarge extends Error {}

/** Passes bytes through, counting them, and fails as soon as there are more than maxBytes. */
function sizeLimit(maxBytes: number, count: (n: number) => void): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      count(seen);
      if (seen > maxBytes) done(new TooLarge());
      else done(null, chunk);
    },
  });
}

function tooLarge(res: ServerResponse, maxBytes: number): void {
  // The rest of the body is not worth reading: close the connection once the answer is out.
  sendJsonError(res, 413, 'BAD_INPUT', `the file is larger than the upload limit of ${maxBytes} bytes (whittle serve --max-upload-bytes)`, { Connection: 'close' });
}

export async function handleUpload(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, config: UploadConfig): Promise<void> {
  // A custom header cannot be sent cross-origin without a CORS preflight, which this server never grants.
  if (req.headers[UPLOAD_HEADER] !== '1') {
    sendJsonError(res, 403, 'BAD_USAGE', 'uploads need the header X-Whittle-Upload: 1');
    return;
  }
  const name = query.get('name');
  const nameProblem = uploadNameProblem(name);
  if (nameProblem) {
    sendJsonError(res, 400, 'BAD_USAGE', nameProblem);
    return;
  }
  const group = query.get('group') ?? randomBytes(8).toString('hex');
  const groupProblem = uploadGroupProblem(group);
  if (groupProblem) {
    sendJsonError(res, 400, 'BAD_USAGE', groupProblem);
    return;
  }
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > config.maxBytes) {
    tooLarge(res, config.maxBytes);
    res.on('finish', () => req.destroy());
    return;
  }

  const folder = join(config.uploadsDir, group);
  const target = join(folder, name!);
  // Written under a temporary name and renamed, so a half-uploaded file is never opened as a model.
  const partial = join(folder, `.upload-${randomBytes(8).toString('hex')}.part`);
  let bytes = 0;
  try {
    await mkdir(folder, { recursive: true });
    await pipeline(req, sizeLimit(config.maxBytes, (n) => void (bytes = n)), createWriteStream(partial, { flags: 'wx' }));
    await rename(partial, target);
  } catch (err) {
    await unlink(partial).catch(() => {});
    if (err instanceof TooLarge) {
      tooLarge(res, config.maxBytes);
      res.on('finish', () => req.destroy());
      return;
    }
    if (req.destroyed && !req.complete) {
      config.log(`upload of ${name} cancelled by the browser`);
      return;
    }
    const message = `could not store the upload ${name} in ${folder}: ${(err as Error).message}`;
    config.log(message);
    sendJsonError(res, 500, 'RUNTIME', message);
    return;
  }
  sendJson(res, 200, { path: target, group, bytes });
}
