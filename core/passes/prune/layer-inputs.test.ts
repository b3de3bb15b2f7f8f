import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import { Node, type Attribute } from '../../../native-models/ir/model.ts';
import { TappedModel } from '../../calibrate/tap.ts';
import { createPassContext } from '../pass.ts';
import { buildModel, floatTensor, gaussian, valueInfo } from '../quantize/test-models.ts';
import { collectLayerInputs, layerMatrix, readMatrix, type LayerMatrix } from './layer-inputs.ts';
import { int, ints, matmulModel, memoryDataset, str } from './layer-inputs-testing.ts';
import { prunableWeights } from './prunable.ts';

function layersOf(model: ReturnType<typeof buildModel>): LayerMatrix[] {
  return prunableWeights(model).layers.map((w) => {
    const m = layerMatrix(w);
    if (typeof m === 'string') throw new Error(m);
    return m;
  });
}

/** Σ_g Σ_r w_rᵀ·XᵀX·w_r: equals ‖W·X‖² = ‖y‖² when the patches are right. */
function quadratic(layer: LayerMatrix, w: Float64Array, xtx: Float64Array[]): number {
  let total = 0;
  const { k, rowsPerGroup } = layer;
  for (let g = 0; g < layer.groups; g++) for (let r = 0; r < rowsPerGroup; r++) {
    const off = (g * rowsPerGroup + r) * k;
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) total += w[off + i]! * xtx[g]![i * k + j]! * w[off + j]!;
  }
  return total;
}

const cases: { name: string; c: number; m: number; kernel: number[]; attrs: Attribute[]; size: number[] }[] = [
  { name: 'plain 3×3', c: 3, m: 4, kernel: [3, 3], attrs: [], size: [7, 6] },
  { name: 'stride, pads, dilation', c: 4, m: 6, kernel: [3, 2], attrs: [ints('strides', [2, 1]), ints('pads', [1, 0, 2, 1]), ints('dilations', [1, 2])], size: [9, 8] },
  { name: 'groups', c: 6, m: 4, kernel: [3, 3], attrs: [int('group', 2), ints('pads', [1, 1, 1, 1])], size: [5, 5] },
  { name: 'depthwise, SAME_UPPER, stride 2', c: 4, m: 4, kernel: [3, 3], attrs: [int('group', 4), str('auto_pad', 'SAME_UPPER'), ints('strides', [2, 2])], size: [8, 7] },
  { name: 'SAME_LOWER 2×2', c: 2, m: 3, kernel: [2, 2], attrs: [str('auto_pad', 'SAME_LOWER')], size: [5, 6] },
  { name: '1-D', c: 3, m: 2, kernel: [3], attrs: [ints('pads', [1, 1]), ints('strides', [2])], size: [10] },
];

