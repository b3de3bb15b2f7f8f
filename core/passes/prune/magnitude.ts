import { WhittleError } from '../../../api/errors.ts';
import type { Model } from '../../../native-models/ir/model.ts';
import { tensorBytes, type Pass, type PassContext, type PassReport } from '../pass.ts';
import { prunableWeights, requirePrunable, zeroMasked, type PrunableOptions, type PrunableSet, type PrunableWeight } from './prunable.ts';
import type { GpuDevice } from '../../../native-models/gpu/device.ts';
import { openComputeDevice, type ComputeChoice } from '../compute.ts';
import { kthSmallestGpu } from '../../../native-models/gpu/kernels-gpu.ts';

/**
 * Unstructured magnitude pruning: the weights of smallest |w| become zero until the target share of
 * each layer ('layer' scope) or of all prunable weights together ('global' scope: one threshold) is
 * zero. Ties at the threshold are broken by position (lower index first; in global scope, earlier
 * layers first), so the same model and options always zero the same weights. Weights that are
 * already zero count towards the target. The tensors stay dense: see sparsity-report.ts for what
 * that saves.
 */
export interface MagnitudeOptions extends PrunableOptions {
  /** Share of weights to zero, in [0, 1). */
  sparsity: number;
  /** 'layer' (default): every layer to the target; 'global': one threshold across layers. */
  scope?: 'layer' | 'global' | undefined;
  /** Per-layer targets by node name (layer scope only): see layerTargets. */
  layerSparsity?: Record<string, number> | undefined;
  /**
   * Where the thresholds are found: 'cpu' (default: a quickselect), 'gpu' (a radix select on the
   * WebGPU compute device; an error when there is none) or 'auto' (the GPU when usable, else the CPU
   * with a warning). Both zero exactly the same weights: the selection is exact and ties are broken
   * by position either way.
   */
  compute?: ComputeChoice | undefined;
  /** With the GPU: selections over fewer weights than this stay on the CPU (default 2¹⁸; tests set 0). */
  gpuSelectMin?: number | undefined;
}

/** One pruned layer in the report; `sparsity` is measured by counting zeros afterwards. */
export interface PrunedLayer {
  name: string;
  op: string;
  weight: string;
  parameters: number;
  zerosBefore: number;
  zeros: number;
  sparsity: number;
}

export interface PruneSummary {
  method: string;
  /** Elements of the pruned layers, and how many of them are zero afterwards. */
  parameters: number;
  zeros: number;
  sparsity: number;
  layers: PrunedLayer[];
  skipped: PrunableSet['skipped'];
}

export function checkSparsity(passName: string, sparsity: unknown): number {
  if (typeof sparsity !== 'number' || !Number.isFinite(sparsity) || sparsity < 0 || sparsity >= 1) {
    throw new WhittleError('BAD_USAGE', `${passName}: sparsity must be a number in [0, 1), got ${String(sparsity)}`);
  }
  return sparsity;
}

/**
 * Each prunable layer's target: its entry in a per-layer plan (node name → sparsity, as `whittle
 * analyze --for prune` recommends), else `sparsity`. A plan naming a node that is not a prunable
 * layer of this model is refused, naming it: a plan made for another model (or with other
 * exclusions) would otherwise be applied only in part without a word.
 */
export function layerTargets(passName: string, layers: readonly PrunableWeight[], skipped: PrunableSet['skipped'], sparsity: number, plan: Record<string, number> | undefined): number[] {
  if (!plan) return layers.map(() => sparsity);
  const names = new Set(layers.map((w) => w.node.label));
  const unknown = Object.keys(plan).filter((n) => !names.has(n));
  if (unknown.length) {
    const why = (n: string) => skipped.find((s) => s.node === n)?.detail ?? 'no prunable layer of this model has that name';
    throw new WhittleError('BAD_USAGE', `${passName}: the per-layer plan names ${unknown.length} layer(s) it cannot prune: ${unknown.slice(0, 3).map((n) => `${n} (${why(n)})`).join('; ')}${unknown.length > 3 ? ', …' : ''}`);
  }
  return layers.map((w) => {
    const s = plan[w.node.label];
    return s === undefined ? sparsity : checkSparsity(`${passName}: ${w.node.label}`, s);
  });
}

