import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WhittleError } from '../../../api/errors.ts';
import { writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { AttrType, type Model, Node } from '../../../native-models/ir/model.ts';
import { seededRandom } from '../../../native-models/ir/random.ts';
import { Tensor } from '../../../native-models/ir/tensor.ts';
import { calibrate, type TensorRange } from '../../calibrate/index.ts';
import { openDataset } from '../../evaluate/data/index.ts';
import { inputSpecs } from '../../evaluate/evaluate.ts';
import { createPassContext } from '../pass.ts';
import { roundHalfEven } from './math.ts';
import { quantizeBias, quantizeWeight } from './static-qdq-emit.ts';
import { optimizedModel, opHistogram, qdqProblems, unfusedIslands } from './static-qdq-testing.ts';
import { runtimeFusionOf } from './runtime-check.ts';
import { quantizeStaticQdq, staticQdqPass, type StaticQdqOptions } from './static-qdq.ts';
import { buildModel, fileBytes, floatTensor, gaussian, runFloat, sqnrDb, tempDir, valueInfo } from './test-models.ts';

const tmp = tempDir('static-qdq');
after(tmp.cleanup);
const F = DataType.FLOAT;
const int = (name: string, value: number) => ({ name, type: AttrType.INT, value: BigInt(value), extra: {} });
const ints = (name: string, value: number[]) => ({ name, type: AttrType.INTS, value: value.map(BigInt), extra: {} });

/**
 * x → Conv+bias → Relu → MaxPool → two branches (1×1 and 3×3 Conv, each + Relu) → Concat →
 * Reshape → MatMul → Add(bias) → y: the shapes of SqueezeNet's fire module and MNIST's head.
 */
function smallCnn(opts: { opset?: number; nanIn?: string } = {}): Model {
  const t = (name: string, dims: number[], seed: number, sigma = 0.3) => {
    const v = gaussian(dims.reduce((a, b) => a * b, 1), seed, sigma);
    if (opts.nanIn === name) v[3] = NaN;
    return floatTensor(name, dims, v);
  };
  return buildModel({
    opset: opts.opset ?? 13,
    inputs: [valueInfo('x', F, [1, 3, 8, 8])],
    outputs: [valueInfo('y', F, [1, 10])],
    initializers: [
      t('w1', [8, 3, 3, 3], 1), t('b1', [8], 2, 0.1), t('wa', [4, 8, 1, 1], 3), t('ba', [4], 4, 0.1),
      t('wb', [4, 8, 3, 3], 5), t('bb', [4], 6, 0.1), t('w3', [128, 10], 7, 0.1), t('b3', [10], 8, 0.1),
      Tensor.fromTypedArray('shape', DataType.INT64, [2], BigInt64Array.of(1n, 128n)),
    ],
    nodes: [
      new Node({ name: 'conv1', opType: 'Conv', inputs: ['x', 'w1', 'b1'], outputs: ['c1'], attributes: [ints('pads', [1, 1, 1, 1])] }),
      new Node({ name: 'relu1', opType: 'Relu', inputs: ['c1'], outputs: ['r1'] }),
      new Node({ name: 'pool1', opType: 'MaxPool', inputs: ['r1'], outputs: ['p1'], attributes: [ints('kernel_shape', [2, 2]), ints('strides', [2, 2])] }),
      new Node({ name: 'conva', opType: 'Conv', inputs: ['p1', 'wa', 'ba'], outputs: ['ca'] }),
      new Node({ name: 'relua', opType: 'Relu', inputs: ['ca'], outputs: ['ra'] }),
      new Node({ name: 'convb', opType: 'Conv', inputs: ['p1', 'wb', 'bb'], outputs: ['cb'], attributes: [ints('pads', [1, 1, 1, 1])] }),
      new Node({ name: 'relub', opType: 'Relu', inputs: ['cb'], outputs: ['rb'] }),
      new Node({ name: 'cat', opType: 'Concat', inputs: ['ra', 'rb'], outputs: ['cat'], attributes: [int('axis', 1)] }),
      new Node({ name: 'flat', opType: 'Reshape', inputs: ['cat', 'shape'], outputs: ['flat'] }),
      new Node({ name: 'fc', opType: 'MatMul', inputs: ['flat', 'w3'], outputs: ['mm'] }),
      new Node({ name: 'fc_bias', opType: 'Add', inputs: ['mm', 'b3'], outputs: ['y'] }),
    ],
  });
}

// one calibration of the small CNN on synthetic inputs, shared by the tests below
let ranges: Map<string, TensorRange>;
// synthetic:N feeds an image-shaped float input random 8-bit pixels; test with the same kind
const pixels = seededRandom(99);
const input = { x: { data: Float32Array.from({ length: 3 * 8 * 8 }, () => Math.floor(pixels() * 256)), dims: [1, 3, 8, 8] } };
let floatOut: Float32Array;
before(async () => {
  const m = smallCnn();
  ranges = (await calibrate(m, await openDataset('synthetic:32', inputSpecs(m), {}), { method: 'minmax' })).ranges;
  const p = join(tmp.dir, 'small-fp32.onnx');
  writeOnnxFile(m, p);
  floatOut = await runFloat(p, input);
});

async function quantized(label: string, options: Partial<StaticQdqOptions> = {}, model = smallCnn()) {
  const report = quantizeStaticQdq(model, { ranges, ...options }, createPassContext());
  const path = join(tmp.dir, `${label}.onnx`);
  writeOnnxFile(model, path);
  return { model, report, path };
}

const producerOf = (m: Model, name: string) => m.graph.nodes.find((n) => n.outputs.includes(name));
const readersOf = (m: Model, name: string) => m.graph.nodes.filter((n) => n.inputs.includes(name));
/** The scale initializer `tensor` is quantized with: its DequantizeLinear's, or (graph inputs) its QuantizeLinear's. */
function qScaleOf(m: Model, tensor: string): string {
  const dq = producerOf(m, tensor);
  const q = m.graph.nodes.find((n) => n.opType === 'QuantizeLinear' && n.inputs[0] === tensor);
  const scale = dq?.opType === 'DequantizeLinear' ? dq.inputs[1] : q?.inputs[1];
  assert.ok(scale, `${tensor} is quantized`);
  return scale;
}

describe('static QDQ on a small CNN', () => {
  it('per-tensor: one shared Q/DQ pair per tensor, int8 weights with only a DQ, int32 bias on input×weight scale', async () => {
    const { model, report, path } = await quantized('per-tensor');
    const g = model.graph;
    assert.deepEqual(qdqProblems(model), []);
    assert.deepEqual(report.warnings, []);
    // every QuantizeLinear is read by exactly one DequantizeLinear, which every reader shares
    for (const q of g.nodes.filter((n) => n.opType === 'QuantizeLinear')) {
      assert.deepEqual(readersOf(model, q.outputs[0]!).map((n) => n.opType), ['DequantizeLinear']);
    }
    assert.equal(readersOf(model, 'p1').length, 2, 'both branch Convs read the one dequantized MaxPool output');
    assert.equal(report.details!.qdqPairs, g.nodes.filter((n) => n.opType === 'QuantizeLinear').length);

    // weights: int8, no float copy left, read through a DequantizeLinear only
    const w1 = g.initializers.get('w1_quantized')!;
    assert.equal(w1.dataType, DataType.INT8);
    assert.deepEqual(w1.dims, [8, 3, 3, 3]);
    for (const gone of ['w1', 'b1', 'w3', 'b3']) assert.ok(!g.initializers.has(gone), `${gone} removed`);
    const conv1 = g.nodes.find((n) => n.name === 'conv1')!;
    assert.equal(producerOf(model, conv1.inputs[1]!)?.opType, 'DequantizeLinear');
    assert.equal(g.initializers.get('w1_zero_point')!.typed()[0], 0);

    // bias: int32, scale = fround(input scale × weight scale), zero point 0, RNE of b / scale
    const biasDq = producerOf(model, conv1.inputs[2]!)!;
    const bq = g.initializers.get(biasDq.inputs[0]!)!;
    assert.equal(bq.dataType, DataType.INT32);
    const xScale = (g.initializers.get(qScaleOf(model, conv1.inputs[0]!))!.typed() as Float32Array)[0]!;
    const wScale = (g.initializers.get('w1_scale')!.typed() as Float32Array)[0]!;
    const bScale = (g.initializers.get(biasDq.inputs[1]!)!.typed() as Float32Array)[0]!;
    assert.equal(bScale, Math.fround(xScale * wScale));
    const b1 = smallCnn().graph.initializers.get('b1')!.toFloat32();
    assert.deepEqual([...(bq.typed() as Int32Array)], Array.from(b1, (b) => roundHalfEven(b / bScale)));
    assert.deepEqual([...(g.initializers.get(biasDq.inputs[2]!)!.typed() as Int32Array)], [0]);

    // graph output keeps float: written by the (Gemm-folded) fully connected layer, not a Q
    assert.equal(producerOf(model, 'y')?.opType, 'Gemm');
    assert.equal(model.opsetVersion(''), 13);

    const out = await runFloat(path, input);
    assert.ok(sqnrDb(floatOut, out) > 25, `SQNR ${sqnrDb(floatOut, out)} dB`);
  });

  it('ranges propagate: Conv→Relu→MaxPool share one scale, Relu folds away, Concat inputs share the output\'s', async () => {
    const { model, report } = await quantized('propagation');
    assert.deepEqual(report.details!.removedActivations, ['relu1', 'relua', 'relub']);
    assert.ok(!model.graph.nodes.some((n) => n.opType === 'Relu'));
    // the Conv now writes the Relu's output through Q/DQ; MaxPool's output has the same parameters
    assert.equal(qScaleOf(model, 'r1'), qScaleOf(model, 'p1'));
    assert.equal(qScaleOf(model, 'ra'), qScaleOf(model, 'cat'));
    assert.equal(qScaleOf(model, 'rb'), qScaleOf(model, 'cat'));
    assert.equal(qScaleOf(model, 'flat'), qScaleOf(model, 'cat'));
    // a shared group's range is the union of its members' calibrated ranges
    const cat = ranges.get('cat')!;
    const scale = (model.graph.initializers.get(qScaleOf(model, 'cat'))!.typed() as Float32Array)[0]!;
    assert.equal(scale, Math.fround((Math.max(cat.max, ranges.get('ra')!.max, ranges.get('rb')!.max) - 0) / 255));
  });

  it('onnxruntime fuses everything: QLinearConv, QLinearConcat, QGemm, uint8 MaxPool, no Q/DQ island', async () => {
    const { path } = await quantized('fusion');
    const opt = await optimizedModel(path);
    const h = opHistogram(opt);
    assert.equal(h['com.microsoft.QLinearConv'], 3, JSON.stringify(h));
    assert.equal(h['com.microsoft.QLinearConcat'], 1, JSON.stringify(h));
    assert.equal(h['com.microsoft.QGemm'], 1, JSON.stringify(h));
    for (const float of ['Conv', 'MatMul', 'Gemm', 'Relu', 'MaxPool', 'DequantizeLinear']) assert.equal(h[float], undefined, `${float} left: ${JSON.stringify(h)}`);
    assert.deepEqual(unfusedIslands(opt), []);
  });

  it('per-channel: Conv weights along axis 0, bias scale per channel, MatMul→Gemm weight along axis 1', async () => {
    const { model, path } = await quantized('per-channel', { perChannel: true });
    const g = model.graph;
    assert.deepEqual(qdqProblems(model), []);
    const wDq = producerOf(model, g.nodes.find((n) => n.name === 'conv1')!.inputs[1]!)!;
    assert.equal(wDq.attrInt('axis', -99), 0);
    const scales = g.initializers.get('w1_scale')!.typed() as Float32Array;
    assert.deepEqual(g.initializers.get('w1_scale')!.dims, [8]);
    assert.deepEqual([...(g.initializers.get('w1_zero_point')!.typed() as Int8Array)], new Array(8).fill(0));
    const conv1 = g.nodes.find((n) => n.name === 'conv1')!;
    const biasDq = producerOf(model, conv1.inputs[2]!)!;
    assert.equal(biasDq.attrInt('axis', -99), 0);
    const xScale = (g.initializers.get(qScaleOf(model, 'x'))!.typed() as Float32Array)[0]!;
    assert.deepEqual([...(g.initializers.get(biasDq.inputs[1]!)!.typed() as Float32Array)], Array.from(scales, (s) => Math.fround(xScale * s)));
    // MatMul [128,10] (no transB): output channels along axis 1
    const fc = g.nodes.find((n) => n.name === 'fc')!;
    assert.equal(producerOf(model, fc.inputs[1]!)!.attrInt('axis', -99), 1);
    assert.deepEqual(g.initializers.get('w3_scale')!.dims, [10]);
    const out = await runFloat(path, input);
    assert.ok(sqnrDb(floatOut, out) > 25, `SQNR ${sqnrDb(floatOut, out)} dB`);
    assert.deepEqual(unfusedIslands(await optimizedModel(path)), []);
  });

  it('per-channel axes: Gemm 0 with transB, 1 without; ConvTranspose 1 (with a warning that the CPU EP does not fuse it)', async () => {
    const gemm = (transB: number) => buildModel({
      inputs: [valueInfo('x', F, [2, 6])],
      outputs: [valueInfo('y', F, [2, 4])],
      initializers: [floatTensor('W', transB ? [4, 6] : [6, 4], gaussian(24, 1)), floatTensor('C', [4], gaussian(4, 2))],
      nodes: [new Node({ name: 'g', opType: 'Gemm', inputs: ['x', 'W', 'C'], outputs: ['y'], attributes: [int('transB', transB)] })],
    });
    const r = new Map([['x', { min: -2, max: 2 }], ['y', { min: -6, max: 6 }]]);
    for (const transB of [1, 0]) {
      const m = gemm(transB);
      quantizeStaticQdq(m, { ranges: r, perChannel: true }, createPassContext());
      const dq = producerOf(m, m.graph.nodes.find((n) => n.opType === 'Gemm')!.inputs[1]!)!;
      assert.equal(dq.attrInt('axis', -1), transB ? 0 : 1);
      assert.deepEqual(m.graph.initializers.get('W_scale')!.dims, [4]);
    }
    const ct = buildModel({
      inputs: [valueInfo('x', F, [1, 4, 5, 5])],
      outputs: [valueInfo('y', F, [1, 3, 7, 7])],
      initializers: [floatTensor('w', [4, 3, 3, 3], gaussian(108, 1)), floatTensor('b', [3], gaussian(3, 2))],
      nodes: [new Node({ name: 'ct', opType: 'ConvTranspose', inputs: ['x', 'w', 'b'], outputs: ['y'] })],
    });
    const report = quantizeStaticQdq(ct, { ranges: new Map([['x', { min: -3, max: 3 }], ['y', { min: -9, max: 9 }]]), perChannel: true, opTypes: ['ConvTranspose'] }, createPassContext());
    assert.equal(producerOf(ct, ct.graph.nodes.find((n) => n.opType === 'ConvTranspose')!.inputs[1]!)!.attrInt('axis', -1), 1);
    assert.deepEqual(ct.graph.initializers.get('w_scale')!.dims, [3]);
    assert.match(report.warnings.join('\n'), /ConvTranspose: onnxruntime's CPU EP has no fused int8 kernel/);
  });

  it('MatMul shapes: alone → MatMulIntegerToFloat; into a quantized op → QLinearMatMul; 3-D with bias → QLinearMatMul + QLinearAdd', async () => {
    const r = (entries: [string, number, number][]) => new Map(entries.map(([n, min, max]) => [n, { min, max }]));
    const cases: { label: string; model: Model; ranges: Map<string, TensorRange>; expect: string[] }[] = [
      {
        label: 'alone',
        model: buildModel({ inputs: [valueInfo('x', F, [2, 4])], outputs: [valueInfo('y', F, [2, 5])], initializers: [floatTensor('w', [4, 5], gaussian(20, 1))], nodes: [new Node({ name: 'mm', opType: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] })] }),
        ranges: r([['x', -3, 3], ['y', -5, 5]]),
        expect: ['com.microsoft.MatMulIntegerToFloat'],
      },
      {
        label: 'mlp',
        model: buildModel({
          inputs: [valueInfo('x', F, [2, 4])], outputs: [valueInfo('y', F, [2, 5])],
          initializers: [floatTensor('w', [4, 5], gaussian(20, 1)), floatTensor('w2', [5, 5], gaussian(25, 3))],
          nodes: [new Node({ name: 'mm1', opType: 'MatMul', inputs: ['x', 'w'], outputs: ['h'] }), new Node({ name: 'r', opType: 'Relu', inputs: ['h'], outputs: ['hr'] }), new Node({ name: 'mm2', opType: 'MatMul', inputs: ['hr', 'w2'], outputs: ['y'] })],
        }),
        ranges: r([['x', -3, 3], ['h', -5, 5], ['hr', 0, 5], ['y', -5, 5]]),
        expect: ['QLinearMatMul', 'com.microsoft.MatMulIntegerToFloat'],
      },
      {
        label: '3d-bias',
        model: buildModel({
          inputs: [valueInfo('x', F, [2, 3, 4])], outputs: [valueInfo('y', F, [2, 3, 5])],
          initializers: [floatTensor('w', [4, 5], gaussian(20, 1)), floatTensor('b', [5], gaussian(5, 2))],
          nodes: [new Node({ name: 'mm', opType: 'MatMul', inputs: ['x', 'w'], outputs: ['h'] }), new Node({ name: 'add', opType: 'Add', inputs: ['h', 'b'], outputs: ['y'] })],
        }),
        ranges: r([['x', -3, 3], ['h', -5, 5], ['y', -5, 5]]),
        expect: ['QLinearMatMul', 'com.microsoft.QLinearAdd'],
      },
    ];
    for (const c of cases) {
      quantizeStaticQdq(c.model, { ranges: c.ranges }, createPassContext());
      const path = join(tmp.dir, `matmul-${c.label}.onnx`);
      writeOnnxFile(c.model, path);
      const opt = await optimizedModel(path);
      const ops = opt.graph.nodes.map((n) => (n.domain ? `${n.domain}.${n.opType}` : n.opType));
      for (const e of c.expect) assert.ok(ops.includes(e), `${c.label}: ${ops.join(' ')}`);
      assert.ok(!ops.includes('MatMul') && !ops.includes('Gemm'), `${c.label}: ${ops.join(' ')}`);
      assert.deepEqual(unfusedIslands(opt), [], c.label);
    }
  });

  it('a pool only a float op reads stays float (no 8-bit logits); one a quantized op reads fuses', async () => {
    const r = (entries: [string, number, number][]) => new Map(entries.map(([n, min, max]) => [n, { min, max }]));
    const build = (tail: 'softmax' | 'gemm') => buildModel({
      inputs: [valueInfo('x', F, [1, 2, 4, 4])], outputs: [valueInfo('y', F, [1, 3])],
      initializers: [floatTensor('w', [3, 2, 1, 1], gaussian(6, 4)), floatTensor('w2', [3, 3], gaussian(9, 5))],
      nodes: [
        new Node({ name: 'conv', opType: 'Conv', inputs: ['x', 'w'], outputs: ['c'] }),
        new Node({ name: 'pool', opType: 'GlobalAveragePool', inputs: ['c'], outputs: ['p'] }),
        new Node({ name: 'flat', opType: 'Flatten', inputs: ['p'], outputs: ['f'] }),
        tail === 'softmax'
          ? new Node({ name: 'sm', opType: 'Softmax', inputs: ['f'], outputs: ['y'] })
          : new Node({ name: 'fc', opType: 'Gemm', inputs: ['f', 'w2'], outputs: ['y'] }),
      ],
    });
    const ranges = r([['x', -3, 3], ['c', -4, 4], ['p', -2, 2], ['f', -2, 2], ['y', -5, 5]]);
    const ops = async (tail: 'softmax' | 'gemm') => {
      const model = build(tail);
      quantizeStaticQdq(model, { ranges }, createPassContext());
      const path = join(tmp.dir, `pool-tail-${tail}.onnx`);
      writeOnnxFile(model, path);
      const opt = await optimizedModel(path);
      assert.deepEqual(unfusedIslands(opt), [], tail);
      return opt.graph.nodes.map((n) => (n.domain ? `${n.domain}.${n.opType}` : n.opType));
    };
    const beforeSoftmax = await ops('softmax');
    assert.ok(beforeSoftmax.includes('GlobalAveragePool') && beforeSoftmax.includes('com.microsoft.QLinearConv'), beforeSoftmax.join(' '));
    assert.ok(!beforeSoftmax.includes('com.microsoft.QLinearGlobalAveragePool'), beforeSoftmax.join(' '));
    const beforeGemm = await ops('gemm');
    assert.ok(beforeGemm.includes('com.microsoft.QLinearGlobalAveragePool'), beforeGemm.join(' '));
  });

  it('SiLU (x·Sigmoid(x)) and LeakyRelu fuse as table lookups: QLinearSigmoid + QLinearMul, QLinearLeakyRelu; a Sigmoid only a float op reads stays float', async () => {
    const float = floatTensor;
    const model = () => buildModel({
      inputs: [valueInfo('x', F, [1, 3, 8, 8])], outputs: [valueInfo('y', F, [1, 10]), valueInfo('gate', F, [1, 8, 8, 8])],
      initializers: [float('w1', [8, 3, 3, 3], gaussian(216, 21, 0.3)), float('b1', [8], gaussian(8, 22, 0.1)), float('w2', [8, 8, 1, 1], gaussian(64, 23, 0.3)), float('w3', [8, 10], gaussian(80, 24, 0.3))],
      nodes: [
        new Node({ name: 'conv1', opType: 'Conv', inputs: ['x', 'w1', 'b1'], outputs: ['c1'], attributes: [ints('pads', [1, 1, 1, 1])] }),
        new Node({ name: 'sig', opType: 'Sigmoid', inputs: ['c1'], outputs: ['s1'] }),
        new Node({ name: 'silu', opType: 'Mul', inputs: ['c1', 's1'], outputs: ['a1'] }),
        new Node({ name: 'conv2', opType: 'Conv', inputs: ['a1', 'w2'], outputs: ['c2'] }),
        new Node({ name: 'leaky', opType: 'LeakyRelu', inputs: ['c2'], outputs: ['a2'], attributes: [{ name: 'alpha', type: AttrType.FLOAT, value: 0.1, extra: {} }] }),
        new Node({ name: 'pool', opType: 'GlobalAveragePool', inputs: ['a2'], outputs: ['p'] }),
        new Node({ name: 'flat', opType: 'Flatten', inputs: ['p'], outputs: ['f'] }),
        new Node({ name: 'fc', opType: 'MatMul', inputs: ['f', 'w3'], outputs: ['y'] }),
        // a gate read by nothing quantized (a graph output): no 8-bit requantization for it
        new Node({ name: 'gate', opType: 'Sigmoid', inputs: ['c2'], outputs: ['gate'] }),
      ],
    });
    const m = model();
    const calib = (await calibrate(m, await openDataset('synthetic:32', inputSpecs(m), {}), { method: 'minmax' })).ranges;
    const fp32 = join(tmp.dir, 'silu-fp32.onnx');
    writeOnnxFile(m, fp32);
    const { report, path } = await quantized('silu', { ranges: calib }, model());
    assert.deepEqual(report.details!['quantizedOps'], { Conv: 2, Sigmoid: 1, Mul: 1, LeakyRelu: 1, GlobalAveragePool: 1, Flatten: 1, MatMul: 1 });
    const opt = await optimizedModel(path);
    const h = opHistogram(opt);
    for (const op of ['QLinearSigmoid', 'QLinearMul', 'QLinearLeakyRelu']) assert.equal(h[`com.microsoft.${op}`], 1, `${op}: ${JSON.stringify(h)}`);
    assert.equal(h['com.microsoft.QLinearConv'], 2, JSON.stringify(h));
    assert.equal(h['Sigmoid'], 1, 'the gate stays float');
    assert.deepEqual(unfusedIslands(opt), []);
    const [want, got] = [await runFloat(fp32, input), await runFloat(path, input)];
    const db = sqnrDb(want, got);
    assert.ok(db > 25, `output SQNR ${db.toFixed(1)} dB`);
  });

  it('Gather, Slice, DepthToSpace and a nearest Resize run on uint8 between quantized Convs; a linear Resize stays float (and the runtime check names it)', async () => {
    const str = (name: string, v: string) => ({ name, type: AttrType.STRING, value: new TextEncoder().encode(v), extra: {} });
    const i64 = (name: string, v: bigint[]) => Tensor.fromTypedArray(name, DataType.INT64, [v.length], BigInt64Array.from(v));
    const model = () => buildModel({
      inputs: [valueInfo('x', F, [1, 3, 8, 8])], outputs: [valueInfo('y', F, [1, 2, 64, 64])],
      initializers: [
        floatTensor('w1', [8, 3, 3, 3], gaussian(216, 31, 0.3)), floatTensor('w2', [8, 8, 1, 1], gaussian(64, 32, 0.3)),
        floatTensor('w3', [4, 1, 3, 3], gaussian(36, 33, 0.3)), floatTensor('w4', [2, 4, 1, 1], gaussian(8, 34, 0.3)),
        floatTensor('up', [4], Float32Array.of(1, 1, 2, 2)), i64('starts', [0n]), i64('ends', [4n]), i64('axes', [1n]), i64('order', [3n, 2n, 1n, 0n]),
      ],
      nodes: [
        new Node({ name: 'conv1', opType: 'Conv', inputs: ['x', 'w1'], outputs: ['c1'], attributes: [ints('pads', [1, 1, 1, 1])] }),
        new Node({ name: 'up1', opType: 'Resize', inputs: ['c1', '', 'up'], outputs: ['u1'] }),
        new Node({ name: 'conv2', opType: 'Conv', inputs: ['u1', 'w2'], outputs: ['c2'] }),
        new Node({ name: 'slice', opType: 'Slice', inputs: ['c2', 'starts', 'ends', 'axes'], outputs: ['s'] }),
        new Node({ name: 'gather', opType: 'Gather', inputs: ['s', 'order'], outputs: ['g'], attributes: [int('axis', 1)] }),
        new Node({ name: 'd2s', opType: 'DepthToSpace', inputs: ['g'], outputs: ['d'], attributes: [int('blocksize', 2)] }),
        new Node({ name: 'conv3', opType: 'Conv', inputs: ['d', 'w3'], outputs: ['c3'], attributes: [ints('pads', [1, 1, 1, 1])] }),
        new Node({ name: 'up2', opType: 'Resize', inputs: ['c3', '', 'up'], outputs: ['u2'], attributes: [str('mode', 'linear')] }),
        new Node({ name: 'conv4', opType: 'Conv', inputs: ['u2', 'w4'], outputs: ['y'] }),
      ],
    });
    const m = model();
    const calib = (await calibrate(m, await openDataset('synthetic:16', inputSpecs(m), {}), { method: 'minmax' })).ranges;
    const fp32 = join(tmp.dir, 'resize-fp32.onnx');
    writeOnnxFile(m, fp32);
    const { report, path } = await quantized('resize', { ranges: calib }, model());
    assert.deepEqual(report.details!['quantizedOps'], { Conv: 4, Resize: 1, Slice: 1, Gather: 1, DepthToSpace: 1 });
    const opt = await optimizedModel(path);
    const h = opHistogram(opt);
    assert.equal(h['com.microsoft.QLinearConv'], 4, JSON.stringify(h));
    assert.deepEqual(unfusedIslands(opt), []);
    const runtime = runtimeFusionOf(opt);
    assert.deepEqual(runtime.floatBetweenQdq, [{ op: 'Resize', node: 'up2' }], 'only the linear Resize runs float');
    const db = sqnrDb(await runFloat(fp32, input), await runFloat(path, input));
    assert.ok(db > 25, `output SQNR ${db.toFixed(1)} dB`);
  });

  it('a Split (ShuffleNet\'s channel split, a fused q/k/v) runs on uint8: every part shares the input\'s parameters', async () => {
    const model = () => buildModel({
      inputs: [valueInfo('x', F, [1, 3, 8, 8])], outputs: [valueInfo('y', F, [1, 8, 8, 8])],
      initializers: [
        floatTensor('w1', [8, 3, 3, 3], gaussian(216, 51, 0.3)), floatTensor('wa', [4, 4, 1, 1], gaussian(16, 52, 0.3)), floatTensor('wb', [4, 4, 3, 3], gaussian(144, 53, 0.3)),
        Tensor.fromTypedArray('parts', DataType.INT64, [2], BigInt64Array.of(4n, 4n)),
      ],
      nodes: [
        new Node({ name: 'conv1', opType: 'Conv', inputs: ['x', 'w1'], outputs: ['c1'], attributes: [ints('pads', [1, 1, 1, 1])] }),
        new Node({ name: 'split', opType: 'Split', inputs: ['c1', 'parts'], outputs: ['a', 'b'], attributes: [int('axis', 1)] }),
        new Node({ name: 'conva', opType: 'Conv', inputs: ['a', 'wa'], outputs: ['ca'] }),
        new Node({ name: 'convb', opType: 'Conv', inputs: ['b', 'wb'], outputs: ['cb'], attributes: [ints('pads', [1, 1, 1, 1])] }),
        new Node({ name: 'cat', opType: 'Concat', inputs: ['ca', 'cb'], outputs: ['y'], attributes: [int('axis', 1)] }),
      ],
    });
    const m = model();
    const calib = (await calibrate(m, await openDataset('synthetic:16', inputSpecs(m), {}), { method: 'minmax' })).ranges;
    const fp32 = join(tmp.dir, 'split-fp32.onnx');
    writeOnnxFile(m, fp32);
    const { report, path } = await quantized('split', { ranges: calib }, model());
    assert.deepEqual(report.details!['quantizedOps'], { Conv: 3, Split: 1 });
    const opt = await optimizedModel(path);
    assert.equal(opHistogram(opt)['com.microsoft.QLinearConv'], 3);
    const split = opt.graph.nodes.find((n) => n.opType === 'Split')!;
    assert.notEqual(opt.graph.producers().get(split.inputs[0]!)?.opType, 'DequantizeLinear', 'the Split reads the quantized tensor');
    assert.deepEqual(unfusedIslands(opt), []);
    assert.deepEqual(runtimeFusionOf(opt).floatBetweenQdq, []);
    const db = sqnrDb(await runFloat(fp32, input), await runFloat(path, input));
    assert.ok(db > 25, `output SQNR ${db.toFixed(1)} dB`);
  });

  it('an Add that applies an attention mask before a Softmax stays float (constant or activation mask); other Adds are quantized', async () => {
    const T = 6;
    const causal = Float32Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -1e9 : 0));
    const attention = (opts: { mask: 'constant' | 'input' | 'small'; tail?: 'softmax' | 'matmul' }) => buildModel({
      inputs: [valueInfo('x', F, [1, T, 4]), ...(opts.mask === 'input' ? [valueInfo('m', F, [T, T])] : [])],
      outputs: [valueInfo('y', F, [1, T, 4])],
      initializers: [
        floatTensor('wq', [4, 4], gaussian(16, 11)), floatTensor('wk', [4, T], gaussian(4 * T, 12)), floatTensor('wv', [T, 4], gaussian(4 * T, 13)),
        ...(opts.mask === 'input' ? [] : [floatTensor('mask', [T, T], opts.mask === 'small' ? Float32Array.from(causal, (v) => (v ? -0.5 : 0)) : causal)]),
        Tensor.fromTypedArray('shape', DataType.INT64, [3], BigInt64Array.of(1n, BigInt(T), BigInt(T))),
        floatTensor('eye', [T, T], Float32Array.from({ length: T * T }, (_, i) => (i % (T + 1) === 0 ? 1 : 0))),
      ],
      nodes: [
        new Node({ name: 'q', opType: 'MatMul', inputs: ['x', 'wq'], outputs: ['xq'] }),
        new Node({ name: 'scores', opType: 'MatMul', inputs: ['xq', 'wk'], outputs: ['s'] }),
        new Node({ name: 'masked', opType: 'Add', inputs: ['s', opts.mask === 'input' ? 'm' : 'mask'], outputs: ['sm'] }),
        new Node({ name: 'moved', opType: 'Reshape', inputs: ['sm', 'shape'], outputs: ['sr'] }),
        opts.tail === 'matmul'
          ? new Node({ name: 'probs', opType: 'MatMul', inputs: ['sr', 'eye'], outputs: ['p'] })
          : new Node({ name: 'probs', opType: 'Softmax', inputs: ['sr'], outputs: ['p'], attributes: [{ name: 'axis', type: AttrType.INT, value: -1n, extra: {} }] }),
        new Node({ name: 'context', opType: 'MatMul', inputs: ['p', 'wv'], outputs: ['y'] }),
      ],
    });
    const rng = seededRandom(5);
    const x = Float32Array.from({ length: T * 4 }, () => rng() * 2 - 1);
    // ranges of every tensor: the float model with each one made a graph output
    const ranges = async (m: Model, extra: Record<string, Float32Array> = {}) => {
      const path = join(tmp.dir, 'attention-float.onnx');
      const inner = ['xq', 's', 'sm', 'sr', 'p'];
      m.graph.outputs.push(...inner.map((t) => valueInfo(t, F, ['a', 'b', 'c'])));
      writeOnnxFile(m, path);
      const feeds = { x: { data: x, dims: [1, T, 4] }, ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, { data: v, dims: [T, T] }])) };
      const out = new Map<string, TensorRange>();
      for (const [t, v] of Object.entries(feeds)) out.set(t, { min: Math.min(...v.data), max: Math.max(...v.data) });
      for (const t of [...inner, 'y']) {
        const v = await runFloat(path, feeds, t);
        out.set(t, { min: Math.min(...v), max: Math.max(...v) });
      }
      return { out, feeds, reference: await runFloat(path, feeds, 'y') };
    };
    const quantized = async (opts: Parameters<typeof attention>[0], extra: Record<string, Float32Array> = {}) => {
      const { out, feeds, reference } = await ranges(attention(opts), extra);
      const m = attention(opts);
      const report = quantizeStaticQdq(m, { ranges: out }, createPassContext());
      const path = join(tmp.dir, `attention-${opts.mask}-${opts.tail ?? 'softmax'}.onnx`);
      writeOnnxFile(m, path);
      return { report, sqnr: sqnrDb(reference, await runFloat(path, feeds)) };
    };

    const constant = await quantized({ mask: 'constant' });
    assert.match(constant.report.warnings.join('\n'), /masked \(Add\) left float: it adds a mask before a Softmax \(mask reaches -1e9\)/);
    assert.ok(constant.report.excluded.includes('masked'));
    assert.ok(constant.sqnr > 25, `SQNR ${constant.sqnr} dB`);
    const input = await quantized({ mask: 'input' }, { m: causal.map((v) => (v ? -1e4 : 0)) });
    assert.match(input.report.warnings.join('\n'), /masked \(Add\) left float: it adds a mask before a Softmax \(m reaches -1e4\)/);
    assert.ok(input.sqnr > 25, `SQNR ${input.sqnr} dB`);
    // a small additive bias before the Softmax, and a huge constant that reaches no Softmax: quantized
    for (const opts of [{ mask: 'small' as const }, { mask: 'constant' as const, tail: 'matmul' as const }]) {
      const { report } = await quantized(opts);
      assert.ok(!report.excluded.includes('masked'), `${JSON.stringify(opts)}: ${report.warnings.join('; ')}`);
    }
  });

  it('int8 activations: int8 zero points, right values, and a warning where x86 onnxruntime cannot fuse them', async () => {
    const { model, report, path } = await quantized('int8-activations', { activationType: 'int8' });
    const zp = model.graph.initializers.get(producerOf(model, 'cat')!.inputs[2]!)!;
    assert.equal(zp.dataType, DataType.INT8);
    assert.equal((zp.typed() as Int8Array)[0], -128, 'a Relu range [0, max] sits at the bottom of int8');
    const out = await runFloat(path, input);
    assert.ok(sqnrDb(floatOut, out) > 25, `SQNR ${sqnrDb(floatOut, out)} dB`);
    // p1 is read by both branches: onnxruntime's S8→U8 conversion skips it and the branch Convs run float
    assert.match(report.warnings.join('\n'), /int8 activations: .* 1 quantized tensor\(s\) here have several \(p1\)/);
  });

  it('Clip with constant bounds folds away when the quantization clips the same, stays when it does not', async () => {
    const clipModel = (lo: number, hi: number) => buildModel({
      inputs: [valueInfo('x', F, [1, 2, 4, 4])],
      outputs: [valueInfo('y', F, [1, 2, 4, 4])],
      initializers: [floatTensor('w', [2, 2, 1, 1], gaussian(4, 1)), floatTensor('lo', [], Float32Array.of(lo)), floatTensor('hi', [], Float32Array.of(hi))],
      nodes: [
        new Node({ name: 'conv', opType: 'Conv', inputs: ['x', 'w'], outputs: ['c'] }),
        new Node({ name: 'clip', opType: 'Clip', inputs: ['c', 'lo', 'hi'], outputs: ['y'] }),
      ],
    });
    const r = new Map([['x', { min: -3, max: 3 }], ['c', { min: -8, max: 8 }], ['y', { min: 0, max: 6 }]]);
    const relu6 = clipModel(0, 6);
    const a = quantizeStaticQdq(relu6, { ranges: r }, createPassContext());
    assert.deepEqual(a.details!.removedActivations, ['clip']);
    const narrow = clipModel(0, 4); // its output range says 6: quantizing does not clip at 4
    const b = quantizeStaticQdq(narrow, { ranges: r }, createPassContext());
    assert.deepEqual(b.details!.removedActivations, []);
    assert.ok(narrow.graph.nodes.some((n) => n.opType === 'Clip'));
    assert.deepEqual(qdqProblems(narrow), []);
  });
});

