import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { DataType, floatToHalf, halfToFloat } from '../../../native-models/ir/dtypes.ts';
import { AttrType, Graph, Node, type Model } from '../../../native-models/ir/model.ts';
import { Tensor } from '../../../native-models/ir/tensor.ts';
import { evaluate } from '../../evaluate/evaluate.ts';
import { fixture } from '../../testing/fixtures.ts';
import { createPassContext } from '../pass.ts';
import { FP16_CONTRIB_OPS, fp16Pass, toHalfClamped } from './fp16.ts';
import { applyQuantizeStep } from './quantize-model.ts';
import { QuantizeStep } from '../../../api/recipe.ts';
import { HELDOUT_FILE, MODEL_FILE, ZOO_DIR } from '../../../native-models/zoo/transformer/testbed.ts';
import { buildModel, fileBytes, floatTensor, gaussian, tempDir, valueInfo } from './test-models.ts';

const tmp = tempDir('fp16');
after(tmp.cleanup);
const SQUEEZENET = fixture('squeezenet', 'squeezenet1.0_fp32.onnx');
const MNIST = fixture('mnist', 'mnist.onnx');

function convertedFile(src: string, keepIoTypes: boolean, label: string): Promise<{ path: string; model: Model; warnings: string[] }> {
  const model = readOnnxFile(src);
  return fp16Pass.run(model, { keepIoTypes }, createPassContext()).then((r) => {
    const path = join(tmp.dir, `${label}-${keepIoTypes ? 'keepio' : 'fp16io'}.onnx`);
    writeOnnxFile(model, path);
    return { path, model, warnings: r.warnings };
  });
}