describe('layer inputs', () => {
  for (const t of cases) {
    it(`Conv im2col (${t.name}) reproduces ‖y‖² from onnxruntime`, async () => {
      const group = t.attrs.find((a) => a.name === 'group') ? Number(t.attrs.find((a) => a.name === 'group')!.value) : 1;
      const wDims = [t.m, t.c / group, ...t.kernel];
      const w = gaussian(wDims.reduce((a, b) => a * b, 1), 3, 0.5);
      const model = buildModel({
        inputs: [valueInfo('x', DataType.FLOAT, ['batch', t.c, ...t.size])],
        outputs: [valueInfo('y', DataType.FLOAT, null as never)],
        initializers: [floatTensor('W', wDims, w)],
        nodes: [new Node({ name: 'conv', opType: 'Conv', inputs: ['x', 'W'], outputs: ['y'], attributes: t.attrs })],
      });
      model.graph.outputs = [{ name: 'y', type: null, extra: {} }];
      const per = t.c * t.size.reduce((a, b) => a * b, 1);
      const samples = Array.from({ length: 5 }, (_, i) => gaussian(per, 10 + i));
      const data = memoryDataset('x', [t.c, ...t.size], samples);
      const [layer] = layersOf(model);
      const { stats, samples: seen } = await collectLayerInputs(model, [layer!], { data, hessian: true, samples: 4, batchSize: 3 }, createPassContext());
      assert.equal(seen, 4);
      const tapped = await TappedModel.create(model, []);
      let ySq = 0;
      try {
        for await (const { batch, values } of tapped.batches(data, { batchSize: 3 })) {
          const y = values['y']!.data as Float32Array;
          const perOut = y.length / batch.count;
          for (let i = 0; i < Math.min(batch.count, 4 - batch.index) * perOut; i++) ySq += y[i]! * y[i]!;
        }
      } finally {
        await tapped.close();
      }
      const q = quadratic(layer!, readMatrix(layer!), stats[0]!.groups.map((g) => g.xtx!));
      assert.ok(Math.abs(q - ySq) < 1e-4 * ySq, `${q} vs ${ySq}`);
      // the norms are XᵀX's diagonal
      for (const g of stats[0]!.groups) for (let j = 0; j < g.k; j++) assert.ok(Math.abs(g.sqNorm[j]! - g.xtx![j * g.k + j]!) <= 1e-9 * g.sqNorm[j]!);
    });
  }

  it('Conv norms and means per im2col column (input channel × kernel position) match a direct loop', async () => {
    // 2 samples of 4 channels, 2 groups, 3×2 kernel, stride (2, 1), pads (1, 0, 2, 1), dilation (1, 2)
    const [c, h, w, m, groups, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr] = [4, 7, 6, 6, 2, 3, 2, 2, 1, 1, 2, 1, 0, 2, 1];
    const cg = c / groups;
    const model = buildModel({
      inputs: [valueInfo('x', DataType.FLOAT, ['batch', c, h, w])],
      outputs: [valueInfo('y', DataType.FLOAT, null as never)],
      initializers: [floatTensor('W', [m, cg, kh, kw], gaussian(m * cg * kh * kw, 9))],
      nodes: [new Node({ name: 'conv', opType: 'Conv', inputs: ['x', 'W'], outputs: ['y'], attributes: [int('group', groups), ints('strides', [sh, sw]), ints('pads', [pt, pl, pb, pr]), ints('dilations', [dh, dw])] })],
    });
    const xs = [gaussian(c * h * w, 21).map((v) => v + 1), gaussian(c * h * w, 22)];
    const [layer] = layersOf(model);
    const { stats } = await collectLayerInputs(model, [layer!], { data: memoryDataset('x', [c, h, w], xs), hessian: false }, createPassContext());
    const oh = Math.floor((h + pt + pb - ((kh - 1) * dh + 1)) / sh) + 1;
    const ow = Math.floor((w + pl + pr - ((kw - 1) * dw + 1)) / sw) + 1;
    for (let g = 0; g < groups; g++) {
      const st = stats[0]!.groups[g]!;
      assert.equal(st.rows, xs.length * oh * ow);
      for (let ch = 0; ch < cg; ch++) for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
        // ‖X_j‖² and Σ x_j of the column that weight W[·, ch, i, j] multiplies, padding counted as zeros
        let sq = 0, sum = 0;
        for (const x of xs) for (let y = 0; y < oh; y++) for (let z = 0; z < ow; z++) {
          const iy = y * sh - pt + i * dh, iz = z * sw - pl + j * dw;
          const v = iy >= 0 && iy < h && iz >= 0 && iz < w ? x[((g * cg + ch) * h + iy) * w + iz]! : 0;
          sq += v * v;
          sum += v;
        }
        const col = (i * kw + j) * cg + ch;
        assert.ok(Math.abs(st.sqNorm[col]! - sq) < 1e-9 * Math.max(1, sq), `group ${g} channel ${ch} tap (${i}, ${j}): ${st.sqNorm[col]} vs ${sq}`);
        assert.ok(Math.abs(st.sum[col]! - sum) < 1e-9 * Math.max(1, Math.abs(sum)));
        // and the column is where readMatrix puts that weight
        const stored = model.graph.initializers.get('W')!.toFloat32();
        assert.equal(readMatrix(layer!)[(g * (m / groups)) * layer!.k + col], stored[(((g * (m / groups)) * cg + ch) * kh + i) * kw + j]);
      }
    }
  });

  it('MatMul rows: norms and XᵀX of the activation rows, limited to `samples`', async () => {
    const model = matmulModel(3, 2, Float32Array.from([1, 2, 3, 4, 5, 6]));
    const rows = [[1, 0, 2], [0, 3, 0], [1, 1, 1], [9, 9, 9]].map((r) => Float32Array.from(r));
    const [layer] = layersOf(model);
    const { stats } = await collectLayerInputs(model, [layer!], { data: memoryDataset('x', [3], rows), hessian: true, samples: 3, batchSize: 2 }, createPassContext());
    const g = stats[0]!.groups[0]!;
    assert.deepEqual([...g.sqNorm], [2, 10, 5]);
    assert.deepEqual([...g.sum], [2, 4, 3]);
    assert.deepEqual([...g.xtx!], [2, 1, 3, 1, 10, 1, 3, 1, 5]);
    assert.equal(g.rows, 3);
    // W as the matrix sees it: rows are outputs
    assert.deepEqual([...readMatrix(layer!)], [1, 3, 5, 2, 4, 6]);
  });

  it('MatMul on [batch, tokens, K]: every token is a row, across many chunks of a batch (a sequence model)', async () => {
    // 3 samples × 150 tokens, batches of 2: 300 rows in the first batch, more than one chunk
    const k = 5, tokens = 150;
    const model = matmulModel(k, 2, Float32Array.from({ length: k * 2 }, (_, i) => i - 4), tokens);
    const samples = [0, 1, 2].map((s) => Float32Array.from({ length: tokens * k }, (_, i) => Math.sin(s * 1000 + i * 0.37) * (1 + (i % k))));
    const [layer] = layersOf(model);
    const { stats } = await collectLayerInputs(model, [layer!], { data: memoryDataset('x', [tokens, k], samples), hessian: true, samples: 3, batchSize: 2 }, createPassContext());
    const g = stats[0]!.groups[0]!;
    const sqNorm = new Float64Array(k), sum = new Float64Array(k), xtx = new Float64Array(k * k);
    for (const x of samples) for (let t = 0; t < tokens; t++) for (let i = 0; i < k; i++) {
      const v = x[t * k + i]!;
      sqNorm[i]! += v * v;
      sum[i]! += v;
      for (let j = 0; j < k; j++) xtx[i * k + j]! += v * x[t * k + j]!;
    }
    assert.equal(g.rows, 3 * tokens);
    const close = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).every((v, i) => Math.abs(v - b[i]!) <= 1e-9 * Math.max(1, Math.abs(b[i]!)));
    assert.ok(close(g.sqNorm, sqNorm), `sqNorm ${[...g.sqNorm]} vs ${[...sqNorm]}`);
    assert.ok(close(g.sum, sum), `sum ${[...g.sum]} vs ${[...sum]}`);
    assert.ok(close(g.xtx!, xtx), 'XᵀX differs from the direct loop');
  });
});
