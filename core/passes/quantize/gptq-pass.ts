import { WhittleError } from '../../../api/errors.ts';
import type { Model, Node } from '../../../native-models/ir/model.ts';
import type { EpChoice } from '../../../native-models/runtimes/onnxruntime.ts';
import { groupParams } from '../../../native-models/gpu/kernels-cpu.mjs';
import { openComputeDevice, type ComputeChoice } from '../compute.ts';
import { gptqGpu } from '../../../native-models/gpu/kernels-gpu.ts';
import { GPTQ_MAX_BLOCK } from '../../../native-models/gpu/wgsl.ts';
import { CpuThreads, defaultThreads } from '../../../native-models/gpu/threads.ts';
import type { Dataset } from '../../evaluate/data/index.ts';
import { createPassContext, type Pass, type PassContext, type PassReport } from '../pass.ts';
import { collectLayerInputs, layerMatrix, readMatrix, type GroupStats, type LayerMatrix } from '../prune/layer-inputs.ts';
import { quadraticFormSum } from '../prune/linalg.ts';
import { prunableWeights } from '../prune/prunable.ts';
import { dequantize, gptqQuantize, packMatMulNBits, toKn, type GptqResult } from './gptq.ts';
import { isExcluded } from './graph-edit.ts';
import { roundHalfEven } from './math.ts';
import { weightOnlyQuantizePass, type WeightOnlyOptions } from './weight-only.ts';

/**
 * Weight-only quantization with GPTQ (gptq.ts) instead of round-to-nearest: the calibration data
 * runs through the model once, streaming every MatMul input's XᵀX (the layer-input statistics the
 * calibrated pruning passes use), then the weight-only pass writes MatMulNBits (or the DQ form)
 * with the GPTQ-chosen values in the very same layout as RTN. Group size = the MatMulNBits
 * block size. Weights the statistics do not cover (shared between nodes with different inputs,
 * weights behind a view the calibration cannot map) keep RTN, with a warning.
 *
 * Statistics come from the unquantized model in one pass (like Wanda/SparseGPT's default here);
 * the paper quantizes transformer blocks sequentially on the quantized model's activations.
 */
export interface GptqPassOptions extends Omit<WeightOnlyOptions, 'quantizer'> {
  data: Dataset;
  /** Calibration samples (default 128). */
  samples?: number | undefined;
  batchSize?: number | undefined;
  ep?: EpChoice | undefined;
  percdamp?: number | undefined;
  actOrder?: boolean | undefined;
  staticGroups?: boolean | undefined;
  /** Columns per lazy batch update (default 128). */
  updateBlock?: number | undefined;
  /** Worker threads for the column updates (default: cores − 1). */
  threads?: number | undefined;
  /**
   * Where the GPTQ math runs: 'cpu' (default: float64, worker threads, byte-identical reruns),
   * 'gpu' (the WebGPU compute device, float32; an error when there is none) or 'auto' (the GPU when
   * one is usable, else the CPU, with a warning saying why).
   */
  compute?: ComputeChoice | undefined;
  /**
   * GPTQ's choice per weight (by node name) kept across runs on the same float model with the same
   * options: statistics come from the unquantized model, so a weight's choice does not depend on
   * which other weights are quantized. A cached weight needs no statistics and no GPTQ again (the
   * sensitivity analysis quantizes the same weights in many trials).
   */
  cache?: Map<string, GptqChoice> | undefined;
}

/** What GPTQ chose for one weight, in the layout the weight-only pass stores. */
export type GptqChoice = { blocks: number; data: Uint8Array; scales: Float32Array; zeroPoints: Uint8Array };

export interface GptqLayerReport {
  node: string;
  K: number;
  N: number;
  /** ‖WX − ŴX‖² / ‖WX‖² on the calibration rows, for GPTQ and for RTN of the same groups; null for layers too large to measure. */
  errorGptq: number | null;
  errorRtn: number | null;
  damp: number;
  deadInputs: number;
  seconds: number;
}

