import { int8Saturation } from '../../../native-models/runtimes/cpu-int8.ts';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { WhittleError } from '../../../api/errors.ts';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { AttrType, Graph, Node } from '../../../native-models/ir/model.ts';
import { evaluate } from '../../evaluate/evaluate.ts';
import { fixture } from '../../testing/fixtures.ts';
import { createPassContext } from '../pass.ts';
import { CONV_INTEGER_WARNING, dynamicQuantizePass, quantizeWeight } from './dynamic.ts';
import { buildModel, fileBytes, floatTensor, gaussian, optimizedOps, runFloat, sqnrDb, tempDir, valueInfo } from './test-models.ts';

const tmp = tempDir('dynamic');
after(tmp.cleanup);
const MNIST = fixture('mnist', 'mnist.onnx');
const MNIST_DATA = fixture('mnist', 't10k-images-idx3-ubyte.gz');

const f = (name: string, value: number) => ({ name, type: AttrType.FLOAT, value, extra: {} });
const i = (name: string, value: number) => ({ name, type: AttrType.INT, value: BigInt(value), extra: {} });

/** x [B, K] → Gemm(transB, alpha, beta, C) → y [B, N], plus a MatMul on the same input. */
function gemmModel(opts: { transA?: number; nanAt?: number } = {}) {
  const K = 64;
  const N = 24;
  const w = gaussian(N * K, 1, 0.2);
  if (opts.nanAt !== undefined) w[opts.nanAt] = NaN;
  return buildModel({
    opset: 13,
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', K])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', N]), valueInfo('z', DataType.FLOAT, ['batch', N])],
    initializers: [floatTensor('W', [N, K], w), floatTensor('C', [N], gaussian(N, 2)), floatTensor('M', [K, N], gaussian(K * N, 3, 0.1))],
    nodes: [
      new Node({ name: 'fc', opType: 'Gemm', inputs: ['x', 'W', 'C'], outputs: ['y'], attributes: [i('transB', 1), i('transA', opts.transA ?? 0), f('alpha', 0.5), f('beta', 2)] }),
      new Node({ name: 'mm', opType: 'MatMul', inputs: ['x', 'M'], outputs: ['z'] }),
    ],
  });
}

describe('quantizeWeight', () => {
  it('per-column int8 symmetric: zero points 0, each column its own scale, values within half a step', () => {
    const w = Float32Array.of(1, -0.01, 0.5, -2, 0.02, 0.25); // [3, 2]
    const q = quantizeWeight(w, [3, 2], 1, 'int8', true);
    assert.deepEqual([...q.zeroPoints], [0, 0]);
    assert.deepEqual([...q.scales], [Math.fround(2 / 254), Math.fround(4 / 254)]);
    for (let k = 0; k < w.length; k++) assert.ok(Math.abs(q.q[k]! * q.scales[k % 2]! - w[k]!) <= q.scales[k % 2]! / 2 + 1e-9);
  });
});

