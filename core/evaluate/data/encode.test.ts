import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fixture } from '../../testing/fixtures.ts';
import { float16BitsToNumber, float32ToFloat16Bits, guessLayout, openDataset } from './index.ts';
import { collect } from './test-support.ts';

test('float32 → float16 rounds to nearest, ties to even, with subnormals, overflow and NaN', () => {
  const cases: [number, number][] = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65519, 0x7bff], [65520, 0x7c00],
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000],
    [1.5 * 2 ** -25, 0x0001], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1023 * 2 ** -24, 0x03ff],
    [0.1, 0x2e66], [1e-8, 0x0000],
  ];
  for (const [v, bits] of cases) assert.equal(float32ToFloat16Bits(v), bits, `${v}`);
  assert.ok(Number.isNaN(float16BitsToNumber(float32ToFloat16Bits(NaN))));
  // Every finite half survives a round trip through its value.
  for (let bits = 0; bits < 0x10000; bits++) {
    if ((bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0) continue;
    assert.equal(float32ToFloat16Bits(float16BitsToNumber(bits)), bits);
  }
});

test('layout follows the model input: NCHW when dim 1 is 1 or 3 and the last dim is not', () => {
  assert.equal(guessLayout([1, 3, 224, 224]), 'nchw');
  assert.equal(guessLayout(['N', 1, 28, 28]), 'nchw');
  assert.equal(guessLayout([1, 224, 224, 3]), 'nhwc');
  assert.equal(guessLayout(['N', 'H', 'W', 'C']), 'nhwc');
  assert.equal(guessLayout([1, 3, 3, 3]), 'nhwc');
});

test('the layout option overrides the guess', async () => {
  const [b] = await collect(await openDataset(fixture('imagenet-100'), [{ name: 'x', dtype: 'uint8', shape: ['N', 'C', 'H', 'W'] }], { layout: 'nchw', limit: 1 }), 1);
  assert.deepEqual(b!.inputs.x!.dims, [1, 3, 224, 224]);
});

test('integer inputs take the stored values whatever the preset, and the dataset says so', async () => {
  const ds = await openDataset(fixture('imagenet-100'), [{ name: 'x', dtype: 'uint8', shape: [1, 3, 224, 224] }], { preprocess: 'torch', limit: 1 });
  assert.match(ds.warnings.join(), /torch does not apply to uint8 input x/);
  const [b] = await collect(ds, 1);
  assert.ok(b!.inputs.x!.data instanceof Uint8Array);
});
