import { WhittleError } from '../../../api/errors.ts';
import { DataType } from '../../../native-models/ir/dtypes.ts';
import type { Graph, Model, Node } from '../../../native-models/ir/model.ts';
import type { Tensor } from '../../../native-models/ir/tensor.ts';
import type { EpChoice } from '../../../native-models/runtimes/onnxruntime.ts';
import { toFloatScores, type HostTensor } from '../../../native-models/runtimes/host-tensor.ts';
import { TappedModel } from '../../calibrate/tap.ts';
import type { Dataset } from '../../evaluate/data/index.ts';
import type { PassContext } from '../pass.ts';

/**
 * Bias correction for static int8 (`--bias-correction`; Nagel et al., "Data-Free Quantization",
 * §4.2, in its empirical form, as NNCF's BiasCorrection does it). Rounding weights and activations
 * moves each output channel's mean — weight rounding errors do not cancel against inputs that are
 * all ≥ 0 after a ReLU — and those shifts add up through the network. For every quantized Conv and
 * Gemm with an int32 bias, the channel means of its output on the calibration data are measured in
 * the float model and in the quantized one, and the difference is added to the int32 bias (on its
 * own scale, input × weight: exact up to one step of it).
 *
 * Layers are corrected in dependency levels, upstream first: a layer's quantized means are measured
 * with every layer before it already corrected, so it corrects only what is left (one run of the
 * calibration data per level). The compared values are the layers' outputs before their own
 * requantization (and before a ReLU the quantization absorbed): that is what the bias moves.
 */

/** A quantized layer whose bias can take the correction. */
export interface BiasCorrectionTarget {
  node: Node;
  /** The name of the same value (the layer's output, bias included) in the float model. */
  floatOutput: string;
}

export interface BiasCorrectionLayer {
  node: string;
  channels: number;
  /** Root mean square over channels of the mean shift removed, and of the float output's channel means (its scale). */
  rmsShift: number;
  rmsMean: number;
  /** 0-based: layers of the same level were measured in the same run. */
  level: number;
}

export interface BiasCorrectionReport {
  layers: BiasCorrectionLayer[];
  /** Quantized Conv/Gemm/MatMul nodes that have no int32 bias to carry a correction (MatMul, a Conv without bias). */
  withoutBias: string[];
  levels: number;
  samples: number;
  seconds: number;
  /** The quantized means were measured unfused (BiasCorrectionOptions.exactInt8). */
  exactInt8: boolean;
}

export interface BiasCorrectionOptions {
  data: Dataset;
  batchSize: number;
  ep?: EpChoice | undefined;
  /**
   * Measure the quantized model in its own arithmetic (graph optimizations off). Needed where this
   * CPU's fused int8 kernels saturate the model's 8-bit weights: upstream layers run fused there
   * while the tapped layer runs unfused, so the means measured would be neither model's, and the
   * correction would steer the biases away from both.
   */
  exactInt8?: boolean | undefined;
}

/** Channel axis of a layer output: [N, C, …] for Conv, [N, M] for Gemm. */
const CHANNEL_AXIS = 1;
const LAYER_OPS = new Set(['Conv', 'Gemm', 'MatMul']);

/**
 * Names whose float values a correction may need, known before the static pass rewrites the graph:
 * every Conv/Gemm/MatMul output and the output of an Add reading one (the pass folds bias Adds into
 * their Conv or MatMul, which then writes the Add's output).
 */
export function biasCorrectionCandidates(g: Graph): string[] {
  const names = new Set<string>();
  for (const n of g.nodes) if (n.domain === '' && LAYER_OPS.has(n.opType) && n.outputs[0]) names.add(n.outputs[0]);
  for (const n of g.nodes) {
    if (n.domain === '' && n.opType === 'Add' && n.inputs.some((i) => i && names.has(i)) && n.outputs[0]) names.add(n.outputs[0]);
  }
  return [...names];
}

