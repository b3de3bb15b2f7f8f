/**
 * Bad input to `whittle quantize` (issue 3, acceptance "Bad input"): calibration data that does not
 * fit the model, empty data, NaN/Inf in data or weights, ops a method cannot handle, cancellation.
 * Each case is a clear error (exit 2, one line naming the file and the node) or a named warning
 * with the node skipped and the model still right — never a silently broken model, and never an
 * output file left behind by a failed or cancelled run.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WhittleError } from '../../../api/errors.ts';
import { QuantizeStep } from '../../../api/recipe.ts';
import type { CliIo } from '../../../cli/io.ts';
import { main, reportError } from '../../../cli/main.ts';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { DataType, halfToFloat } from '../../../native-models/ir/dtypes.ts';
import { Node } from '../../../native-models/ir/model.ts';
import { evaluate } from '../../evaluate/evaluate.ts';
import { fixture } from '../../testing/fixtures.ts';
import { CONV_INTEGER_WARNING } from './dynamic.ts';
import { quantizeModel } from './quantize-model.ts';
import { buildModel, floatTensor, gaussian, tempDir, valueInfo } from './test-models.ts';
import { MODEL_FILE, ZOO_DIR } from '../../../native-models/zoo/transformer/testbed.ts';

const tmp = tempDir('quantize-bad-input');
after(tmp.cleanup);
const home = join(tmp.dir, 'home');
const saved = process.env.WHITTLE_HOME;
before(() => { mkdirSync(home); process.env.WHITTLE_HOME = home; });
after(() => { if (saved === undefined) delete process.env.WHITTLE_HOME; else process.env.WHITTLE_HOME = saved; });

const MNIST = fixture('mnist', 'mnist.onnx');
const MNIST_DATA = fixture('mnist', 't10k-images-idx3-ubyte.gz');
const IRIS = fixture('iris', 'iris_network.onnx');
const IRIS_X = fixture('iris', 'iris_X.npy');
const SQUEEZENET = fixture('squeezenet', 'squeezenet1.0_fp32.onnx');
const SQUEEZENET_FP16 = fixture('squeezenet', 'squeezenet1.0_fp16.onnx');
const JPEGS = fixture('imagenet-100', 'jpeg');

// ------------------------------------------------------------------ helpers

function capture(): CliIo & { out: string; err: string } {
  const io = { out: '', err: '', interactive: false, stdout: (t: string) => void (io.out += t), stderr: (t: string) => void (io.err += t) };
  return io;
}

async function whittle(...argv: string[]): Promise<{ code: number; out: string; err: string; lines: string[] }> {
  const io = capture();
  const code = await main([...argv, '--no-record'], io);
  return { code, out: io.out, err: io.err, lines: io.err.trim().split('\n').filter(Boolean) };
}

let counter = 0;
/** A fresh folder under the test's temp folder (outputs of one case never meet another's). */
function folder(label: string): string {
  const dir = join(tmp.dir, `${label}-${counter++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Files a failed run must not leave: the output, its external data, or a writer's temp file. */
function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith('out.onnx'));
}

/** A numpy .npy (format 1.0) of the given descr ('<f4', '<c8'...) and shape. */
function writeNpy(path: string, descr: string, shape: number[], data: Uint8Array): string {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const pre = Uint8Array.of(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8);
  writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), data]));
  return path;
}

/** The iris measurements as float32 [150, 4] (the fixture's own bytes, after its header). */
function irisValues(): Float32Array {
  const raw = readFileSync(IRIS_X);
  const offset = 10 + raw.readUInt16LE(8);
  return new Float32Array(raw.buffer.slice(raw.byteOffset + offset, raw.byteOffset + raw.length));
}

const f32bytes = (v: Float32Array) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

/** x [B, 16] → MatMul W0 (fc0) → Relu → MatMul W1 (fc1) → y [B, 8]; `bad` puts a NaN or ±Inf into W0. */
function mlpFile(dir: string, bad?: number): string {
  const w0 = gaussian(16 * 32, 1, 0.2);
  if (bad !== undefined) w0[5] = bad;
  const model = buildModel({
    opset: 13,
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 16])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 8])],
    initializers: [floatTensor('W0', [16, 32], w0), floatTensor('W1', [32, 8], gaussian(32 * 8, 2, 0.2))],
    nodes: [
      new Node({ name: 'fc0', opType: 'MatMul', inputs: ['x', 'W0'], outputs: ['h'] }),
      new Node({ name: 'relu', opType: 'Relu', inputs: ['h'], outputs: ['r'] }),
      new Node({ name: 'fc1', opType: 'MatMul', inputs: ['r', 'W1'], outputs: ['y'] }),
    ],
  });
  const path = join(dir, 'mlp.onnx');
  writeOnnxFile(model, path);
  return path;
}

/** Two float inputs a, b [B, 4] → Add → MatMul: a single .npy cannot feed it. */
function twoInputFile(dir: string): string {
  const model = buildModel({
    opset: 13,
    inputs: [valueInfo('a', DataType.FLOAT, ['batch', 4]), valueInfo('b', DataType.FLOAT, ['batch', 4])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 3])],
    initializers: [floatTensor('W', [4, 3], gaussian(12, 3))],
    nodes: [
      new Node({ name: 'add', opType: 'Add', inputs: ['a', 'b'], outputs: ['s'] }),
      new Node({ name: 'fc', opType: 'MatMul', inputs: ['s', 'W'], outputs: ['y'] }),
    ],
  });
  const path = join(dir, 'two-inputs.onnx');
  writeOnnxFile(model, path);
  return path;
}

const opTypes = (path: string) => readOnnxFile(path).graph.nodes.map((n) => n.opType);

// ------------------------------------------------------------------ errors: exit 2, one line, naming the file

interface ErrorCase {
  name: string;
  /** Returns the argv after `quantize`; `out` is the output path, inside `dir`. */
  argv: (dir: string, out: string) => string[];
  /** The one line on stderr. */
  expect: RegExp;
}

const ERROR_CASES: ErrorCase[] = [
  // data that does not fit the model's inputs: shape
  { name: 'iris .npy [150, 4] to calibrate MNIST [1, 1, 28, 28]', argv: (_d, o) => [MNIST, '-o', o, '--method', 'static', '--calib', IRIS_X], expect: /iris_X\.npy: samples have shape \[4\] but model input Input3 takes \[.*28,28\]/ },
  { name: 'a folder of photos for the 4-feature iris model', argv: (_d, o) => [IRIS, '-o', o, '--method', 'static', '--calib', JPEGS], expect: /jpeg\/n\w+\.JPEG: a \d+×\d+ image does not fit model input input \[\?,4\]/ },
  { name: 'MNIST idx images for the iris model', argv: (_d, o) => [IRIS, '-o', o, '--method', 'static', '--calib', MNIST_DATA], expect: /t10k-images-idx3-ubyte\.gz: a 28×28 image does not fit model input input/ },
  // dtype
  { name: 'a complex64 .npy', argv: (d, o) => [IRIS, '-o', o, '--method', 'static', '--calib', writeNpy(join(d, 'complex.npy'), '<c8', [150, 4], new Uint8Array(150 * 4 * 8))], expect: /complex\.npy: \.npy dtype '<c8' is not supported/ },
  { name: 'a unicode-string .npy', argv: (d, o) => [IRIS, '-o', o, '--method', 'static', '--calib', writeNpy(join(d, 'text.npy'), '<U3', [150, 4], new Uint8Array(150 * 4 * 12))], expect: /text\.npy: \.npy dtype '<U3' is not supported/ },
  // count: of inputs, of labels
  { name: 'one .npy for a model with two inputs', argv: (d, o) => [twoInputFile(d), '-o', o, '--method', 'static', '--calib', IRIS_X], expect: /iris_X\.npy: a \.npy array feeds one input, but the model takes 2 \(a, b\)/ },
  {
    name: 'labels.npy with another sample count than the data',
    argv: (d, o) => {
      writeNpy(join(d, 'labels.npy'), '|u1', [10], new Uint8Array(10));
      return [IRIS, '-o', o, '--method', 'static', '--calib', writeNpy(join(d, 'x.npy'), '<f4', [150, 4], f32bytes(irisValues()))];
    },
    expect: /labels\.npy: holds 10 labels but x\.npy holds 150 samples/,
  },
  // an empty data set
  { name: 'an empty folder', argv: (d, o) => { mkdirSync(join(d, 'empty')); return [IRIS, '-o', o, '--method', 'static', '--calib', join(d, 'empty')]; }, expect: /empty: holds no recognised data/ },
  { name: 'a .npy with 0 samples', argv: (d, o) => [IRIS, '-o', o, '--method', 'static', '--calib', writeNpy(join(d, 'none.npy'), '<f4', [0, 4], new Uint8Array(0))], expect: /none\.npy: holds no samples/ },
  { name: '--samples 0', argv: (_d, o) => [MNIST, '-o', o, '--method', 'static', '--calib', MNIST_DATA, '--samples', '0'], expect: /--samples must be an integer >= 1, got "0"/ },
  // NaN/Inf in weights: the node and the tensor are named, before anything is written
  { name: 'NaN weight, dynamic', argv: (d, o) => [mlpFile(d, NaN), '-o', o, '--method', 'dynamic'], expect: /mlp\.onnx: node fc0 \(MatMul\): weight W0 has NaN at element 5 of 512; .*--exclude fc0/ },
  { name: '+Inf weight, dynamic per-channel', argv: (d, o) => [mlpFile(d, Infinity), '-o', o, '--method', 'dynamic', '--per-channel'], expect: /mlp\.onnx: node fc0 \(MatMul\): weight W0 has \+Inf at element 5 of 512/ },
  { name: 'NaN weight, static', argv: (d, o) => [mlpFile(d, NaN), '-o', o, '--method', 'static', '--calib', 'synthetic:8'], expect: /mlp\.onnx: node fc0 \(MatMul\): weight W0 has NaN at element 5 of 512/ },
  { name: '-Inf weight, int4', argv: (d, o) => [mlpFile(d, -Infinity), '-o', o, '--method', 'int4', '--block-size', '16'], expect: /mlp\.onnx: node fc0 \(MatMul\): weight W0 has -Inf at element 5 of 512/ },
  { name: 'NaN weight, int8 weight-only in the DQ form', argv: (d, o) => [mlpFile(d, NaN), '-o', o, '--method', 'int8-weight', '--format', 'dq'], expect: /node fc0 \(MatMul\): weight W0 has NaN/ },
];

describe('whittle quantize: bad input is exit 2 with one line naming the file, and no output file', () => {
  for (const c of ERROR_CASES) {
    it(c.name, async () => {
      const dir = folder('error');
      const out = join(dir, 'out.onnx');
      const r = await whittle('quantize', ...c.argv(dir, out));
      assert.equal(r.code, 2, r.err);
      assert.equal(r.lines.length, 1, r.err);
      assert.match(r.lines[0]!, /^whittle: /);
      assert.match(r.err, c.expect);
      assert.doesNotMatch(r.err, /internal error|\n\s+at /);
      assert.deepEqual(leftovers(dir), []);
    });
  }

  it('calibration data starting past its end (a recipe\'s offset) names the file', async () => {
    const dir = folder('offset');
    const step = QuantizeStep.parse({ method: 'static', calib: { path: MNIST_DATA, offset: 10000 } });
    const err = await quantizeModel({ input: MNIST, output: join(dir, 'out.onnx'), step }).catch((e: unknown) => e);
    assert.ok(err instanceof WhittleError, String(err));
    assert.match(err.message, /t10k-images-idx3-ubyte\.gz: the calibration data set is empty/);
    assert.equal(reportError(err, capture(), false), 2);
    assert.deepEqual(leftovers(dir), []);
  });

  it('calibration data that is NaN or Infinity everywhere is an error naming the file and the input', async () => {
    const dir = folder('all-nan');
    const data = writeNpy(join(dir, 'nan.npy'), '<f4', [20, 4], f32bytes(new Float32Array(80).fill(NaN)));
    const r = await whittle('quantize', IRIS, '-o', join(dir, 'out.onnx'), '--method', 'static', '--calib', data);
    assert.equal(r.code, 2, r.err);
    assert.equal(r.lines.length, 1, r.err);
    assert.match(r.err, /nan\.npy: every value of model input input in the 20 calibration samples is NaN or Infinity/);
    assert.deepEqual(leftovers(dir), []);
  });
});

// ------------------------------------------------------------------ named warnings: the node skipped, the model right

describe('whittle quantize: what a method cannot use is a named warning, and the model stays right', () => {
  it('NaN and Infinity in some calibration samples: one warning naming the data and the tensors; ranges from the finite values', async () => {
    const dir = folder('some-nan');
    const x = irisValues();
    for (let row = 0; row < 10; row++) x[row * 4 + (row % 4)] = row % 3 === 0 ? Infinity : NaN;
    const data = writeNpy(join(dir, 'x.npy'), '<f4', [150, 4], f32bytes(x));
    const out = join(dir, 'out.onnx');
    const r = await whittle('quantize', IRIS, '-o', out, '--method', 'static', '--calib', data, '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    const nanWarnings = doc.warnings.filter((w: string) => /NaN or Infinity/.test(w));
    assert.equal(nanWarnings.length, 1, doc.warnings.join('\n'));
    assert.match(nanWarnings[0], /x\.npy: NaN or Infinity in \d+ tensors? \(input, .*\)/);
    assert.ok(doc.nodesChanged > 0);
    // the quantized model on clean data: finite, and classifying as the fp32 model does
    const e = await evaluate({ model: out, data: IRIS_X, reference: IRIS, ep: 'cpu', warmup: 0, runs: 1 });
    assert.ok((e.agreement!.top1 ?? 0) >= 0.97, `agreement ${e.agreement!.top1}`);
    const sqnr = e.agreement!.sqnrDb ?? NaN;
    assert.ok(Number.isFinite(sqnr) && sqnr > 20, `SQNR ${sqnr}`);
    assert.ok(e.accuracy!.top1 >= 0.96, `accuracy ${e.accuracy!.top1}`);

    // bias correction measures means from the finite values too: every bias finite, the model as good
    const corrected = join(dir, 'corrected.onnx');
    const rc = await whittle('quantize', IRIS, '-o', corrected, '--method', 'static', '--calib', data, '--bias-correction', '--json');
    assert.equal(rc.code, 0, rc.err);
    const layers = JSON.parse(rc.out).biasCorrection.layers as { node: string; rmsShift: number }[];
    assert.ok(layers.length > 0 && layers.every((l) => Number.isFinite(l.rmsShift)), JSON.stringify(layers));
    const ec = await evaluate({ model: corrected, data: IRIS_X, reference: IRIS, ep: 'cpu', warmup: 0, runs: 1 });
    assert.ok((ec.agreement!.top1 ?? 0) >= 0.97 && (ec.agreement!.sqnrDb ?? 0) > 20, JSON.stringify(ec.agreement));
  });

  it('a tensor that is NaN in every calibration sample gets no range: its node stays float, named', async () => {
    const dir = folder('nan-tensor');
    const model = buildModel({
      opset: 13,
      inputs: [valueInfo('x', DataType.FLOAT, ['batch', 16])],
      outputs: [valueInfo('y', DataType.FLOAT, ['batch', 8])],
      initializers: [floatTensor('W0', [16, 8], gaussian(128, 4, 0.2))],
      nodes: [
        new Node({ name: 'root', opType: 'Sqrt', inputs: ['x'], outputs: ['s'] }),
        new Node({ name: 'fc0', opType: 'MatMul', inputs: ['s', 'W0'], outputs: ['y'] }),
      ],
    });
    const input = join(dir, 'sqrt.onnx');
    writeOnnxFile(model, input);
    // negative data: the square root is NaN everywhere
    const data = writeNpy(join(dir, 'negative.npy'), '<f4', [8, 16], f32bytes(gaussian(128, 5).map((v) => -1 - Math.abs(v))));
    const r = await whittle('quantize', input, '-o', join(dir, 'out.onnx'), '--method', 'static', '--calib', data, '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.ok(doc.warnings.some((w: string) => /negative\.npy: NaN or Infinity in 2 tensors \(s, y\) during calibration; .* 2 of them \(s, y\) held no finite value, so they get no range and the nodes using them stay float/.test(w)), doc.warnings.join('\n'));
    assert.deepEqual(doc.excluded, ['fc0']);
    assert.ok(!opTypes(join(dir, 'out.onnx')).includes('QuantizeLinear'));
  });

  it('int4 on a model without MatMul (iris: Gemm only): each Gemm named, "no node was quantized", the model unchanged', async () => {
    const dir = folder('int4-gemm');
    const out = join(dir, 'out.onnx');
    const r = await whittle('quantize', IRIS, '-o', out, '--method', 'int4', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.equal(doc.nodesChanged, 0);
    assert.deepEqual(doc.excluded, ['Gemm_0', 'Gemm_2', 'Gemm_4']);
    for (const g of ['Gemm_0', 'Gemm_2', 'Gemm_4']) assert.ok(doc.warnings.some((w: string) => w.startsWith(`${g} (Gemm) left in float: weight-only quantization rewrites MatMul only`)), g);
    assert.ok(doc.warnings.some((w: string) => /^no node was quantized: 4-bit weight-only quantization rewrites MatMul .* this model has no MatMul \(it has 3 Gemm\); the model is written unchanged$/.test(w)), doc.warnings.join('\n'));
    assert.equal(r.lines.length, doc.warnings.length, 'every warning on stderr, one line each');
    assert.deepEqual(opTypes(out), opTypes(IRIS));
    assert.equal(doc.bytesAfter, doc.bytesBefore);
  });

  it('dynamic on a CNN (SqueezeNet: Conv only) says it quantized nothing and points to --include-conv and static', async () => {
    const dir = folder('dynamic-cnn');
    const out = join(dir, 'out.onnx');
    const r = await whittle('quantize', SQUEEZENET, '-o', out, '--method', 'dynamic', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.equal(doc.nodesChanged, 0);
    assert.equal(doc.reduceRange, undefined, 'no weight quantized: no weight bits to report');
    assert.deepEqual(doc.warnings, ['no node was quantized: dynamic quantization rewrites MatMul, Gemm nodes, and this model has none (it has 26 Conv: --include-conv quantizes them with ConvInteger, usually slower than fp32 on CPU; --method static is the better choice for CNNs); the model is written unchanged']);
    assert.deepEqual(opTypes(out), opTypes(SQUEEZENET));
  });

  it('dynamic --include-conv on SqueezeNet fp32 (opset 7, an unread Dropout mask): ConvInteger, with the slowness warning, and it runs', async () => {
    const dir = folder('dynamic-conv');
    const out = join(dir, 'out.onnx');
    const r = await whittle('quantize', SQUEEZENET, '-o', out, '--method', 'dynamic', '--include-conv', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.deepEqual(doc.warnings, [CONV_INTEGER_WARNING]);
    assert.equal(opTypes(out).filter((op) => op === 'ConvInteger').length, 26);
    const e = await evaluate({ model: out, data: 'synthetic:1', reference: SQUEEZENET, ep: 'cpu', warmup: 0, runs: 1 });
    assert.ok((e.agreement!.cosine ?? 0) > 0.9, `cosine ${e.agreement!.cosine}`);
  });

  it('dynamic --include-conv on an fp16 model names every Conv it leaves in float', async () => {
    const dir = folder('dynamic-fp16');
    const r = await whittle('quantize', SQUEEZENET_FP16, '-o', join(dir, 'out.onnx'), '--method', 'dynamic', '--include-conv', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.equal(doc.excluded.length, 26);
    assert.equal(doc.warnings.filter((w: string) => /^Conv\(.+\) \(Conv\) left in float: its weight is float16, not float32$/.test(w)).length, 26);
    assert.ok(doc.warnings.some((w: string) => /^no node was quantized: every MatMul\/Gemm\/Conv node was excluded or left in float/.test(w)));
  });

  it('fp16 on a model that is float16 already: "nothing was converted", the model unchanged', async () => {
    const dir = folder('fp16-fp16');
    const out = join(dir, 'out.onnx');
    const r = await whittle('quantize', SQUEEZENET_FP16, '-o', out, '--method', 'fp16', '--json');
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out);
    assert.deepEqual(doc.warnings, ['fp16: nothing was converted: the model has no float32 weights or values (is it float16 already?); the model is written unchanged']);
    assert.deepEqual(opTypes(out), opTypes(SQUEEZENET_FP16));
  });

  it('an already-quantized model: one warning naming the file and its quantized ops; static names the nodes reading them once; prune says why it has nothing', async () => {
    const dir = folder('quantized-again');
    const SHUFFLENET_INT8 = fixture('shufflenet-int8', 'shufflenet-v2-12-int8.onnx');
    const dyn = await whittle('quantize', SHUFFLENET_INT8, '-o', join(dir, 'dyn.onnx'), '--method', 'dynamic', '--json');
    assert.equal(dyn.code, 0, dyn.err);
    assert.equal(JSON.parse(dyn.out).warnings[0], 'shufflenet-v2-12-int8.onnx is already quantized (56 QLinearConv, 34 DequantizeLinear, 18 QuantizeLinear, 1 QLinearAdd, …): dynamic changes only its float parts, the quantized ops stay as they are; to quantize the whole model another way, start from its float original');
    // MNIST quantized static by Whittle, then static again: the nodes beside its Q/DQ pairs in one warning
    const once = join(dir, 'once.onnx');
    assert.equal((await whittle('quantize', MNIST, '-o', once, '--method', 'static', '--calib', MNIST_DATA, '--preprocess', 'mnist', '--samples', '16')).code, 0);
    const twice = await whittle('quantize', once, '-o', join(dir, 'twice.onnx'), '--method', 'static', '--calib', MNIST_DATA, '--preprocess', 'mnist', '--samples', '16', '--json');
    assert.equal(twice.code, 0, twice.err);
    const warnings: string[] = JSON.parse(twice.out).warnings;
    assert.match(warnings[0]!, /^once\.onnx is already quantized \(\d+ DequantizeLinear, \d+ QuantizeLinear\): static changes only its float parts/);
    const grouped = warnings.filter((w) => /already quantized \(DequantizeLinear\)/.test(w));
    assert.equal(grouped.length, 1, grouped.join('\n'));
    assert.match(grouped[0]!, /^\d+ node\(s\) left float: they read values that are already quantized \(DequantizeLinear\): .*\(Conv\)/);
    // int4 then fp16 is the usual weight-only recipe: its MatMulNBits convert with fp16, so no warning; another method is warned
    const int4 = join(dir, 'int4.onnx');
    assert.equal((await whittle('quantize', join(ZOO_DIR, MODEL_FILE), '-o', int4, '--method', 'int4')).code, 0);
    const half = await whittle('quantize', int4, '-o', join(dir, 'int4-fp16.onnx'), '--method', 'fp16', '--json');
    assert.deepEqual(JSON.parse(half.out).warnings.filter((w: string) => /already quantized/.test(w)), []);
    const int8 = await whittle('quantize', int4, '-o', join(dir, 'int4-int8.onnx'), '--method', 'int8-weight', '--json');
    assert.match(JSON.parse(int8.out).warnings[0], /^int4\.onnx is already quantized \(13 MatMulNBits\): int8-weight changes only its float parts/);
    const prune = await whittle('prune', SHUFFLENET_INT8, '-o', join(dir, 'pruned.onnx'), '--method', 'magnitude');
    assert.equal(prune.code, 2);
    assert.match(prune.err, /no prunable weight .*; shufflenet-v2-12-int8\.onnx is already quantized \(56 QLinearConv, .*\): prune its float original, then quantize/);
    assert.ok(!existsSync(join(dir, 'pruned.onnx')), 'a failed prune writes no output');
  });

  it('fp16 with a NaN weight keeps it NaN and says where; an Inf weight is clamped to ±1e4, named', async () => {
    const dir = folder('fp16-nan');
    for (const [bad, expect] of [[NaN, /^fp16: 1 stored value\(s\) are NaN in W0; they stay NaN/], [-Infinity, /^fp16: clamped 1 stored values into \[1e-7, 10000\] \(0 below, 1 above\) in W0$/]] as const) {
      const out = join(dir, `out-${bad}.onnx`);
      const r = await whittle('quantize', mlpFile(dir, bad), '-o', out, '--method', 'fp16', '--json');
      assert.equal(r.code, 0, r.err);
      const doc = JSON.parse(r.out);
      assert.ok(doc.warnings.some((w: string) => expect.test(w)), doc.warnings.join('\n'));
      const w0 = readOnnxFile(out).graph.initializers.get('W0')!;
      assert.equal(w0.dataType, DataType.FLOAT16);
      const v = halfToFloat((w0.typed() as Uint16Array)[5]!);
      if (Number.isNaN(bad)) assert.ok(Number.isNaN(v));
      else assert.equal(v, -10000);
    }
  });
});

// ------------------------------------------------------------------ cancellation: CANCELLED, exit 1, nothing left behind

describe('quantizeModel: cancellation', () => {
  const cancelled = async (run: (signal: AbortSignal, abort: () => void) => Promise<unknown>) => {
    const ac = new AbortController();
    const err = await run(ac.signal, () => ac.abort()).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof WhittleError && err.code === 'CANCELLED', String(err));
    const io = capture();
    assert.equal(reportError(err, io, false), 1, 'a cancelled command exits 1');
    assert.equal(io.err.trim().split('\n').length, 1);
    return err;
  };

  it('aborted before it starts: no output', async () => {
    const dir = folder('cancel-before');
    await cancelled((signal, abort) => { abort(); return quantizeModel({ input: MNIST, output: join(dir, 'out.onnx'), step: QuantizeStep.parse({ method: 'dynamic' }), signal }); });
    assert.deepEqual(leftovers(dir), []);
  });

  it('aborted mid-calibration: stops there, no output', async () => {
    const dir = folder('cancel-calibrate');
    let seen = 0;
    await cancelled((signal, abort) => quantizeModel({
      input: MNIST, output: join(dir, 'out.onnx'), signal,
      step: QuantizeStep.parse({ method: 'static', calib: { path: MNIST_DATA }, samples: 200 }),
      progress: (phase, done) => { if (phase === 'calibrate' && done >= 5) { seen = Math.max(seen, done); abort(); } },
    }));
    assert.ok(seen >= 5 && seen < 200, `stopped after ${seen} of 200 samples`);
    assert.deepEqual(leftovers(dir), []);
  });

  it('aborted inside a pass (int4, between nodes): no output', async () => {
    const dir = folder('cancel-pass');
    const input = mlpFile(dir);
    await cancelled((signal, abort) => quantizeModel({
      input, output: join(dir, 'out.onnx'), signal, step: QuantizeStep.parse({ method: 'int4', blockSize: 16 }),
      progress: (phase, done) => { if (phase === 'quantize' && done === 1) abort(); },
    }));
    assert.deepEqual(leftovers(dir), []);
  });

  it('an existing output file is left as it was', async () => {
    const dir = folder('cancel-existing');
    const out = join(dir, 'out.onnx');
    copyFileSync(MNIST, out);
    const before = readFileSync(out);
    await cancelled((signal, abort) => quantizeModel({
      input: MNIST, output: out, signal, step: QuantizeStep.parse({ method: 'fp16' }),
      progress: (phase) => { if (phase === 'convert') abort(); },
    }));
    assert.ok(existsSync(out) && readFileSync(out).equals(before));
    assert.deepEqual(readdirSync(dir), ['out.onnx']);
  });
});