/** Layers up to this many multiply-adds (N·K²) get their reconstruction errors measured. */
const MEASURE_LIMIT = 2 ** 30;

export const gptqQuantizePass: Pass<GptqPassOptions> = {
  name: 'quantize-gptq',
  async run(model: Model, options: GptqPassOptions, ctx: PassContext = createPassContext()): Promise<PassReport> {
    const bits = options.bits ?? 4;
    const groupSize = options.blockSize ?? 32;
    const symmetric = options.symmetric ?? false;
    const percdamp = options.percdamp ?? 0.01;
    if (!(percdamp >= 0) || !Number.isFinite(percdamp)) throw new WhittleError('BAD_USAGE', `GPTQ: percdamp must be ≥ 0, got ${String(percdamp)}`);
    if (!options.data) throw new WhittleError('BAD_USAGE', 'GPTQ needs calibration data (--calib DATA)');
    const warnings: string[] = [];
    const warn = (m: string) => { warnings.push(m); ctx.warn(m); };

    // the MatMul weights the calibration can see, by node
    const set = prunableWeights(model, { ops: ['MatMul'], exclude: options.exclude });
    const layers: LayerMatrix[] = [];
    for (const w of set.layers) {
      if (w.sharedWith.length > 0) { warn(`${w.node.label}: weight ${w.weightName} is shared with ${w.sharedWith.map((n) => n.label).join(', ')}; quantized with RTN`); continue; }
      const m = layerMatrix(w);
      if (typeof m !== 'string' && m.groups === 1 && !m.transA) layers.push(m);
    }
    const byNode = new Map<Node, LayerMatrix>(layers.map((l) => [l.weight.node, l]));
    const cache = options.cache;
    const toMeasure = cache ? layers.filter((l) => !cache.has(l.weight.node.label)) : layers;
    const { stats, samples } = toMeasure.length
      ? await collectLayerInputs(model, toMeasure, { data: options.data, samples: options.samples, hessian: true, batchSize: options.batchSize, ep: options.ep }, ctx)
      : { stats: [], samples: 0 };
    const statsOf = new Map<LayerMatrix, GroupStats>(stats.map((s) => [s.layer, s.groups[0]!]));

    const threads = new CpuThreads(options.threads ?? defaultThreads());
    const gpu = layers.length > 0 ? await openComputeDevice('GPTQ', options.compute, warn) : null;
    const reports: GptqLayerReport[] = [];
    const opts = { bits, groupSize, symmetric, percdamp, blockSize: options.updateBlock ?? 128, actOrder: options.actOrder ?? false, staticGroups: options.staticGroups ?? false, threads };
    let done = 0;
    let cpuNoted = false;
    try {
      const report = await weightOnlyQuantizePass.run(model, {
        ...options,
        quantizer: async (node, K, N, layout) => {
          ctx.checkpoint();
          const cached = cache?.get(node.label);
          if (cached) return cached;
          const layer = byNode.get(node);
          const st = layer && statsOf.get(layer);
          if (!layer || !st || layer.k !== K || layer.rowsPerGroup !== N) {
            if (!isExcluded(node, options.exclude)) warn(`${node.label}: no calibration statistics for its weight; quantized with RTN`);
            return null;
          }
          ctx.progress('gptq', done++, layers.length);
          const t0 = performance.now();
          const w = readMatrix(layer);
          const scale = st.rows > 0 ? 2 / st.rows : 0;
          const h = Float64Array.from(st.xtx!, (v) => v * scale);
          // the GPU kernel holds at most GPTQ_MAX_BLOCK columns of a row: larger lazy groups stay on the CPU
          const onGpu = gpu && (groupSize <= GPTQ_MAX_BLOCK || opts.actOrder || opts.staticGroups);
          if (gpu && !onGpu && !cpuNoted) { cpuNoted = true; warn(`GPTQ with groups of ${groupSize} (over ${GPTQ_MAX_BLOCK}) runs on the CPU unless --act-order (static groups)`); }
          const r = onGpu
            ? await gptqGpu(gpu!, w, N, K, h, opts, (m) => warn(`${node.label}: ${m}`))
            : await gptqQuantize(w, N, K, h, opts, (m) => warn(`${node.label}: ${m}`));
          const measure = N * K * K <= MEASURE_LIMIT;
          reports.push({
            node: node.label, K, N,
            errorGptq: measure ? relativeError(w, dequantize(r, groupSize), h, N, K) : null,
            errorRtn: measure ? rtnError(w, h, N, K, opts) : null,
            damp: r.damp, deadInputs: r.deadInputs, seconds: (performance.now() - t0) / 1000,
          });
          const choice = toBlocks(r, bits, groupSize, layout);
          cache?.set(node.label, choice);
          return choice;
        },
      }, ctx);
      ctx.progress('gptq', layers.length, layers.length);
      const measured = reports.filter((r) => r.errorGptq !== null);
      const mean = (f: (r: GptqLayerReport) => number) => (measured.length ? measured.reduce((a, r) => a + f(r), 0) / measured.length : null);
      return {
        ...report,
        pass: this.name,
        warnings: [...report.warnings, ...warnings.filter((w) => !report.warnings.includes(w))],
        details: {
          ...report.details, algorithm: 'gptq', percdamp, actOrder: opts.actOrder, staticGroups: opts.staticGroups || opts.actOrder,
          updateBlock: opts.blockSize, calibrationSamples: samples, compute: gpu ? gpu.name : `cpu (${threads.size} threads)`,
          meanErrorGptq: mean((r) => r.errorGptq!), meanErrorRtn: mean((r) => r.errorRtn!), layers: reports,
        },
      };
    } finally {
      await threads.close();
      gpu?.destroy();
    }
  },
};