/**
 * Per-channel sums along axis 1 of a batch's value. NaN and ±Infinity (calibration data with some,
 * SPEC: left out of the ranges too) are left out of the means; a channel with no finite value has
 * mean NaN, and its bias is left as it was.
 */
class ChannelMean {
  sum: Float64Array | null = null;
  count: Float64Array | null = null;

  add(t: HostTensor, name: string): void {
    const { dims, data } = toFloatScores(t);
    if (dims.length < 2) throw new WhittleError('INTERNAL', `bias correction: ${name} has rank ${dims.length}, expected [N, C, …]`);
    const channels = dims[CHANNEL_AXIS]!;
    const inner = dims.slice(CHANNEL_AXIS + 1).reduce((a, b) => a * b, 1);
    const outer = dims[0]!;
    this.sum ??= new Float64Array(channels);
    this.count ??= new Float64Array(channels);
    if (this.sum.length !== channels) throw new WhittleError('INTERNAL', `bias correction: ${name} changed from ${this.sum.length} to ${channels} channels`);
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < channels; c++) {
        const at = (o * channels + c) * inner;
        let s = 0, n = 0;
        for (let i = 0; i < inner; i++) {
          const v = data[at + i]!;
          if (Number.isFinite(v)) { s += v; n++; }
        }
        this.sum[c] = this.sum[c]! + s;
        this.count[c] = this.count[c]! + n;
      }
    }
  }

  means(): Float64Array {
    const sum = this.sum ?? new Float64Array(0);
    const count = this.count ?? new Float64Array(0);
    return sum.map((s, c) => (count[c]! > 0 ? s / count[c]! : NaN));
  }
}

/** Runs the data through `model` once and returns each named value's channel means (progress under `phase`). */
export async function channelMeans(model: Model, names: string[], o: BiasCorrectionOptions, ctx: PassContext, phase: string): Promise<{ means: Map<string, Float64Array>; samples: number }> {
  const acc = new Map(names.map((n) => [n, new ChannelMean()]));
  const tapped = await TappedModel.create(model, names, o.ep ?? 'cpu', o.exactInt8 ?? false);
  let samples = 0;
  try {
    for await (const { batch, values } of tapped.batches(o.data, { batchSize: o.batchSize, signal: ctx.signal })) {
      ctx.checkpoint();
      for (const [name, a] of acc) {
        const v = values[name];
        if (!v) throw new WhittleError('INTERNAL', `bias correction: ${name} was not tapped`);
        a.add(v, name);
      }
      samples += batch.count;
      ctx.progress(phase, samples, o.data.n);
    }
  } finally {
    await tapped.close();
  }
  ctx.checkpoint();
  if (samples === 0) throw new WhittleError('BAD_INPUT', `${o.data.path}: no calibration samples for bias correction`);
  return { means: new Map([...acc].map(([n, a]) => [n, a.means()])), samples };
}

/** The int32 bias a quantized Conv/Gemm reads through DequantizeLinear, with its scales; null when it has none. */
function int32Bias(g: Graph, node: Node, producers: Map<string, Node>): { tensor: Tensor; scales: Float32Array } | null {
  const b = node.opType === 'MatMul' ? undefined : node.inputs[2];
  const dq = b ? producers.get(b) : undefined;
  if (!dq || dq.opType !== 'DequantizeLinear' || dq.domain !== '') return null;
  const tensor = g.initializers.get(dq.inputs[0]!);
  const scale = g.initializers.get(dq.inputs[1]!);
  if (!tensor || tensor.dataType !== DataType.INT32 || tensor.dims.length !== 1 || !scale) return null;
  return { tensor, scales: scale.toFloat32() };
}

/**
 * The quantized layers of a model the static pass just wrote: those with an int32 bias, and the
 * names of those without (nothing to correct there).
 */
