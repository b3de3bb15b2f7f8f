import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Flushes a file's (or folder's entry list's) bytes to disk; folders cannot be fsynced on Windows. */
async function fsyncPath(path: string, bestEffort: boolean): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'r');
    await handle.sync();
  } catch (err) {
    if (!bestEffort) throw err;
  } finally {
    await handle?.close();
  }
}

/**
 * Writes `dest` so that readers see either the old file or the complete new one, never a torn
 * one, even if the process is killed: the writer fills a temp name in the same folder (so the
 * rename cannot cross filesystems), the bytes are fsynced, then renamed over `dest`. If the
 * writer throws, the temp file is removed and `dest` is left as it was.
 */
export async function writeAtomically(dest: string, write: (tmpPath: string) => Promise<void>): Promise<void> {
  const dir = dirname(dest);
  await mkdir(dir, { recursive: true });
  // Starts with a dot and ends in .tmp: hidden from listings and ignored by .gitignore.
  const tmp = join(dir, `.${basename(dest)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await write(tmp);
    const st = await stat(tmp); // a writer that wrote nothing is a bug, not an empty artifact
    if (st.isDirectory()) await rm(dest, { recursive: true, force: true }); // rename cannot replace a folder
    else await fsyncPath(tmp, false);
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  await fsyncPath(dir, true); // makes the rename itself durable on POSIX
}

export interface FileDigest {
  sha256: string;
  bytes: number;
}

/** Copies `src` to `dest` atomically, hashing the bytes on the way through (one read, not two). */
export async function copyAtomically(src: string, dest: string): Promise<FileDigest> {
  const hash = createHash('sha256');
  let bytes = 0;
  const tee = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  await writeAtomically(dest, (tmp) => pipeline(createReadStream(src), tee, createWriteStream(tmp)));
  return { sha256: hash.digest('hex'), bytes };
}
