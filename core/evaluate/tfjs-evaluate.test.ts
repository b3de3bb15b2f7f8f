import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WhittleError } from '../../api/errors.ts';
import { openDataset } from './data/index.ts';
import { centreSquareAndResize, resizeBilinear } from './data/image-ops.ts';
import type { ImageSample } from './data/sample.ts';
import { fixture } from '../testing/fixtures.ts';
import { evaluateTfjs } from './tfjs-evaluate.ts';

const FLOWERS = fixture('tfjs-automl-flowers', 'model.json');
const DAISY = fixture('tfjs-automl-flowers', 'daisy.jpg');

describe('whittle eval on TF.js models', () => {
  it('flowers graph model, daisy.jpg with tf-square: daisy at p = 0.931, and which TF.js ran', async () => {
    const r = await evaluateTfjs({ model: FLOWERS, data: DAISY, preprocess: 'tf-square', warmup: 1, runs: 3 });
    const top = r.predictions![0]!;
    assert.equal(top[0]!.label, 'daisy', 'class names come from dict.txt beside the model');
    assert.ok(Math.abs(top[0]!.score - 0.931) < 0.001, `p = ${top[0]!.score}`);
    assert.deepEqual(top.map((p) => p.label).sort(), ['daisy', 'dandelion', 'roses', 'sunflowers', 'tulips']);
    // the SPEC §3 eval fields, plus the runtime
    assert.equal(r.format, 'tfjs');
    assert.equal(r.ep, `tfjs-${r.runtime.backend}`);
    assert.ok(['wasm', 'cpu', 'tensorflow'].includes(r.runtime.backend));
    assert.ok(r.device.length > 0);
    assert.deepEqual({ kind: r.data.kind, n: r.data.n, synthetic: r.data.synthetic }, { kind: 'image', n: 1, synthetic: false });
    assert.equal(r.accuracy, null);
    assert.equal(r.agreement, null);
    assert.deepEqual([r.latency.batch, r.latency.runs], [1, 3]);
    assert.equal(r.parameters, 508949);
    assert.ok(r.bytes > 2035808);
    if (r.runtime.package !== '@tensorflow/tfjs-node-gpu') {
      assert.match(r.runtime.notes.join('\n'), /@tensorflow\/tfjs-node-gpu is (not installed|installed but failed)/, 'the absence of tfjs-node-gpu is reported, not fatal');
    }
  });

  it('a reference model gives agreement; an ONNX reference is refused', async () => {
    const r = await evaluateTfjs({ model: FLOWERS, data: 'synthetic:2', reference: FLOWERS, warmup: 0, runs: 1 });
    assert.equal(r.data.synthetic, true);
    assert.equal(r.agreement?.identical, true);
    assert.equal(r.agreement?.top1, 1);
    await assert.rejects(
      evaluateTfjs({ model: FLOWERS, data: 'synthetic:1', reference: fixture('mnist', 'mnist.onnx'), runs: 1 }),
      (err: unknown) => err instanceof WhittleError && err.code === 'BAD_USAGE' && /another TF\.js model/.test(err.message),
    );
  });

  it('nsfwjs layers model on ImageNet photos (unit-stretch): mostly Neutral or Drawing; foreign labels give no accuracy', async () => {
    const r = await evaluateTfjs({ model: fixture('tfjs-nsfwjs-mobilenet-v2', 'model.json'), data: fixture('imagenet-100', 'jpeg'), preprocess: 'unit-stretch', limit: 20, batch: 10, warmup: 0, runs: 1 });
    assert.equal(r.data.n, 20);
    assert.equal(r.accuracy, null);
    assert.match(r.warnings.join('\n'), /labels go beyond the model's 5 classes/);
    // classes: 0 Drawing, 1 Hentai, 2 Neutral, 3 Porn, 4 Sexy (MANIFEST: 93 % of 200 photos are Drawing or Neutral)
    const counts = r.predictedClasses!;
    const benign = (counts['0'] ?? 0) + (counts['2'] ?? 0);
    assert.ok(benign >= 17, `Drawing or Neutral: ${benign} of 20 (${JSON.stringify(counts)})`);
    assert.equal(r.latency.batch, 10);
  });
});

describe('photo fits of the TF.js presets', () => {
  const gradient: ImageSample = (() => {
    const width = 8;
    const height = 4;
    const data = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([x * 30, y * 60, 0], (y * width + x) * 3);
    return { kind: 'image', width, height, channels: 3, data, photo: true };
  })();

  it('centre-square cuts the largest centred square before resizing; stretch keeps the whole photo', () => {
    const square = centreSquareAndResize(gradient, 4, 4);
    assert.deepEqual([square.width, square.height], [4, 4]);
    assert.deepEqual([...square.data.subarray(0, 3)], [60, 0, 0], 'starts at column 2 of 8');
    const stretched = resizeBilinear(gradient, 4, 4);
    assert.ok(stretched.data[0]! < 60, 'stretch starts at the left edge');
  });

  it('tf-square and unit-stretch map values like tf and unit', async () => {
    const input = [{ name: 'image', dtype: 'float32' as const, shape: [1, 224, 224, 3] }];
    for (const [preset, lo, hi] of [['tf-square', -1, 1], ['unit-stretch', 0, 1]] as const) {
      const ds = await openDataset(DAISY, input, { preprocess: preset });
      for await (const b of ds.batches(1)) {
        const v = b.inputs.image!.data as Float32Array;
        assert.ok(v.every((x) => x >= lo && x <= hi), preset);
        assert.deepEqual(b.inputs.image!.dims, [1, 224, 224, 3]);
      }
    }
  });
});
