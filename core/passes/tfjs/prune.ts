import { WhittleError } from '../../../api/errors.ts';
import { describeTopology, weightBytes, type TfjsModel, type TfjsWeight, type WeightUse } from '../../../native-models/formats/tfjs/index.ts';
import { checkSparsity, smallestMask, type PrunedLayer } from '../prune/magnitude.ts';
import { nmMaskAlong } from '../prune/nm.ts';
import type { PassContext, PassReport } from '../pass.ts';
import { allFinite, checkNonNegativeInteger, exclusionMatcher, type TfjsPass } from './pass.ts';
import { exactZeroCode, storeQuantized } from './weight-quantization.ts';

/**
 * Magnitude and N:M pruning of TF.js models. The targets are the kernels of Dense, Conv1D/2D/3D,
 * SeparableConv2D and DepthwiseConv2D layers (graph models: the filter of Conv2D/DepthwiseConv2dNative
 * and the weight of MatMul), as topology.ts lays them out. Biases, BatchNormalization and the
 * constants a graph folds them into stay. Each pruned weight is stored the way it was: float32 as
 * float32, float16 as float16, and a uint8/uint16-quantized weight keeps its codes with the pruned
 * ones set to the code of exactly 0 (the converter nudges its range so that code exists); when it
 * does not, the weight is re-quantized the converter's way and a warning says so.
 */

export interface TfjsPruneOptions {
  exclude?: readonly string[] | undefined;
  /** Kernels with fewer elements are left alone (default 0). */
  minParameters?: number | undefined;
  /** Leave the first and the last kernel of the network (topology order) alone. */
  protectFirstLast?: boolean | undefined;
}

export interface TfjsMagnitudeOptions extends TfjsPruneOptions {
  sparsity: number;
  scope?: 'layer' | 'global' | undefined;
}

export interface TfjsNmOptions extends TfjsPruneOptions {
  n?: number | undefined;
  m?: number | undefined;
}

/** Said with every unstructured TF.js pruning result. */
export const TFJS_SPARSITY_NOTE =
  'Unstructured sparsity saves storage, not time: TF.js runs dense kernels, so the pruned model is as fast ' +
  'as the original. The saving shows once the files are compressed (see the deflated size; servers gzip shards).';

interface Target {
  use: WeightUse & { kernel: NonNullable<WeightUse['kernel']> };
  values: Float32Array;
}

function prunableTargets(model: TfjsModel, options: TfjsPruneOptions, ctx: PassContext, passName: string): { targets: Target[]; skipped: { weight: string; reason: string }[] } {
  const minParameters = checkNonNegativeInteger(passName, 'minParameters', options.minParameters ?? 0);
  const uses = describeTopology(model).uses;
  const isExcluded = exclusionMatcher(uses, options.exclude, ctx);
  const kernels = uses.filter((u): u is Target['use'] => u.kernel !== null);
  if (kernels.length === 0) throw new WhittleError('UNSUPPORTED', `${model.path}: no Dense, Conv or MatMul kernel to prune (the model's weights are ${[...new Set(uses.map((u) => u.op))].slice(0, 8).join(', ') || 'none'})`, { file: model.path });
  const protectedUses = options.protectFirstLast ? new Set([kernels[0], kernels[kernels.length - 1]]) : new Set();
  const targets: Target[] = [];
  const skipped: { weight: string; reason: string }[] = [];
  for (const use of kernels) {
    const name = use.weight.name;
    if (isExcluded(use)) { skipped.push({ weight: name, reason: 'excluded' }); continue; }
    if (protectedUses.has(use)) { skipped.push({ weight: name, reason: 'first-last' }); continue; }
    if (use.weight.elementCount < minParameters) { skipped.push({ weight: name, reason: 'too-small' }); continue; }
    const values = use.weight.toFloat32();
    if (!allFinite(values)) {
      ctx.warn(`${name}: holds NaN or Infinity; left unpruned`);
      skipped.push({ weight: name, reason: 'not-finite' });
      continue;
    }
    targets.push({ use, values });
  }
  if (targets.length === 0) throw new WhittleError('BAD_USAGE', `${passName}: every kernel is excluded, protected or below minParameters; nothing to prune`);
  return { targets, skipped };
}

function absolute(values: Float32Array): Float32Array {
  const abs = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) abs[i] = Math.abs(values[i]!);
  return abs;
}

function countZeros(values: Float32Array): number {
  let n = 0;
  for (let i = 0; i < values.length; i++) if (values[i] === 0) n++;
  return n;
}

/** Zeroes the masked values and stores the weight in the form it had. Returns the zeros it now holds. */
function storePruned(w: TfjsWeight, values: Float32Array, mask: Uint8Array, warn: (m: string) => void): number {
  for (let i = 0; i < values.length; i++) if (mask[i]) values[i] = 0;
  const q = w.quantization;
  if (!q) w.setFloat32(values);
  else if (q.dtype === 'float16') w.setFloat16(values); // values came from halves: the others round-trip exactly
  else {
    const zero = exactZeroCode(q);
    if (zero !== null) {
      const codes = w.codes().slice();
      for (let i = 0; i < codes.length; i++) if (mask[i]) codes[i] = zero;
      w.replace(new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength), q);
    } else {
      warn(`${w.name}: its ${q.dtype} range has no code for exactly 0, so it was re-quantized (converter rounding) after pruning`);
      storeQuantized(w, values, q.dtype);
    }
  }
  return w.countZeros();
}

