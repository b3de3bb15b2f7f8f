import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { PNG } from 'pngjs';
import { fixture } from '../../testing/fixtures.ts';
import { openDataset } from './index.ts';
import { assertFails, collect, tempDir } from './test-support.ts';

const NHWC_U8 = [{ name: 'x', dtype: 'uint8' as const, shape: ['N', 224, 224, 3] }];

/** A PNG filled with one colour (grey when `grey`). */
function png(width: number, height: number, rgb: [number, number, number], grey = false): Buffer {
  const img = new PNG({ width, height, colorType: grey ? 0 : 2 });
  for (let i = 0; i < width * height; i++) img.data.set([...rgb, 255], i * 4);
  return PNG.sync.write(img, { colorType: grey ? 0 : 2 });
}

test('imagenet-100/jpeg decodes to within a grey level of images.u8 (resize 256, crop 224), labels from ../labels.json', async () => {
  const limit = 30;
  const jpeg = await openDataset(fixture('imagenet-100', 'jpeg'), NHWC_U8, { limit });
  assert.equal(jpeg.kind, 'image-folder');
  assert.equal(jpeg.n, limit);
  const raw = await openDataset(fixture('imagenet-100'), NHWC_U8, { limit });
  const [a] = await collect(jpeg, limit);
  const [b] = await collect(raw, limit);
  assert.deepEqual([...a!.labels!], [...b!.labels!]);
  const x = a!.inputs.x!.data as Uint8Array;
  const y = b!.inputs.x!.data as Uint8Array;
  let worst = 0;
  let total = 0;
  for (let s = 0; s < limit; s++) {
    let d = 0;
    for (let i = s * 150528; i < (s + 1) * 150528; i++) d += Math.abs(x[i]! - y[i]!);
    worst = Math.max(worst, d / 150528);
    total += d;
  }
  // What is left is the JPEG decoder (jpeg-js upsamples chroma without libjpeg's smoothing).
  assert.ok(total / (limit * 150528) < 0.7, `mean abs diff ${total / (limit * 150528)}`);
  assert.ok(worst < 1.5, `worst image mean abs diff ${worst}`);
});

test('a labels.json path reads the files it lists, in its order', async () => {
  const ds = await openDataset(fixture('imagenet-100', 'labels.json'), NHWC_U8, { offset: 98 });
  assert.equal(ds.n, 2);
  const [b] = await collect(ds, 4);
  const listed = JSON.parse(await readFile(fixture('imagenet-100', 'labels.json'), 'utf8')) as { label: number }[];
  assert.deepEqual([...b!.labels!], [listed[98]!.label, listed[99]!.label]);
});

test('ImageFolder convention: sorted class folders, or classes.txt order; resize to the model, grey for 1 channel', async () => {
  const dir = await tempDir();
  for (const [cls, colour] of [['dog', [200, 10, 10]], ['cat', [10, 200, 10]]] as const) {
    await mkdir(join(dir, cls));
    await writeFile(join(dir, cls, 'a.png'), png(40, 30, [...colour]));
    await writeFile(join(dir, cls, 'b.PNG'), png(30, 40, [...colour]));
  }
  const input = [{ name: 'x', dtype: 'float32' as const, shape: ['N', 3, 8, 8] }];
  const ds = await openDataset(dir, input, { preprocess: 'unit' });
  assert.deepEqual(ds.classNames, ['cat', 'dog']);
  const [b] = await collect(ds, 4);
  assert.deepEqual([...b!.labels!], [0, 0, 1, 1]);
  assert.deepEqual(b!.inputs.x!.dims, [4, 3, 8, 8]);
  const px = b!.inputs.x!.data as Float32Array;
  assert.equal(px[0], Math.fround(10 / 255)); // cat's red channel
  assert.equal(px[64], Math.fround(200 / 255)); // cat's green channel

  await writeFile(join(dir, 'classes.txt'), 'dog\ncat\n');
  const ordered = await openDataset(dir, [{ name: 'x', dtype: 'float32', shape: [null, 1, 8, 8] }]);
  assert.deepEqual(ordered.classNames, ['dog', 'cat']);
  const [g] = await collect(ordered, 4);
  assert.deepEqual([...g!.labels!], [0, 0, 1, 1]);
  // Pillow's luma of (200,10,10): (200*19595 + 10*38470 + 10*7471 + 32768) >> 16
  assert.equal((g!.inputs.x!.data as Float32Array)[0], (200 * 19595 + 10 * 38470 + 10 * 7471 + 32768) >>> 16);
});

