import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { WhittleError } from '../../../api/errors.ts';
import { readTfjsModel } from '../../../native-models/formats/tfjs/index.ts';
import { readWeightsIndependently } from '../../../native-models/formats/tfjs/testing.ts';
import { evaluateTfjs } from '../../evaluate/tfjs-evaluate.ts';
import { fixture } from '../../testing/fixtures.ts';
import { createPassContext } from '../pass.ts';
import { TFJS_DEQUANTIZE_NOTE, tfjsQuantizePass } from './quantize.ts';
import { quantizeTfjsModel } from './run-on-file.ts';

const work = mkdtempSync(join(tmpdir(), 'whittle-tfjs-quantize-'));
after(() => rmSync(work, { recursive: true, force: true }));

const FLOWERS = fixture('tfjs-automl-flowers', 'model.json');
const DAISY = fixture('tfjs-automl-flowers', 'daisy.jpg');
const REFERENCE_P = 0.931; // MANIFEST: daisy.jpg → daisy, p = 0.931

const CLASSES = readFileSync(fixture('tfjs-automl-flowers', 'dict.txt'), 'utf8').split('\n').filter(Boolean);

/** The top class for daisy.jpg (a written copy has no dict.txt beside it: names from the fixture's). */
async function daisyProbability(model: string): Promise<{ label: string | undefined; p: number }> {
  const r = await evaluateTfjs({ model, data: DAISY, preprocess: 'tf-square', warmup: 0, runs: 1 });
  const top = r.predictions![0]![0]!;
  return { label: CLASSES[top.index], p: top.score };
}

describe('TF.js weight quantization of the AutoML flowers graph model', () => {
  it('the original gives the reference: daisy, p = 0.931', async () => {
    const { label, p } = await daisyProbability(FLOWERS);
    assert.equal(label, 'daisy');
    assert.ok(Math.abs(p - REFERENCE_P) < 0.001, `p = ${p}`);
  });

  it('uint8: float weights shrink 4×, daisy stays daisy within 0.05', async () => {
    const out = join(work, 'uint8', 'model.json');
    const r = await quantizeTfjsModel({ input: FLOWERS, output: out, method: 'uint8' });
    const independent = readWeightsIndependently(FLOWERS);
    const floatBytes = independent.filter((w) => w.dtype === 'float32').reduce((n, w) => n + w.byteLength, 0);
    const intBytes = r.weightBytesBefore - floatBytes;
    assert.equal(r.weightBytesBefore, 2035808);
    assert.equal(r.weightBytesAfter, floatBytes / 4 + intBytes, 'one byte per float weight; int32 constants untouched');
    assert.ok(r.weightBytesBefore / r.weightBytesAfter > 3.99);
    assert.equal(r.nodesChanged, 123);
    assert.ok(r.warnings.includes(TFJS_DEQUANTIZE_NOTE), 'says TF.js dequantizes at load');
    const written = readWeightsIndependently(out);
    assert.ok(written.filter((w) => w.dtype === 'float32').every((w) => w.quantization?.dtype === 'uint8'));
    assert.ok(written.filter((w) => w.dtype === 'int32').every((w) => w.quantization === null));
    const { label, p } = await daisyProbability(out);
    assert.equal(label, 'daisy');
    assert.ok(Math.abs(p - REFERENCE_P) < 0.05, `uint8 p = ${p}`);
  });

  it('float16: half the bytes, daisy within 0.01; uint16 likewise', async () => {
    for (const method of ['fp16', 'uint16'] as const) {
      const out = join(work, method, 'model.json');
      const r = await quantizeTfjsModel({ input: FLOWERS, output: out, method });
      assert.ok(r.weightBytesBefore / r.weightBytesAfter > 1.99, method);
      const { label, p } = await daisyProbability(out);
      assert.equal(label, 'daisy');
      assert.ok(Math.abs(p - REFERENCE_P) < 0.01, `${method} p = ${p}`);
    }
  });

  it('the same model and method give byte-identical files', async () => {
    const a = await quantizeTfjsModel({ input: FLOWERS, output: join(work, 'a'), method: 'uint8' });
    const b = await quantizeTfjsModel({ input: FLOWERS, output: join(work, 'b'), method: 'uint8' });
    a.files.forEach((f, i) => assert.ok(readFileSync(f).equals(readFileSync(b.files[i]!)), f));
  });

  it('--exclude keeps weights as they were; an entry matching nothing is warned about', async () => {
    const model = readTfjsModel(FLOWERS);
    const ctx = createPassContext();
    const report = await tfjsQuantizePass.run(model, { dtype: 'uint8', exclude: ['MatMul', 'no-such-layer'] }, ctx);
    assert.equal(report.excluded.length, 1);
    const kept = model.weights.find((w) => w.name === report.excluded[0])!;
    assert.equal(kept.quantization, null);
    assert.equal(kept.changed, false);
    assert.match(ctx.warnings.join('\n'), /--exclude no-such-layer: matches no weight/);
  });

  it('reports progress per weight and stops with CANCELLED when the signal fires', async () => {
    const model = readTfjsModel(FLOWERS);
    const controller = new AbortController();
    const phases: number[] = [];
    const ctx = createPassContext({
      signal: controller.signal,
      progress: (_phase, done) => { phases.push(done); if (done === 10) controller.abort(); },
    });
    await assert.rejects(tfjsQuantizePass.run(model, { dtype: 'uint8' }, ctx), (err: unknown) => err instanceof WhittleError && err.code === 'CANCELLED');
    assert.deepEqual(phases, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('an already-quantized model (nsfwjs uint8) is re-quantized from what TF.js loads, and says so', async () => {
    const model = readTfjsModel(fixture('tfjs-nsfwjs-mobilenet-v2', 'model.json'));
    const before = model.weights.map((w) => w.toFloat32());
    const report = await tfjsQuantizePass.run(model, { dtype: 'float16' }, createPassContext());
    assert.match(report.warnings.join('\n'), /266 uint8 weight\(s\) were already quantized/);
    model.weights.forEach((w, i) => {
      assert.equal(w.quantization?.dtype, 'float16');
      const after = w.toFloat32();
      // half keeps ~11 significant bits: each value within one half-ulp of the uint8 value it came from
      before[i]!.forEach((v, k) => assert.ok(Math.abs(after[k]! - v) <= Math.abs(v) * 2 ** -11 + 2 ** -25, `${w.name}[${k}]`));
    });
  });
});
