/** The Compress view's size estimate (estimate.ts) for attention-head pruning, grouped-query attention included. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PruneStep } from '../../../api/recipe.ts';
import type { InspectReport, LayerRow } from '../../../api/schemas.ts';
import { estimateSize } from './estimate.ts';

const row = (name: string, parameters: number): LayerRow => ({ name, op: 'MatMul', weight: `${name}.w`, shape: [parameters], parameters, zeros: 0, sparsity: 0, dtype: 'float32', bias: null, biasParameters: 0 });

function report(kvHeads?: number): InspectReport {
  const layers = [row('q', 128 * 128), row('k', 128 * 64), row('v', 128 * 64), row('o', 128 * 128)];
  return { bytes: layers.reduce((s, l) => s + 4 * l.parameters, 0), layers, attention: [{ block: 'o', heads: 4, headDim: 32, ...(kvHeads ? { kvHeads } : {}), layers: ['q', 'k', 'v', 'o'] }] } as unknown as InspectReport;
}

test('head pruning removes whole groups under grouped-query attention: 25 % of 2 groups is one group, half the heads', () => {
  const step = { prune: PruneStep.parse({ method: 'heads', sparsity: 0.25 }) };
  const plain = estimateSize(report(), [step]);
  const grouped = estimateSize(report(2), [step]);
  // 4 heads: round(4 · 0.25) = 1 head of 4 goes; 2 groups: round(2 · 0.25) = 1 group, 2 heads of 4
  assert.equal(plain.weightBytesAfter, plain.weightBytesBefore * 0.75);
  assert.equal(grouped.weightBytesAfter, grouped.weightBytesBefore * 0.5);
  assert.equal(grouped.layersChanged, 4);
});