describe('static QDQ: exclusions, missing ranges, bad weights, determinism, opset', () => {
  it('excluded nodes (by name and by op type) stay float, with Q/DQ boundaries around them', async () => {
    const { model, report, path } = await quantized('excluded', { exclude: ['conva', 'MaxPool', 'nonexistent'] });
    assert.deepEqual(qdqProblems(model), []);
    assert.deepEqual(report.excluded, ['pool1', 'conva']);
    assert.match(report.warnings.join('\n'), /--exclude nonexistent: matches no node/);
    const g = model.graph;
    assert.ok(g.initializers.has('wa') && g.initializers.get('wa')!.dataType === F, 'the excluded Conv keeps its float weight');
    assert.equal(producerOf(model, 'p1')?.opType, 'DequantizeLinear', 'the float MaxPool output is quantized for convb');
    const pool = g.nodes.find((n) => n.name === 'pool1')!;
    assert.equal(producerOf(model, pool.inputs[0]!)?.opType, 'DequantizeLinear', 'the excluded MaxPool reads a dequantized value');
    const out = await runFloat(path, input);
    assert.ok(sqnrDb(floatOut, out) > 25, `SQNR ${sqnrDb(floatOut, out)} dB`);
    // onnxruntime would quantize the weight of a float Conv between a DQ and a Q
    // (WeightBiasQuantization); the excluded Conv reads a per-axis DQ, which it leaves alone
    const opt = await optimizedModel(path);
    const h = opHistogram(opt);
    assert.equal(h['com.microsoft.QLinearConv'], 2, JSON.stringify(h));
    assert.ok(opt.graph.nodes.some((n) => n.opType === 'Conv'), `the excluded Conv runs float: ${JSON.stringify(h)}`);
    assert.deepEqual(unfusedIslands(opt), []);
  });

  it('a tensor without a range: a warning naming it, its node left float, the model still right', async () => {
    const partial = new Map(ranges);
    partial.delete('x');
    const m = smallCnn();
    const report = quantizeStaticQdq(m, { ranges: partial }, createPassContext());
    assert.match(report.warnings.join('\n'), /conv1 \(Conv\) left float: no calibration range for tensor x/);
    assert.ok(report.excluded.includes('conv1'));
    assert.deepEqual(qdqProblems(m), []);
    assert.equal(m.graph.initializers.get('w1')?.dataType, F);
    const path = join(tmp.dir, 'partial.onnx');
    writeOnnxFile(m, path);
    const out = await runFloat(path, input);
    assert.ok(sqnrDb(floatOut, out) > 25, `SQNR ${sqnrDb(floatOut, out)} dB`);
  });

  it('NaN in a weight: WhittleError naming the node, before anything is changed', () => {
    const m = smallCnn({ opset: 11, nanIn: 'wb' });
    const nodes = m.graph.nodes.length;
    assert.throws(() => quantizeStaticQdq(m, { ranges }, createPassContext()), (e: unknown) => e instanceof WhittleError && e.code === 'BAD_INPUT' && /convb \(Conv\): weight wb has NaN/.test(e.message));
    assert.equal(m.graph.nodes.length, nodes);
    assert.equal(m.opsetVersion(''), 11);
  });

  it('no ranges at all is a usage error', () => {
    assert.throws(() => quantizeStaticQdq(smallCnn(), { ranges: new Map() }, createPassContext()), (e: unknown) => e instanceof WhittleError && e.code === 'BAD_USAGE');
  });

  it('byte-identical files from the same inputs', async () => {
    for (const perChannel of [false, true]) {
      const a = await quantized(`same-a-${perChannel}`, { perChannel });
      const b = await quantized(`same-b-${perChannel}`, { perChannel });
      assert.ok(fileBytes(a.path).equals(fileBytes(b.path)), `perChannel ${perChannel}`);
    }
  });

  it('opset: 11 raised to 13 for per-channel; a model that cannot be raised keeps its opset per-tensor and is refused per-channel', async () => {
    const { model } = await quantized('opset11', { perChannel: true }, smallCnn({ opset: 11 }));
    assert.equal(model.opsetVersion(''), 13);
    assert.ok(model.irVersion >= 7);
    const withSplit = () => {
      const m = smallCnn({ opset: 11 });
      // Split with a `split` attribute changed form at 13: a blocker this pass does not rewrite
      m.graph.nodes.push(new Node({ name: 'split', opType: 'Split', inputs: ['y'], outputs: ['y0', 'y1'], attributes: [int('axis', 1), ints('split', [5, 5])] }));
      m.graph.outputs.push(valueInfo('y0', F, [1, 5]), valueInfo('y1', F, [1, 5]));
      return m;
    };
    const kept = withSplit();
    const report = quantizeStaticQdq(kept, { ranges }, createPassContext());
    assert.equal(kept.opsetVersion(''), 11);
    assert.match(report.warnings.join('\n'), /opset 11 kept: split \(Split\)/);
    assert.deepEqual(qdqProblems(kept), []);
    assert.throws(() => quantizeStaticQdq(withSplit(), { ranges, perChannel: true }, createPassContext()), (e: unknown) => e instanceof WhittleError && e.code === 'UNSUPPORTED' && /split \(Split\)/.test(e.message));
  });

  it('runs as a Pass with progress phases and honours cancellation', async () => {
    const phases = new Set<string>();
    const ctx = createPassContext({ progress: (p) => phases.add(p) });
    const report = await staticQdqPass.run(smallCnn(), { ranges }, ctx);
    assert.ok(phases.has('prepare graph') && phases.has('quantize weights'));
    assert.ok(report.bytesAfter < report.bytesBefore / 3, `${report.bytesBefore} → ${report.bytesAfter}`);
    assert.ok(report.nodesChanged > 0);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(staticQdqPass.run(smallCnn(), { ranges }, createPassContext({ signal: ac.signal })), (e: unknown) => e instanceof WhittleError && e.code === 'CANCELLED');
  });
});

