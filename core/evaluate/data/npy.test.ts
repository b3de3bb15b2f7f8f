import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture } from '../../testing/fixtures.ts';
import { openDataset } from './index.ts';
import { assertFails, collect, npyBytes, tempDir } from './test-support.ts';

const IRIS_INPUT = [{ name: 'input', dtype: 'float32' as const, shape: ['batch', 4] }];

test('iris .npy: 150 float32 rows with labels.npy beside it', async () => {
  const ds = await openDataset(fixture('iris', 'iris_X.npy'), IRIS_INPUT);
  assert.equal(ds.kind, 'npy');
  assert.equal(ds.n, 150);
  assert.equal(ds.hasLabels, true);
  const batches = await collect(ds, 64);
  assert.deepEqual(batches.map((b) => b.count), [64, 64, 22]);
  const x = batches[0]!.inputs.input!;
  assert.deepEqual(x.dims, [64, 4]);
  assert.deepEqual([...x.data.subarray(0, 4)], [5.1, 3.5, 1.4, 0.2].map(Math.fround)); // the first iris row
  const labels = batches.flatMap((b) => [...b.labels!]);
  assert.deepEqual([0, 1, 2].map((c) => labels.filter((l) => l === c).length), [50, 50, 50]);
});

test('a folder with one array beside labels.npy opens that array; uint8 digits convert to float', async () => {
  const ds = await openDataset(fixture('digits'), [{ name: 'x', dtype: 'float32', shape: [null, 64] }], { limit: 10 });
  assert.equal(ds.path, fixture('digits', 'digits_X.npy'));
  const [b] = await collect(ds, 10);
  assert.deepEqual(b!.inputs.x!.dims, [10, 64]);
  assert.ok([...b!.inputs.x!.data].every((v) => Number.isInteger(v) && v >= 0 && v <= 16));
  assert.deepEqual([...b!.labels!], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]); // digits is ordered 0..9 at the start
});

test('HWC arrays feed an NCHW model transposed; [N,28,28] feeds [1,1,28,28] reshaped', async () => {
  const dir = await tempDir();
  const hwc = Uint8Array.from({ length: 2 * 2 * 2 * 3 }, (_, i) => i); // 2 samples of 2×2×3
  await writeFile(join(dir, 'x.npy'), npyBytes('|u1', [2, 2, 2, 3], hwc));
  const [b] = await collect(await openDataset(join(dir, 'x.npy'), [{ name: 'x', dtype: 'float32', shape: ['N', 3, 2, 2] }]), 2);
  assert.deepEqual(b!.inputs.x!.dims, [2, 3, 2, 2]);
  // Sample 0, channel 0 is pixels (0,0),(0,1),(1,0),(1,1) channel 0 = 0, 3, 6, 9.
  assert.deepEqual([...b!.inputs.x!.data.subarray(0, 4)], [0, 3, 6, 9]);
  assert.deepEqual([...b!.inputs.x!.data.subarray(12, 16)], [12, 15, 18, 21]);

  await writeFile(join(dir, 'm.npy'), npyBytes('<f4', [3, 28, 28], new Float32Array(3 * 784).fill(0.5)));
  const [m] = await collect(await openDataset(join(dir, 'm.npy'), [{ name: 'Input3', dtype: 'float32', shape: [1, 1, 28, 28] }]), 1);
  assert.deepEqual(m!.inputs.Input3!.dims, [1, 1, 28, 28]);
});

test('bad .npy files are BAD_INPUT naming the file', async () => {
  const dir = await tempDir();
  const good = await readFile(fixture('iris', 'iris_X.npy'));
  const badHeader = join(dir, 'bad-header.npy');
  const broken = Buffer.from(good);
  broken.write("{'descr': <f4", 10, 'latin1');
  await writeFile(badHeader, broken);
  await assertFails(openDataset(badHeader, IRIS_INPUT), badHeader, 'BAD_INPUT', /header/);

  const truncated = join(dir, 'truncated.npy');
  await writeFile(truncated, good.subarray(0, good.length - 4));
  await assertFails(openDataset(truncated, IRIS_INPUT), truncated, 'BAD_INPUT', /bytes/);

  const wrongLabels = join(dir, 'labelled');
  await mkdir(wrongLabels);
  await writeFile(join(wrongLabels, 'x.npy'), good);
  await writeFile(join(wrongLabels, 'labels.npy'), npyBytes('|u1', [3], Uint8Array.of(0, 1, 2)));
  await assertFails(openDataset(join(wrongLabels, 'x.npy'), IRIS_INPUT), join(wrongLabels, 'labels.npy'), 'BAD_INPUT', /3 labels/);

  // Rows of 4 cannot feed an input of 3.
  await assertFails(openDataset(fixture('iris', 'iris_X.npy'), [{ name: 'x', dtype: 'float32', shape: ['N', 3] }]), 'iris_X.npy', 'BAD_INPUT', /\[4\]/);
  // One array cannot feed two inputs.
  const two = [IRIS_INPUT[0]!, { name: 'mask', dtype: 'float32' as const, shape: ['N', 4] }];
  await assertFails(openDataset(fixture('iris', 'iris_X.npy'), two), 'iris_X.npy', 'BAD_INPUT', /\.npz/);
});
