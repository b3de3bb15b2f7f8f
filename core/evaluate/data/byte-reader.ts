/**
 * Sequential readers over part of a file, so sources stream samples instead of loading whole
 * arrays: a buffered positional reader for plain bytes and an inflating reader for deflated zip
 * entries. Both hold at most one chunk beyond what the caller asked for.
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createInflateRaw } from 'node:zlib';
import { badInput } from '../../../api/errors.ts';

export interface ByteReader {
  /** Exactly n bytes, or a BAD_INPUT error naming the file when it ends early. */
  read(n: number): Promise<Uint8Array>;
  skip(n: number): Promise<void>;
  close(): Promise<void>;
}

const CHUNK = 1 << 20;

/** Reads bytes [start, start+length) of a file in 1 MiB chunks. */
export async function fileReader(path: string, start: number, length: number): Promise<ByteReader> {
  const handle: FileHandle = await open(path, 'r');
  let pos = start; // file position of the next byte to hand out
  const end = start + length;
  let buf = new Uint8Array(0);
  let bufStart = start; // file position of buf[0]
  return {
    async read(n) {
      if (pos + n > end) throw badInput(path, `ends early: needed ${n} bytes at offset ${pos}, the data ends at ${end}`);
      if (pos < bufStart || pos + n > bufStart + buf.length) {
        const want = Math.min(Math.max(n, CHUNK), end - pos);
        buf = new Uint8Array(want);
        const { bytesRead } = await handle.read(buf, 0, want, pos);
        if (bytesRead < n) throw badInput(path, `ends early: needed ${n} bytes at offset ${pos}, got ${bytesRead}`);
        buf = buf.subarray(0, bytesRead);
        bufStart = pos;
      }
      const out = buf.subarray(pos - bufStart, pos - bufStart + n);
      pos += n;
      return out;
    },
    async skip(n) {
      if (pos + n > end) throw badInput(path, `ends early: cannot skip ${n} bytes at offset ${pos}`);
      pos += n;
    },
    async close() { await handle.close(); },
  };
}

/** Inflates a raw-deflate stream stored at [start, start+compressedLength) of a file (a zip entry). */
export function inflateReader(path: string, start: number, compressedLength: number, label: string): ByteReader {
  const file = createReadStream(path, { start, end: Math.max(start, start + compressedLength - 1) });
  const inflate = createInflateRaw();
  file.on('error', (e) => inflate.destroy(e));
  file.pipe(inflate);
  const chunks = inflate[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let pending: Uint8Array = new Uint8Array(0);

  async function fill(n: number): Promise<void> {
    const parts: Uint8Array[] = [pending];
    let have = pending.length;
    while (have < n) {
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } catch (e) {
        throw badInput(path, `${label} is not valid deflate data (${(e as Error).message})`);
      }
      if (next.done) throw badInput(path, `${label} ends early: needed ${n} more bytes, it holds ${have}`);
      parts.push(next.value);
      have += next.value.length;
    }
    pending = parts.length === 1 ? pending : Buffer.concat(parts);
  }
  return {
    async read(n) {
      if (pending.length < n) await fill(n);
      const out = pending.subarray(0, n);
      pending = pending.subarray(n);
      return out;
    },
    async skip(n) {
      let left = n;
      while (left > 0) {
        const step = Math.min(left, CHUNK);
        await this.read(step);
        left -= step;
      }
    },
    async close() {
      file.destroy();
      inflate.destroy();
    },
  };
}

/** A reader over bytes already in memory (gzip files inflated once, small test inputs). */
export function memoryReader(bytes: Uint8Array, path: string): ByteReader {
  let pos = 0;
  return {
    async read(n) {
      if (pos + n > bytes.length) throw badInput(path, `ends early: needed ${n} bytes at offset ${pos}, it has ${bytes.length}`);
      const out = bytes.subarray(pos, pos + n);
      pos += n;
      return out;
    },
    async skip(n) {
      if (pos + n > bytes.length) throw badInput(path, `ends early: cannot skip ${n} bytes at offset ${pos}`);
      pos += n;
    },
    async close() {},
  };
}