export const magnitudePrunePass: Pass<MagnitudeOptions> = {
  name: 'prune-magnitude',
  async run(model: Model, options: MagnitudeOptions, ctx: PassContext): Promise<PassReport> {
    const target = checkSparsity(this.name, options.sparsity);
    const scope = options.scope ?? 'layer';
    if (scope !== 'layer' && scope !== 'global') throw new WhittleError('BAD_USAGE', `${this.name}: scope must be 'layer' or 'global', got ${String(scope)}`);
    if (options.minParameters !== undefined && !(options.minParameters >= 0)) {
      throw new WhittleError('BAD_USAGE', `${this.name}: minParameters must be ≥ 0, got ${String(options.minParameters)}`);
    }
    if (options.layerSparsity && scope === 'global') throw new WhittleError('BAD_USAGE', `${this.name}: a per-layer plan sets each layer's sparsity; it does not go with one global threshold (scope 'global')`);
    const set = prunableWeights(model, options);
    requirePrunable(set, this.name);
    const targets = layerTargets(this.name, set.layers, set.skipped, target, options.layerSparsity);
    const bytesBefore = tensorBytes(model);
    const gpu = await openComputeDevice('Magnitude pruning', options.compute, (m) => ctx.warn(m));
    const gpuMin = options.gpuSelectMin ?? GPU_SELECT_MIN;
    try {
      const globalOnGpu = scope === 'global' && gpu !== null && total(set.layers) >= gpuMin;
      const global = scope === 'global' ? await globalThreshold(set.layers, target, ctx, globalOnGpu ? gpu : null) : null;
      let ties = global?.ties ?? 0;
      let selectionsOnGpu = globalOnGpu ? 1 : 0;
      const { layers, changed } = await zeroLayerMasks(set, ctx, async (w, i) => {
        if (global) {
          const mask = new Uint8Array(w.parameters);
          if (global.everything) return mask.fill(1);
          ties = markSmallest(magnitudes(w), global.threshold, ties, mask);
          return mask;
        }
        const k = Math.round(targets[i]! * w.parameters);
        if (gpu && w.parameters >= gpuMin) { selectionsOnGpu++; return smallestMaskGpu(gpu, magnitudes(w), k); }
        return smallestMask(magnitudes(w), k);
      });
      return pruneReport(this.name, 'magnitude', set, layers, changed, bytesBefore, tensorBytes(model), ctx, [], {
        scope, target, ...(options.layerSparsity ? { layerSparsity: options.layerSparsity } : {}), ...(gpu ? { compute: computeSummary(gpu.name, selectionsOnGpu, scope === 'global' ? 1 : set.layers.length, gpuMin) } : {}),
      });
    } finally {
      gpu?.destroy();
    }
  },
};

/**
 * Below this many weights a selection stays on the CPU even when the GPU is asked for: the upload and
 * the four read-backs of the radix select cost more than the quickselect (≈ 25 ns a weight here).
 * The mask is the same either way.
 */
const GPU_SELECT_MIN = 1 << 18;

/** Where the selections ran, for the report: small ones stay on the CPU (GPU_SELECT_MIN). */
function computeSummary(device: string, onGpu: number, selections: number, min: number): string {
  if (onGpu === selections) return device;
  const under = `under ${min.toLocaleString('en-US')} weights, where the CPU is quicker`;
  return onGpu === 0 ? `cpu (every selection ${under})` : `${device}: ${onGpu} of ${selections} layers (the rest ${under})`;
}

/** |w| of every stored element as float32 (fp16 and bf16 exactly; float64 rounded, ties then broken by index). */
export function magnitudes(w: PrunableWeight): Float32Array {
  const v = w.tensor.toFloat32();
  for (let i = 0; i < v.length; i++) v[i] = Math.abs(v[i]!);
  return v;
}

/**
 * A mask of the `k` smallest values, ties taken in index order: the first k of a stable sort by value,
 * found by a selection (the k-th smallest, then one pass) instead of a sort — magnitude thresholds on
 * layers of 10⁸ weights, SparseGPT's adaptive mask over each block (0.2 s → 10 ms for 262,144 scores),
 * Wanda's per-row and per-layer choices. NaN never counts as small (with fewer than k other values,
 * nothing is masked, as a sort that puts NaN last would have it).
 */
export function smallestMask(values: Float32Array | Float64Array, k: number): Uint8Array {
  const mask = new Uint8Array(values.length);
  if (k <= 0) return mask;
  if (k >= values.length) return mask.fill(1);
  const { value: threshold, below } = kthSmallest(values, k - 1);
  if (threshold !== threshold) return mask;
  markSmallest(values, threshold, k - below, mask);
  return mask;
}