describe('fp16 on the fixtures', () => {
  for (const keepIoTypes of [false, true]) {
    it(`SqueezeNet agrees with fp32 on every imagenet-100 image (keepIoTypes ${keepIoTypes}), at half the size`, async (t) => {
      const { path, model, warnings } = await convertedFile(SQUEEZENET, keepIoTypes, 'squeezenet');
      const input = model.graph.inputs.find((v) => v.name === 'data_0')!;
      assert.equal(input.type?.kind === 'tensor' && input.type.elemType, keepIoTypes ? DataType.FLOAT : DataType.FLOAT16);
      assert.ok([...model.weights()].every(({ tensor }) => tensor.dataType !== DataType.FLOAT), 'no float32 tensor left');
      const r = await evaluate({ model: path, data: fixture('imagenet-100'), preprocess: 'caffe', reference: SQUEEZENET, ep: 'cpu', runs: 1, warmup: 0 });
      const ratio = statSync(path).size / statSync(SQUEEZENET).size;
      t.diagnostic(`agreement ${r.agreement!.top1! * 100} %, SQNR ${r.agreement!.sqnrDb!.toFixed(1)} dB, top1 ${r.accuracy!.top1 * 100} %, size ratio ${ratio.toFixed(3)}; ${warnings.join('; ')}`);
      assert.equal(r.data.n, 100);
      assert.equal(r.agreement!.top1!, 1);
      assert.equal(r.accuracy!.top1, 0.62);
      assert.ok(ratio > 0.49 && ratio < 0.52, `size ratio ${ratio}`);
    });
  }

  it('MNIST: accuracy unchanged (98.90 %), about half the size, and deterministic', async (t) => {
    const a = await convertedFile(MNIST, false, 'mnist-a');
    const b = await convertedFile(MNIST, false, 'mnist-b');
    assert.ok(fileBytes(a.path).equals(fileBytes(b.path)), 'byte-identical');
    const r = await evaluate({ model: a.path, data: fixture('mnist', 't10k-images-idx3-ubyte.gz'), preprocess: 'mnist', reference: MNIST, ep: 'cpu', runs: 1, warmup: 0 });
    t.diagnostic(`top1 ${r.accuracy!.top1 * 100} %, agreement ${r.agreement!.top1! * 100} %, ${statSync(a.path).size} bytes`);
    assert.equal(r.accuracy!.top1, 0.989);
    assert.equal(r.agreement!.top1!, 1);
    assert.ok(statSync(a.path).size < 0.56 * statSync(MNIST).size);
  });

  it('int4 weights, float16 activations: MatMulNBits and GatherBlockQuantized convert with the graph (no Cast), and the transformer keeps its int4 perplexity', async (t) => {
    const int4 = readOnnxFile(join(ZOO_DIR, MODEL_FILE));
    await applyQuantizeStep(int4, QuantizeStep.parse({ method: 'int4', blockSize: 32, includeGather: true }), createPassContext());
    const int4Path = join(tmp.dir, 'transformer-int4.onnx');
    writeOnnxFile(int4, int4Path);
    const { path, model } = await convertedFile(int4Path, false, 'transformer-int4');
    const g = model.graph;
    const contrib = g.nodes.filter((n) => FP16_CONTRIB_OPS.has(n.opType));
    assert.deepEqual([...new Set(contrib.map((n) => n.opType))].sort(), ['GatherBlockQuantized', 'MatMulNBits']);
    assert.equal(readOnnxFile(int4Path).graph.nodes.filter((n) => n.opType === 'Cast').length, g.nodes.filter((n) => n.opType === 'Cast').length, 'no Cast added around them');
    for (const n of contrib) {
      // scales: input 2 of both (MatMulNBits: A, B, scales…; GatherBlockQuantized: data, indices, scales…)
      const scales = g.initializers.get(n.inputs[2]!)!;
      assert.equal(scales.dataType, DataType.FLOAT16, `${n.label} scales`);
    }
    const data = join(ZOO_DIR, HELDOUT_FILE);
    const before = await evaluate({ model: int4Path, data, ep: 'cpu', runs: 1, warmup: 0 });
    const after = await evaluate({ model: path, data, ep: 'cpu', runs: 1, warmup: 0 });
    t.diagnostic(`perplexity int4 ${before.language!.perplexity.toFixed(4)}, int4 + fp16 ${after.language!.perplexity.toFixed(4)}; ${statSync(int4Path).size} → ${statSync(path).size} B`);
    assert.ok(Math.abs(after.language!.perplexity - before.language!.perplexity) < 0.01, `${after.language!.perplexity} vs ${before.language!.perplexity}`);
    assert.ok(statSync(path).size < statSync(int4Path).size);
  });

  it('an already-int8 model (ShuffleNet QLinearConv): its integer ops keep float32 scales, and the result loads and agrees', async (t) => {
    const src = fixture('shufflenet-int8', 'shufflenet-v2-12-int8.onnx');
    const { path, model } = await convertedFile(src, true, 'shufflenet-int8');
    for (const n of model.graph.nodes.filter((n) => n.opType === 'QLinearConv')) {
      for (const i of [1, 4, 6]) assert.equal(model.graph.initializers.get(n.inputs[i]!)?.dataType ?? DataType.FLOAT, DataType.FLOAT, `${n.label} input ${i}`);
    }
    // onnxruntime refused the float16 input_scale of QLinearConv before
    const r = await evaluate({ model: path, data: fixture('imagenet-100'), preprocess: 'torch', reference: src, ep: 'cpu', runs: 1, warmup: 0 });
    t.diagnostic(`agreement ${r.agreement!.top1! * 100} %, SQNR ${r.agreement!.sqnrDb!.toFixed(1)} dB`);
    assert.ok(r.agreement!.top1! >= 0.9, `agreement ${r.agreement!.top1}`);
  });
});

describe('toHalfClamped', () => {
  it('clamps magnitudes into [1e-7, 1e4], keeps zeros and NaN, rounds to nearest even', () => {
    const stats = { low: 0, high: 0, nan: 0, tensors: [] as string[], converted: 0 };
    const h = toHalfClamped(Float32Array.of(1e-9, -1e-9, 0, 5e4, -Infinity, NaN, 1.5), stats, 'w');
    assert.deepEqual([...h].map(halfToFloat).slice(0, 4), [halfToFloat(floatToHalf(1e-7)), -halfToFloat(floatToHalf(1e-7)), 0, 10000]);
    assert.equal(halfToFloat(h[4]!), -10000);
    assert.ok(Number.isNaN(halfToFloat(h[5]!)));
    assert.equal(halfToFloat(h[6]!), 1.5);
    assert.deepEqual([stats.low, stats.high, stats.nan, stats.tensors], [2, 2, 1, ['w']]);
  });
});

