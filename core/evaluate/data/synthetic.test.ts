import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openDataset } from './index.ts';
import { assertFails, collect } from './test-support.ts';
import type { Batch } from './types.ts';

const INPUTS = [
  { name: 'image', dtype: 'float32' as const, shape: ['N', 3, 'H', 'W'] },
  { name: 'ids', dtype: 'int64' as const, shape: ['N', 5] },
  { name: 'half', dtype: 'float16' as const, shape: ['N', 4] },
];

const flat = (batches: Batch[], name: string): unknown[] => batches.flatMap((b) => [...b.inputs[name]!.data]);

test('synthetic:N is seeded, deterministic, and independent of batch size', async () => {
  const ds = await openDataset('synthetic:6', INPUTS, { seed: 7, size: 16 });
  assert.equal(ds.kind, 'synthetic');
  assert.equal(ds.synthetic, true);
  assert.equal(ds.hasLabels, false);
  assert.equal(ds.n, 6);
  const byFour = await collect(ds, 4);
  assert.deepEqual(byFour.map((b) => b.count), [4, 2]);
  assert.equal(byFour[0]!.labels, null);
  assert.deepEqual(byFour[0]!.inputs.image!.dims, [4, 3, 16, 16]);
  assert.deepEqual(byFour[0]!.inputs.ids!.dims, [4, 5]);
  const byOne = await collect(await openDataset('synthetic:6', INPUTS, { seed: 7, size: 16 }), 1);
  for (const name of ['image', 'ids', 'half']) assert.deepEqual(flat(byOne, name), flat(byFour, name));
  // An offset gives the same samples from the same positions.
  const tail = await collect(await openDataset('synthetic:6', INPUTS, { seed: 7, size: 16, offset: 4 }), 8);
  assert.deepEqual(flat(tail, 'image'), flat(byFour, 'image').slice(4 * 768));
  const other = await collect(await openDataset('synthetic:6', INPUTS, { seed: 8, size: 16 }), 4);
  assert.notDeepEqual(flat(other, 'image'), flat(byFour, 'image'));
});

test('synthetic values: pixels through the preset, integer ids in 0…99, float16 bits', async () => {
  const ds = await openDataset('synthetic:3', INPUTS, { preprocess: 'caffe' });
  assert.equal(ds.warnings.length, 2); // caffe is for the image, not for ids or half
  const [b] = await collect(ds, 3);
  assert.deepEqual(b!.inputs.image!.dims, [3, 3, 224, 224]);
  const px = b!.inputs.image!.data as Float32Array;
  assert.ok(px.every((v) => Number.isInteger(v) && v >= -123 && v <= 255 - 104));
  const ids = b!.inputs.ids!.data as BigInt64Array;
  assert.ok(ids.every((v) => v >= 0n && v < 100n));
  assert.ok(b!.inputs.half!.data instanceof Uint16Array);
  assert.equal(b!.inputs.half!.dtype, 'float16');
});

test('synthetic:N needs N ≥ 1', async () => {
  await assertFails(openDataset('synthetic:0', INPUTS), 'synthetic:0', 'BAD_INPUT');
  await assertFails(openDataset('synthetic:lots', INPUTS), 'synthetic:lots', 'BAD_INPUT');
});
