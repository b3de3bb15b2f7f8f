import assert from 'node:assert/strict';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixture } from '../../testing/fixtures.ts';
import { float32ToFloat16Bits, openDataset } from './index.ts';
import { assertFails, collect, tempDir } from './test-support.ts';

const SQUEEZENET = [{ name: 'data_0', dtype: 'float32' as const, shape: [1, 3, 224, 224] }];
const IMAGE_BYTES = 224 * 224 * 3;

/** R, G, B of one pixel read straight from images.u8 (NHWC, RGB). */
async function pixel(sample: number, y: number, x: number): Promise<[number, number, number]> {
  const fh = await open(fixture('imagenet-100', 'images.u8'), 'r');
  try {
    const buf = Buffer.alloc(3);
    await fh.read(buf, 0, 3, sample * IMAGE_BYTES + (y * 224 + x) * 3);
    return [buf[0]!, buf[1]!, buf[2]!];
  } finally {
    await fh.close();
  }
}

/** Value at (channel, y, x) of one NCHW sample of a batch. */
const at = (data: ArrayLike<number>, sampleInBatch: number, c: number, y: number, x: number): number =>
  data[sampleInBatch * IMAGE_BYTES + c * 224 * 224 + y * 224 + x]!;

test('the imagenet-100 folder opens the raw tensor (images.u8 + images.json), not the JPEGs', async () => {
  const ds = await openDataset(fixture('imagenet-100'), SQUEEZENET, { preprocess: 'caffe' });
  assert.equal(ds.kind, 'raw-tensor');
  assert.equal(ds.path, fixture('imagenet-100', 'images.u8'));
  assert.equal(ds.n, 100);
  const batches = await collect(ds, 32);
  assert.deepEqual(batches.map((b) => b.count), [32, 32, 32, 4]);
  assert.deepEqual(batches.flatMap((b) => [...b.labels!]), Array.from({ length: 100 }, (_, i) => i * 10));
  assert.deepEqual(batches[0]!.inputs.data_0!.dims, [32, 3, 224, 224]);
});

test('caffe preset: BGR order, 0–255 minus 104/117/123, NCHW — checked on a pixel by hand', async () => {
  const [r, g, b] = await pixel(37, 100, 50);
  const [batch] = await collect(await openDataset(fixture('imagenet-100', 'images.json'), SQUEEZENET, { preprocess: 'caffe', offset: 37, limit: 1 }), 1);
  assert.equal(batch!.index, 37);
  const x = batch!.inputs.data_0!.data as Float32Array;
  assert.deepEqual([at(x, 0, 0, 100, 50), at(x, 0, 1, 100, 50), at(x, 0, 2, 100, 50)], [b - 104, g - 117, r - 123]);
});

test('torch preset: RGB/255 then ImageNet mean/std — checked on a pixel by hand', async () => {
  const [r, g, b] = await pixel(3, 200, 17);
  const [batch] = await collect(await openDataset(fixture('imagenet-100', 'images.u8'), SQUEEZENET, { preprocess: 'torch', offset: 2, limit: 2 }), 2);
  const x = batch!.inputs.data_0!.data as Float32Array;
  const expected = [(r / 255 - 0.485) / 0.229, (g / 255 - 0.456) / 0.224, (b / 255 - 0.406) / 0.225].map(Math.fround);
  assert.deepEqual([0, 1, 2].map((c) => at(x, 1, c, 200, 17)), expected);
  // imagenet is torch under another name
  const [same] = await collect(await openDataset(fixture('imagenet-100'), SQUEEZENET, { preprocess: 'imagenet', offset: 2, limit: 2 }), 2);
  assert.deepEqual(same!.inputs.data_0!.data, x);
});

test('uint8 NHWC inputs get the stored bytes; float16 inputs get float16 bits', async () => {
  const [raw] = await collect(await openDataset(fixture('imagenet-100'), [{ name: 'x', dtype: 'uint8', shape: ['N', 224, 224, 3] }], { limit: 1 }), 1);
  const fh = await open(fixture('imagenet-100', 'images.u8'), 'r');
  const first = Buffer.alloc(IMAGE_BYTES);
  await fh.read(first, 0, IMAGE_BYTES, 0).finally(() => fh.close());
  assert.ok(raw!.inputs.x!.data instanceof Uint8Array);
  assert.deepEqual(Buffer.from(raw!.inputs.x!.data as Uint8Array), first);

  const fp16 = [{ name: 'data_0', dtype: 'float16' as const, shape: [1, 3, 224, 224] }];
  const [half] = await collect(await openDataset(fixture('imagenet-100'), fp16, { preprocess: 'torch', limit: 1 }), 1);
  const [r] = await pixel(0, 0, 0);
  assert.equal(half!.inputs.data_0!.dtype, 'float16');
  assert.equal((half!.inputs.data_0!.data as Uint16Array)[0], float32ToFloat16Bits((r / 255 - 0.485) / 0.229));
});

test('sidecar problems are BAD_INPUT naming the sidecar: shape disagreeing with the file size, bad fields', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'small.u8'), new Uint8Array(2 * 4 * 4 * 3));
  await writeFile(join(dir, 'small.json'), JSON.stringify({ file: 'small.u8', dtype: 'uint8', shape: [3, 4, 4, 3], layout: 'nhwc', color: 'rgb' }));
  const input = [{ name: 'x', dtype: 'float32' as const, shape: ['N', 3, 4, 4] }];
  await assertFails(openDataset(join(dir, 'small.json'), input), join(dir, 'small.json'), 'BAD_INPUT', /144 bytes.*96/);
  await assertFails(openDataset(join(dir, 'small.u8'), input), join(dir, 'small.json'), 'BAD_INPUT', /holds 96/);
  await assertFails(openDataset(dir, input), join(dir, 'small.json'), 'BAD_INPUT');

  await writeFile(join(dir, 'small.json'), JSON.stringify({ file: 'small.u8', dtype: 'uint7', shape: [2, 4, 4, 3] }));
  await assertFails(openDataset(join(dir, 'small.json'), input), join(dir, 'small.json'), 'BAD_INPUT', /dtype/);

  await writeFile(join(dir, 'small.json'), JSON.stringify({ file: 'small.u8', dtype: 'uint8', shape: [2, 4, 4, 3], labels: [1] }));
  await assertFails(openDataset(join(dir, 'small.json'), input), join(dir, 'small.json'), 'BAD_INPUT', /1 labels for 2/);

  // With valid fields the same pair opens, and a second pair makes the folder ambiguous.
  await writeFile(join(dir, 'small.json'), JSON.stringify({ file: 'small.u8', dtype: 'uint8', shape: [2, 4, 4, 3], labels: [1, 2] }));
  assert.equal((await openDataset(dir, input)).n, 2);
  await writeFile(join(dir, 'other.f32'), new Float32Array(8));
  await writeFile(join(dir, 'other.json'), JSON.stringify({ dtype: 'float32', shape: [2, 4] }));
  await assertFails(openDataset(dir, input), dir, 'BAD_INPUT', /2 raw tensors/);
  // The float pair without "file" finds its data by stem and feeds a [N,4] input.
  const other = await openDataset(join(dir, 'other.json'), [{ name: 'v', dtype: 'float32', shape: ['N', 4] }]);
  assert.equal(other.kind, 'raw-tensor');
  assert.deepEqual((await collect(other, 2))[0]!.inputs.v!.dims, [2, 4]);
});
