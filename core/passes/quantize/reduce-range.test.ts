import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { QuantizeStep } from '../../../api/recipe.ts';
import { readOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { int8Saturation, saturationFromFlags } from '../../../native-models/runtimes/cpu-int8.ts';
import { createSession, runSession } from '../../../native-models/runtimes/onnxruntime.ts';
import { openDataset } from '../../evaluate/data/index.ts';
import { inputSpecs } from '../../evaluate/evaluate.ts';
import { floatIntegerOps } from '../../evaluate/exact-int8.ts';
import { fixture } from '../../testing/fixtures.ts';
import { NameAllocator } from './graph-edit.ts';
import { quantParams, quantRange } from './math.ts';
import { quantizeModel, reduceRangeFor } from './quantize-model.ts';
import { saturationWarning, widestInt8Weight } from './runtime-check.ts';
import { tempDir } from './test-models.ts';

const tmp = tempDir('reduce-range');
after(tmp.cleanup);
const SQUEEZENET = fixture('squeezenet', 'squeezenet1.0_fp32.onnx');
const IMAGENET = fixture('imagenet-100');

describe('which CPUs saturate onnxruntime\'s u8×s8 kernels', () => {
  it('x86-64 without VNNI does (AVX2, AVX-512 before VNNI); VNNI and AMX do not', () => {
    const flags = (s: string) => new Set(s.split(' '));
    assert.deepEqual(saturationFromFlags('c', flags('sse4_2 avx avx2 fma')), { saturates: true, cpu: 'c', detail: 'x86-64 with AVX2, no VNNI' });
    assert.equal(saturationFromFlags('c', flags('avx2 avx512f avx512bw')).detail, 'x86-64 with AVX-512, no VNNI');
    assert.deepEqual(saturationFromFlags('c', flags('avx2 avx512bw avx512_vnni')), { saturates: false, cpu: 'c', detail: 'x86-64 with AVX512-VNNI' });
    assert.equal(saturationFromFlags('c', flags('avx2 avx_vnni')).saturates, false);
    assert.equal(saturationFromFlags('c', flags('avx2 amx_int8')).saturates, false);
  });

  it('WHITTLE_INT8_SATURATES overrides the detection, and an unset step follows it', () => {
    const saved = process.env.WHITTLE_INT8_SATURATES;
    try {
      process.env.WHITTLE_INT8_SATURATES = '1';
      assert.equal(int8Saturation().saturates, true);
      assert.deepEqual([reduceRangeFor({}).on, reduceRangeFor({}).auto], [true, true]);
      assert.match(reduceRangeFor({}).reason, /saturates onnxruntime's u8×s8 products of 8-bit weights/);
      assert.deepEqual([reduceRangeFor({ reduceRange: false }).on, reduceRangeFor({ reduceRange: false }).auto], [false, false]);
      process.env.WHITTLE_INT8_SATURATES = '0';
      assert.equal(reduceRangeFor({}).on, false);
      assert.equal(reduceRangeFor({ reduceRange: true }).on, true);
    } finally {
      if (saved === undefined) delete process.env.WHITTLE_INT8_SATURATES;
      else process.env.WHITTLE_INT8_SATURATES = saved;
    }
  });

  it('int7: [-64, 64] stored in int8, so 2·255·64 = 32,640 fits the int16 sum', () => {
    assert.deepEqual(quantRange('int7'), [-64, 64]);
    assert.ok(2 * 255 * 64 <= 32767 && 2 * 255 * 127 > 32767);
    assert.equal(quantParams(-0.5, 0.25, 'int7', true).scale, Math.fround(0.5 / 64));
    assert.equal(quantParams(-0.5, 0.25, 'int8', true).scale, Math.fround(0.5 / 127));
  });
});

/** Outputs of a model on a few photos, through onnxruntime's fused kernels and unfused (the model's own arithmetic). */
async function fusedAndExact(path: string): Promise<{ sqnrDb: number }> {
  const model = readOnnxFile(path, { lazyTensors: true });
  const data = await openDataset(IMAGENET, inputSpecs(model), { preprocess: 'caffe', limit: 6 });
  const fused = await createSession(path, { ep: 'cpu' });
  const exact = await createSession(path, { ep: 'cpu', graphOptimizationLevel: 'disabled' });
  let signal = 0, noise = 0;
  try {
    for await (const b of data.batches(1)) {
      const feeds = b.inputs as Parameters<typeof runSession>[1];
      const a = Object.values(await runSession(fused.session, feeds))[0]!.data as Float32Array;
      const e = Object.values(await runSession(exact.session, feeds))[0]!.data as Float32Array;
      for (let i = 0; i < e.length; i++) { signal += e[i]! ** 2; noise += (a[i]! - e[i]!) ** 2; }
    }
  } finally {
    await fused.session.release();
    await exact.session.release();
  }
  return { sqnrDb: noise === 0 ? Infinity : 10 * Math.log10(signal / noise) };
}

describe('reduce range on SqueezeNet static int8: what the fused kernels compute on this CPU', () => {
  it('7-bit weights: the fused model computes the model on any CPU; 8-bit: only where nothing saturates — and the eval says so', { timeout: 300_000 }, async (t) => {
    const step = (reduceRange: boolean) => QuantizeStep.parse({ method: 'static', calib: { path: IMAGENET, preprocess: 'caffe' }, samples: 16, perChannel: true, reduceRange });
    const seven = join(tmp.dir, 'sq-7bit.onnx');
    const eight = join(tmp.dir, 'sq-8bit.onnx');
    const r7 = await quantizeModel({ input: SQUEEZENET, output: seven, step: step(true), ep: 'cpu' });
    const r8 = await quantizeModel({ input: SQUEEZENET, output: eight, step: step(false), ep: 'cpu' });
    assert.deepEqual(r7.reduceRange, { on: true, auto: false, reason: 'asked for (--reduce-range on)' });
    assert.equal(widestInt8Weight(readOnnxFile(seven, { lazyTensors: true })), 64);
    assert.equal(widestInt8Weight(readOnnxFile(eight, { lazyTensors: true })), 127);
    const cpu = int8Saturation();
    const s7 = await fusedAndExact(seven);
    const s8 = await fusedAndExact(eight);
    t.diagnostic(`${cpu.cpu} (${cpu.detail}): fused vs unfused output SQNR, 7-bit weights ${s7.sqnrDb.toFixed(1)} dB, 8-bit ${s8.sqnrDb.toFixed(1)} dB`);
    // the fused integer kernels round each requantization once where the unfused graph rounds in float: tens of dB apart, never the 10–20 dB of saturation
    assert.ok(s7.sqnrDb > 30, `7-bit: ${s7.sqnrDb} dB`);
    if (cpu.saturates) {
      assert.ok(s8.sqnrDb < s7.sqnrDb - 6, `8-bit on a saturating CPU: ${s8.sqnrDb} dB`);
      assert.match(r8.warnings.join('\n'), /its int8 weights reach ±127, and this CPU .* saturating int16 sum/);
    } else {
      assert.ok(s8.sqnrDb > 30, `8-bit without saturation: ${s8.sqnrDb} dB`);
      assert.equal(saturationWarning(readOnnxFile(eight, { lazyTensors: true })), null);
    }
    assert.ok(!r7.warnings.some((w) => /saturat/.test(w)), r7.warnings.join('\n'));
  });

  it('--exact-int8 computes MatMulInteger/ConvInteger in float (the same integers, cast back to int32), and QLinearConv/QLinearMatMul as Q/DQ around float ops', async () => {
    const out = join(tmp.dir, 'mnist-dynamic.onnx');
    await quantizeModel({ input: fixture('mnist', 'mnist.onnx'), output: out, step: QuantizeStep.parse({ method: 'dynamic', includeConv: true, reduceRange: false }), ep: 'cpu' });
    const model = readOnnxFile(out);
    const before = model.graph.nodes.filter((n) => n.opType === 'MatMulInteger' || n.opType === 'ConvInteger').length;
    assert.ok(before >= 2, 'MNIST dynamic with Conv: ConvInteger and MatMulInteger');
    assert.equal(floatIntegerOps(model.graph, new NameAllocator(model)), before);
    assert.equal(model.graph.nodes.filter((n) => n.opType === 'MatMulInteger' || n.opType === 'ConvInteger').length, 0);
    assert.equal(model.graph.nodes.filter((n) => n.opType === 'Cast' && n.attrInt('to', 0) === 6).length, before, 'each result cast back to int32');
    // onnxruntime's QOperator format: every QLinearConv/QLinearMatMul with a constant weight
    const shufflenet = readOnnxFile(fixture('shufflenet-int8', 'shufflenet-v2-12-int8.onnx'));
    const qlinear = shufflenet.graph.nodes.filter((n) => n.opType === 'QLinearConv' || n.opType === 'QLinearMatMul').length;
    assert.equal(qlinear, 57);
    assert.equal(floatIntegerOps(shufflenet.graph, new NameAllocator(shufflenet)), 57);
    assert.deepEqual(shufflenet.graph.nodes.filter((n) => n.opType.startsWith('QLinear') && n.domain === '').map((n) => n.opType), []);
  });
});