/** smallestMask with the selection on the GPU (kthSmallestGpu): the same mask. */
export async function smallestMaskGpu(gpu: GpuDevice, values: Float32Array, k: number): Promise<Uint8Array> {
  const mask = new Uint8Array(values.length);
  if (k <= 0) return mask;
  if (k >= values.length) return mask.fill(1);
  const { value: threshold, below } = await kthSmallestGpu(gpu, [values], k - 1);
  if (threshold !== threshold) return mask;
  markSmallest(values, threshold, k - below, mask);
  return mask;
}

/**
 * Marks the values below `threshold` and the first `ties` equal to it, in index order; returns the
 * ties left for what comes next (a global threshold's next layer).
 */
function markSmallest(values: Float32Array | Float64Array, threshold: number, ties: number, mask: Uint8Array): number {
  for (let i = 0; i < values.length; i++) {
    const a = values[i]!;
    if (a < threshold) mask[i] = 1;
    else if (a === threshold && ties > 0) { mask[i] = 1; ties--; }
  }
  return ties;
}

/**
 * The k-th smallest (0-based) of the non-NaN values and how many values are below it (NaN, 0 when
 * there are not that many): a quickselect with three-way partitions (many equal scores, zeros above
 * all, stay linear) on a copy, falling back to a sort of what is left if the partitions keep coming
 * out lopsided. Everything left of the range still searched is below everything in it, so `below` is
 * where the value's run of equals starts.
 */
export function kthSmallest(values: Float32Array | Float64Array, k: number, partitions?: number): { value: number; below: number } {
  const a = values instanceof Float32Array ? new Float32Array(values.length) : new Float64Array(values.length);
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v === v) a[n++] = v;
  }
  if (k >= n) return { value: NaN, below: 0 };
  let lo = 0;
  let hi = n - 1;
  // `partitions`: how many before the sort takes over (tests force it)
  let budget = partitions ?? 2 * Math.ceil(Math.log2(n + 1)) + 16;
  while (lo < hi) {
    if (budget-- === 0) {
      const rest = a.subarray(lo, hi + 1).sort();
      const value = rest[k - lo]!;
      let first = k - lo;
      while (first > 0 && rest[first - 1] === value) first--;
      return { value, below: lo + first };
    }
    const x = a[lo]!;
    const y = a[(lo + hi) >>> 1]!;
    const z = a[hi]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
    // [lo, lt) < pivot, [lt, i) = pivot, (gt, hi] > pivot
    let lt = lo;
    let i = lo;
    let gt = hi;
    while (i <= gt) {
      const v = a[i]!;
      if (v < pivot) { a[i] = a[lt]!; a[lt] = v; lt++; i++; }
      else if (v > pivot) { a[i] = a[gt]!; a[gt] = v; gt--; }
      else i++;
    }
    if (k < lt) hi = lt - 1;
    else if (k > gt) lo = gt + 1;
    else return { value: pivot, below: lt };
  }
  return { value: a[k]!, below: k };
}

/**
 * One threshold over every layer: the k smallest |w| of them all, ties taken in layer order, then
 * index order. `everything` when k covers every weight (NaN ones too, as a sort would).
 */
interface GlobalThreshold { threshold: number; ties: number; everything: boolean }

/**
 * The global threshold without a concatenated copy of every magnitude (a 7 B-parameter model would
 * need 28 GB for it): on the CPU an exact radix select over the bits of |w| (non-negative floats order
 * as their bit patterns, NaN above +∞), two passes of 65,536-bin histograms over the layers, each
 * layer's |w| made again per pass and dropped; on the GPU the same select over uploaded pieces
 * (kthSmallestGpu). The masks are then made layer by layer (markSmallest, the ties carried over).
 */
async function globalThreshold(layers: readonly PrunableWeight[], target: number, ctx: PassContext, gpu: GpuDevice | null): Promise<GlobalThreshold> {
  const all = total(layers);
  const k = Math.round(target * all);
  if (k <= 0) return { threshold: -Infinity, ties: 0, everything: false };
  if (k >= all) return { threshold: Infinity, ties: 0, everything: true };
  const { value, below } = gpu
    ? await kthSmallestGpu(gpu, (function* () { for (const w of layers) { ctx.checkpoint(); yield magnitudes(w); } })(), k - 1)
    : kthSmallestMagnitude(layers, k - 1, ctx);
  return value !== value ? { threshold: -Infinity, ties: 0, everything: false } : { threshold: value, ties: k - below, everything: false };
}

