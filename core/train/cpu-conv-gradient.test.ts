import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededGaussian } from '../../native-models/ir/random.ts';
import { loadTf } from '../../native-models/runtimes/tfjs.ts';
import { installFastConvFilterGradient } from './cpu-conv-gradient.ts';

test('the fast cpu filter gradient is bit-identical to the stock kernel (padding, strides, channels)', async () => {
  const { tf } = await loadTf({ choice: 'cpu', training: true });
  const cases: { x: [number, number, number, number]; f: [number, number, number, number]; strides: number | [number, number]; pad: 'same' | 'valid' }[] = [
    { x: [3, 7, 7, 1], f: [3, 3, 1, 4], strides: 1, pad: 'same' },
    { x: [2, 8, 6, 3], f: [3, 3, 3, 5], strides: 2, pad: 'same' },
    { x: [2, 9, 9, 2], f: [5, 3, 2, 3], strides: [2, 1], pad: 'valid' },
    { x: [4, 5, 5, 6], f: [1, 1, 6, 2], strides: 1, pad: 'valid' },
  ];
  const filterGradients = () => cases.map((c, i) => tf.tidy(() => {
    const x = tf.tensor4d(seededGaussian(c.x.reduce((a, b) => a * b, 1), i + 1), c.x);
    const w = tf.tensor4d(seededGaussian(c.f.reduce((a, b) => a * b, 1), i + 100), c.f);
    const loss = (f: typeof w) => tf.conv2d(x, f, c.strides, c.pad).square().sum();
    return tf.grad((f) => loss(f as typeof w))(w).dataSync().slice();
  }));
  const stock = filterGradients();
  const before = tf.getKernel('Conv2DBackpropFilter', 'cpu')!.kernelFunc;
  installFastConvFilterGradient(tf);
  installFastConvFilterGradient(tf); // a second install is a no-op
  assert.notEqual(tf.getKernel('Conv2DBackpropFilter', 'cpu')!.kernelFunc, before, 'the kernel was replaced');
  const fast = filterGradients();
  stock.forEach((g, i) => assert.deepEqual(fast[i], g, `case ${i}`));
});
