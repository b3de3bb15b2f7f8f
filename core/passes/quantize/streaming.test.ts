/**
 * The paths that make `whittle quantize` fast (bench/quantize-speed.ts) give the same files as the
 * plain ones: an inline model read lazily (big weights left in the file), dynamic int8 and fp16
 * weights computed while the writer streams them, weight-only weights quantized on worker threads
 * that read external data themselves — each against the model read whole, quantized in memory and
 * written. Also: a model quantized over itself, and a NaN found by a worker thread.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { QuantizeStep } from '../../../api/recipe.ts';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { Node, type Model } from '../../../native-models/ir/model.ts';
import { createPassContext } from '../pass.ts';
import { blockQuantizer, quantizeBlockRows, quantizeBlocksFromFile } from '../../jobs/quantize-kernels.mjs';
import { applyQuantizeStep, quantizeModel } from './quantize-model.ts';
import { buildModel, floatTensor, gaussian, tempDir, valueInfo } from './test-models.ts';

const tmp = tempDir('streaming');
after(tmp.cleanup);

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/**
 * x → MatMul W0 [2048, 1024] → Add b → MatMul W1 [1024, 2112] → y: 16.25 MiB of weights, enough for
 * weight-only to use worker threads (where the machine has two cores or more).
 */
function mlp(nanAt?: number): Model {
  const w1 = gaussian(1024 * 2112, 2, 0.03);
  if (nanAt !== undefined) w1[nanAt] = NaN;
  return buildModel({
    inputs: [valueInfo('x', DataType.FLOAT, ['batch', 2048])],
    outputs: [valueInfo('y', DataType.FLOAT, ['batch', 2112])],
    initializers: [floatTensor('W0', [2048, 1024], gaussian(2048 * 1024, 1, 0.05)), floatTensor('b', [1024], gaussian(1024, 3)), floatTensor('W1', [1024, 2112], w1)],
    nodes: [
      new Node({ name: 'fc0', opType: 'MatMul', inputs: ['x', 'W0'], outputs: ['h'] }),
      new Node({ name: 'add', opType: 'Add', inputs: ['h', 'b'], outputs: ['hb'] }),
      new Node({ name: 'fc1', opType: 'MatMul', inputs: ['hb', 'W1'], outputs: ['y'] }),
    ],
  });
}

const inline = join(tmp.dir, 'mlp.onnx');
const external = join(tmp.dir, 'mlp-ext.onnx');
writeOnnxFile(mlp(), inline, { externalData: false });
writeOnnxFile(mlp(), external, { externalData: true });

/** The plain path: the whole file read, the step applied in memory, written. */
async function plain(input: string, output: string, step: QuantizeStep): Promise<string> {
  const model = readOnnxFile(input);
  await applyQuantizeStep(model, step, createPassContext());
  writeOnnxFile(model, output);
  return sha(output);
}

const STEPS: Record<string, unknown> = {
  'dynamic': { method: 'dynamic' },
  'dynamic per-channel uint8': { method: 'dynamic', perChannel: true, weightType: 'uint8' },
  'int4': { method: 'int4' },
  'int4 symmetric, block 64, DQ form': { method: 'int4', symmetric: true, blockSize: 64, format: 'dq' },
  'int8-weight': { method: 'int8-weight' },
  'fp16': { method: 'fp16' },
};

describe('quantizeModel: streamed, lazy and threaded paths write what the plain path writes', () => {
  for (const [label, raw] of Object.entries(STEPS)) {
    it(label, async () => {
      const step = QuantizeStep.parse(raw);
      const name = label.replace(/[^a-z0-9]+/gi, '-');
      const expected = await plain(inline, join(tmp.dir, `${name}-plain.onnx`), step);
      for (const input of [inline, external]) {
        const out = join(tmp.dir, `${name}-${input === inline ? 'inline' : 'ext'}.onnx`);
        const r = await quantizeModel({ input, output: out, step });
        assert.equal(sha(out), expected, `${input === inline ? 'inline' : 'external data'} input`);
        assert.equal(r.bytesAfter, readFileSync(out).length);
      }
    });
  }

  it('a model quantized over itself: the same file and the same figures as quantized elsewhere', async () => {
    const step = QuantizeStep.parse({ method: 'dynamic' });
    const elsewhere = await quantizeModel({ input: inline, output: join(tmp.dir, 'elsewhere.onnx'), step });
    const self = join(tmp.dir, 'self.onnx');
    copyFileSync(inline, self);
    const r = await quantizeModel({ input: self, output: self, step });
    assert.equal(sha(self), sha(elsewhere.output));
    const figures = (x: typeof r) => ({ ...x, input: '', output: '', seconds: 0, peakRssBytes: 0, runtimeCheck: x.runtimeCheck ? { ...x.runtimeCheck, seconds: 0 } : null });
    assert.deepEqual(figures(r), figures(elsewhere));
  });

  it('a NaN met by a worker thread is named like one met here', async () => {
    const bad = join(tmp.dir, 'nan-ext.onnx');
    writeOnnxFile(mlp(2112 * 700 + 5), bad, { externalData: true });
    await assert.rejects(quantizeModel({ input: bad, output: join(tmp.dir, 'nan-out.onnx'), step: QuantizeStep.parse({ method: 'int4' }) }),
      /node fc1 \(MatMul\): weight W1 has NaN at element 1478405 of 2162688/);
  });
});

describe('the block kernel on a worker reads external data as the pass does', () => {
  it('quantizeBlocksFromFile equals quantizeBlockRows over the same values', () => {
    const model = readOnnxFile(external);
    const w = model.graph.initializers.get('W1')!;
    assert.equal(w.source.kind, 'external');
    const source = w.source as { path: string; offset: number };
    for (const [bits, layout] of [[4, 'packed'], [8, 'packed'], [4, 'kn']] as const) {
      const fromFile = quantizeBlocksFromFile({ path: source.path, offset: source.offset, K: 1024, N: 2112, bits, blockSize: 32, symmetric: false, layout });
      const here = blockQuantizer(1024, 2112, bits, 32, false, layout);
      assert.equal(quantizeBlockRows(here, w.typed() as Float32Array, 0), true);
      assert.equal(fromFile.finite, true);
      assert.deepEqual([fromFile.data, fromFile.scales, fromFile.zeroPoints].map((a) => createHash('sha256').update(a).digest('hex')), [here.data, here.scales, here.zeroPoints].map((a) => createHash('sha256').update(a).digest('hex')));
    }
  });
});
