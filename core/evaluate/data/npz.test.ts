import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32, deflateRawSync } from 'node:zlib';
import { openDataset } from './index.ts';
import { assertFails, collect, npyBytes, tempDir } from './test-support.ts';

interface Entry { name: string; data: Uint8Array; deflate: boolean; zip64: boolean }

/**
 * A zip writer for the test: stored or deflated entries; `zip64` entries carry a zip64 extra field
 * in both headers with the 32-bit fields saturated, as numpy's savez writes (force_zip64).
 */
function buildZip(entries: Entry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const body = e.deflate ? deflateRawSync(e.data) : Buffer.from(e.data);
    const name = Buffer.from(e.name);
    const crc = crc32(e.data);
    const extra = Buffer.alloc(e.zip64 ? 20 : 0);
    if (e.zip64) {
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(16, 2);
      extra.writeBigUInt64LE(BigInt(e.data.length), 4);
      extra.writeBigUInt64LE(BigInt(body.length), 12);
    }
    const size32 = (v: number): number => (e.zip64 ? 0xffffffff : v);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(e.zip64 ? 45 : 20, 4);
    local.writeUInt16LE(e.deflate ? 8 : 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(size32(body.length), 18);
    local.writeUInt32LE(size32(e.data.length), 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(45, 4);
    central.writeUInt16LE(e.zip64 ? 45 : 20, 6);
    central.writeUInt16LE(e.deflate ? 8 : 0, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(size32(body.length), 20);
    central.writeUInt32LE(size32(e.data.length), 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt16LE(extra.length, 30);
    central.writeUInt32LE(offset, 42);
    const chunk = Buffer.concat([local, name, extra, body]);
    locals.push(chunk);
    centrals.push(Buffer.concat([central, name, extra]));
    offset += chunk.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

const N = 5;
const image = Float32Array.from({ length: N * 3 * 2 * 2 }, (_, i) => i / 10);
const ids = BigInt64Array.from({ length: N * 4 }, (_, i) => BigInt(i) * 1_000_000_007n); // beyond 2^32: int64 must stay exact
const labels = Int32Array.of(4, 3, 2, 1, 0);
const INPUTS = [
  { name: 'pixels', dtype: 'float32' as const, shape: ['N', 3, 2, 2] },
  { name: 'ids', dtype: 'int64' as const, shape: ['N', 4] },
];

async function writeNpz(deflate: boolean, zip64: boolean): Promise<string> {
  const path = join(await tempDir(), deflate ? 'compressed.npz' : 'stored.npz');
  await writeFile(path, buildZip([
    { name: 'pixels.npy', data: npyBytes('<f4', [N, 3, 2, 2], image), deflate, zip64 },
    { name: 'ids.npy', data: npyBytes('<i8', [N, 4], ids), deflate, zip64: false },
    { name: 'labels.npy', data: npyBytes('<i4', [N], labels), deflate, zip64 },
  ]));
  return path;
}

for (const [deflate, zip64] of [[false, false], [true, true]] as const) {
  test(`an .npz (${deflate ? 'deflated, zip64 extras' : 'stored'}) feeds inputs by name, with its labels array`, async () => {
    const ds = await openDataset(await writeNpz(deflate, zip64), INPUTS, { offset: 1 });
    assert.equal(ds.kind, 'npz');
    assert.equal(ds.n, 4);
    const batches = await collect(ds, 3);
    assert.deepEqual(batches.map((b) => [b.index, b.count]), [[1, 3], [4, 1]]);
    const px = batches[0]!.inputs.pixels!;
    assert.deepEqual(px.dims, [3, 3, 2, 2]);
    assert.deepEqual(px.data, image.slice(12, 48));
    const id = batches[1]!.inputs.ids!;
    assert.deepEqual(id.dims, [1, 4]);
    assert.deepEqual(id.data, ids.slice(16, 20));
    assert.deepEqual(batches.flatMap((b) => [...b.labels!]), [3, 2, 1, 0]);
  });
}

test('a single-input model takes the one array of np.savez(path, x) whatever its name', async () => {
  const path = join(await tempDir(), 'arr.npz');
  await writeFile(path, buildZip([{ name: 'arr_0.npy', data: npyBytes('<f4', [N, 3, 2, 2], image), deflate: true, zip64: false }]));
  const ds = await openDataset(path, [INPUTS[0]!]);
  assert.equal(ds.hasLabels, false);
  assert.equal((await collect(ds, 10))[0]!.count, N);
});

test('npz problems are BAD_INPUT naming the file: missing input array, disagreeing sample counts, not a zip', async () => {
  const stored = await writeNpz(false, false);
  await assertFails(openDataset(stored, [...INPUTS, { name: 'mask', dtype: 'float32', shape: ['N', 4] }]), stored, 'BAD_INPUT', /no array named mask/);

  const dir = await tempDir();
  const uneven = join(dir, 'uneven.npz');
  await writeFile(uneven, buildZip([
    { name: 'pixels.npy', data: npyBytes('<f4', [N, 3, 2, 2], image), deflate: false, zip64: false },
    { name: 'ids.npy', data: npyBytes('<i8', [2, 4], ids.slice(0, 8)), deflate: false, zip64: false },
  ]));
  await assertFails(openDataset(uneven, INPUTS), uneven, 'BAD_INPUT', /2 samples/);

  const notZip = join(dir, 'broken.npz');
  await writeFile(notZip, Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(100)]));
  await assertFails(openDataset(notZip, INPUTS), notZip, 'BAD_INPUT', /zip/);
});
