import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import protobuf from 'protobufjs';
import { WhittleError } from '../../../api/errors.ts';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { DataType, halfToFloat } from '../../../native-models/ir/dtypes.ts';
import { AttrType, Node, type Model } from '../../../native-models/ir/model.ts';
import { REPO_ROOT, fixture } from '../../testing/fixtures.ts';
import { createPassContext } from '../pass.ts';
import { buildModel, floatTensor, gaussian, runFloat, tempDir, valueInfo } from '../quantize/test-models.ts';
import { nmPrunePass, parseNmPattern, type NmOptions } from './nm.ts';

const tmp = tempDir('prune-nm');
after(tmp.cleanup);

const ModelProto = protobuf.parse(readFileSync(join(REPO_ROOT, 'native-models/formats/onnx/onnx.proto'), 'utf8'), { keepCase: true }).root.lookupType('onnx.ModelProto');

interface RawTensor { dims: number[]; values: Float32Array }
interface RawNode { op_type: string; input: string[]; attribute: { name: string; i?: unknown }[] }

/** Reads a written file with protobufjs's reflection and our own raw_data decoding: no code of the writer or reader. */
function decodeWritten(path: string): { inits: Map<string, RawTensor>; nodes: RawNode[] } {
  const m = ModelProto.toObject(ModelProto.decode(readFileSync(path)), { longs: Number, bytes: Buffer }) as {
    graph: { initializer: { name: string; dims: number[]; data_type: number; raw_data?: Buffer; float_data?: number[] }[]; node: RawNode[] };
  };
  const inits = new Map<string, RawTensor>();
  for (const t of m.graph.initializer) {
    const raw = t.raw_data ?? Buffer.alloc(0);
    const n = t.dims.reduce((a, b) => a * b, 1);
    const values = new Float32Array(n);
    if (t.data_type === 1) for (let i = 0; i < n; i++) values[i] = raw.length ? raw.readFloatLE(4 * i) : t.float_data![i]!;
    else if (t.data_type === 10) for (let i = 0; i < n; i++) values[i] = halfToFloat(raw.readUInt16LE(2 * i));
    else continue;
    inits.set(t.name, { dims: t.dims, values });
  }
  return { inits, nodes: m.graph.node };
}

/**
 * The largest count of non-zeros in any group of M consecutive weights along K, reading the weight
 * as [outer, K, inner] in stored order (Conv [O, I, k…]: axis 1; Gemm transB [N, K]: axis 1;
 * MatMul [K, N]: axis 0 — a stored [16, 4, 4, 10] behind Reshape([256, 10]) is K = 256 rows of 10).
 */
function worstGroup(w: RawTensor, kAxisSplit: { outer: number; k: number; inner: number }, m: number): number {
  const { outer, k, inner } = kAxisSplit;
  assert.equal(outer * k * inner, w.values.length);
  let worst = 0;
  for (let o = 0; o < outer; o++) for (let j = 0; j < inner; j++) for (let g = 0; g < k; g += m) {
    let nz = 0;
    for (let t = g; t < Math.min(k, g + m); t++) if (w.values[(o * k + t) * inner + j] !== 0) nz++;
    worst = Math.max(worst, nz);
  }
  return worst;
}

function splitFor(node: RawNode, w: RawTensor): { outer: number; k: number; inner: number } {
  const prod = (a: number[]) => a.reduce((x, y) => x * y, 1);
  if (node.op_type === 'Conv') return { outer: w.dims[0]!, k: w.dims[1]!, inner: prod(w.dims.slice(2)) };
  if (node.op_type === 'Gemm' && node.attribute.some((a) => a.name === 'transB' && Number(a.i) === 1)) return { outer: w.dims[0]!, k: w.dims[1]!, inner: 1 };
  const n = w.dims[w.dims.length - 1]!;
  return { outer: 1, k: w.values.length / n, inner: n };
}

async function pruneAndCheck(model: Model, options: NmOptions, name: string): Promise<{ out: string; warnings: string[]; checked: number }> {
  const ctx = createPassContext();
  await nmPrunePass.run(model, options, ctx);
  const out = join(tmp.dir, `${name}.onnx`);
  writeOnnxFile(model, out);
  const { inits, nodes } = decodeWritten(out);
  const producers = new Map(nodes.flatMap((n) => n.input.length ? [[(n as unknown as { output: string[] }).output[0]!, n] as const] : []));
  let checked = 0;
  for (const node of nodes) {
    if (!['Conv', 'Gemm', 'MatMul'].includes(node.op_type)) continue;
    let wName = node.input[1]!;
    if (!inits.has(wName) && producers.get(wName)?.op_type === 'Reshape') wName = producers.get(wName)!.input[0]!;
    const w = inits.get(wName);
    assert.ok(w, `${node.op_type} weight ${wName} not found`);
    const worst = worstGroup(w, splitFor(node, w), options.m ?? 4);
    assert.ok(worst <= (options.n ?? 2), `${node.op_type} ${wName}: a group has ${worst} non-zeros`);
    checked++;
  }
  return { out, warnings: ctx.warnings, checked };
}

