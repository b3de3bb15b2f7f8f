import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { QuantizeStep } from '../../../api/recipe.ts';
import { loadTestBed } from '../../../native-models/zoo/transformer/testbed.ts';
import { evaluate } from '../../evaluate/evaluate.ts';
import { fixture } from '../../testing/fixtures.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { Node } from '../../../native-models/ir/model.ts';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { createSession } from '../../../native-models/runtimes/onnxruntime.ts';
import { quantizeModel } from './quantize-model.ts';
import { checkRuntimeFusion, runtimeCheckWithWarnings, runtimeFusionOf } from './runtime-check.ts';
import { optimizedModel } from './static-qdq-testing.ts';
import { buildModel, floatTensor, gaussian, tempDir, valueInfo } from './test-models.ts';

const tmp = tempDir('runtime-check');
after(tmp.cleanup);
const MNIST = fixture('mnist', 'mnist.onnx');
const MNIST_DATA = fixture('mnist', 't10k-images-idx3-ubyte.gz');

const quantize = (input: string, name: string, step: Record<string, unknown>) =>
  quantizeModel({ input, output: join(tmp.dir, `${name}.onnx`), step: QuantizeStep.parse(step), seed: 0 });

describe('the quantize report says what onnxruntime runs of the file', () => {
  it('static MNIST: two QLinearConv and a QGemm, nothing float between Q/DQ; a Conv left float between quantized neighbours is named', async () => {
    const calib = { path: MNIST_DATA, preprocess: 'mnist' };
    const all = await quantize(MNIST, 'mnist-int8', { method: 'static', calib, samples: 64 });
    assert.deepEqual(all.runtimeCheck?.integerKernels, { QLinearConv: 2, QGemm: 1 });
    assert.deepEqual(all.runtimeCheck?.floatBetweenQdq, []);
    assert.ok(!all.warnings.some((w) => w.includes('between DequantizeLinear and QuantizeLinear')), all.warnings.join('\n'));

    const mixed = await quantize(MNIST, 'mnist-mixed', { method: 'static', calib, samples: 64, exclude: ['Convolution110'] });
    // the excluded Conv stays float at run time (its bias Add after it is still quantized), and so does
    // the MaxPool before it, which reads the Conv before that dequantized
    assert.deepEqual(mixed.runtimeCheck?.integerKernels, { QLinearConv: 1, QLinearAdd: 1, QGemm: 1 });
    assert.deepEqual(mixed.runtimeCheck?.floatBetweenQdq.map((f) => f.op), ['MaxPool', 'Conv']);
    assert.ok(mixed.warnings.some((w) => /runs 2 op\(s\) in float between DequantizeLinear and QuantizeLinear: MaxPool ×1 \(Pooling66\); Conv ×1 \(Convolution110\)/.test(w)), mixed.warnings.join('\n'));
  });

  it('the transformer: static leaves its LayerNormalizations, mask Adds and Softmaxes float between Q/DQ pairs (named); int4 is MatMulNBits; fp16 is not checked', async () => {
    const bed = loadTestBed();
    const int8 = await quantize(bed.model, 'tf-int8', { method: 'static', calib: { path: bed.calibPath }, samples: 16 });
    assert.equal(int8.runtimeCheck?.integerKernels['QLinearMatMul'], 17);
    // LayerNormalization has no int8 kernel; the mask Adds are left float on purpose, and the Softmax after each
    const float = (op: string) => int8.runtimeCheck!.floatBetweenQdq.filter((f) => f.op === op).map((f) => f.node);
    assert.deepEqual(float('LayerNormalization'), ['h0.ln_1', 'h0.ln_2', 'h1.ln_1', 'h1.ln_2', 'ln_f']);
    assert.deepEqual(float('Add'), ['h0.attn.masked', 'h1.attn.masked']);
    assert.deepEqual(float('Softmax'), ['h0.attn.probs', 'h1.attn.probs']);
    assert.equal(int8.runtimeCheck!.floatBetweenQdq.length, 9, 'no shape arithmetic among them');
    // the token embedding is stored in 8 bits with its output's parameters, and gathered as stored
    const gather = (await optimizedModel(int8.output)).graph;
    const embed = gather.nodes.find((n) => n.opType === 'Gather')!;
    assert.equal(gather.initializers.get(embed.inputs[0]!)?.dataType, DataType.UINT8, 'onnxruntime gathers the uint8 table directly');
    const floatTable = await quantize(bed.model, 'tf-int8-float-table', { method: 'static', calib: { path: bed.calibPath }, samples: 16, exclude: ['Gather'] });
    assert.ok(floatTable.bytesAfter - int8.bytesAfter > 30_000, `${floatTable.bytesAfter} → ${int8.bytesAfter} B`);
    const heldOut = async (path: string) => (await evaluate({ model: path, data: join(bed.dir, 'heldout.npy'), ep: 'cpu', runs: 1, warmup: 0 })).language!.perplexity;
    const [withFloat, with8] = [await heldOut(floatTable.output), await heldOut(int8.output)];
    console.log(`transformer static int8: embedding float ${floatTable.bytesAfter} B, perplexity ${withFloat.toFixed(4)}; embedding 8-bit ${int8.bytesAfter} B, perplexity ${with8.toFixed(4)}`);
    assert.ok(Math.abs(with8 - withFloat) / withFloat < 0.002, `${withFloat} → ${with8}`);
    assert.ok(int8.warnings.some((w) => w.includes('9 op(s) in float') && w.includes('LayerNormalization ×5')), int8.warnings.join('\n'));
    const int4 = await quantize(bed.model, 'tf-int4', { method: 'int4', blockSize: 32 });
    assert.deepEqual(int4.runtimeCheck?.integerKernels, { MatMulNBits: 13 });
    // with the token embedding too: one GatherBlockQuantized, a smaller file, perplexity within 2 %
    const withTable = await quantize(bed.model, 'tf-int4-gather', { method: 'int4', blockSize: 32, includeGather: true });
    assert.deepEqual(withTable.runtimeCheck?.integerKernels, { MatMulNBits: 13, GatherBlockQuantized: 1 });
    assert.ok(withTable.bytesAfter < int4.bytesAfter, `${withTable.bytesAfter} B vs ${int4.bytesAfter} B`);
    assert.equal(withTable.parametersAfter, int4.parametersAfter, 'a packed table still counts its logical weights');
    const [plain, tables] = [await heldOut(int4.output), await heldOut(withTable.output)];
    console.log(`transformer int4 block 32, held-back perplexity: ${plain.toFixed(3)}; with the embedding table int4 too ${tables.toFixed(3)} (${int4.bytesAfter} → ${withTable.bytesAfter} B)`);
    assert.ok(tables < plain * 1.02, `${plain} → ${tables}`);
    const fp16 = await quantize(bed.model, 'tf-fp16', { method: 'fp16' });
    assert.equal(fp16.runtimeCheck, null);
  });

  it('the check loads a copy that references the weights where they are: the graph onnxruntime makes of the file itself, nothing left beside it, errors name the file', async () => {
    // three 768×768 MatMuls: their int8 weights (576 KiB each) stay in the file when it is read lazily
    const hidden = 768;
    const mlp = (opType = 'MatMul', domain = '') => buildModel({
      inputs: [valueInfo('x', DataType.FLOAT, [1, hidden])],
      outputs: [valueInfo('y', DataType.FLOAT, [1, hidden])],
      nodes: [0, 1, 2].map((i) => new Node({ name: `fc${i}`, opType: i === 1 ? opType : 'MatMul', domain: i === 1 ? domain : '', inputs: [i === 0 ? 'x' : `h${i - 1}`, `w${i}`], outputs: [i === 2 ? 'y' : `h${i}`] })),
      initializers: [0, 1, 2].map((i) => floatTensor(`w${i}`, [hidden, hidden], gaussian(hidden * hidden, i + 1, 0.05))),
    });
    const inline = join(tmp.dir, 'mlp.onnx');
    const external = join(tmp.dir, 'mlp-external.onnx');
    writeOnnxFile(mlp(), inline);
    writeOnnxFile(mlp(), external, { externalData: true });
    for (const input of [inline, external]) {
      const r = await quantizeModel({ input, output: input.replace('.onnx', '-int8.onnx'), step: QuantizeStep.parse({ method: 'dynamic' }), seed: 0 });
      // what onnxruntime makes of the whole written file, weights parsed and packed
      const optimizedPath = r.output.replace('.onnx', '-optimized.onnx');
      const { session } = await createSession(r.output, { ep: 'cpu', graphOptimizationLevel: 'extended', optimizedModelFilePath: optimizedPath });
      await session.release();
      const whole = runtimeFusionOf(readOnnxFile(optimizedPath));
      assert.deepEqual(r.runtimeCheck?.integerKernels, whole.integerKernels, input);
      assert.deepEqual(whole.integerKernels, { DynamicQuantizeMatMul: 3 });
      assert.deepEqual(r.runtimeCheck?.floatBetweenQdq, whole.floatBetweenQdq);
    }
    assert.deepEqual(readdirSync(tmp.dir).filter((f) => f.includes('whittle-check')), [], 'the copies are removed');
    // a temporary folder on another file system takes no hard link: the copy goes beside the file
    const otherFs = ['/dev/shm', '/run'].find((d) => existsSync(d) && statSync(d).dev !== statSync(tmp.dir).dev);
    if (otherFs) {
      const saved = process.env['TMPDIR'];
      process.env['TMPDIR'] = otherFs;
      try {
        const beside = await checkRuntimeFusion(join(tmp.dir, 'mlp-int8.onnx'), 0);
        assert.deepEqual(beside?.integerKernels, { DynamicQuantizeMatMul: 3 });
      } finally {
        if (saved === undefined) delete process.env['TMPDIR'];
        else process.env['TMPDIR'] = saved;
      }
      assert.deepEqual(readdirSync(tmp.dir).filter((f) => f.includes('whittle-check')), [], 'the copies beside the file are removed');
    } else {
      console.log('no second file system for a temporary folder here: the copy-beside-the-file way is not exercised');
    }
    // a file onnxruntime cannot load: the note names it, not the copy
    const unknown = join(tmp.dir, 'unknown-op.onnx');
    writeOnnxFile(mlp('NoSuchOp', 'com.example'), unknown);
    const check = await runtimeCheckWithWarnings(unknown, 3 * hidden * hidden * 4);
    assert.equal(check.fusion, null);
    assert.equal(check.warnings.length, 1);
    assert.match(check.warnings[0]!, /could not check what onnxruntime runs of .*unknown-op\.onnx: .*unknown-op\.onnx.*NoSuchOp/);
    assert.doesNotMatch(check.warnings[0]!, /whittle-check/);
    assert.deepEqual(readdirSync(tmp.dir).filter((f) => f.includes('whittle-check')), []);
  });

  it('eval of a quantized model on the CPU says what runs it: the zoo\'s int8 ShuffleNet keeps one ReduceMean float between Q/DQ; a float model gets no check', async () => {
    const int8 = await evaluate({ model: fixture('shufflenet-int8', 'shufflenet-v2-12-int8.onnx'), data: fixture('imagenet-100'), preprocess: 'imagenet', ep: 'cpu', limit: 4, runs: 1, warmup: 0 });
    assert.equal(int8.runtimeCheck?.integerKernels['QLinearConv'], 56);
    assert.deepEqual(int8.runtimeCheck?.floatBetweenQdq.map((f) => f.op), ['ReduceMean']);
    assert.ok(int8.warnings.some((w) => w.includes('ReduceMean ×1')), int8.warnings.join('\n'));
    const fp32 = await evaluate({ model: MNIST, data: MNIST_DATA, preprocess: 'mnist', ep: 'cpu', limit: 4, runs: 1, warmup: 0 });
    assert.equal(fp32.runtimeCheck, undefined);
  });
});