function report(pass: string, method: string, model: TfjsModel, layers: PrunedLayer[], changed: number, bytesBefore: number, skipped: { weight: string; reason: string }[], warnings: string[], extra: Record<string, unknown>): PassReport {
  const parameters = layers.reduce((n, l) => n + l.parameters, 0);
  const zeros = layers.reduce((n, l) => n + l.zeros, 0);
  return {
    pass,
    nodesChanged: changed,
    bytesBefore,
    bytesAfter: weightBytes(model),
    excluded: skipped.map((s) => s.weight),
    warnings,
    details: { ...extra, method, parameters, zeros, sparsity: parameters ? zeros / parameters : 0, layers, skipped },
  };
}

function prunedLayer(t: Target, zerosBefore: number, zeros: number): PrunedLayer {
  const parameters = t.values.length;
  return { name: t.use.layer, op: t.use.op, weight: t.use.weight.name, parameters, zerosBefore, zeros, sparsity: parameters ? zeros / parameters : 0 };
}

export const tfjsMagnitudePrunePass: TfjsPass<TfjsMagnitudeOptions> = {
  name: 'tfjs-prune-magnitude',
  async run(model, options, ctx) {
    const target = checkSparsity(this.name, options.sparsity);
    const scope = options.scope ?? 'layer';
    if (scope !== 'layer' && scope !== 'global') throw new WhittleError('BAD_USAGE', `${this.name}: scope must be 'layer' or 'global', got ${String(scope)}`);
    const { targets, skipped } = prunableTargets(model, options, ctx, this.name);
    const bytesBefore = weightBytes(model);
    const warnings: string[] = [];
    const warn = (m: string) => { warnings.push(m); ctx.warn(m); };
    let masks: Uint8Array[] | null = null;
    if (scope === 'global') {
      // one threshold: the k smallest |w| of all targets together (ties in network order, then index)
      const total = targets.reduce((n, t) => n + t.values.length, 0);
      const all = new Float32Array(total);
      let at = 0;
      for (const t of targets) { all.set(absolute(t.values), at); at += t.values.length; }
      const whole = smallestMask(all, Math.round(target * total));
      masks = [];
      at = 0;
      for (const t of targets) { masks.push(whole.subarray(at, at + t.values.length)); at += t.values.length; }
    }
    const layers: PrunedLayer[] = [];
    let changed = 0;
    targets.forEach((t, i) => {
      ctx.checkpoint();
      ctx.progress('prune', i, targets.length);
      const zerosBefore = countZeros(t.values);
      const mask = masks ? masks[i]! : smallestMask(absolute(t.values), Math.round(target * t.values.length));
      const zeros = storePruned(t.use.weight, t.values, mask, warn);
      if (zeros !== zerosBefore) changed++;
      layers.push(prunedLayer(t, zerosBefore, zeros));
    });
    ctx.progress('prune', targets.length, targets.length);
    return report(this.name, 'magnitude', model, layers, changed, bytesBefore, skipped, warnings, { scope, target });
  },
};

export const tfjsNmPrunePass: TfjsPass<TfjsNmOptions> = {
  name: 'tfjs-prune-nm',
  async run(model, options, ctx) {
    const n = options.n ?? 2;
    const m = options.m ?? 4;
    if (!Number.isSafeInteger(n) || !Number.isSafeInteger(m) || n <= 0 || n >= m) throw new WhittleError('BAD_USAGE', `${this.name}: N:M needs whole numbers with 0 < N < M, got ${n}:${m}`);
    const { targets, skipped } = prunableTargets(model, options, ctx, this.name);
    const bytesBefore = weightBytes(model);
    const warnings: string[] = [];
    const warn = (msg: string) => { warnings.push(msg); ctx.warn(msg); };
    const layers: PrunedLayer[] = [];
    // kernels N:M does not apply to, by reason: one warning per reason, not one per layer
    const noInputAxis = new Map<string, string[]>();
    let changed = 0;
    targets.forEach((t, i) => {
      ctx.checkpoint();
      ctx.progress('prune', i, targets.length);
      const { kernel, weight } = t.use;
      if (kernel.inAxis === null) {
        const reason = `${t.use.op}: ${kernel.noNm ?? 'no input dimension to group along'}`;
        noInputAxis.set(reason, [...(noInputAxis.get(reason) ?? []), weight.name]);
        skipped.push({ weight: weight.name, reason: 'no-input-axis' });
        return;
      }
      const len = weight.shape[kernel.inAxis]!;
      if (len <= n) warn(`${weight.name}: input dimension ${len} is at most N = ${n}, so ${n}:${m} leaves it unchanged`);
      else if (len % m !== 0) warn(`${weight.name}: input dimension ${len} is not a multiple of M = ${m}; the last group of ${len % m} is treated as zero-padded to ${m} and keeps up to ${Math.min(n, len % m)}`);
      const zerosBefore = countZeros(t.values);
      const zeros = storePruned(weight, t.values, nmMaskAlong(absolute(t.values), weight.shape, kernel.inAxis, null, n, m), warn);
      if (zeros !== zerosBefore) changed++;
      layers.push(prunedLayer(t, zerosBefore, zeros));
    });
    ctx.progress('prune', targets.length, targets.length);
    for (const [reason, names] of noInputAxis) {
      warn(`${names.length} kernel${names.length === 1 ? '' : 's'} left unpruned by ${n}:${m} (${reason}): ${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''}`);
    }
    return report(this.name, 'nm', model, layers, changed, bytesBefore, skipped, warnings, { pattern: `${n}:${m}`, n, m });
  },
};
