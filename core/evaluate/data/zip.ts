/**
 * Just enough of the zip format for .npz files: the central directory (zip64 included, which numpy
 * writes for every entry) and readers over stored or deflated entries. Entries are streamed, never
 * inflated whole.
 */
import { open } from 'node:fs/promises';
import { badInput, WhittleError } from '../../../api/errors.ts';
import { fileReader, inflateReader, type ByteReader } from './byte-reader.ts';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
  encrypted: boolean;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX32 = 0xffffffff;

async function readAt(path: string, position: number, length: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** 64-bit sizes as numbers: anything past 2^53 is past the end of any real file and fails the bounds checks. */
function u64(buf: Buffer, at: number): number {
  return Number(buf.readBigUInt64LE(at));
}

export async function readZipDirectory(path: string, fileSize: number): Promise<ZipEntry[]> {
  const tailLen = Math.min(fileSize, 22 + 0xffff);
  const tail = await readAt(path, fileSize - tailLen, tailLen);
  let at = -1;
  for (let i = tail.length - 22; i >= 0; i--) if (tail.readUInt32LE(i) === EOCD) { at = i; break; }
  if (at < 0) throw badInput(path, 'is not a zip archive (no end-of-central-directory record); an .npz must be a zip of .npy files');
  let count = tail.readUInt16LE(at + 10);
  let cdSize = tail.readUInt32LE(at + 12);
  let cdOffset = tail.readUInt32LE(at + 16);
  if (count === 0xffff || cdSize === MAX32 || cdOffset === MAX32) {
    const locAt = fileSize - tailLen + at - 20;
    const loc = locAt >= 0 ? await readAt(path, locAt, 20) : Buffer.alloc(0);
    if (loc.length < 20 || loc.readUInt32LE(0) !== ZIP64_LOCATOR) throw badInput(path, 'zip64 archive without a zip64 locator');
    const rec = await readAt(path, u64(loc, 8), 56);
    if (rec.length < 56 || rec.readUInt32LE(0) !== ZIP64_EOCD) throw badInput(path, 'zip64 end-of-central-directory record is missing');
    count = u64(rec, 32);
    cdSize = u64(rec, 40);
    cdOffset = u64(rec, 48);
  }
  if (cdOffset + cdSize > fileSize) throw badInput(path, 'zip central directory points past the end of the file (truncated?)');
  const cd = await readAt(path, cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL) throw badInput(path, `zip central directory entry ${i} is corrupt`);
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    let compressedSize = cd.readUInt32LE(p + 20);
    let uncompressedSize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let localHeaderOffset = cd.readUInt32LE(p + 42);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
    // Zip64 extra field: 64-bit values, present only for the fields saturated at 0xFFFFFFFF.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (uncompressedSize === MAX32) { uncompressedSize = u64(cd, q); q += 8; }
        if (compressedSize === MAX32) { compressedSize = u64(cd, q); q += 8; }
        if (localHeaderOffset === MAX32) { localHeaderOffset = u64(cd, q); }
      }
      e += 4 + len;
    }
    entries.push({ name, method, compressedSize, uncompressedSize, localHeaderOffset, encrypted: (flags & 1) !== 0 });
    p = extraEnd + commentLen;
  }
  return entries;
}

/** A reader over an entry's uncompressed bytes. */
export async function openZipEntry(path: string, entry: ZipEntry): Promise<ByteReader> {
  const label = `entry ${entry.name}`;
  if (entry.encrypted) throw new WhittleError('UNSUPPORTED', `${path}: ${label} is encrypted`, { file: path });
  const local = await readAt(path, entry.localHeaderOffset, 30);
  if (local.length < 30 || local.readUInt32LE(0) !== LOCAL) throw badInput(path, `${label}: local header is missing`);
  const dataStart = entry.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
  if (entry.method === 0) return fileReader(path, dataStart, entry.uncompressedSize);
  if (entry.method === 8) return inflateReader(path, dataStart, entry.compressedSize, label);
  throw new WhittleError('UNSUPPORTED', `${path}: ${label} uses zip compression method ${entry.method}; only stored and deflate are supported (np.savez / np.savez_compressed)`, { file: path });
}