describe('dynamic int8 on MNIST (evaluated on test images 256..9999)', () => {
  for (const perChannel of [false, true]) {
    it(`${perChannel ? 'per-channel' : 'per-tensor'}: ≥ 98.89 % top-1, ≥ 99.95 % agreement, MatMul fused into DynamicQuantizeMatMul`, async (t) => {
      const model = readOnnxFile(MNIST);
      const ctx = createPassContext();
      const phases = new Set<string>();
      // the acceptance figures are the 8-bit model's, evaluated unfused where this CPU saturates them (static-qdq-models.test.ts)
      const report = await dynamicQuantizePass.run(model, { perChannel, reduceRange: false }, { ...ctx, progress: (p) => phases.add(p) });
      assert.equal(report.nodesChanged, 1);
      assert.deepEqual(report.warnings, []);
      assert.ok(report.bytesAfter < report.bytesBefore);
      assert.ok(phases.has('quantize'));
      const out = join(tmp.dir, `mnist-dynamic-${perChannel}.onnx`);
      writeOnnxFile(model, out);

      const ops = await optimizedOps(out);
      assert.ok(ops.includes('com.microsoft.DynamicQuantizeMatMul'), ops.join(','));
      assert.ok(!ops.includes('MatMul') && !ops.includes('MatMulInteger'), ops.join(','));

      const r = await evaluate({ model: out, data: MNIST_DATA, preprocess: 'mnist', reference: MNIST, ep: 'cpu', offset: 256, runs: 1, warmup: 0, exactInt8: int8Saturation().saturates });
      t.diagnostic(`top1 ${(r.accuracy!.top1 * 100).toFixed(2)} %, agreement ${(r.agreement!.top1! * 100).toFixed(2)} %, SQNR ${r.agreement!.sqnrDb!.toFixed(1)} dB, ${statSync(out).size} bytes`);
      assert.equal(r.data.n, 9744);
      assert.ok(r.accuracy!.top1 >= 0.9889, `top1 ${r.accuracy!.top1}`);
      assert.ok(r.agreement!.top1! >= 0.9995, `agreement ${r.agreement!.top1!}`);
      assert.ok(r.agreement!.sqnrDb! > 40, `SQNR ${r.agreement!.sqnrDb}`);
    });
  }

  it('Conv on request: ConvInteger, with the warning that it is slow on CPU', async () => {
    const model = readOnnxFile(MNIST);
    const report = await dynamicQuantizePass.run(model, { opTypes: ['MatMul', 'Conv'], reduceRange: false }, createPassContext());
    assert.equal(report.nodesChanged, 3);
    assert.ok(report.warnings.includes(CONV_INTEGER_WARNING));
    const out = join(tmp.dir, 'mnist-dynamic-conv.onnx');
    writeOnnxFile(model, out);
    assert.equal((await optimizedOps(out)).filter((o) => o === 'ConvInteger').length, 2);
    const r = await evaluate({ model: out, data: MNIST_DATA, preprocess: 'mnist', reference: MNIST, ep: 'cpu', offset: 256, limit: 2000, runs: 1, warmup: 0, exactInt8: int8Saturation().saturates });
    assert.ok(r.agreement!.top1! >= 0.999, `agreement ${r.agreement!.top1!}`);
  });

  it('is deterministic: the same input and options give byte-identical files', async () => {
    const paths = [];
    for (const k of [0, 1]) {
      const model = readOnnxFile(MNIST);
      await dynamicQuantizePass.run(model, { perChannel: true, opTypes: ['MatMul', 'Conv'] }, createPassContext());
      paths.push(join(tmp.dir, `det-${k}.onnx`));
      writeOnnxFile(model, paths[k]!);
    }
    assert.ok(fileBytes(paths[0]!).equals(fileBytes(paths[1]!)));
  });
});