/**
 * The k-th smallest (0-based) |w| over the layers and how many are below it, as kthSmallest gives it
 * for their concatenation (NaN, 0 below, when fewer than k + 1 are not NaN): a radix select on the
 * float32 bits, high 16 then low 16.
 */
export function kthSmallestMagnitude(layers: readonly PrunableWeight[], k: number, ctx: PassContext): { value: number; below: number } {
  // counts in float64: a model may hold more than 2³² weights
  const counts = new Float64Array(65536);
  let rank = k;
  let high = -1;
  for (const pass of [0, 1]) {
    counts.fill(0);
    for (const w of layers) {
      ctx.checkpoint();
      const v = magnitudes(w);
      const bits = new Uint32Array(v.buffer, v.byteOffset, v.length);
      if (pass === 0) {
        for (let i = 0; i < bits.length; i++) { const j = bits[i]! >>> 16; counts[j] = counts[j]! + 1; }
      } else {
        for (let i = 0; i < bits.length; i++) { const b = bits[i]!; if (b >>> 16 === high) counts[b & 0xffff] = counts[b & 0xffff]! + 1; }
      }
    }
    let bin = 0;
    for (; bin < 65535 && rank >= counts[bin]!; bin++) rank -= counts[bin]!;
    if (rank >= counts[bin]!) return { value: NaN, below: 0 }; // k past every value
    if (pass === 0) high = bin;
    else {
      const value = new Float32Array(Uint32Array.of(((high << 16) | bin) >>> 0).buffer)[0]!;
      return value !== value ? { value: NaN, below: 0 } : { value, below: k - rank };
    }
  }
  throw new Error('unreachable');
}

const total = (layers: readonly PrunableWeight[]) => layers.reduce((n, w) => n + w.parameters, 0);

/**
 * Zeroes each prunable layer's mask (from `maskOf`, in layer order), with progress and cancellation
 * between layers; the layers as pruned and how many changed.
 */
export async function zeroLayerMasks(set: PrunableSet, ctx: PassContext, maskOf: (w: PrunableWeight, i: number) => Uint8Array | Promise<Uint8Array>): Promise<{ layers: PrunedLayer[]; changed: number }> {
  const layers: PrunedLayer[] = [];
  let changed = 0;
  for (let i = 0; i < set.layers.length; i++) {
    ctx.checkpoint();
    ctx.progress('prune', i, set.layers.length);
    const w = set.layers[i]!;
    const zerosBefore = w.tensor.countZeros();
    const zeros = zeroMasked(w.tensor, await maskOf(w, i));
    if (zeros !== zerosBefore) changed++;
    layers.push(prunedLayer(w, zerosBefore, zeros));
  }
  ctx.progress('prune', set.layers.length, set.layers.length);
  return { layers, changed };
}

export function prunedLayer(w: PrunableWeight, zerosBefore: number, zeros: number): PrunedLayer {
  return { name: w.node.label, op: w.node.opType, weight: w.weightName, parameters: w.parameters, zerosBefore, zeros, sparsity: w.parameters ? zeros / w.parameters : 0 };
}

/** The PassReport every pruning pass returns: per-layer and overall sparsity counted after the edit. */
export function pruneReport(
  pass: string, method: string, set: PrunableSet, layers: PrunedLayer[], changed: number,
  bytesBefore: number, bytesAfter: number, ctx: PassContext, warnings: string[], extra: Record<string, unknown> = {},
): PassReport {
  // layers skipped because they cannot be pruned (not for the options' sake) are worth a warning
  for (const s of set.skipped) {
    if (s.reason !== 'not-float' && s.reason !== 'shape') continue;
    warnings.push(s.detail);
    ctx.warn(s.detail);
  }
  const parameters = layers.reduce((n, l) => n + l.parameters, 0);
  const zeros = layers.reduce((n, l) => n + l.zeros, 0);
  const summary: PruneSummary = { method, parameters, zeros, sparsity: parameters ? zeros / parameters : 0, layers, skipped: set.skipped };
  return {
    pass,
    nodesChanged: changed,
    bytesBefore,
    bytesAfter,
    excluded: set.skipped.map((s) => s.node),
    warnings,
    details: { ...extra, ...summary },
  };
}