describe('weight and bias arithmetic', () => {
  it('per-channel int8 weights: symmetric, each channel its own scale, every value within half a step', () => {
    const w = Float32Array.of(1, -0.01, 0.5, -2, 0.02, 0.25); // [2, 3], channels along axis 0
    const q = quantizeWeight(w, [2, 3], 0);
    assert.deepEqual([...q.scales], [Math.fround(2 / 254), Math.fround(4 / 254)]);
    assert.deepEqual([...q.data], [127, -1, 64, -127, 1, 16]);
    for (let k = 0; k < w.length; k++) assert.ok(Math.abs(q.data[k]! * q.scales[Math.floor(k / 3)]! - w[k]!) <= q.scales[Math.floor(k / 3)]! / 2);
    const t = quantizeWeight(w, [2, 3], null);
    assert.deepEqual([...t.scales], [Math.fround(4 / 254)]);
    assert.equal(quantizeWeight(new Float32Array(4), [4], null).scales[0], 1, 'an all-zero weight: scale 1');
  });

  it('rounds half to even on scale input×weight and clamps to int32 with a count', () => {
    const r = quantizeBias(Float32Array.of(2.5, 3.5, -2.5, 1e30), 0.5, Float32Array.of(2));
    assert.deepEqual([...r.scales], [1]);
    assert.deepEqual([...r.data], [2, 4, -2, 2147483647]);
    assert.equal(r.clamped, 1);
  });
});
