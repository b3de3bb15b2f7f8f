import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { WhittleError } from '../../../api/errors.ts';
import type { ManifestGroup, ModelJson } from './manifest.ts';
import type { TfjsModel } from './read.ts';

/** The converter's shard size: 4 MiB, the largest file every major browser caches. */
export const DEFAULT_SHARD_BYTES = 4 * 1024 * 1024;

export interface TfjsWriteOptions {
  /** Bytes per shard file (default 4 MiB); the last shard of a group holds the rest. */
  shardBytes?: number;
}

export interface TfjsWriteReport {
  /** Absolute path of the written model.json. */
  path: string;
  /** model.json and every shard written, absolute. */
  files: string[];
  /** Bytes of all those files. */
  bytes: number;
  /** Bytes of weight data (the shards). */
  weightBytes: number;
}

/** `out/model.json` names the file; anything else is a folder that gets a model.json. */
export function tfjsOutputPath(out: string): string {
  const path = resolve(out);
  return path.toLowerCase().endsWith('.json') ? path : join(path, 'model.json');
}

/**
 * Writes model.json and its shards the way the converter lays them out: each manifest group's
 * weights concatenated in order, cut into `groupG-shardIofN.bin` files. Every file is written under
 * a temporary name and renamed once all are complete, model.json last, so a failed write leaves an
 * earlier model in that folder intact. Unchanged weights are written byte for byte as read.
 */
export function writeTfjsModel(model: TfjsModel, out: string, options: TfjsWriteOptions = {}): TfjsWriteReport {
  const shardBytes = options.shardBytes ?? DEFAULT_SHARD_BYTES;
  if (!Number.isSafeInteger(shardBytes) || shardBytes < 1) throw new WhittleError('BAD_USAGE', `shard size must be a whole number of bytes ≥ 1, got ${shardBytes}`);
  const path = tfjsOutputPath(out);
  const dir = dirname(path);
  const pending: { tmp: string; dest: string; bytes: number }[] = [];
  const tmpName = (dest: string) => join(dir, `.${basename(dest)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  /** Writes `dest`'s bytes under a temporary name; renamed over `dest` once every file is complete. */
  const writeStaged = (dest: string, chunks: readonly Uint8Array[]) => {
    const tmp = tmpName(dest);
    pending.push({ tmp, dest, bytes: chunks.reduce((n, c) => n + c.length, 0) });
    const fd = openSync(tmp, 'w');
    try {
      for (const chunk of chunks) {
        for (let done = 0; done < chunk.length;) done += writeSync(fd, chunk, done, chunk.length - done);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  };
  try {
    mkdirSync(dir, { recursive: true });
    const manifest: ManifestGroup[] = [];
    const groups = model.json.weightsManifest ?? [];
    let weightBytes = 0;
    for (let g = 0; g < groups.length; g++) {
      const members = model.weights.filter((w) => w.group === g);
      const total = members.reduce((n, w) => n + w.bytes.length, 0);
      const count = Math.ceil(total / shardBytes);
      const paths = Array.from({ length: count }, (_, i) => `group${g + 1}-shard${i + 1}of${count}.bin`);
      // the group's bytes flow weight by weight into the shards, never concatenated in memory
      const cursor = new ByteCursor(members.map((w) => w.bytes));
      for (const name of paths) writeStaged(join(dir, name), cursor.take(shardBytes));
      weightBytes += total;
      manifest.push({ ...groups[g]!, paths, weights: members.map((w) => w.entry) });
    }
    const doc: ModelJson = { ...model.json, weightsManifest: manifest };
    writeStaged(path, [Buffer.from(JSON.stringify(doc))]);
    for (const f of pending) renameSync(f.tmp, f.dest);
    return { path, files: pending.map((f) => f.dest), bytes: pending.reduce((n, f) => n + f.bytes, 0), weightBytes };
  } catch (err) {
    for (const f of pending) rmSync(f.tmp, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code && !(err instanceof WhittleError)) throw new WhittleError('BAD_INPUT', `${path}: cannot write the model (${code}: ${(err as Error).message})`, { file: path, cause: err });
    throw err;
  }
}

/** Reads consecutive byte ranges across a list of arrays, as views (no copies). */
class ByteCursor {
  private part = 0;
  private offset = 0;
  constructor(private readonly parts: readonly Uint8Array[]) {}

  take(length: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    while (length > 0 && this.part < this.parts.length) {
      const src = this.parts[this.part]!;
      const n = Math.min(length, src.length - this.offset);
      if (n > 0) out.push(src.subarray(this.offset, this.offset + n));
      length -= n;
      this.offset += n;
      if (this.offset === src.length) { this.part++; this.offset = 0; }
    }
    return out;
  }
}
