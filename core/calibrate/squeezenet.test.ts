import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readOnnxFile } from '../../native-models/formats/onnx/index.ts';
import { openDataset } from '../evaluate/data/index.ts';
import { inputSpecs } from '../evaluate/evaluate.ts';
import { fixture } from '../testing/fixtures.ts';
import { calibrate, type CalibrationMethod, type TensorRange } from './index.ts';

const IMAGES = 32;
const SHOWN = ['data_0', 'conv1_1', 'conv1_2', 'fire2/squeeze1x1_1', 'fire9/concat_1', 'conv10_1', 'pool10_1'];

describe('calibration on SqueezeNet 1.0 (imagenet-100, caffe preprocessing)', () => {
  it('all four methods run; percentile, entropy and mse narrow most ranges within MinMax', async (t) => {
    const model = readOnnxFile(fixture('squeezenet', 'squeezenet1.0_fp32.onnx'));
    const results = new Map<CalibrationMethod, Map<string, TensorRange>>();
    for (const method of ['minmax', 'percentile', 'entropy', 'mse'] as const) {
      const data = await openDataset(fixture('imagenet-100'), inputSpecs(model), { preprocess: 'caffe', limit: IMAGES });
      const started = performance.now();
      const r = await calibrate(model, data, { method });
      assert.equal(r.samples, IMAGES);
      assert.deepEqual(r.nonFinite, []);
      results.set(method, r.ranges);
      t.diagnostic(`${method}: ${r.ranges.size} tensors in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
    const minmax = results.get('minmax')!;
    for (const method of ['percentile', 'entropy', 'mse'] as const) {
      const ranges = results.get(method)!;
      const ratios: number[] = [];
      for (const [name, mm] of minmax) {
        const r = ranges.get(name)!;
        assert.ok(r.min >= mm.min && r.max <= mm.max && r.min <= r.max, `${method} ${name}: ${JSON.stringify(r)} outside ${JSON.stringify(mm)}`);
        ratios.push((r.max - r.min) / (mm.max - mm.min));
      }
      const narrower = ratios.filter((x) => x < 1).length;
      const median = ratios.slice().sort((a, b) => a - b)[ratios.length >> 1]!;
      t.diagnostic(`${method}: narrower than minmax for ${narrower}/${ratios.length} tensors, median width ratio ${median.toFixed(3)}`);
      assert.ok(narrower > ratios.length / 2, `${method}: only ${narrower} of ${ratios.length} ranges narrower than MinMax`);
    }
    for (const name of SHOWN) {
      const row = [...results].map(([m, r]) => `${m} [${r.get(name)!.min.toFixed(1)}, ${r.get(name)!.max.toFixed(1)}]`);
      t.diagnostic(`${name}: ${row.join('  ')}`);
    }
  });
});