const i64 = (name: string, values: number[]) => Tensor.fromTypedArray(name, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt)));
const intAttr = (name: string, value: number) => ({ name, type: AttrType.INT, value: BigInt(value), extra: {} });

/**
 * Blocked ops (TopK, CumSum) between converted ones, a Constant with value_float, a Cast to float,
 * ConstantOfShape, and an If whose branches read an outer initializer and hold their own Constant.
 */
function mixedModel(): Model {
  const thenG = new Graph();
  thenG.name = 'then';
  thenG.nodes = [new Node({ name: 'then_mul', opType: 'Mul', inputs: ['m', 'W2'], outputs: ['t_out'] })];
  thenG.outputs = [valueInfo('t_out', DataType.FLOAT, [2, 3])];
  const elseG = new Graph();
  elseG.name = 'else';
  elseG.nodes = [
    new Node({ name: 'else_c', opType: 'Constant', inputs: [], outputs: ['e_c'], attributes: [{ name: 'value', type: AttrType.TENSOR, value: floatTensor('e_c_v', [3], Float32Array.of(0.25, 0.5, 0.75)), extra: {} }] }),
    new Node({ name: 'else_sub', opType: 'Sub', inputs: ['m', 'e_c'], outputs: ['e_out'] }),
  ];
  elseG.outputs = [valueInfo('e_out', DataType.FLOAT, [2, 3])];
  const model = buildModel({
    opset: 13,
    inputs: [valueInfo('x', DataType.FLOAT, [2, 8]), valueInfo('cond', DataType.BOOL, [])],
    outputs: [valueInfo('y_if', DataType.FLOAT, [2, 3]), valueInfo('y_cumsum', DataType.FLOAT, [2, 3])],
    initializers: [floatTensor('W', [8, 6], gaussian(48, 5)), floatTensor('b', [3], Float32Array.of(0.1, -0.2, 0.3)), floatTensor('W2', [3], Float32Array.of(2, -1, 0.5)), i64('k', [3]), i64('axis', [1]), i64('three', [3])],
    nodes: [
      new Node({ name: 'mm', opType: 'MatMul', inputs: ['x', 'W'], outputs: ['h'] }),
      new Node({ name: 'topk', opType: 'TopK', inputs: ['h', 'k'], outputs: ['vals', 'idx'] }),
      new Node({ name: 'add_b', opType: 'Add', inputs: ['vals', 'b'], outputs: ['a'] }),
      new Node({ name: 'half', opType: 'Constant', inputs: [], outputs: ['c'], attributes: [{ name: 'value_float', type: AttrType.FLOAT, value: 0.5, extra: {} }] }),
      new Node({ name: 'idx_f', opType: 'Cast', inputs: ['idx'], outputs: ['idx_float'], attributes: [intAttr('to', DataType.FLOAT)] }),
      new Node({ name: 'ones', opType: 'ConstantOfShape', inputs: ['three'], outputs: ['one3'], attributes: [{ name: 'value', type: AttrType.TENSOR, value: floatTensor('one', [1], Float32Array.of(1)), extra: {} }] }),
      new Node({ name: 'scale', opType: 'Mul', inputs: ['a', 'c'], outputs: ['a2'] }),
      new Node({ name: 'plus_idx', opType: 'Add', inputs: ['a2', 'idx_float'], outputs: ['a3'] }),
      new Node({ name: 'plus_one', opType: 'Add', inputs: ['a3', 'one3'], outputs: ['m'] }),
      new Node({ name: 'branch', opType: 'If', inputs: ['cond'], outputs: ['y_if'], attributes: [{ name: 'then_branch', type: AttrType.GRAPH, value: thenG, extra: {} }, { name: 'else_branch', type: AttrType.GRAPH, value: elseG, extra: {} }] }),
      new Node({ name: 'cumsum', opType: 'CumSum', inputs: ['m', 'axis'], outputs: ['y_cumsum'] }),
    ],
  });
  thenG.parent = model.graph;
  elseG.parent = model.graph;
  return model;
}