export function correctableLayers(model: Model, computeOutputs: ReadonlyMap<Node, string>): { targets: BiasCorrectionTarget[]; withoutBias: string[] } {
  const g = model.graph;
  const producers = g.producers();
  const targets: BiasCorrectionTarget[] = [];
  const withoutBias: string[] = [];
  for (const [node, floatOutput] of computeOutputs) {
    if (!LAYER_OPS.has(node.opType)) continue;
    if (int32Bias(g, node, producers)) targets.push({ node, floatOutput });
    else withoutBias.push(node.label);
  }
  return { targets, withoutBias };
}

/** Each target's level: how many targets lie upstream of it on the longest path. */
function dependencyLevels(g: Graph, targets: ReadonlySet<Node>): Map<Node, number> {
  const depth = new Map<string, number>();
  const levels = new Map<Node, number>();
  for (const n of g.topologicalOrder()) {
    let d = 0;
    for (const i of n.inputs) if (i) d = Math.max(d, depth.get(i) ?? 0);
    if (targets.has(n)) {
      levels.set(n, d);
      d += 1;
    }
    for (const o of n.outputs) if (o) depth.set(o, d);
  }
  return levels;
}

/**
 * Corrects the int32 biases of `targets` in the quantized `model` (in place) against `floatMeans`
 * (channel means of each target's `floatOutput` in the float model, from channelMeans).
 */
export async function correctStaticBiases(model: Model, targets: BiasCorrectionTarget[], floatMeans: ReadonlyMap<string, Float64Array>, o: BiasCorrectionOptions, ctx: PassContext): Promise<Omit<BiasCorrectionReport, 'withoutBias'>> {
  const t0 = performance.now();
  const g = model.graph;
  const levelOf = dependencyLevels(g, new Set(targets.map((t) => t.node)));
  const levels = Math.max(0, ...levelOf.values()) + (targets.length ? 1 : 0);
  const layers: BiasCorrectionLayer[] = [];
  let samples = 0;
  for (let level = 0; level < levels; level++) {
    const here = targets.filter((t) => levelOf.get(t.node) === level);
    if (here.length === 0) continue;
    // the layer's own output before its requantization: what its bias shifts
    const measured = await channelMeans(model, here.map((t) => t.node.outputs[0]!), o, ctx, `bias correction, level ${level + 1} of ${levels}`);
    samples = measured.samples;
    const producers = g.producers();
    for (const t of here) {
      const want = floatMeans.get(t.floatOutput);
      const got = measured.means.get(t.node.outputs[0]!)!;
      const bias = int32Bias(g, t.node, producers)!;
      const stored = bias.tensor.typed() as Int32Array;
      if (!want || want.length !== got.length || stored.length !== got.length) {
        throw new WhittleError('INTERNAL', `bias correction: ${t.node.label} has ${got.length} output channels, its float output ${t.floatOutput} ${want?.length ?? 'none'}, its bias ${stored.length}`);
      }
      const corrected = new Int32Array(stored.length);
      let shift2 = 0, mean2 = 0;
      for (let c = 0; c < stored.length; c++) {
        const delta = want[c]! - got[c]!;
        const scale = bias.scales[bias.scales.length === 1 ? 0 : c]!;
        const step = delta / scale;
        // a channel that held no finite value, or a zero scale: nothing to correct it by
        corrected[c] = Number.isFinite(step) ? Math.max(-2147483648, Math.min(2147483647, Math.round(stored[c]! + step))) : stored[c]!;
        if (!Number.isFinite(step)) continue;
        shift2 += delta * delta;
        mean2 += want[c]! * want[c]!;
      }
      bias.tensor.setData(corrected);
      layers.push({ node: t.node.label, channels: stored.length, rmsShift: Math.sqrt(shift2 / stored.length), rmsMean: Math.sqrt(mean2 / stored.length), level });
    }
  }
  return { layers, levels, samples, seconds: (performance.now() - t0) / 1000, exactInt8: o.exactInt8 ?? false };
}
