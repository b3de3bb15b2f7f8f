import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WhittleError } from '../../../api/errors.ts';
import { createPassContext } from '../pass.ts';
import { matmulModel, memoryDataset } from './layer-inputs-testing.ts';
import type { LayerResult } from './layer-inputs-pass.ts';
import { wandaPrunePass } from './wanda.ts';

/** Rows x = [a, b, 0, 10·c]: feature 2 is dead, feature 3 is loud. */
function rows(n: number): Float32Array[] {
  return Array.from({ length: n }, (_, i) => Float32Array.from([Math.sin(i + 1), Math.cos(3 * i), 0, 10 * Math.sin(7 * i + 2)]));
}

// W [K=4, N=2]: the weights on the dead feature are the largest, those on the loud one the smallest
const W = Float32Array.from([
  1.0, -0.9,
  0.8, 0.7,
  5.0, -6.0,
  0.2, 0.3,
]);

describe('wanda', () => {
  it('prunes the weights of a dead input first, whatever their magnitude', async () => {
    const model = matmulModel(4, 2, W);
    const report = await wandaPrunePass.run(model, { sparsity: 0.25, data: memoryDataset('x', [4], rows(16)) }, createPassContext());
    const w = model.graph.initializers.get('W')!.toFloat32();
    // one weight per output row (column of W) goes: the one on feature 2
    assert.deepEqual([...w], [1.0, -0.9, 0.8, 0.7, 0, 0, 0.2, 0.3].map((v) => Math.fround(v)));
    const layer = (report.details!['layers'] as LayerResult[])[0]!;
    assert.equal(layer.sparsity, 0.25);
    assert.equal(layer.deadInputs, 1);
    assert.equal(layer.reconstructionError, 0);
  });

  it('weighs magnitude by the input norm (per output row)', async () => {
    const model = matmulModel(4, 2, W);
    await wandaPrunePass.run(model, { sparsity: 0.5, data: memoryDataset('x', [4], rows(16)) }, createPassContext());
    const w = model.graph.initializers.get('W')!.toFloat32();
    // |w|·‖x‖: feature 3 (‖x‖ ≈ 10·√8) outscores features 0 and 1 (‖x‖ ≈ √8), so rows keep 0 and 3... per column
    for (let n = 0; n < 2; n++) {
      const col = [0, 1, 2, 3].map((k) => w[k * 2 + n]!);
      assert.equal(col[2], 0);
      assert.notEqual(col[3], 0, 'the loud feature stays despite its small weight');
      assert.equal(col.filter((v) => v === 0).length, 2);
    }
  });

  it('2:4 keeps two of every four weights along K', async () => {
    const k = 8, n = 3;
    const w = Float32Array.from({ length: k * n }, (_, i) => Math.sin(i * 1.7) + 0.1);
    const model = matmulModel(k, n, w);
    const samples = Array.from({ length: 8 }, (_, i) => Float32Array.from({ length: k }, (_, j) => Math.cos(i * 2.1 + j)));
    const report = await wandaPrunePass.run(model, { pattern: '2:4', data: memoryDataset('x', [k], samples) }, createPassContext());
    const out = model.graph.initializers.get('W')!.toFloat32();
    for (let col = 0; col < n; col++) for (let g = 0; g < k; g += 4) {
      const nz = [0, 1, 2, 3].filter((t) => out[(g + t) * n + col] !== 0).length;
      assert.equal(nz, 2);
    }
    assert.equal(report.details!['pattern'], '2:4');
  });

  it('refuses a sparsity outside [0, 1) and a bad pattern', async () => {
    const data = memoryDataset('x', [4], rows(2));
    await assert.rejects(wandaPrunePass.run(matmulModel(4, 2, W), { sparsity: 1, data }, createPassContext()), (e: unknown) => e instanceof WhittleError && e.code === 'BAD_USAGE');
    await assert.rejects(wandaPrunePass.run(matmulModel(4, 2, W), { pattern: '4:2', data }, createPassContext()), (e: unknown) => e instanceof WhittleError && e.code === 'BAD_USAGE');
  });
});
