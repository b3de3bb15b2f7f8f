import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { QuantizeStep } from '../../../api/recipe.ts';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import type { Model, Node } from '../../../native-models/ir/model.ts';
import { calibrate } from '../../calibrate/index.ts';
import { openDataset } from '../../evaluate/data/index.ts';
import { batchSizeFor, evaluate, inputSpecs } from '../../evaluate/evaluate.ts';
import { fixture } from '../../testing/fixtures.ts';
import { createPassContext } from '../pass.ts';
import { applyQuantizeStep } from './quantize-model.ts';
import { biasCorrectionCandidates, channelMeans, correctableLayers, correctStaticBiases } from './static-bias-correction.ts';
import { assertMnistFullyFused } from './static-qdq-testing.ts';
import { quantizeStaticQdq } from './static-qdq.ts';
import { tempDir } from './test-models.ts';
import { int8Saturation } from '../../../native-models/runtimes/cpu-int8.ts';

const tmp = tempDir('static-bias-correction');
after(tmp.cleanup);
const MNIST = fixture('mnist', 'mnist.onnx');
const MNIST_DATA = fixture('mnist', 't10k-images-idx3-ubyte.gz');
const SQUEEZENET = fixture('squeezenet', 'squeezenet1.0_fp32.onnx');
const IMAGENET = fixture('imagenet-100');

/** Each channel's int32 bias step (input scale × weight scale) of a quantized Conv/Gemm. */
function biasSteps(model: Model, node: Node): Float32Array {
  const dq = model.graph.producers().get(node.inputs[2]!)!;
  assert.equal(dq.opType, 'DequantizeLinear');
  return model.graph.initializers.get(dq.inputs[1]!)!.toFloat32();
}

/** Worst |quantized − float| channel mean of a layer, in its bias steps. */
function worstInSteps(quantized: Float64Array, float: Float64Array, steps: Float32Array): number {
  let worst = 0;
  for (let c = 0; c < quantized.length; c++) worst = Math.max(worst, Math.abs(quantized[c]! - float[c]!) / steps[steps.length === 1 ? 0 : c]!);
  return worst;
}