describe('dynamic int8 on Gemm and MatMul', () => {
  const x = gaussian(8 * 64, 9);
  const feeds = { x: { data: x, dims: [8, 64] } };

  for (const cfg of [{ perChannel: false, weightType: 'int8' as const }, { perChannel: true, weightType: 'int8' as const }, { perChannel: true, weightType: 'uint8' as const }]) {
    it(`Gemm with transB, alpha, beta and bias (${cfg.weightType}, ${cfg.perChannel ? 'per-channel' : 'per-tensor'}) matches fp32 and fuses`, async () => {
      const fp32 = join(tmp.dir, 'gemm.onnx');
      writeOnnxFile(gemmModel(), fp32);
      const model = gemmModel();
      const report = await dynamicQuantizePass.run(model, cfg, createPassContext());
      assert.equal(report.nodesChanged, 2);
      assert.ok(!model.graph.initializers.has('W') && !model.graph.initializers.has('C'), 'float weight and bias are gone');
      const out = join(tmp.dir, `gemm-${cfg.weightType}-${cfg.perChannel}.onnx`);
      writeOnnxFile(model, out);
      for (const name of ['y', 'z']) {
        const s = sqnrDb(await runFloat(fp32, feeds, name), await runFloat(out, feeds, name));
        assert.ok(s > 30, `${name}: SQNR ${s.toFixed(1)} dB`);
      }
      // onnxruntime's common-subexpression elimination merges the two DynamicQuantizeLinear of x;
      // a shared one is not folded into DynamicQuantizeMatMul, so both become MatMulIntegerToFloat
      const ops = await optimizedOps(out);
      assert.equal(ops.filter((o) => o === 'com.microsoft.MatMulIntegerToFloat' || o === 'com.microsoft.DynamicQuantizeMatMul').length, 2, ops.join(','));
      assert.ok(!ops.some((o) => ['Gemm', 'MatMul', 'MatMulInteger', 'Cast', 'Mul', 'Add'].includes(o)), ops.join(','));
    });
  }

  it('Gemm with transA=1 and MatMul of two activations are skipped with a named warning', async () => {
    const model = gemmModel({ transA: 1 });
    model.graph.nodes.push(new Node({ name: 'act_mm', opType: 'MatMul', inputs: ['y', 'z_t'], outputs: ['w'] }));
    const report = await dynamicQuantizePass.run(model, {}, createPassContext());
    assert.equal(report.nodesChanged, 1);
    assert.deepEqual(report.excluded, ['fc', 'act_mm']);
    assert.match(report.warnings[0]!, /^fc \(Gemm\) left in float: it has transA=1/);
    assert.match(report.warnings[1]!, /^act_mm \(MatMul\) left in float: its input z_t is not a constant weight/);
  });

  it('exclusions by node name and by op type', async () => {
    const byName = gemmModel();
    const a = await dynamicQuantizePass.run(byName, { exclude: ['mm'] }, createPassContext());
    assert.deepEqual([a.nodesChanged, a.excluded], [1, ['mm']]);
    assert.ok(byName.graph.nodes.some((n) => n.name === 'mm' && n.opType === 'MatMul'));
    const byOp = gemmModel();
    const b = await dynamicQuantizePass.run(byOp, { exclude: ['Gemm'] }, createPassContext());
    assert.deepEqual([b.nodesChanged, b.excluded], [1, ['fc']]);
  });

  it('NaN in a weight is a BAD_INPUT error naming the node, before anything changes', async () => {
    const model = gemmModel({ nanAt: 5 });
    const before = model.graph.nodes.map((n) => n.opType).join();
    await assert.rejects(dynamicQuantizePass.run(model, {}, createPassContext()), (e: unknown) => e instanceof WhittleError && e.code === 'BAD_INPUT' && /node fc \(Gemm\): weight W has NaN at element 5/.test(e.message));
    assert.equal(model.graph.nodes.map((n) => n.opType).join(), before);
    assert.equal(model.opsetVersion(''), 13);
  });

  it('refuses to raise an opset when an op would change meaning (Clip with min/max attributes at opset 9)', async () => {
    const model = buildModel({
      opset: 9,
      irVersion: 4,
      inputs: [valueInfo('x', DataType.FLOAT, [1, 4])],
      outputs: [valueInfo('p', DataType.FLOAT, [1, 3])],
      initializers: [floatTensor('W', [4, 3], gaussian(12, 4))],
      nodes: [new Node({ name: 'mm', opType: 'MatMul', inputs: ['x', 'W'], outputs: ['y'] }), new Node({ name: 'relu6', opType: 'Clip', inputs: ['y'], outputs: ['p'], attributes: [f('min', 0), f('max', 6)] })],
    });
    await assert.rejects(dynamicQuantizePass.run(model, {}, createPassContext()), (e: unknown) => e instanceof WhittleError && e.code === 'UNSUPPORTED' && /needs opset 11.*relu6 \(Clip\)/.test(e.message));
  });

  it('quantizes MatMuls inside If branches, with the weight in the branch or in the enclosing graph', async () => {
    const make = () => {
      const branch = (name: string, weight: string) => {
        const g = new Graph();
        g.name = name;
        g.nodes = [new Node({ name: `${name}_mm`, opType: 'MatMul', inputs: ['x', weight], outputs: [`${name}_out`] })];
        g.outputs = [valueInfo(`${name}_out`, DataType.FLOAT, [2, 4])];
        return g;
      };
      const thenG = branch('then', 'Wt');
      thenG.initializers.set('Wt', floatTensor('Wt', [8, 4], gaussian(32, 21)));
      const elseG = branch('else', 'We');
      const m = buildModel({
        inputs: [valueInfo('x', DataType.FLOAT, [2, 8]), valueInfo('cond', DataType.BOOL, [])],
        outputs: [valueInfo('y', DataType.FLOAT, [2, 4])],
        initializers: [floatTensor('We', [8, 4], gaussian(32, 22))],
        nodes: [new Node({ name: 'if', opType: 'If', inputs: ['cond'], outputs: ['y'], attributes: [{ name: 'then_branch', type: AttrType.GRAPH, value: thenG, extra: {} }, { name: 'else_branch', type: AttrType.GRAPH, value: elseG, extra: {} }] })],
      });
      thenG.parent = elseG.parent = m.graph;
      return m;
    };
    const fp32 = join(tmp.dir, 'if.onnx');
    writeOnnxFile(make(), fp32);
    const model = make();
    const report = await dynamicQuantizePass.run(model, {}, createPassContext());
    assert.equal(report.nodesChanged, 2);
    assert.ok(!model.graph.initializers.has('We'), 'the outer float weight is gone');
    const out = join(tmp.dir, 'if-dynamic.onnx');
    writeOnnxFile(model, out);
    for (const cond of [true, false]) {
      const run = async (path: string) => {
        const s = await ort.InferenceSession.create(path);
        const r = await s.run({ x: new ort.Tensor('float32', gaussian(16, 23), [2, 8]), cond: new ort.Tensor('bool', Uint8Array.of(cond ? 1 : 0), []) });
        return r.y!.data as Float32Array;
      };
      assert.ok(sqnrDb(await run(fp32), await run(out)) > 30, `cond ${cond}`);
    }
  });

  it('stops when cancelled', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(dynamicQuantizePass.run(gemmModel(), {}, createPassContext({ signal: ac.signal })), (e: unknown) => e instanceof WhittleError && e.code === 'CANCELLED');
  });
});
