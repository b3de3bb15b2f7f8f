import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { WhittleError } from '../../../api/errors.ts';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { Node, type Graph, type Model } from '../../../native-models/ir/model.ts';
import { createSession, runSession } from '../../../native-models/runtimes/onnxruntime.ts';
import { evaluate } from '../../evaluate/evaluate.ts';
import { fixture } from '../../testing/fixtures.ts';
import { createPassContext } from '../pass.ts';
import { weightOnlyQuantizePass, type WeightOnlyOptions } from './weight-only.ts';
import { buildModel, fileBytes, floatTensor, gaussian, optimizedOps, runFloat, sqnrDb, tempDir, valueInfo } from './test-models.ts';

const tmp = tempDir('weight-only');
after(tmp.cleanup);

const W0 = gaussian(300 * 256, 1, 0.06); // K = 300: not a multiple of any block size (padding)
const W1 = gaussian(256 * 128, 2, 0.06); // K = 256, N = 128

/** x [B, 300] → MatMul W0 → h [B, 256] → Relu → MatMul W1 → y [B, 128]; h is an output too, to measure one layer. */
function mlp(opts: { opset?: number; nanAt?: number } = {}): Model {
  const w0 = W0.slice();
  if (opts.nanAt !== undefined) w0[opts.nanAt] = Infinity;
  return buildModel({
    opset: opts.opset ?? 13,
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 300])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 128]), valueInfo('h', DataType.FLOAT, ['batch', 256])],
    initializers: [floatTensor('W0', [300, 256], w0), floatTensor('W1', [256, 128], W1)],
    nodes: [
      new Node({ name: 'fc0', opType: 'MatMul', inputs: ['x', 'W0'], outputs: ['h'] }),
      new Node({ name: 'relu', opType: 'Relu', inputs: ['h'], outputs: ['r'] }),
      new Node({ name: 'fc1', opType: 'MatMul', inputs: ['r', 'W1'], outputs: ['y'] }),
    ],
  });
}

/** A weight rebuilt from the stored tensors alone, with the quantization step of every element. */
interface Decoded { K: number; N: number; values: Float64Array; steps: Float64Array; paddingIsZeroPoint: boolean }

const nibble = (bytes: Uint8Array, i: number) => (bytes[i >> 1]! >> ((i & 1) * 4)) & 0xf;
const f32 = (g: Graph, name: string) => { const b = g.initializers.get(name)!.bytes(); return new Float32Array(Uint8Array.prototype.slice.call(b).buffer); };

/** Decodes MatMulNBits' B, scales and zero_points straight from their bytes (SPEC §8), not through the pass's code. */
function decodeMatMulNBits(g: Graph, node: Node): Decoded {
  const [K, N, bits, bs] = ['K', 'N', 'bits', 'block_size'].map((a) => node.attrInt(a, -1)) as [number, number, number, number];
  const blocks = Math.ceil(K / bs);
  const blob = (bs * bits) / 8;
  const B = g.initializers.get(node.inputs[1]!)!;
  assert.deepEqual(B.dims, [N, blocks, blob]);
  const b = B.bytes();
  const scales = f32(g, node.inputs[2]!);
  assert.equal(scales.length, N * blocks);
  const zp = node.inputs[3] ? g.initializers.get(node.inputs[3])!.bytes() : null;
  const zpOf = (n: number, blk: number) => (!zp ? 1 << (bits - 1) : bits === 4 ? nibble(zp, n * Math.ceil(blocks / 2) * 2 + blk) : zp[n * blocks + blk]!);
  const values = new Float64Array(K * N);
  const steps = new Float64Array(K * N);
  let paddingIsZeroPoint = true;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < blocks * bs; k++) {
      const blk = Math.floor(k / bs);
      const at = (n * blocks + blk) * blob * (bits === 4 ? 2 : 1) + (k % bs);
      const q = bits === 4 ? nibble(b, at) : b[at]!;
      if (k >= K) { paddingIsZeroPoint &&= q === zpOf(n, blk); continue; }
      values[k * N + n] = (q - zpOf(n, blk)) * scales[n * blocks + blk]!;
      steps[k * N + n] = scales[n * blocks + blk]!;
    }
  }
  return { K, N, values, steps, paddingIsZeroPoint };
}

