import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readOnnxFile, writeOnnxFile } from '../../../native-models/formats/onnx/index.ts';
import { openDataset } from '../../evaluate/data/index.ts';
import { evaluate, inputSpecs } from '../../evaluate/evaluate.ts';
import { fixture } from '../../testing/fixtures.ts';
import { createPassContext, type Pass, type PassReport } from '../pass.ts';
import { tempDir } from '../quantize/test-models.ts';
import type { LayerResult } from './layer-inputs-pass.ts';
import { magnitudePrunePass } from './magnitude.ts';
import { sparseGptPrunePass } from './sparsegpt.ts';
import { wandaPrunePass } from './wanda.ts';

const tmp = tempDir('calibrated-prune');
after(tmp.cleanup);
const IMAGES = () => fixture('mnist', 't10k-images-idx3-ubyte.gz');

async function top1(path: string): Promise<number> {
  const r = await evaluate({ model: path, data: IMAGES(), preprocess: 'mnist', offset: 256, limit: 2000, ep: 'cpu' });
  return r.accuracy!.top1;
}

async function pruned(method: string, sparsity: number, comparison?: 'row' | 'layer'): Promise<{ top1: number; report: PassReport }> {
  const model = readOnnxFile(fixture('mnist', 'mnist.onnx'));
  let report: PassReport;
  if (method === 'magnitude') report = await magnitudePrunePass.run(model, { sparsity }, createPassContext());
  else {
    const data = await openDataset(IMAGES(), inputSpecs(model), { preprocess: 'mnist', limit: 128 });
    const pass = (method === 'sparsegpt' ? sparseGptPrunePass : wandaPrunePass) as Pass<Parameters<typeof wandaPrunePass.run>[1]>;
    report = await pass.run(model, { sparsity, data, samples: 128, comparison }, createPassContext());
  }
  const path = join(tmp.dir, `${method}-${sparsity}.onnx`);
  writeOnnxFile(model, path);
  return { top1: await top1(path), report };
}

describe('calibrated pruning on MNIST (calibrate on test images 0–127, evaluate on 256–2255)', () => {
  it('SparseGPT beats magnitude at 50 % and 70 %, Wanda at 50 %', async () => {
    const base = await top1(fixture('mnist', 'mnist.onnx'));
    const table: Record<string, Record<string, number>> = { fp32: { '0': base } };
    for (const s of [0.5, 0.7]) {
      for (const m of ['magnitude', 'wanda', 'wanda-layer', 'sparsegpt']) {
        const { top1, report } = await pruned(m, s, m === 'wanda-layer' ? 'layer' : undefined);
        (table[m] ??= {})[String(s)] = top1;
        assert.ok(Math.abs((report.details!['sparsity'] as number) - s) < 0.01, `${m} ${s}: achieved ${report.details!['sparsity']}`);
        if (m !== 'magnitude') {
          const errs = (report.details!['layers'] as LayerResult[]).map((l) => `${l.name}:${l.sparsity.toFixed(3)}/err ${l.reconstructionError!.toFixed(4)}`);
          console.log(`${m} ${s}: ${errs.join('  ')}`);
        }
      }
    }
    console.log('MNIST top-1', JSON.stringify(table));
    for (const s of ['0.5', '0.7']) {
      // measured: Wanda beats magnitude at 50 % but not at 70 % on this small CNN (per-row 71.9 %,
      // per-layer 88.6 % vs magnitude 90.6 %): without weight updates its activation weighting does
      // not make up for 25-wide rows. Only the 50 % claim is asserted; the table is printed.
      if (s === '0.5') assert.ok(table['wanda']![s]! >= table['magnitude']![s]!, `wanda ${s}`);
      assert.ok(table['sparsegpt']![s]! >= table['magnitude']![s]!, `sparsegpt ${s}`);
    }
  });
});
