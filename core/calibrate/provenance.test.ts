import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PruneStep, QuantizeStep } from '../../api/recipe.ts';
import { readOnnxFile } from '../../native-models/formats/onnx/index.ts';
import { evaluate } from '../evaluate/evaluate.ts';
import { pruneModel } from '../passes/prune/prune-model.ts';
import { quantizeModel } from '../passes/quantize/quantize-model.ts';
import { tempDir } from '../passes/quantize/test-models.ts';
import { fixture } from '../testing/fixtures.ts';
import { CALIBRATION_PREPROCESS_KEY, recordedPreprocess } from './provenance.ts';

const tmp = tempDir('provenance');
after(tmp.cleanup);
const MNIST = fixture('mnist', 'mnist.onnx');
const MNIST_DATA = fixture('mnist', 't10k-images-idx3-ubyte.gz');

describe('a calibrated model records how its calibration data was read, and eval reads its data the same way', () => {
  it('static int8 MNIST calibrated on pixels/255: eval without --preprocess reads pixels/255 and says so; eval with another preset warns', async () => {
    const q = await quantizeModel({ input: MNIST, output: join(tmp.dir, 'mnist-int8.onnx'), step: QuantizeStep.parse({ method: 'static', calib: { path: MNIST_DATA, preprocess: 'mnist' }, samples: 64 }), seed: 0 });
    assert.equal(readOnnxFile(q.output).metadata(CALIBRATION_PREPROCESS_KEY), 'mnist');
    const common = { model: q.output, data: MNIST_DATA, offset: 256, limit: 400, ep: 'cpu' as const, runs: 1, warmup: 0, reference: MNIST };
    const recorded = await evaluate(common);
    assert.deepEqual([recorded.data.preprocess, recorded.data.preprocessFrom], ['mnist', 'calibration']);
    const asked = await evaluate({ ...common, preprocess: 'mnist' });
    assert.deepEqual([asked.data.preprocess, asked.data.preprocessFrom], ['mnist', 'option']);
    assert.equal(recorded.accuracy!.top1, asked.accuracy!.top1);
    assert.equal(recorded.agreement!.sqnrDb, asked.agreement!.sqnrDb);
    assert.ok(recorded.agreement!.sqnrDb! > 30, `SQNR ${recorded.agreement!.sqnrDb} dB`);
    assert.ok(!recorded.warnings.some((w) => w.includes('calibration data was read with')), recorded.warnings.join('\n'));
    // raw 0–255 pixels into ranges calibrated for 0–1: allowed, warned, and visibly worse
    const raw = await evaluate({ ...common, preprocess: 'none' });
    assert.ok(raw.warnings.some((w) => w.includes('calibration data was read with --preprocess mnist, this evaluation reads with --preprocess none')), raw.warnings.join('\n'));
    assert.ok(raw.agreement!.sqnrDb! < recorded.agreement!.sqnrDb! - 20, `${raw.agreement!.sqnrDb} vs ${recorded.agreement!.sqnrDb} dB`);
    // the float original records nothing: no preprocessing unless asked
    const plain = await evaluate({ model: MNIST, data: MNIST_DATA, limit: 8, ep: 'cpu', runs: 1, warmup: 0 });
    assert.deepEqual([plain.data.preprocess, plain.data.preprocessFrom], ['none', 'default']);
  });

  it('data-free steps record nothing; Wanda records its calibration data\'s preset, and a later step keeps it', async () => {
    const dynamic = await quantizeModel({ input: MNIST, output: join(tmp.dir, 'mnist-dynamic.onnx'), step: QuantizeStep.parse({ method: 'dynamic' }), seed: 0 });
    assert.equal(recordedPreprocess(readOnnxFile(dynamic.output)), null);
    const wanda = await pruneModel({ input: MNIST, output: join(tmp.dir, 'mnist-wanda.onnx'), step: PruneStep.parse({ method: 'wanda', sparsity: 0.3, calib: { path: MNIST_DATA, preprocess: 'unit' }, samples: 16 }), seed: 0 });
    assert.equal(recordedPreprocess(readOnnxFile(wanda.output)), 'unit');
    const fp16 = await quantizeModel({ input: wanda.output, output: join(tmp.dir, 'mnist-wanda-fp16.onnx'), step: QuantizeStep.parse({ method: 'fp16' }), seed: 0 });
    assert.equal(recordedPreprocess(readOnnxFile(fp16.output)), 'unit');
  });
});
