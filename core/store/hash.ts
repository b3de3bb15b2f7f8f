import type Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { FileDigest } from './atomic.ts';

/** Streams the file through sha256: memory stays flat however large the model is. */
export async function sha256File(path: string): Promise<FileDigest> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

interface CachedHash {
  bytes: number;
  mtime_ms: number;
  sha256: string;
}

/**
 * sha256 of a file, remembered in the store by absolute path, size and mtime, so evaluating the
 * same 1 GiB model ten times hashes it once. Returns null for folders and for paths that are not
 * files (`synthetic:100`): those are recorded by path only.
 */
export async function cachedFileDigest(db: Database.Database, path: string): Promise<FileDigest | null> {
  const abs = resolve(path);
  let before;
  try {
    before = await stat(abs);
  } catch {
    return null;
  }
  if (!before.isFile()) return null;
  const row = db.prepare('SELECT bytes, mtime_ms, sha256 FROM file_hashes WHERE path = ?').get(abs) as CachedHash | undefined;
  if (row && row.bytes === before.size && row.mtime_ms === before.mtimeMs) return { sha256: row.sha256, bytes: row.bytes };
  const digest = await sha256File(abs);
  const after = await stat(abs);
  // A file that changed while we read it gets a hash of neither version: do not remember it.
  if (after.size === before.size && after.mtimeMs === before.mtimeMs && digest.bytes === before.size) {
    db.prepare(`INSERT INTO file_hashes (path, bytes, mtime_ms, sha256, hashed_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT(path) DO UPDATE SET bytes = excluded.bytes, mtime_ms = excluded.mtime_ms,
        sha256 = excluded.sha256, hashed_at = excluded.hashed_at`)
      .run(abs, digest.bytes, before.mtimeMs, digest.sha256, new Date().toISOString());
  }
  return digest;
}
