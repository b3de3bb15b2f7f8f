import type { PruneStep, QuantizeStep } from '../../../api/recipe.ts';
import type { InspectReport, LayerRow } from '../../../api/schemas.ts';

/**
 * A rough size of the model after a recipe, from the inspect report: each layer's weights ×
 * bytes per weight after every step, plus everything else in the file unchanged. It ignores
 * scales and zero points beyond weight-only blocks, fused nodes and protobuf overhead — the
 * Compress view says it is an estimate.
 */

export type EstimateStep = { quantize: QuantizeStep } | { prune: PruneStep };

export interface SizeEstimate {
  bytesBefore: number;
  bytesAfter: number;
  weightBytesBefore: number;
  weightBytesAfter: number;
  /** Layers whose storage the recipe changes. */
  layersChanged: number;
  /** Short notes on what the estimate leaves out, for the UI. */
  notes: string[];
}

const BITS: Record<string, number> = {
  float64: 64, float32: 32, float16: 16, bfloat16: 16, int32: 32, uint32: 32, int16: 16, uint16: 16,
  int8: 8, uint8: 8, float8e4m3fn: 8, float8e5m2: 8, int4: 4, uint4: 4, int2: 2, uint2: 2,
};

function bytesPerWeight(dtype: string): number {
  return (BITS[dtype] ?? 32) / 8;
}

function isFloat(dtype: string): boolean {
  return dtype.startsWith('float') || dtype === 'bfloat16';
}

interface LayerState {
  row: LayerRow;
  /** bytes per weight now */
  bpw: number;
  float: boolean;
  /** fraction of the layer's weights still stored (channel pruning removes some) */
  kept: number;
}

function excludedBy(row: LayerRow, exclude: readonly string[]): boolean {
  return exclude.includes(row.name) || exclude.includes(row.op);
}

const STATIC_OPS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);
const WEIGHT_ONLY_OPS = new Set(['MatMul', 'Gemm']);
const CHANNEL_OPS = new Set(['Conv', 'Gemm', 'MatMul', 'ConvTranspose']);

export function estimateSize(report: InspectReport, steps: readonly EstimateStep[]): SizeEstimate {
  const layers: LayerState[] = report.layers.map((row) => ({ row, bpw: bytesPerWeight(row.dtype), float: isFloat(row.dtype), kept: 1 }));
  const weightBytesBefore = layers.reduce((s, l) => s + l.row.parameters * l.bpw, 0);
  const notes: string[] = [];
  const changed = new Set<LayerState>();

  for (const step of steps) {
    if ('quantize' in step) {
      const q = step.quantize;
      for (const l of layers) {
        if (!l.float || excludedBy(l.row, q.exclude)) continue;
        let bpw: number | null = null;
        switch (q.method) {
          case 'dynamic':
            if (l.row.op === 'MatMul' || l.row.op === 'Gemm' || (q.includeConv && l.row.op === 'Conv')) bpw = 1;
            break;
          case 'static':
            if (STATIC_OPS.has(l.row.op)) bpw = 1;
            break;
          case 'fp16':
            bpw = Math.min(l.bpw, 2);
            break;
          case 'uint8':
          case 'uint16':
            bpw = q.method === 'uint8' ? 1 : 2;
            break;
          case 'int4':
          case 'int8-weight': {
            if (!WEIGHT_ONLY_OPS.has(l.row.op)) break;
            const base = q.method === 'int4' ? 0.5 : 1;
            const zeroPoint = q.symmetric ? 0 : base; // one zero point per block when asymmetric
            bpw = base + (4 + zeroPoint) / q.blockSize;
            break;
          }
        }
        if (bpw !== null && bpw !== l.bpw) {
          l.bpw = bpw;
          l.float = q.method === 'fp16';
          changed.add(l);
        }
      }
    } else {
      const p = step.prune;
      if (p.method === 'channel') {
        for (const l of layers) {
          if (!CHANNEL_OPS.has(l.row.op) || excludedBy(l.row, p.exclude)) continue;
          l.kept *= 1 - p.sparsity;
          changed.add(l);
        }
        notes.push('channel pruning also shrinks the next layer’s inputs; the estimate counts output channels only');
      } else if (p.method === 'heads') {
        // each block's q/k/v columns and o_proj rows of the removed heads (exact, from the inspect report)
        const blocks = report.attention ?? [];
        for (const b of blocks) {
          const members = layers.filter((l) => b.layers.includes(l.row.name));
          if (members.some((l) => excludedBy(l.row, p.exclude))) continue;
          // by whole groups under grouped-query attention (kvHeads groups of heads / kvHeads query heads)
          const groups = b.kvHeads ?? b.heads;
          const removed = Math.min(groups - 1, Math.round(groups * p.sparsity)) * (b.heads / groups);
          for (const l of members) {
            l.kept *= (b.heads - removed) / b.heads;
            if (removed) changed.add(l);
          }
        }
        if (!blocks.length) notes.push('no multi-head attention block was found in this model: head pruning would stop with an error');
      } else {
        notes.push(`${p.method} pruning stores zeros densely: the file keeps its size (it compresses well, and sparse kernels can use it)`);
      }
    }
  }

  const weightBytesAfter = layers.reduce((s, l) => s + l.row.parameters * l.kept * l.bpw, 0);
  const rest = Math.max(0, report.bytes - weightBytesBefore);
  return {
    bytesBefore: report.bytes,
    bytesAfter: Math.round(rest + weightBytesAfter),
    weightBytesBefore,
    weightBytesAfter,
    layersChanged: changed.size,
    notes: [...new Set(notes)],
  };
}
