import { WhittleError } from '../../../api/errors.ts';
import type { Model } from '../../../native-models/ir/model.ts';
import { tensorBytes, type Pass, type PassContext, type PassReport } from '../pass.ts';
import { magnitudes, pruneReport, zeroLayerMasks } from './magnitude.ts';
import { prunableWeights, requirePrunable, type PrunableOptions, type PrunableWeight } from './prunable.ts';

/**
 * N:M semi-structured sparsity: in every group of M consecutive weights along the reduction
 * (input) dimension, only the N of largest |w| stay non-zero. For a Conv weight [O, I/g, kh, kw] a
 * group is M consecutive input channels at the same (o, kh, kw); for Gemm/MatMul it is M
 * consecutive rows of K at the same output column (the axis comes from the op table, so transB
 * and weights behind a Transpose are handled). Ties are broken by position: the earlier weight
 * in the group is pruned first.
 *
 * Input dimension not a multiple of M: the last group, of r < M weights, is treated as padded with
 * zeros to M — the layout sparse kernels use — so it keeps min(N, r) weights and the padded group
 * is a valid N:M group. A layer whose input dimension is ≤ N (a first Conv on 1 or 2 channels, a
 * depthwise Conv) is left unchanged. Both cases are reported with a warning naming the layer.
 */
export interface NmOptions extends PrunableOptions {
  /** Weights kept per group (default 2). */
  n?: number | undefined;
  /** Group size (default 4). */
  m?: number | undefined;
}

/** Parses a `--pattern N:M` value (e.g. "2:4"); bad text is BAD_USAGE. */
export function parseNmPattern(text: string): { n: number; m: number } {
  const match = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(text);
  if (!match) throw new WhittleError('BAD_USAGE', `pattern must look like N:M (for example 2:4), got ${JSON.stringify(text)}`);
  return checkNm('pattern', Number(match[1]), Number(match[2]));
}

function checkNm(passName: string, n: unknown, m: unknown): { n: number; m: number } {
  const ok = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
  if (!ok(n) || !ok(m) || n <= 0 || n >= m) {
    throw new WhittleError('BAD_USAGE', `${passName}: N:M needs whole numbers with 0 < N < M, got ${String(n)}:${String(m)}`);
  }
  return { n, m };
}

export const nmPrunePass: Pass<NmOptions> = {
  name: 'prune-nm',
  async run(model: Model, options: NmOptions, ctx: PassContext): Promise<PassReport> {
    const { n, m } = checkNm(this.name, options.n ?? 2, options.m ?? 4);
    const set = prunableWeights(model, options);
    requirePrunable(set, this.name);
    const bytesBefore = tensorBytes(model);
    const warnings: string[] = [];
    const warn = (message: string) => { warnings.push(message); ctx.warn(message); };
    const { layers, changed } = await zeroLayerMasks(set, ctx, (w) => {
      const len = w.shape[w.inAxis]!;
      if (len <= n) warn(`${w.node.label}: input dimension ${len} is at most N = ${n}, so ${n}:${m} leaves the layer unchanged`);
      else if (len % m !== 0) warn(`${w.node.label}: input dimension ${len} is not a multiple of M = ${m}; the last group of ${len % m} is treated as zero-padded to ${m} and keeps up to ${Math.min(n, len % m)}`);
      return nmMask(w, n, m);
    });
    return pruneReport(this.name, 'nm', set, layers, changed, bytesBefore, tensorBytes(model), ctx, warnings, { pattern: `${n}:${m}`, n, m });
  },
};

/** Mask (in stored order) of the weights N:M pruning removes from one layer. */
export function nmMask(w: PrunableWeight, n: number, m: number): Uint8Array {
  return nmMaskAlong(magnitudes(w), w.shape, w.inAxis, w.storedIndex, n, m);
}

/**
 * The N:M mask of any weight given as |w| in stored order: `shape` and `inAxis` as the op reads it,
 * `storedIndex` mapping the op's row-major order to stored positions (null when they agree). Also
 * what TF.js kernels use, whose input axis is not the first (Dense [in, out], Conv2D [kh, kw, in, out]).
 */
export function nmMaskAlong(abs: Float32Array, shape: readonly number[], inAxis: number, storedIndex: Int32Array | null, n: number, m: number): Uint8Array {
  const mask = new Uint8Array(abs.length);
  const len = shape[inAxis]!;
  const inner = shape.slice(inAxis + 1).reduce((a, b) => a * b, 1);
  const outer = shape.slice(0, inAxis).reduce((a, b) => a * b, 1);
  const map = storedIndex;
  const group = new Int32Array(m);
  const key = (s: number) => (Number.isNaN(abs[s]!) ? Infinity : abs[s]!);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      for (let g0 = 0; g0 < len; g0 += m) {
        const r = Math.min(m, len - g0);
        const prune = r - Math.min(n, r);
        if (prune === 0) continue;
        // stored indices of the group, insertion-sorted by (|w|, position): stable, and M is small
        for (let t = 0; t < r; t++) {
          const logical = (o * len + g0 + t) * inner + j;
          const s = map ? map[logical]! : logical;
          let p = t;
          while (p > 0 && key(group[p - 1]!) > key(s)) { group[p] = group[p - 1]!; p--; }
          group[p] = s;
        }
        for (let t = 0; t < prune; t++) mask[group[t]!] = 1;
      }
    }
  }
  return mask;
}