function toBlocks(r: Pick<GptqResult, 'rows' | 'K' | 'groups' | 'q' | 'scales' | 'zeroPoints'>, bits: 4 | 8, groupSize: number, layout: 'kn' | 'packed'): GptqChoice {
  return { blocks: r.groups, data: layout === 'kn' ? toKn(r) : packMatMulNBits(r, bits, groupSize), scales: r.scales, zeroPoints: r.zeroPoints };
}

/** ‖(W − Ŵ)X‖² / ‖WX‖² from H ∝ XᵀX (rows of W are outputs). */
export function relativeError(w: Float64Array, wq: Float64Array, h: Float64Array, rows: number, k: number): number {
  const d = new Float64Array(w.length);
  for (let i = 0; i < w.length; i++) d[i] = w[i]! - wq[i]!;
  const den = quadraticFormSum(w, rows, h, k);
  return den > 0 ? quadraticFormSum(d, rows, h, k) / den : 0;
}

/** The same error for round-to-nearest with the same groups (GPTQ with H = I is RTN). */
function rtnError(w: Float64Array, h: Float64Array, rows: number, k: number, o: { bits: 4 | 8; groupSize: number; symmetric: boolean }): number {
  const out = new Float64Array(2);
  const qmin = o.symmetric ? -((1 << (o.bits - 1)) - 1) : 0;
  const qmax = o.symmetric ? (1 << (o.bits - 1)) - 1 : (1 << o.bits) - 1;
  const wq = new Float64Array(w.length);
  for (let r = 0; r < rows; r++) {
    for (let g0 = 0; g0 < k; g0 += o.groupSize) {
      const g1 = Math.min(k, g0 + o.groupSize);
      let lo = Infinity, hi = -Infinity;
      for (let j = g0; j < g1; j++) { const v = w[r * k + j]!; if (v < lo) lo = v; if (v > hi) hi = v; }
      groupParams(lo, hi, qmin, qmax, o.symmetric, out);
      const [scale, zp] = [out[0]!, out[1]!];
      for (let j = g0; j < g1; j++) {
        const x = Math.min(qmax - zp, Math.max(qmin - zp, w[r * k + j]! / scale));
        wq[r * k + j] = roundHalfEven(x) * scale;
      }
    }
  }
  return relativeError(w, wq, h, rows, k);
}