/** Decodes DequantizeLinear(int4/uint4 [K, N], scale [blocks, N], zp, axis 0, block_size) from the bytes. */
function decodeBlockedDq(g: Graph, dq: Node): Decoded {
  const w = g.initializers.get(dq.inputs[0]!)!;
  const [K, N] = w.dims as [number, number];
  const bs = dq.attrInt('block_size', 0);
  assert.equal(dq.attrInt('axis', 1), 0);
  const scales = f32(g, dq.inputs[1]!);
  const bytes = w.bytes();
  const zp = dq.inputs[2] ? g.initializers.get(dq.inputs[2])!.bytes() : null;
  const values = new Float64Array(K * N);
  const steps = new Float64Array(K * N);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) {
      const i = k * N + n;
      const blk = Math.floor(k / bs) * N + n;
      let q = nibble(bytes, i);
      if (w.dataType === DataType.INT4 && q > 7) q -= 16;
      const z = zp ? nibble(zp, blk) : 0;
      values[i] = (q - z) * scales[blk]!;
      steps[i] = scales[blk]!;
    }
  }
  return { K, N, values, steps, paddingIsZeroPoint: true };
}

/** Largest |dequantized − original| in quantization steps. */
function maxErrorInSteps(d: Decoded, original: Float32Array): { steps: number; abs: number } {
  let steps = 0;
  let abs = 0;
  for (let i = 0; i < original.length; i++) {
    const e = Math.abs(d.values[i]! - original[i]!);
    steps = Math.max(steps, e / d.steps[i]!);
    abs = Math.max(abs, e);
  }
  return { steps, abs };
}

const X = gaussian(16 * 300, 7);
const feeds = { x: { data: X, dims: [16, 300] } };