describe('static int8 bias correction', () => {
  it('MNIST: every corrected layer\'s output channel means equal the float model\'s to half a bias step, measured with all of them corrected', async () => {
    const model = readOnnxFile(MNIST);
    const data = await openDataset(MNIST_DATA, inputSpecs(model), { preprocess: 'mnist', limit: 256 });
    const ctx = createPassContext();
    const ranges = (await calibrate(model, data, { method: 'minmax' })).ranges;
    const o = { data, batchSize: batchSizeFor(inputSpecs(model), 64), ep: 'cpu' as const };
    const float = (await channelMeans(model, biasCorrectionCandidates(model.graph), o, ctx, 'test')).means;
    const computeOutputs = new Map<Node, string>();
    quantizeStaticQdq(model, { ranges, computeOutputs }, ctx);
    const { targets, withoutBias } = correctableLayers(model, computeOutputs);
    assert.deepEqual(targets.map((t) => t.node.opType), ['Conv', 'Conv', 'Gemm']);
    assert.deepEqual(withoutBias, []);
    const raw = targets.map((t) => t.node.outputs[0]!);
    const before = (await channelMeans(model, raw, o, ctx, 'test')).means;
    const plain = join(tmp.dir, 'mnist-plain.onnx');
    writeOnnxFile(model, plain);

    const report = await correctStaticBiases(model, targets, float, o, ctx);
    assert.equal(report.levels, 3, 'a chain: one level per layer');
    assert.deepEqual(report.layers.map((l) => l.level), [0, 1, 2]);
    assert.equal(report.samples, 256);
    const afterMeans = (await channelMeans(model, raw, o, ctx, 'test')).means;
    for (const t of targets) {
      const steps = biasSteps(model, t.node);
      const f = float.get(t.floatOutput)!;
      const was = worstInSteps(before.get(t.node.outputs[0]!)!, f, steps);
      const now = worstInSteps(afterMeans.get(t.node.outputs[0]!)!, f, steps);
      // the uncorrected layers were off by many steps, so this check can fail
      assert.ok(was > 4, `${t.node.label}: uncorrected, worst channel off by ${was.toFixed(2)} steps`);
      // rounding the correction costs up to half a step; the rest is float summation order
      assert.ok(now <= 0.5 + 1e-2, `${t.node.label}: corrected, worst channel still off by ${now.toFixed(3)} steps (was ${was.toFixed(1)})`);
    }

    // still what onnxruntime fuses, and still the accuracy issue 3 asks for
    const out = join(tmp.dir, 'mnist-bc.onnx');
    writeOnnxFile(model, out);
    await assertMnistFullyFused(out);
    const heldOut = (path: string) => evaluate({ model: path, data: MNIST_DATA, preprocess: 'mnist', reference: MNIST, ep: 'cpu', offset: 256, runs: 1, warmup: 0 });
    const [p, r] = [await heldOut(plain), await heldOut(out)];
    const figures = (e: typeof r) => `top-1 ${(e.accuracy!.top1 * 100).toFixed(2)} %, agreement ${(e.agreement!.top1! * 100).toFixed(2)} %, SQNR ${e.agreement!.sqnrDb!.toFixed(1)} dB`;
    console.log(`MNIST static per-tensor on the 9,744 images after the 256 calibration ones: ${figures(p)}; with bias correction ${figures(r)}`);
    // on data the correction never saw, the output is closer to fp32's; the top-1 figures move by an image or two either way
    assert.ok(r.agreement!.sqnrDb! > p.agreement!.sqnrDb! + 1, `SQNR ${p.agreement!.sqnrDb} → ${r.agreement!.sqnrDb}`);
    assert.ok(r.accuracy!.top1 >= 0.9889 && r.agreement!.top1! >= 0.999);
  });

  it('SqueezeNet, minmax per channel on imagenet-100: the output SQNR rises with the correction, reported per layer', async () => {
    const sqnr: number[] = [];
    for (const biasCorrection of [false, true]) {
      const model = readOnnxFile(SQUEEZENET);
      const step = QuantizeStep.parse({ method: 'static', calib: { path: IMAGENET, preprocess: 'caffe' }, samples: 100, perChannel: true, biasCorrection });
      const report = await applyQuantizeStep(model, step, createPassContext());
      if (biasCorrection) {
        const bc = report.biasCorrection!;
        assert.equal(bc.layers.length, 26, 'every Conv');
        assert.deepEqual(bc.withoutBias, []);
        // 26 Convs; the two expand convs of a fire module read the same squeeze output: one level
        assert.equal(bc.levels, 18);
        assert.equal(report.calibration!.method, 'minmax + bias correction');
      } else {
        assert.equal(report.biasCorrection, undefined);
      }
      const out = join(tmp.dir, `squeezenet-${biasCorrection}.onnx`);
      writeOnnxFile(model, out);
      const e = await evaluate({ model: out, data: IMAGENET, preprocess: 'caffe', reference: SQUEEZENET, ep: 'cpu', runs: 1, warmup: 0 });
      sqnr.push(e.agreement!.sqnrDb!);
    }
    console.log(`SqueezeNet static per-channel minmax, 100 photos: SQNR ${sqnr[0]!.toFixed(2)} dB → ${sqnr[1]!.toFixed(2)} dB with bias correction`);
    assert.ok(sqnr[1]! > sqnr[0]! + 0.5, `SQNR ${sqnr[0]} → ${sqnr[1]}`);
  });

  it('SqueezeNet in 8 bits: measured in the model\'s own arithmetic where the fused kernels saturate, the correction still helps', async () => {
    // 8-bit weights (reduce range off). On a CPU whose fused u8×s8 kernels saturate them, measuring the
    // tapped model fused mixed saturated upstream layers with an unfused tapped layer: corrected that
    // way, this model fell from 23 to 9 dB in its own arithmetic. Evaluated here in its own arithmetic
    // (exactInt8), so the figures are the model's on any CPU.
    const saturates = int8Saturation().saturates;
    const sqnr: number[] = [];
    for (const biasCorrection of [false, true]) {
      const model = readOnnxFile(SQUEEZENET);
      const step = QuantizeStep.parse({ method: 'static', calib: { path: IMAGENET, preprocess: 'caffe' }, samples: 100, perChannel: true, reduceRange: false, biasCorrection });
      const report = await applyQuantizeStep(model, step, createPassContext());
      if (biasCorrection) assert.equal(report.biasCorrection!.exactInt8, saturates, 'measured unfused exactly where this CPU saturates 8-bit weights');
      const out = join(tmp.dir, `squeezenet-8bit-${biasCorrection}.onnx`);
      writeOnnxFile(model, out);
      const e = await evaluate({ model: out, data: IMAGENET, preprocess: 'caffe', reference: SQUEEZENET, ep: 'cpu', runs: 1, warmup: 0, exactInt8: true });
      sqnr.push(e.agreement!.sqnrDb!);
    }
    console.log(`SqueezeNet static per-channel minmax, 8-bit weights, own arithmetic, 100 photos: SQNR ${sqnr[0]!.toFixed(2)} dB → ${sqnr[1]!.toFixed(2)} dB with bias correction (this CPU ${saturates ? 'saturates' : 'does not saturate'} them fused)`);
    assert.ok(sqnr[1]! > sqnr[0]! + 0.5, `SQNR ${sqnr[0]} → ${sqnr[1]}`);
  });

  it('a method other than static says the flag does not apply', async () => {
    const model = readOnnxFile(MNIST);
    const ctx = createPassContext();
    await applyQuantizeStep(model, QuantizeStep.parse({ method: 'dynamic', biasCorrection: true }), ctx);
    assert.ok(ctx.warnings.some((w) => w.includes('--bias-correction applies to --method static, not dynamic')), ctx.warnings.join('\n'));
  });
});
