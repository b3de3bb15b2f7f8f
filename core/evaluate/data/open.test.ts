import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, fixture } from '../../testing/fixtures.ts';
import { WhittleError } from '../../../api/errors.ts';
import { openDataset } from './index.ts';
import { assertFails, collect, npyBytes, tempDir } from './test-support.ts';
import type { DatasetKind, ModelInputSpec } from './types.ts';

const IMAGE: ModelInputSpec[] = [{ name: 'x', dtype: 'float32', shape: [1, 3, 224, 224] }];
const DIGIT: ModelInputSpec[] = [{ name: 'x', dtype: 'float32', shape: [1, 1, 28, 28] }];
const ROW: ModelInputSpec[] = [{ name: 'x', dtype: 'float32', shape: ['N', 4] }];

/** What each fixture path is detected as: one table, in the spirit of a corpus test. */
const DETECTION: { path: string; inputs: ModelInputSpec[]; kind: DatasetKind; n: number; labels: boolean }[] = [
  { path: 'mnist', inputs: DIGIT, kind: 'mnist-idx', n: 10000, labels: true },
  { path: 'mnist/t10k-images-idx3-ubyte.gz', inputs: DIGIT, kind: 'mnist-idx', n: 10000, labels: true },
  { path: 'iris', inputs: ROW, kind: 'npy', n: 150, labels: true },
  { path: 'iris/iris_X.npy', inputs: ROW, kind: 'npy', n: 150, labels: true },
  { path: 'imagenet-100', inputs: IMAGE, kind: 'raw-tensor', n: 100, labels: true },
  { path: 'imagenet-100/images.u8', inputs: IMAGE, kind: 'raw-tensor', n: 100, labels: true },
  { path: 'imagenet-100/images.json', inputs: IMAGE, kind: 'raw-tensor', n: 100, labels: true },
  { path: 'imagenet-100/jpeg', inputs: IMAGE, kind: 'image-folder', n: 100, labels: true },
  { path: 'imagenet-100/labels.json', inputs: IMAGE, kind: 'image-folder', n: 100, labels: true },
  { path: 'imagenet-100/jpeg/n01440764_tench.JPEG', inputs: IMAGE, kind: 'image', n: 1, labels: false },
  { path: 'shufflenet-int8', inputs: IMAGE, kind: 'onnx-test-data', n: 1, labels: false },
  { path: 'shufflenet-int8/test_data_set_0', inputs: IMAGE, kind: 'onnx-test-data', n: 1, labels: false },
  { path: 'tfjs-automl-flowers', inputs: IMAGE, kind: 'image-folder', n: 1, labels: false },
];

test('fixture paths are detected from what they hold', async () => {
  for (const row of DETECTION) {
    const ds = await openDataset(join(FIXTURES, row.path), row.inputs);
    assert.deepEqual([row.path, ds.kind, ds.n, ds.hasLabels, ds.synthetic], [row.path, row.kind, row.n, row.labels, false]);
  }
});

test('bad options and option/model conflicts are BAD_USAGE', async () => {
  const usage = (e: unknown): boolean => e instanceof WhittleError && e.code === 'BAD_USAGE';
  await assert.rejects(openDataset(fixture('imagenet-100'), IMAGE, { preprocess: 'bogus' as never }), usage);
  await assert.rejects(openDataset(fixture('imagenet-100'), IMAGE, { limit: 0 }), usage);
  await assert.rejects(openDataset(fixture('imagenet-100'), IMAGE, { offset: 101 }), usage);
  await assert.rejects(openDataset(fixture('imagenet-100'), IMAGE, { size: 256 }), usage);
  await assert.rejects(openDataset(fixture('mnist'), DIGIT, { preprocess: 'torch' }), usage);
  await assert.rejects(openDataset(fixture('iris'), ROW, { preprocess: 'caffe' }), usage);
  await assert.rejects(collect(await openDataset(fixture('iris'), ROW), 0), usage);
});

test('missing, unknown and ambiguous paths are BAD_INPUT naming them', async () => {
  const missing = fixture('mnist') + '-nowhere';
  await assertFails(openDataset(missing, DIGIT), missing, 'BAD_INPUT', /does not exist/);
  const model = fixture('mnist', 'mnist.onnx');
  await assertFails(openDataset(model, DIGIT), model, 'BAD_INPUT', /unknown data format/);
  const labelsFile = fixture('mnist', 't10k-labels-idx1-ubyte.gz');
  await assertFails(openDataset(labelsFile, DIGIT), labelsFile, 'BAD_INPUT', /idx3/);
  const squeezenet = fixture('squeezenet');
  await assertFails(openDataset(squeezenet, IMAGE), squeezenet, 'BAD_INPUT', /no recognised data/);

  const dir = await tempDir();
  const two = join(dir, 'two-arrays');
  await mkdir(two);
  await writeFile(join(two, 'a.npy'), npyBytes('<f4', [1, 4], new Float32Array(4)));
  await writeFile(join(two, 'b.npy'), npyBytes('<f4', [1, 4], new Float32Array(4)));
  await assertFails(openDataset(two, ROW), two, 'BAD_INPUT', /a\.npy, b\.npy/);
});