describe('weight-only int4/int8 on an MLP (K = 300 padded, K = 256 × N = 128)', () => {
  const configs: (WeightOnlyOptions & { minLayerDb: number })[] = [
    // Gaussian weights: 4-bit RTN over blocks of 32 leaves about 21 dB per layer
    { format: 'matmulnbits', bits: 4, symmetric: false, minLayerDb: 20 },
    { format: 'matmulnbits', bits: 4, symmetric: true, minLayerDb: 19 },
    { format: 'matmulnbits', bits: 8, symmetric: false, minLayerDb: 40 },
    { format: 'matmulnbits', bits: 4, symmetric: false, blockSize: 16, minLayerDb: 21 },
    { format: 'dq', bits: 4, symmetric: false, minLayerDb: 20 },
    { format: 'dq', bits: 4, symmetric: true, minLayerDb: 19 },
  ];
  for (const { minLayerDb, ...cfg } of configs) {
    const label = `${cfg.format} ${cfg.bits}-bit ${cfg.symmetric ? 'symmetric' : 'asymmetric'} block ${cfg.blockSize ?? 32}`;
    it(`${label}: runs in onnxruntime close to fp32; every stored weight decodes within half a step`, async (t) => {
      const fp32 = join(tmp.dir, 'mlp.onnx');
      writeOnnxFile(mlp(), fp32);
      const model = mlp();
      const report = await weightOnlyQuantizePass.run(model, cfg, createPassContext());
      assert.equal(report.nodesChanged, 2);
      assert.ok(!model.graph.initializers.has('W0') && !model.graph.initializers.has('W1'));
      const out = join(tmp.dir, `mlp-${label.replace(/\W+/g, '-')}.onnx`);
      writeOnnxFile(model, out);

      const layerDb = sqnrDb(await runFloat(fp32, feeds, 'h'), await runFloat(out, feeds, 'h'));
      const outDb = sqnrDb(await runFloat(fp32, feeds, 'y'), await runFloat(out, feeds, 'y'));

      const back = readOnnxFile(out);
      const g = back.graph;
      const decoded = cfg.format === 'dq'
        ? g.nodes.filter((n) => n.opType === 'DequantizeLinear').map((n) => decodeBlockedDq(g, n))
        : g.nodes.filter((n) => n.opType === 'MatMulNBits' && n.domain === 'com.microsoft').map((n) => decodeMatMulNBits(g, n));
      assert.equal(decoded.length, 2);
      const errors = decoded.map((d, k) => maxErrorInSteps(d, k === 0 ? W0 : W1));
      assert.ok(decoded.every((d) => d.paddingIsZeroPoint), 'padding dequantizes to 0');
      const ops = await optimizedOps(out);
      t.diagnostic(`layer SQNR ${layerDb.toFixed(1)} dB, output ${outDb.toFixed(1)} dB; max dequant error ${errors.map((e) => `${e.steps.toFixed(4)} steps (${e.abs.toExponential(2)})`).join(', ')}; ${statSync(out).size} bytes; onnxruntime runs ${ops.join(',')}`);
      for (const e of errors) assert.ok(e.steps <= 0.5 + 1e-5, `max error ${e.steps} steps`);
      assert.ok(layerDb > minLayerDb, `layer SQNR ${layerDb}`);
      assert.ok(outDb > minLayerDb - 4, `output SQNR ${outDb}`);
      if (cfg.format === 'matmulnbits') assert.deepEqual(ops, ['com.microsoft.MatMulNBits', 'Relu', 'com.microsoft.MatMulNBits']);
      else assert.equal(back.opsetVersion(''), 21);
    });
  }

  it('is deterministic: byte-identical files from the same input and options', () => {
    const paths = [0, 1].map((k) => join(tmp.dir, `det-${k}.onnx`));
    return Promise.all(paths.map(async (p) => {
      const m = mlp();
      await weightOnlyQuantizePass.run(m, { bits: 4, blockSize: 64 }, createPassContext());
      writeOnnxFile(m, p);
    })).then(() => assert.ok(fileBytes(paths[0]!).equals(fileBytes(paths[1]!))));
  });

  it('rejects bad options and non-finite weights clearly', async () => {
    for (const blockSize of [8, 48, 512]) {
      await assert.rejects(weightOnlyQuantizePass.run(mlp(), { blockSize }, createPassContext()), (e: unknown) => e instanceof WhittleError && e.code === 'BAD_USAGE' && /power of two from 16 to 256/.test(e.message));
    }
    await assert.rejects(weightOnlyQuantizePass.run(mlp({ nanAt: 7 }), {}, createPassContext()), (e: unknown) => e instanceof WhittleError && e.code === 'BAD_INPUT' && /node fc0 \(MatMul\): weight W0 has \+Inf at element 7/.test(e.message));
  });

  it('excludes by name, and refuses the DQ form when the opset cannot be raised to 21', async () => {
    const m = mlp();
    const r = await weightOnlyQuantizePass.run(m, { exclude: ['fc1'] }, createPassContext());
    assert.deepEqual([r.nodesChanged, r.excluded], [1, ['fc1']]);
    const old = mlp();
    old.graph.nodes.push(new Node({ name: 'sq', opType: 'Squeeze', inputs: ['y'], outputs: ['s'], attributes: [{ name: 'axes', type: 7, value: [0n], extra: {} }] }));
    old.opsets = [{ domain: '', version: 11 }];
    await assert.rejects(weightOnlyQuantizePass.run(old, { format: 'dq' }, createPassContext()), (e: unknown) => e instanceof WhittleError && e.code === 'UNSUPPORTED' && /needs opset 21.*sq \(Squeeze\)/.test(e.message));
  });
});

describe('weight-only int4 on MNIST (MatMul 256 × 10 behind a Reshape)', () => {
  for (const format of ['matmulnbits', 'dq'] as const) {
    it(`${format}: still classifies ≥ 98 % of the 10,000 test images`, async (t) => {
      const model = readOnnxFile(fixture('mnist', 'mnist.onnx'));
      const report = await weightOnlyQuantizePass.run(model, { bits: 4, blockSize: 32, format }, createPassContext());
      assert.equal(report.nodesChanged, 1);
      const out = join(tmp.dir, `mnist-int4-${format}.onnx`);
      writeOnnxFile(model, out);
      const r = await evaluate({ model: out, data: fixture('mnist', 't10k-images-idx3-ubyte.gz'), preprocess: 'mnist', reference: fixture('mnist', 'mnist.onnx'), ep: 'cpu', runs: 1, warmup: 0 });
      t.diagnostic(`top1 ${(r.accuracy!.top1 * 100).toFixed(2)} %, agreement ${(r.agreement!.top1! * 100).toFixed(2)} %, SQNR ${r.agreement!.sqnrDb!.toFixed(1)} dB, ${statSync(out).size} bytes`);
      assert.ok(r.accuracy!.top1 >= 0.98, `top1 ${r.accuracy!.top1}`);
    });
  }
});

