/**
 * The anchor every I/O-bound bench is measured against: the same bytes read, or read and written,
 * with plain fs calls in 16 MiB chunks through one reused buffer, the output fsynced as our writer
 * fsyncs its own.
 */
import { closeSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';

export const CHUNK = 16 << 20;

/** Reads every byte of the files in 16 MiB chunks into one reused buffer; returns the byte count. */
export function readAll(files: string[]): number {
  const buf = Buffer.allocUnsafe(CHUNK);
  let total = 0;
  for (const file of files) {
    const fd = openSync(file, 'r');
    try {
      for (let n; (n = readSync(fd, buf, 0, CHUNK, null)) > 0;) total += n;
    } finally {
      closeSync(fd);
    }
  }
  return total;
}

/** Copies the files' bytes into one new file in 16 MiB chunks, fsynced like our writer's output. */
export function copyAll(files: string[], out: string): number {
  const buf = Buffer.allocUnsafe(CHUNK);
  const outFd = openSync(out, 'w');
  let total = 0;
  try {
    for (const file of files) {
      const fd = openSync(file, 'r');
      try {
        for (let n; (n = readSync(fd, buf, 0, CHUNK, null)) > 0;) {
          for (let off = 0; off < n;) off += writeSync(outFd, buf, off, n - off);
          total += n;
        }
      } finally {
        closeSync(fd);
      }
    }
    fsyncSync(outFd);
  } finally {
    closeSync(outFd);
  }
  return total;
}