async function runMixed(path: string, cond: boolean, half: boolean): Promise<Record<string, number[]>> {
  const session = await ort.InferenceSession.create(path, { executionProviders: ['cpu'] });
  const x = gaussian(16, 11);
  const feeds = {
    x: half ? new ort.Tensor('float16', Uint16Array.from(x, floatToHalf), [2, 8]) : new ort.Tensor('float32', x, [2, 8]),
    cond: new ort.Tensor('bool', Uint8Array.of(cond ? 1 : 0), []),
  };
  const out = await session.run(feeds);
  await session.release();
  const read = (t: ort.Tensor) => (t.type === 'float16' ? [...new Uint16Array((t.data as Uint16Array).buffer, (t.data as Uint16Array).byteOffset, t.size)].map(halfToFloat) : [...(t.data as Float32Array)]);
  return { y_if: read(out.y_if!), y_cumsum: read(out.y_cumsum!), types: [out.y_if!.type === 'float16' ? 16 : 32, out.y_cumsum!.type === 'float16' ? 16 : 32] };
}

describe('fp16 block list, Casts, constants and subgraphs', () => {
  for (const keepIoTypes of [false, true]) {
    it(`blocked ops stay fp32 behind Casts and the model computes the same (keepIoTypes ${keepIoTypes})`, async () => {
      const fp32 = join(tmp.dir, 'mixed.onnx');
      writeOnnxFile(mixedModel(), fp32);
      const model = mixedModel();
      const report = await fp16Pass.run(model, { keepIoTypes }, createPassContext());
      assert.deepEqual(report.excluded, ['topk', 'cumsum']);
      const g = model.graph;
      const topk = g.nodes.find((n) => n.name === 'topk')!;
      assert.match(topk.inputs[0]!, /^h_fp32/, 'TopK reads an fp32 copy');
      assert.equal(g.initializers.get('W')!.dataType, DataType.FLOAT16);
      assert.equal(g.nodes.find((n) => n.name === 'idx_f')!.attrInt('to', 0), DataType.FLOAT16);
      assert.equal((g.nodes.find((n) => n.name === 'half')!.attr('value')!.value as Tensor).dataType, DataType.FLOAT16);
      const branch = g.nodes.find((n) => n.name === 'branch')!;
      const elseG = branch.subgraphs()[1]!;
      assert.equal((elseG.nodes[0]!.attr('value')!.value as Tensor).dataType, DataType.FLOAT16);
      const out = join(tmp.dir, `mixed-${keepIoTypes}.onnx`);
      writeOnnxFile(model, out);
      for (const cond of [true, false]) {
        const want = await runMixed(fp32, cond, false);
        const got = await runMixed(out, cond, !keepIoTypes);
        assert.deepEqual(got.types, keepIoTypes ? [32, 32] : [16, 16]);
        for (const name of ['y_if', 'y_cumsum']) {
          want[name]!.forEach((v, j) => assert.ok(Math.abs(v - got[name]![j]!) <= 0.01 * Math.abs(v) + 0.01, `${name}[${j}] (cond ${cond}): ${got[name]![j]} vs ${v}`));
        }
      }
    });
  }

  it('exclude keeps named nodes in fp32', async () => {
    const model = mixedModel();
    const report = await fp16Pass.run(model, { exclude: ['mm'] }, createPassContext());
    assert.deepEqual(report.excluded, ['mm', 'topk', 'cumsum']);
    assert.equal(model.graph.initializers.get('W')!.dataType, DataType.FLOAT, 'a weight only blocked nodes read stays fp32');
    const out = join(tmp.dir, 'mixed-exclude.onnx');
    writeOnnxFile(model, out);
    const got = await runMixed(out, true, true);
    assert.equal(got.y_if!.length, 6);
  });
});