describe('embedding tables (includeGather): GatherBlockQuantized', () => {
  const V = 10;
  const D = 64;
  const E = gaussian(V * D, 41, 0.5);
  /** ids [n] → Gather(E) → y [n, D]; with `tied`, E also feeds a MatMul (an output projection sharing it). */
  const embedding = (tied = false, width = D) => buildModel({
    inputs: [valueInfo('ids', DataType.INT64, ['n']), ...(tied ? [valueInfo('h', DataType.FLOAT, ['n', V])] : [])],
    outputs: [valueInfo('y', DataType.FLOAT, ['n', width]), ...(tied ? [valueInfo('logits', DataType.FLOAT, ['n', width])] : [])],
    initializers: [floatTensor('E', [V, width], width === D ? E : gaussian(V * width, 42, 0.5))],
    nodes: [
      new Node({ name: 'embed', opType: 'Gather', inputs: ['E', 'ids'], outputs: ['y'] }),
      ...(tied ? [new Node({ name: 'head', opType: 'MatMul', inputs: ['h', 'E'], outputs: ['logits'] })] : []),
    ],
  });
  const allRows = async (path: string) => {
    const { session } = await createSession(path, { ep: 'cpu' });
    try {
      const out = await runSession(session, { ids: { dtype: 'int64', dims: [V], data: BigInt64Array.from({ length: V }, (_, i) => BigInt(i)) } });
      return out['y']!.data as Float32Array;
    } finally {
      await session.release();
    }
  };

  for (const [bits, symmetric] of [[4, false], [4, true], [8, false]] as const) {
    it(`${bits}-bit ${symmetric ? 'symmetric' : 'asymmetric'}, block 32: onnxruntime gathers every row within half a step of the float table`, async () => {
      const model = embedding();
      const report = await weightOnlyQuantizePass.run(model, { bits, blockSize: 32, symmetric, includeGather: true }, createPassContext());
      assert.deepEqual(report.details!['embeddings'], ['embed']);
      const node = model.graph.nodes[0]!;
      assert.equal(`${node.domain}.${node.opType}`, 'com.microsoft.GatherBlockQuantized');
      assert.deepEqual(model.graph.initializers.get(node.inputs[0]!)!.dims, [V, (D * bits) / 8]);
      const scales = model.graph.initializers.get(node.inputs[2]!)!;
      assert.deepEqual(scales.dims, [V, D / 32]);
      const path = join(tmp.dir, `embedding-${bits}-${symmetric}.onnx`);
      writeOnnxFile(model, path);
      const got = await allRows(path);
      const s = scales.toFloat32();
      let worst = 0;
      for (let v = 0; v < V; v++) {
        for (let d = 0; d < D; d++) worst = Math.max(worst, Math.abs(got[v * D + d]! - E[v * D + d]!) / s[v * (D / 32) + Math.floor(d / 32)]!);
      }
      assert.ok(worst <= 0.5 + 1e-4, `worst element ${worst.toFixed(4)} steps from the float table`);
      assert.ok(statSync(path).size < V * D * 4 * (bits / 32) + 2000, 'stored in about bits/32 of the float bytes');
    });
  }

  it('left float, with the reason: a table tied to a MatMul, rows not a whole number of blocks, the DQ format', async () => {
    for (const [model, options, reason] of [
      [embedding(true), {}, /also read by head \(MatMul\) \(a tied embedding\)/],
      [embedding(false, 48), {}, /rows of 48 are not a whole number of 32-value blocks/],
      [embedding(), { format: 'dq' as const }, /matmulnbits format \(GatherBlockQuantized\) only/],
    ] as const) {
      const report = await weightOnlyQuantizePass.run(model, { bits: 4, blockSize: 32, includeGather: true, ...options }, createPassContext());
      assert.ok(report.warnings.some((w) => reason.test(w)), report.warnings.join('\n'));
      assert.ok(model.graph.nodes.some((n) => n.opType === 'Gather'));
    }
  });
});