test('a flat folder with a {file: class name} labels.json, and one without labels (predictions only)', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'one.png'), png(10, 10, [1, 2, 3]));
  await writeFile(join(dir, 'two.png'), png(10, 10, [5, 5, 5], true));
  const input = [{ name: 'x', dtype: 'float32' as const, shape: ['N', 10, 10, 3] }];
  const unlabelled = await openDataset(dir, input);
  assert.equal(unlabelled.hasLabels, false);
  assert.equal((await collect(unlabelled, 2))[0]!.labels, null);

  await writeFile(join(dir, 'labels.json'), JSON.stringify({ 'two.png': 'zebra', 'one.png': 'ant' }));
  const labelled = await openDataset(dir, input);
  assert.deepEqual(labelled.classNames, ['ant', 'zebra']);
  const [b] = await collect(labelled, 2);
  assert.deepEqual([...b!.labels!], [1, 0]);
  assert.deepEqual([...b!.inputs.x!.data.subarray(0, 3)], [5, 5, 5]); // grey PNG comes out with equal channels
});

test('a single image file; free spatial dims take --size; tf preset', async () => {
  const daisy = fixture('tfjs-automl-flowers', 'daisy.jpg');
  const ds = await openDataset(daisy, [{ name: 'image', dtype: 'float32', shape: [1, 224, 224, 3] }], { preprocess: 'tf' });
  assert.equal(ds.kind, 'image');
  assert.equal(ds.n, 1);
  assert.equal(ds.hasLabels, false);
  const [b] = await collect(ds, 1);
  assert.deepEqual(b!.inputs.image!.dims, [1, 224, 224, 3]);
  assert.ok((b!.inputs.image!.data as Float32Array).every((v) => v >= -1 && v <= 1));
  const sized = await openDataset(daisy, [{ name: 'x', dtype: 'float32', shape: ['N', 3, 'H', 'W'] }], { size: 32 });
  assert.deepEqual((await collect(sized, 1))[0]!.inputs.x!.dims, [1, 3, 32, 32]);
});

test('image folder problems are BAD_INPUT naming the folder or file', async () => {
  const dir = await tempDir();
  const empty = join(dir, 'empty');
  await mkdir(join(empty, 'cat'), { recursive: true });
  await assertFails(openDataset(empty, NHWC_U8), empty, 'BAD_INPUT', /no recognised data/);

  const mixed = join(dir, 'mixed');
  await mkdir(join(mixed, 'cat'), { recursive: true });
  await writeFile(join(mixed, 'cat', 'a.png'), png(4, 4, [0, 0, 0]));
  await writeFile(join(mixed, 'loose.png'), png(4, 4, [0, 0, 0]));
  await assertFails(openDataset(mixed, NHWC_U8), mixed, 'BAD_INPUT', /loose/);

  const corrupt = join(dir, 'corrupt.jpg');
  await writeFile(corrupt, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2, 3]));
  await assertFails(openDataset(corrupt, NHWC_U8), corrupt, 'BAD_INPUT', /JPEG/);

  const listing = join(dir, 'listing');
  await mkdir(listing);
  await writeFile(join(listing, 'labels.json'), JSON.stringify([{ file: 'gone.png', label: 1 }]));
  await assertFails(openDataset(listing, NHWC_U8), join(listing, 'labels.json'), 'BAD_INPUT', /gone\.png/);
});
