import type { Tensor } from '../../../../native-models/ir/tensor.ts';
import type { Analysis, Contribution } from './analyze.ts';
import type { ChannelGroups } from './groups.ts';

/**
 * Which channels each group keeps: importance from the producers' output-channel weight norms
 * (summed over the group's members), scaled by |γ/√(σ²+ε)| of the BatchNormalizations that follow
 * when asked; the kept count is the group's share rounded to a multiple of `roundTo`.
 */

export type Importance = 'l1' | 'l2';

export interface GroupChoice {
  root: number;
  channels: number;
  importance: Float64Array;
  keep: number;
  kept: Set<number>;
  sparsity: number;
}

/** Norm of each slice of `tensor` along `axis`. */
export function channelNorms(tensor: Tensor, axis: number, kind: Importance): Float64Array {
  const data = tensor.toFloat32();
  const dims = tensor.dims;
  const n = dims[axis]!;
  let inner = 1;
  for (let i = axis + 1; i < dims.length; i++) inner *= dims[i]!;
  const outer = data.length / (n * inner);
  const out = new Float64Array(n);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < n; c++) {
      const base = (o * n + c) * inner;
      let s = 0;
      for (let k = 0; k < inner; k++) { const v = data[base + k]!; s += kind === 'l1' ? Math.abs(v) : v * v; }
      out[c]! += s;
    }
  }
  if (kind === 'l2') for (let c = 0; c < n; c++) out[c] = Math.sqrt(out[c]!);
  return out;
}

function perPosition(c: Contribution, kind: Importance): Float64Array {
  if (c.kind === 'norm') return channelNorms(c.tensor, c.axis, kind);
  const gamma = c.tensor.toFloat32();
  const variance = c.extra!.variance.toFloat32();
  return Float64Array.from(gamma, (g, i) => Math.abs(g) / Math.sqrt(variance[i]! + c.extra!.epsilon));
}

/** Importance per channel of every group root. */
export function groupImportance(analysis: Analysis, kind: Importance, bnScale: boolean): Map<number, Float64Array> {
  const { groups } = analysis;
  const sums = new Map<number, Float64Array>();
  const scales = new Map<number, Float64Array>();
  const seen = new Map<number, Float64Array>();
  for (const s of groups.sources) {
    const r = groups.find(s.id);
    if (!sums.has(r)) { sums.set(r, new Float64Array(s.channels)); scales.set(r, new Float64Array(s.channels).fill(1)); seen.set(r, new Float64Array(s.channels)); }
  }
  for (const c of analysis.contributions) {
    if (c.kind === 'bnScale' && !bnScale) continue;
    const values = perPosition(c, kind);
    let offset = 0;
    for (const seg of c.layout.segments) {
      if (seg.source !== null) {
        const r = groups.find(seg.source);
        for (let i = 0; i < seg.len; i++) {
          const ch = seg.start + i;
          if (c.kind === 'norm') sums.get(r)![ch]! += values[offset + i]!;
          else { scales.get(r)![ch]! *= values[offset + i]!; seen.get(r)![ch]! += 1; }
        }
      }
      offset += seg.len;
    }
  }
  const out = new Map<number, Float64Array>();
  for (const [r, sum] of sums) {
    const scale = scales.get(r)!;
    const count = seen.get(r)!;
    // a channel seen by several BNs takes the geometric mean of their scales
    out.set(r, sum.map((v, i) => (count[i]! > 0 ? v * scale[i]! ** (1 / count[i]!) : v)));
  }
  return out;
}

/** The kept count for a fraction removed: a multiple of roundTo (nearest), at least roundTo and 1, at most all. */
export function roundedKeep(channels: number, sparsity: number, roundTo: number): number {
  if (sparsity <= 0 || channels <= roundTo) return channels;
  const raw = channels * (1 - sparsity);
  const rounded = Math.round(raw / roundTo) * roundTo;
  return Math.min(channels, Math.max(rounded, roundTo, 1));
}

/** Indices of the `keep` most important channels, ascending (ties keep the lower index). */
export function topChannels(importance: Float64Array, keep: number): Set<number> {
  const order = Array.from(importance.keys()).sort((a, b) => importance[b]! - importance[a]! || a - b);
  return new Set(order.slice(0, keep).sort((a, b) => a - b));
}

/**
 * Per-group (`group` scope): each prunable group loses its own `sparsity` share. Global scope: the
 * channels of all groups are ranked together by importance divided by their group's mean (raw
 * norms differ by orders of magnitude between layers), and the least important share is removed.
 * A per-group override wins in both scopes.
 */
export function chooseChannels(
  groups: ChannelGroups,
  importance: Map<number, Float64Array>,
  sparsity: number,
  overrideOf: (root: number) => number | undefined,
  roundTo: number,
  scope: 'group' | 'global',
): Map<number, GroupChoice> {
  const roots = [...importance.keys()].filter((r) => !groups.isPinned(r)).sort((a, b) => a - b);
  const target = new Map<number, number>();
  if (scope === 'global') {
    const all: { r: number; v: number }[] = [];
    for (const r of roots) {
      const imp = importance.get(r)!;
      const mean = imp.reduce((a, b) => a + b, 0) / imp.length || 1;
      for (const v of imp) all.push({ r, v: v / mean });
    }
    all.sort((a, b) => a.v - b.v || a.r - b.r);
    const removed = new Map<number, number>();
        for (const x of all.slice(0, Math.floor(all.length * sparsity))) removed.set(x.r, (removed.get(x.r) ?? 0) + 1);
    for (const r of roots) target.set(r, overrideOf(r) ?? (removed.get(r) ?? 0) / importance.get(r)!.length);
  } else for (const r of roots) target.set(r, overrideOf(r) ?? sparsity);
  const out = new Map<number, GroupChoice>();
  for (const r of roots) {
    const imp = importance.get(r)!;
    const keep = roundedKeep(imp.length, target.get(r)!, roundTo);
    out.set(r, { root: r, channels: imp.length, importance: imp, keep, kept: topChannels(imp, keep), sparsity: target.get(r)! });
  }
  return out;
}
