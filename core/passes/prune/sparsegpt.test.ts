import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createPassContext } from '../pass.ts';
import { matmulModel, memoryDataset } from './layer-inputs-testing.ts';
import type { LayerResult } from './layer-inputs-pass.ts';
import { seededGaussian } from '../../../native-models/ir/random.ts';
import { sparseGptPruneGroup, sparseGptPrunePass } from './sparsegpt.ts';
import { wandaPrunePass } from './wanda.ts';

/** x = [a, a, 0, b]: features 0 and 1 are the same signal, feature 2 is dead. */
function rows(n: number): Float32Array[] {
  return Array.from({ length: n }, (_, i) => {
    const a = Math.sin(1.3 * i + 0.5), b = Math.cos(2.7 * i);
    return Float32Array.from([a, a, 0, b]);
  });
}
const W = Float32Array.from([
  1.0, -2.0,
  1.5, 1.0,
  3.0, 4.0,
  0.5, -0.7,
]);

describe('sparsegpt', () => {
  it('folds a pruned weight into its duplicate input and prunes the dead input: near-zero error', async () => {
    const model = matmulModel(4, 2, W);
    const report = await sparseGptPrunePass.run(model, { sparsity: 0.5, data: memoryDataset('x', [4], rows(32)) }, createPassContext());
    const w = model.graph.initializers.get('W')!.toFloat32();
    const layer = (report.details!['layers'] as LayerResult[])[0]!;
    assert.equal(layer.sparsity, 0.5);
    assert.equal(w[4], 0);
    assert.equal(w[5], 0);
    for (let n = 0; n < 2; n++) {
      // one of the twin weights is gone and the other carries the sum
      const [a, b] = [w[n]!, w[2 + n]!];
      assert.ok(a === 0 || b === 0);
      assert.ok(Math.abs(a + b - (W[n]! + W[2 + n]!)) < 0.05, `${a} + ${b}`);
      assert.ok(Math.abs(w[6 + n]! - W[6 + n]!) < 0.05);
    }
    assert.ok(layer.reconstructionError! < 1e-3, String(layer.reconstructionError));
    // Wanda cannot compensate: its error is far larger on the same layer
    const other = matmulModel(4, 2, W);
    const wanda = await wandaPrunePass.run(other, { sparsity: 0.5, data: memoryDataset('x', [4], rows(32)) }, createPassContext());
    assert.ok((wanda.details!['layers'] as LayerResult[])[0]!.reconstructionError! > 0.05);
  });

  it('N:M along K, across several column blocks, with progress per layer', async () => {
    const k = 40, n = 5;
    const w = Float32Array.from({ length: k * n }, (_, i) => Math.sin(i * 0.37) + 0.05);
    const model = matmulModel(k, n, w);
    const samples = Array.from({ length: 64 }, (_, i) => Float32Array.from({ length: k }, (_, j) => Math.cos(i * 1.1 + j * j * 0.3)));
    const phases: string[] = [];
    const report = await sparseGptPrunePass.run(model, { pattern: '2:4', blockSize: 6, data: memoryDataset('x', [k], samples) }, createPassContext({ progress: (p) => phases.push(p) }));
    const out = model.graph.initializers.get('W')!.toFloat32();
    for (let col = 0; col < n; col++) for (let g = 0; g < k; g += 4) {
      assert.equal([0, 1, 2, 3].filter((t) => out[(g + t) * n + col] !== 0).length, 2);
    }
    assert.ok(phases.includes('calibrate') && phases.includes('prune'));
    const layer = (report.details!['layers'] as LayerResult[])[0]!;
    assert.equal(layer.sparsity, 0.5);
    assert.ok(layer.reconstructionError! < 0.5);
  });

  it('unstructured sparsity lands exactly on the target with blocks smaller than K', async () => {
    const k = 30, n = 7;
    const model = matmulModel(k, n, Float32Array.from({ length: k * n }, (_, i) => Math.sin(i * 0.91)));
    const samples = Array.from({ length: 50 }, (_, i) => Float32Array.from({ length: k }, (_, j) => Math.sin(i * 0.7 + j * 1.3)));
    const report = await sparseGptPrunePass.run(model, { sparsity: 0.7, blockSize: 8, data: memoryDataset('x', [k], samples) }, createPassContext());
    const layer = (report.details!['layers'] as LayerResult[])[0]!;
    assert.equal(layer.zeros, Math.round(0.7 * k * n));
  });

  it('splits rows over threads with the same bits as one thread, unstructured and 2:4', async () => {
    const [rows, k, n] = [300, 400, 500]; // large enough for the factor and the row updates to split
    const x = seededGaussian(n * k, 3);
    const xtx = new Float64Array(k * k);
    for (let r = 0; r < n; r++) for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) xtx[i * k + j] = xtx[i * k + j]! + x[r * k + i]! * x[r * k + j]!;
    const stats = { k, xtx, rows: n, sqNorm: new Float64Array(k), sum: new Float64Array(k) };
    const saved = process.env.WHITTLE_CPU_THREADS;
    try {
      for (const target of [{ kind: 'unstructured' as const, sparsity: 0.5 }, { kind: 'nm' as const, n: 2, m: 4 }]) {
        const pruned: Float64Array[] = [];
        for (const threads of ['1', '3']) {
          process.env.WHITTLE_CPU_THREADS = threads;
          const w = Float64Array.from(seededGaussian(rows * k, 4));
          await sparseGptPruneGroup(w, rows, k, k, stats, target, { percdamp: 0.01, blockSize: 128 }, () => {});
          pruned.push(w);
        }
        assert.equal(pruned[0]!.filter((v) => v === 0).length, rows * k / 2, target.kind);
        assert.deepEqual(pruned[1], pruned[0], `${target.kind}: 3 threads = 1 thread`);
      }
    } finally {
      if (saved === undefined) delete process.env.WHITTLE_CPU_THREADS;
      else process.env.WHITTLE_CPU_THREADS = saved;
    }
  });

  it('on the GPU where there is one: the CPU path\'s result; without one, --ep webgpu is a clear error and auto falls back with a warning', async () => {
    const k = 24, n = 6;
    const w = Float32Array.from({ length: k * n }, (_, i) => Math.sin(i * 0.71) + 0.1);
    const samples = Array.from({ length: 48 }, (_, i) => Float32Array.from({ length: k }, (_, j) => Math.cos(i * 0.9 + j * 0.4) + (j % 5) * 0.2));
    const prune = async (compute: 'cpu' | 'gpu' | 'auto') => {
      const model = matmulModel(k, n, w);
      const warnings: string[] = [];
      const report = await sparseGptPrunePass.run(model, { sparsity: 0.5, compute, data: memoryDataset('x', [k], samples) }, createPassContext({ warn: (m) => warnings.push(m) }));
      return { w: model.graph.initializers.get('W')!.toFloat32(), warnings, compute: report.details!['compute'] };
    };
    const cpu = await prune('cpu');
    assert.equal(cpu.compute, 'cpu');
    const { computeStatus } = await import('../../../native-models/gpu/device.ts');
    const status = await computeStatus();
    if (!status.adapter) {
      await assert.rejects(prune('gpu'), (e: Error & { code?: string }) => e.code === 'UNSUPPORTED' && /^SparseGPT on the GPU: /.test(e.message));
      const auto = await prune('auto');
      assert.ok(auto.warnings.some((m) => /^SparseGPT runs on the CPU: /.test(m)), auto.warnings.join('\n'));
      assert.deepEqual(auto.w, cpu.w);
      return;
    }
    const gpu = await prune('gpu');
    assert.notEqual(gpu.compute, 'cpu');
    const maskSame = cpu.w.filter((v, i) => (v === 0) === (gpu.w[i] === 0)).length;
    assert.equal(maskSame, cpu.w.length, 'the same weights pruned');
    for (let i = 0; i < cpu.w.length; i++) assert.ok(Math.abs(cpu.w[i]! - gpu.w[i]!) < 1e-4 * (1 + Math.abs(cpu.w[i]!)), `weight ${i}: ${cpu.w[i]} vs ${gpu.w[i]}`);
  });
});
