import type { Node } from '../../../../native-models/ir/model.ts';

/**
 * The bookkeeping of channel dependency groups. A *source* is a layer whose output channels can be
 * removed (a Conv or Gemm with a stored weight). Every activation that carries source channels gets
 * a *layout*: which source channels sit at which positions along its channel axis (axis 1). Concat
 * lays layouts end to end; residual Add/Mul joins two sources into one group (union-find), so they
 * keep the same channel indices. A group that reaches something we cannot rewrite is pinned.
 */

/** A run of channels along the channel axis: channels [start, start+len) of a source, or `len` fixed channels. */
export interface Segment {
  source: number | null;
  start: number;
  len: number;
}

export interface Layout {
  segments: Segment[];
  /** Rank of the tensor the layout describes (the channel axis is 1; 0 when `last`: not known). */
  rank: number;
  /** Set after Flatten/Reshape: each channel became a block of H·W features (the block is resolved by the consumer). */
  flat: boolean;
  /**
   * Channels on the last axis, of a tensor of any rank: a MatMul's outputs ([tokens…, N], as in a
   * transformer's MLP), which only element-wise ops and the next MatMul's K follow.
   */
  last?: boolean;
}

export interface Source {
  id: number;
  node: Node;
  channels: number;
}

export function layoutLength(layout: Layout): number {
  let n = 0;
  for (const s of layout.segments) n += s.len;
  return n;
}

export function hasSources(layout: Layout): boolean {
  return layout.segments.some((s) => s.source !== null);
}

export class ChannelGroups {
  readonly sources: Source[] = [];
  private parent: number[] = [];
  private reasons = new Map<number, string[]>();

  addSource(node: Node, channels: number): Source {
    const source: Source = { id: this.sources.length, node, channels };
    this.sources.push(source);
    this.parent.push(source.id);
    return source;
  }

  fullLayout(source: Source, rank: number): Layout {
    return { segments: [{ source: source.id, start: 0, len: source.channels }], rank, flat: false };
  }

  find(id: number): number {
    let r = id;
    while (this.parent[r] !== r) r = this.parent[r]!;
    for (let i = id; this.parent[i] !== r;) { const next = this.parent[i]!; this.parent[i] = r; i = next; }
    return r;
  }

  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return;
    const [keep, gone] = ra < rb ? [ra, rb] : [rb, ra];
    this.parent[gone] = keep;
    const moved = this.reasons.get(gone);
    if (moved) {
      this.reasons.set(keep, [...(this.reasons.get(keep) ?? []), ...moved]);
      this.reasons.delete(gone);
    }
  }

  pin(id: number, reason: string): void {
    const r = this.find(id);
    const list = this.reasons.get(r) ?? [];
    if (!list.includes(reason)) list.push(reason);
    this.reasons.set(r, list);
  }

  pinLayout(layout: Layout, reason: string): void {
    for (const s of layout.segments) if (s.source !== null) this.pin(s.source, reason);
  }

  pinnedReasons(id: number): string[] {
    return this.reasons.get(this.find(id)) ?? [];
  }

  isPinned(id: number): boolean {
    return this.pinnedReasons(id).length > 0;
  }

  /** Group roots with their member sources, in source order (deterministic). */
  classes(): Map<number, Source[]> {
    const out = new Map<number, Source[]>();
    for (const s of this.sources) {
      const r = this.find(s.id);
      const list = out.get(r);
      if (list) list.push(s); else out.set(r, [s]);
    }
    return out;
  }

  /**
   * Residual coupling: two layouts read element-wise must keep the same positions. Segments that
   * line up one-to-one and cover whole sources of the same size are joined; anything else (a
   * partial range, a source facing fixed channels, misaligned boundaries) pins what it touches.
   */
  couple(a: Layout, b: Layout, reason: string): void {
    if (layoutLength(a) !== layoutLength(b) || a.flat !== b.flat || a.segments.length !== b.segments.length) {
      this.pinLayout(a, reason);
      this.pinLayout(b, reason);
      return;
    }
    for (let i = 0; i < a.segments.length; i++) {
      const x = a.segments[i]!;
      const y = b.segments[i]!;
      if (x.source === null && y.source === null && x.len === y.len) continue;
      if (x.source !== null && y.source !== null && x.len === y.len && this.isWhole(x) && this.isWhole(y)) {
        this.union(x.source, y.source);
        continue;
      }
      for (const s of [x, y]) if (s.source !== null) this.pin(s.source, reason);
      if (x.len !== y.len) { this.pinLayout(a, reason); this.pinLayout(b, reason); return; }
    }
  }

  isWhole(s: Segment): boolean {
    return s.source !== null && s.start === 0 && s.len === this.sources[s.source]!.channels;
  }
}

/** The positions along an axis a layout keeps, each channel expanded to `block` consecutive positions. */
export function keptPositions(layout: Layout, block: number, kept: (source: number) => Set<number> | null): number[] {
  const out: number[] = [];
  let offset = 0;
  for (const s of layout.segments) {
    const keep = s.source === null ? null : kept(s.source);
    for (let c = 0; c < s.len; c++) {
      if (keep && !keep.has(s.start + c)) continue;
      for (let b = 0; b < block; b++) out.push((offset + c) * block + b);
    }
    offset += s.len;
  }
  return out;
}

/** Cuts [from, from+len) out of a layout; sources cut in the middle are returned so they can be pinned. */
export function cutLayout(layout: Layout, from: number, len: number): { layout: Layout; cutSources: number[] } {
  const segments: Segment[] = [];
  const cut: number[] = [];
  let offset = 0;
  for (const s of layout.segments) {
    const lo = Math.max(from, offset);
    const hi = Math.min(from + len, offset + s.len);
    if (lo < hi) {
      const piece = { source: s.source, start: s.start + (lo - offset), len: hi - lo };
      if (s.source !== null && piece.len !== s.len) cut.push(s.source);
      segments.push(piece);
    }
    offset += s.len;
  }
  return { layout: { ...layout, segments }, cutSources: cut };
}