/** x[B,10] → Gemm(transB, A [12,10]) → MatMul(B [12,8]) → Conv-free MLP with K = 10 (a tail group of 2). */
function mlp(): Model {
  return buildModel({
    inputs: [valueInfo('x', DataType.FLOAT, [2, 10])],
    outputs: [valueInfo('y', DataType.FLOAT, [2, 8])],
    initializers: [floatTensor('A', [12, 10], gaussian(120, 5)), floatTensor('B', [12, 8], gaussian(96, 6))],
    nodes: [
      new Node({ name: 'g', opType: 'Gemm', inputs: ['x', 'A'], outputs: ['h'], attributes: [{ name: 'transB', type: AttrType.INT, value: 1n, extra: {} }] }),
      new Node({ name: 'mm', opType: 'MatMul', inputs: ['h', 'B'], outputs: ['y'] }),
    ],
  });
}

describe('N:M pruning', () => {
  for (const [n, m] of [[2, 4], [1, 4], [4, 8]] as const) {
    it(`${n}:${m} on MNIST and SqueezeNet fp32: every group of ${m} along the input dimension has ≤ ${n} non-zeros in the written file`, async () => {
      const a = await pruneAndCheck(readOnnxFile(fixture('mnist', 'mnist.onnx')), { n, m }, `mnist-${n}-${m}`);
      assert.equal(a.checked, 3);
      // the first conv has 1 input channel: left alone, with a warning naming it
      assert.ok(a.warnings.some((w) => w.startsWith('Convolution28: input dimension 1')), a.warnings.join('; '));
      const b = await pruneAndCheck(readOnnxFile(fixture('squeezenet', 'squeezenet1.0_fp32.onnx')), { n, m }, `squeezenet-${n}-${m}`);
      assert.equal(b.checked, 26);
    });
  }

  it('Gemm transB and a K that is not a multiple of M (tail group zero-padded); the model still runs', async () => {
    const r = await pruneAndCheck(mlp(), {}, 'mlp');
    assert.ok(r.warnings.some((w) => w.startsWith('g: input dimension 10 is not a multiple of M = 4')), r.warnings.join('; '));
    const { inits } = decodeWritten(r.out);
    // Gemm: 12 rows × (2 + 2 + min(2, 2)) kept = 72 of 120 → 48 zeros; MatMul: K = 12, exactly half
    assert.equal(inits.get('A')!.values.filter((v) => v === 0).length, 48);
    assert.equal(inits.get('B')!.values.filter((v) => v === 0).length, 48);
    const y = await runFloat(r.out, { x: { data: gaussian(20, 9), dims: [2, 10] } });
    assert.equal(y.length, 16);
  });

  it('keeps the N largest |w| of each group, ties to the later weight', async () => {
    const w = Float32Array.from([0.1, -5, 3, 0.2, 1, 1, 1, 1]); // MatMul [8, 1]: two groups along K
    const model = buildModel({
      inputs: [valueInfo('x', DataType.FLOAT, [1, 8])], outputs: [valueInfo('y', DataType.FLOAT, [1, 1])],
      initializers: [floatTensor('W', [8, 1], w)],
      nodes: [new Node({ name: 'mm', opType: 'MatMul', inputs: ['x', 'W'], outputs: ['y'] })],
    });
    await nmPrunePass.run(model, {}, createPassContext());
    assert.deepEqual(Array.from(model.graph.initializers.get('W')!.toFloat32()), [0, -5, 3, 0, 0, 0, 1, 1]);
  });

  it('bad patterns are BAD_USAGE', async () => {
    for (const [n, m] of [[3, 2], [4, 4], [0, 4], [-1, 4], [1.5, 4]]) {
      await assert.rejects(nmPrunePass.run(mlp(), { n, m }, createPassContext()), (e: WhittleError) => e.code === 'BAD_USAGE' && e.message.includes(`${n}:${m}`));
    }
    assert.deepEqual(parseNmPattern('2:4'), { n: 2, m: 4 });
    assert.throws(() => parseNmPattern('4:2'), (e: WhittleError) => e.code === 'BAD_USAGE');
    assert.throws(() => parseNmPattern('two'), (e: WhittleError) => e.code === 'BAD_USAGE');
  });

  it('is deterministic: two runs write byte-identical files', async () => {
    const a = await pruneAndCheck(readOnnxFile(fixture('mnist', 'mnist.onnx')), {}, 'det-a');
    const b = await pruneAndCheck(readOnnxFile(fixture('mnist', 'mnist.onnx')), {}, 'det-b');
    assert.ok(readFileSync(a.out).equals(readFileSync(b.out)));
  });
});
