/** Helpers shared by this folder's tests. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { WhittleError, type ErrorCode } from '../../../api/errors.ts';
import type { Batch, Dataset } from './types.ts';

export async function collect(ds: Dataset, batchSize: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of ds.batches(batchSize)) out.push(b);
  return out;
}

/** Rejects with `code`, a one-line message naming `file`. */
export async function assertFails(p: Promise<unknown>, file: string, code: ErrorCode = 'BAD_INPUT', problem?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof WhittleError, `expected a WhittleError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.message.includes(file), `message should name ${file}: ${e.message}`);
    assert.ok(!e.message.includes('\n'), `message should be one line: ${e.message}`);
    if (problem) assert.match(e.message, problem);
    return true;
  });
}

/** A fresh temporary folder, removed when the test file ends. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'whittle-data-'));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A .npy file's bytes (version 1 header), for tests that need arrays the fixtures lack. */
export function npyBytes(descr: string, shape: number[], data: ArrayBufferView): Uint8Array {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const header = dict.padEnd(total - 10 - 1, ' ') + '\n';
  const out = new Uint8Array(total + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), total);
  return out;
}
