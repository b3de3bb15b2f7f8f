import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fixture } from '../../core/testing/fixtures.ts';
import { whittle } from '../testing.ts';

async function inspectJson(...path: string[]) {
  const r = await whittle('inspect', fixture(...path), '--json');
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out);
}

describe('whittle inspect --json on the fixtures', () => {
  it('MNIST: 5,994 parameters in 2 Conv + 1 MatMul (shape constants not counted)', async () => {
    const r = await inspectJson('mnist', 'mnist.onnx');
    assert.equal(r.format, 'onnx');
    assert.equal(r.parameters, 5994);
    assert.equal(r.irVersion, 3);
    assert.deepEqual(r.opsets, { 'ai.onnx': 7 });
    assert.deepEqual(r.layers.map((l: { op: string }) => l.op), ['Conv', 'Conv', 'MatMul']);
    assert.deepEqual(r.inputs, [{ name: 'Input3', dtype: 'float32', shape: [1, 1, 28, 28] }]);
    assert.deepEqual(r.outputs, [{ name: 'Plus214_Output_0', dtype: 'float32', shape: [1, 10] }]);
    assert.equal(r.opHistogram.Conv, 2);
    assert.equal(r.bytes, 26454);
    assert.deepEqual(r.attention, []);
  });

  it('the transformer test bed: its two attention blocks, with the layers head pruning cuts', async () => {
    const model = join(import.meta.dirname, '..', '..', 'native-models', 'zoo', 'transformer', 'char-transformer.onnx');
    const r = await whittle('inspect', model, '--json');
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out).attention, [0, 1].map((i) => ({
      block: `h${i}.attn.o_proj`, heads: 4, headDim: 32, layers: ['q_proj', 'k_proj', 'v_proj', 'o_proj'].map((l) => `h${i}.attn.${l}`),
    })));
    const text = await whittle('inspect', model, '--layers', 'none');
    assert.match(text.out, /attention 2 block\(s\): h0\.attn\.o_proj 4 heads of 32, h1\.attn\.o_proj 4 heads of 32/);
  });

  it('SqueezeNet fp32 and fp16: 1,235,496 parameters in 26 Conv', async () => {
    for (const file of ['squeezenet1.0_fp32.onnx', 'squeezenet1.0_fp16.onnx']) {
      const r = await inspectJson('squeezenet', file);
      assert.equal(r.parameters, 1235496, file);
      assert.equal(r.layers.length, 26);
      assert.ok(r.layers.every((l: { op: string }) => l.op === 'Conv'));
      assert.equal(r.opHistogram.Conv, 26);
      const dtype = file.includes('fp16') ? 'float16' : 'float32';
      assert.ok(r.layers.every((l: { dtype: string }) => l.dtype === dtype), `${file} layers are ${dtype}`);
      const sum = r.layers.reduce((n: number, l: { parameters: number; biasParameters: number }) => n + l.parameters + l.biasParameters, 0);
      assert.equal(sum, 1235496, 'weights + biases of the 26 Conv layers are all the parameters');
    }
  });

  it('ShuffleNet int8: quantized weights counted and typed, scales and zero points not', async () => {
    const r = await inspectJson('shufflenet-int8', 'shufflenet-v2-12-int8.onnx');
    const qconv = r.layers.filter((l: { op: string }) => l.op === 'QLinearConv');
    assert.equal(qconv.length, 56);
    assert.ok(qconv.every((l: { dtype: string }) => l.dtype === 'int8'));
    assert.equal(r.layers.filter((l: { op: string }) => l.op === 'QLinearMatMul').length, 1);
    // weights and int32 biases of the quantized layers, plus the classifier's 1,000 uint8 biases
    // that reach it through a QLinearAdd: scales and zero points are never counted
    const layerSum = r.layers.reduce((n: number, l: { parameters: number; biasParameters: number }) => n + l.parameters + l.biasParameters, 0);
    assert.equal(r.parameters, layerSum + 1000);
    assert.ok(r.parameters > 2_000_000 && r.parameters < 2_400_000, `ShuffleNet v2 has about 2.3 M parameters, got ${r.parameters}`);
    // what onnxruntime's CPU EP runs of it: the same as `whittle eval` reports (runtime-check.test.ts)
    assert.equal(r.runtimeCheck.integerKernels.QLinearConv, 56);
    assert.deepEqual(r.runtimeCheck.floatBetweenQdq.map((f: { op: string }) => f.op), ['ReduceMean']);
    const human = await whittle('inspect', fixture('shufflenet-int8', 'shufflenet-v2-12-int8.onnx'), '--layers', 'none');
    assert.match(human.out, /\n {2}runtime {3}onnxruntime CPU runs 56 QLinearConv, 16 QLinearConcat, 1 QLinearMatMul, 1 QLinearAdd; 1 float op\(s\) between Q\/DQ pairs/);
    assert.match(human.out, /\n {2}warning {3}onnxruntime's CPU EP runs 1 op\(s\) in float between DequantizeLinear and QuantizeLinear: ReduceMean ×1/);
  });

  it('iris: 3 Gemm layers', async () => {
    const r = await inspectJson('iris', 'iris_network.onnx');
    assert.deepEqual(r.layers.map((l: { op: string }) => l.op), ['Gemm', 'Gemm', 'Gemm']);
    assert.equal(r.parameters, r.layers.reduce((n: number, l: { parameters: number; biasParameters: number }) => n + l.parameters + l.biasParameters, 0));
  });

  it('human output is a table naming every layer', async () => {
    const r = await whittle('inspect', fixture('mnist', 'mnist.onnx'));
    assert.equal(r.code, 0);
    assert.match(r.out, /params\s+5,994/);
    for (const name of ['Convolution28', 'Convolution110', 'Times212']) assert.ok(r.out.includes(name));
    assert.doesNotMatch(r.out, /runtime/, 'a float model gets no runtime check');
    assert.equal('runtimeCheck' in (await inspectJson('mnist', 'mnist.onnx')), false);
  });
});
