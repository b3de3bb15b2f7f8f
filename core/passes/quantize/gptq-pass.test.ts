import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { useTempHome, whittle } from '../../../cli/testing.ts';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { npyBytes } from '../../evaluate/data/test-support.ts';
import { createPassContext } from '../pass.ts';
import { matmulModel, memoryDataset } from '../prune/layer-inputs-testing.ts';
import { gptqQuantizePass } from './gptq-pass.ts';
import { gaussian, runFloat, tempDir } from './test-models.ts';
import { weightOnlyQuantizePass } from './weight-only.ts';
import { QuantizeStep } from '../../../api/recipe.ts';
import { loadTestBed } from '../../../native-models/zoo/transformer/testbed.ts';
import { applyQuantizeStep } from './quantize-model.ts';
import type { GptqChoice } from './gptq-pass.ts';

const [K, N] = [96, 40];

/** One input distribution: a few shared factors (a fixed mixing) plus noise, very uneven feature scales. */
const mix = gaussian(4 * K, 1);
function inputs(count: number, seed: number): Float32Array[] {
  const z = gaussian(count * 4, seed);
  const noise = gaussian(count * K, seed + 2, 0.2);
  return Array.from({ length: count }, (_, s) => Float32Array.from({ length: K }, (_, j) => {
    let v = noise[s * K + j]!;
    for (let f = 0; f < 4; f++) v += z[s * 4 + f]! * mix[f * K + j]!;
    return v * (1 + (j % 5));
  }));
}

const weight = gaussian(K * N, 5, 0.1);

async function outputError(path: string, evalSet: Float32Array[], reference: Float32Array): Promise<number> {
  const x = new Float32Array(evalSet.length * K);
  evalSet.forEach((s, i) => x.set(s, i * K));
  const y = await runFloat(path, { x: { data: x, dims: [evalSet.length, K] } });
  let e = 0, s = 0;
  for (let i = 0; i < y.length; i++) { e += (y[i]! - reference[i]!) ** 2; s += reference[i]! ** 2; }
  return e / s;
}

describe('GPTQ pass', () => {
  const dirs = useTempHome('gptq');

  it('a cache of GPTQ choices: a later run on the same float model recomputes nothing and writes what an uncached run writes', async () => {
    const bed = loadTestBed();
    const step = (exclude: string[]) => QuantizeStep.parse({ method: 'int4', algorithm: 'gptq', blockSize: 32, calib: { path: bed.calibPath }, samples: 32, exclude });
    const written = async (exclude: string[], cache?: Map<string, GptqChoice>) => {
      const model = readOnnxFile(bed.model);
      const r = await applyQuantizeStep(model, step(exclude), createPassContext(), cache ? { gptqCache: cache } : {});
      const path = join(dirs.work(), `c-${exclude.length}-${cache ? 'cached' : 'plain'}-${Math.random().toString(36).slice(2)}.onnx`);
      writeOnnxFile(model, path);
      return { bytes: readFileSync(path), computed: (r.details!['layers'] as unknown[]).length };
    };
    const cache = new Map<string, GptqChoice>();
    const first = await written([], cache);
    assert.equal(first.computed, 13);
    assert.equal(cache.size, 13);
    const again = await written([], cache);
    assert.equal(again.computed, 0, 'every weight from the cache');
    assert.ok(again.bytes.equals(first.bytes));
    const cachedExcluding = await written(['lm_head'], cache);
    const plainExcluding = await written(['lm_head']);
    assert.equal(cachedExcluding.computed, 0);
    assert.equal(plainExcluding.computed, 12);
    assert.ok(cachedExcluding.bytes.equals(plainExcluding.bytes), 'the same file with and without the cache');
  });

  it('writes MatMulNBits whose outputs are closer to float than RTN on held-out inputs', async () => {
    const { dir, cleanup } = tempDir('gptq');
    try {
      const calib = inputs(256, 10);
      const held = inputs(128, 20);
      const floatPath = join(dir, 'f.onnx');
      writeOnnxFile(matmulModel(K, N, weight), floatPath);
      const x = new Float32Array(held.length * K);
      held.forEach((s, i) => x.set(s, i * K));
      const reference = await runFloat(floatPath, { x: { data: x, dims: [held.length, K] } });

      const rtnModel = readOnnxFile(floatPath);
      await weightOnlyQuantizePass.run(rtnModel, { bits: 4, blockSize: 32 }, createPassContext());
      writeOnnxFile(rtnModel, join(dir, 'rtn.onnx'));

      const model = readOnnxFile(floatPath);
      const report = await gptqQuantizePass.run(model, { bits: 4, blockSize: 32, data: memoryDataset('x', [K], calib), samples: 256 }, createPassContext());
      assert.equal(report.nodesChanged, 1);
      assert.deepEqual(model.graph.nodes.map((n) => n.opType), ['MatMulNBits']);
      const layers = report.details!.layers as { errorGptq: number; errorRtn: number }[];
      assert.ok(layers[0]!.errorGptq < layers[0]!.errorRtn / 2, JSON.stringify(layers[0]));
      writeOnnxFile(model, join(dir, 'gptq.onnx'));

      const eRtn = await outputError(join(dir, 'rtn.onnx'), held, reference);
      const eGptq = await outputError(join(dir, 'gptq.onnx'), held, reference);
      assert.ok(eGptq < eRtn / 2, `held-out output error: GPTQ ${eGptq}, RTN ${eRtn}`);
    } finally {
      cleanup();
    }
  });

  it('whittle quantize --method int4 --algorithm gptq --calib DATA, byte-identical on a rerun; bad usage is exit 2', async () => {
    const dir = dirs.work();
    const modelPath = join(dir, 'm.onnx');
    writeOnnxFile(matmulModel(K, N, weight), modelPath);
    const calib = inputs(64, 30);
    const flat = new Float32Array(64 * K);
    calib.forEach((s, i) => flat.set(s, i * K));
    const calibPath = join(dir, 'calib.npy');
    writeFileSync(calibPath, npyBytes('<f4', [64, K], flat));
    const outs = [join(dir, 'a.onnx'), join(dir, 'b.onnx')];
    for (const out of outs) {
      const r = await whittle('quantize', modelPath, '-o', out, '--method', 'int4', '--algorithm', 'gptq', '--calib', calibPath, '--block-size', '32', '--act-order', '--json', '--no-record');
      assert.equal(r.code, 0, r.err);
      const doc = JSON.parse(r.out);
      assert.equal(doc.method, 'int4');
      assert.equal(doc.calibration.method, 'gptq');
      assert.equal(doc.calibration.samples, 64);
    }
    assert.ok(readFileSync(outs[0]!).equals(readFileSync(outs[1]!)));
    assert.ok(readOnnxFile(outs[0]!).graph.nodes.some((n) => n.opType === 'MatMulNBits'));
    const bad: [string[], RegExp][] = [
      [['--method', 'int4', '--algorithm', 'gptq'], /calibration data/],
      [['--method', 'dynamic', '--algorithm', 'gptq', '--calib', calibPath], /applies to static, int4 and int8-weight, not --method dynamic/],
      [['--method', 'int4', '--algorithm', 'optq'], /algorithm/],
    ];
    for (const [args, message] of bad) {
      const r = await whittle('quantize', modelPath, '-o', join(dir, 'x.onnx'), ...args, '--no-record');
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, message);
      assert.equal(r.err.trim().split('\n').length, 1, r.err);
    }
  });
});
