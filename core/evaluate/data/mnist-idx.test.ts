import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { test } from 'node:test';
import { fixture } from '../../testing/fixtures.ts';
import { openDataset } from './index.ts';
import { assertFails, collect, tempDir } from './test-support.ts';

const MNIST_INPUT = [{ name: 'Input3', dtype: 'float32' as const, shape: [1, 1, 28, 28] }];
/** Digits per class in the MNIST test set, as published. */
const CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

test('MNIST test set from its folder: 10,000 images, labels and pixel statistics', async () => {
  const ds = await openDataset(fixture('mnist'), MNIST_INPUT, { preprocess: 'mnist' });
  assert.equal(ds.kind, 'mnist-idx');
  assert.equal(ds.n, 10000);
  assert.equal(ds.hasLabels, true);
  const counts = new Array(10).fill(0);
  let sum = 0;
  let max = -Infinity;
  let min = Infinity;
  let first: number[] = [];
  let seen = 0;
  for await (const b of ds.batches(1000)) {
    const x = b.inputs.Input3!;
    assert.deepEqual(x.dims, [b.count, 1, 28, 28]);
    assert.ok(x.data instanceof Float32Array);
    for (const v of x.data as Float32Array) { sum += v; if (v > max) max = v; if (v < min) min = v; }
    for (const l of b.labels!) counts[l]++;
    if (b.index === 0) first = [...b.labels!.subarray(0, 5)];
    seen += b.count;
  }
  assert.equal(seen, 10000);
  assert.deepEqual(first, [7, 2, 1, 0, 4]);
  assert.deepEqual(counts, CLASS_COUNTS);
  assert.equal(min, 0);
  assert.equal(max, 1);
  // The MNIST test set's well-known mean intensity (0.1325 after /255).
  assert.ok(Math.abs(sum / (10000 * 784) - 0.132514607) < 1e-6, `mean ${sum / (10000 * 784)}`);
});

test('naming the images file; offset and limit select a range (calibrate on 256, evaluate the rest)', async () => {
  const images = fixture('mnist', 't10k-images-idx3-ubyte.gz');
  const calib = await openDataset(images, MNIST_INPUT, { limit: 256 });
  const rest = await openDataset(images, MNIST_INPUT, { offset: 256 });
  assert.equal(calib.n, 256);
  assert.equal(rest.n, 9744);
  const restBatches = await collect(rest, 4096);
  assert.deepEqual(restBatches.map((b) => [b.index, b.count]), [[256, 4096], [4352, 4096], [8448, 1552]]);
  // Raw pixels ('none'), and a batch of one for a batch-1 model.
  const [one] = await collect(await openDataset(images, MNIST_INPUT, { offset: 0, limit: 1 }), 1);
  const px = one!.inputs.Input3!.data as Float32Array;
  assert.ok(px.every((v) => Number.isInteger(v) && v >= 0 && v <= 255));
});

test('plain (not gzipped) idx files stream from disk and match; a flat [N,784] input takes them too', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 't10k-images-idx3-ubyte'), gunzipSync(await readFile(fixture('mnist', 't10k-images-idx3-ubyte.gz'))));
  await writeFile(join(dir, 't10k-labels-idx1-ubyte'), gunzipSync(await readFile(fixture('mnist', 't10k-labels-idx1-ubyte.gz'))));
  const flat = [{ name: 'x', dtype: 'float32' as const, shape: ['N', 784] }];
  const a = await collect(await openDataset(dir, flat, { offset: 5, limit: 3 }), 8);
  const b = await collect(await openDataset(fixture('mnist'), flat, { offset: 5, limit: 3 }), 8);
  assert.deepEqual(a[0]!.inputs.x!.dims, [3, 784]);
  assert.deepEqual(a[0]!.inputs.x!.data, b[0]!.inputs.x!.data);
  assert.deepEqual([...a[0]!.labels!], [...b[0]!.labels!]);
});

test('idx with a wrong magic, a truncated idx, and mismatched label counts are BAD_INPUT naming the file', async () => {
  const dir = await tempDir();
  const images = gunzipSync(await readFile(fixture('mnist', 't10k-images-idx3-ubyte.gz')));
  const bad = join(dir, 'bad-images-idx3-ubyte');
  await writeFile(bad, Buffer.concat([Buffer.from([0x12, 0x34, 0x08, 0x03]), images.subarray(4, 4000)]));
  await assertFails(openDataset(bad, MNIST_INPUT), bad, 'BAD_INPUT', /magic/);

  const short = join(dir, 'short-images-idx3-ubyte');
  await writeFile(short, images.subarray(0, 16 + 784 * 10));
  await assertFails(openDataset(short, MNIST_INPUT), short, 'BAD_INPUT', /10000/);

  const pair = join(dir, 'pair');
  await mkdir(pair);
  const header = Buffer.from(images.subarray(0, 16));
  header.writeUInt32BE(2, 4);
  await writeFile(join(pair, 'x-images-idx3-ubyte'), Buffer.concat([header, images.subarray(16, 16 + 2 * 784)]));
  await writeFile(join(pair, 'x-labels-idx1-ubyte'), Buffer.from([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]));
  await assertFails(openDataset(pair, MNIST_INPUT), join(pair, 'x-labels-idx1-ubyte'), 'BAD_INPUT', /3 labels/);
});
