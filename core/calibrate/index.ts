import { WhittleError } from '../../api/errors.ts';
import type { Model } from '../../native-models/ir/model.ts';
import { toFloatScores } from '../../native-models/runtimes/host-tensor.ts';
import type { EpChoice } from '../../native-models/runtimes/onnxruntime.ts';
import type { Dataset } from '../evaluate/data/index.ts';
import type { QuantType } from '../passes/quantize/math.ts';
import { MinMaxCollector, type RangeCollector, type TensorRange } from './collectors.ts';
import { EntropyCollector } from './entropy.ts';
import { MseCollector } from './mse.ts';
import { PercentileCollector } from './percentile.ts';
import { TappedModel } from './tap.ts';

export type { RangeCollector, TensorRange } from './collectors.ts';
export { HistogramCollector, MinMaxCollector } from './collectors.ts';
export { EntropyCollector } from './entropy.ts';
export { StreamingHistogram } from './histogram.ts';
export { MseCollector } from './mse.ts';
export { PercentileCollector } from './percentile.ts';
export { TAP_BYTES_PER_RUN, TappedModel } from './tap.ts';

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy' | 'mse';

export interface CalibrationOptions {
  method: CalibrationMethod;
  /** Values to observe; default: every float activation (graph inputs and node outputs). */
  names?: string[];
  ep?: EpChoice;
  /** Samples read at a time; a run takes fewer where its tapped tensors would pass maxBytesPerRun. */
  batchSize?: number;
  /** Tapped bytes one run may return (default TAP_BYTES_PER_RUN, tap.ts). */
  maxBytesPerRun?: number;
  signal?: AbortSignal;
  progress?: (done: number, total: number) => void;
  /** minmax: exponential moving average of batch ranges (onnxruntime's option). */
  movingAverage?: boolean;
  averagingConstant?: number;
  /** percentile: the share of values kept inside the range (default 99.999). */
  percentile?: number;
  /**
   * percentile: ±t keeping p % of |x| (else each tail loses (100 − p)/2 %); entropy: 128 levels per
   * side; mse: the range will be quantized symmetrically, so only its magnitude is searched.
   */
  symmetric?: boolean;
  /** entropy/mse/percentile: histogram bins (default 2048; memory is 8 bytes a bin per tensor). */
  bins?: number;
  /** mse: the type the range is searched for (default uint8, onnxruntime's activation default). */
  quantType?: QuantType;
  /** entropy: quantized levels between 0 and the threshold (default 256 one-sided, else 128). */
  quantizedBins?: number;
}

export interface CalibrationResult {
  method: CalibrationMethod;
  ranges: Map<string, TensorRange>;
  samples: number;
  /** Tensors in which NaN or Infinity was seen (they are ignored in the statistics). */
  nonFinite: string[];
  /** Of those, the tensors that never held a finite value: their range means nothing. */
  noFinite: string[];
  /** Samples per model run: the batch size, or fewer where a run's tapped tensors would not fit (tap.ts). */
  samplesPerRun: number;
}

/** The collector factory per method; the histogram-based ones share histogram.ts. */
export type CollectorFactory = (name: string, options: CalibrationOptions) => RangeCollector;
const factories = new Map<CalibrationMethod, CollectorFactory>([
  ['minmax', (_name, o) => new MinMaxCollector({ movingAverage: o.movingAverage, averagingConstant: o.averagingConstant })],
  ['percentile', (_name, o) => new PercentileCollector({ percentile: o.percentile, symmetric: o.symmetric, bins: o.bins })],
  ['entropy', (_name, o) => new EntropyCollector({ bins: o.bins, quantizedBins: o.quantizedBins, symmetric: o.symmetric })],
  ['mse', (_name, o) => new MseCollector({ bins: o.bins, quantType: o.quantType, symmetric: o.symmetric })],
]);

export function registerCollector(method: CalibrationMethod, factory: CollectorFactory): void {
  factories.set(method, factory);
}

/** Bad numbers fail before the model runs, not after the last batch. */
function checkOptions(o: CalibrationOptions): void {
  const bad = (what: string) => { throw new WhittleError('BAD_USAGE', `calibration: ${what}`); };
  if (o.bins !== undefined && !(Number.isInteger(o.bins) && o.bins >= 8)) bad(`bins must be an integer ≥ 8, got ${o.bins}`);
  if (o.percentile !== undefined && !(o.percentile > 0 && o.percentile <= 100)) bad(`percentile must be in (0, 100], got ${o.percentile}`);
  if (o.quantizedBins !== undefined && !(Number.isInteger(o.quantizedBins) && o.quantizedBins >= 2 && o.quantizedBins <= (o.bins ?? 2048))) {
    bad(`quantizedBins must be an integer from 2 to the histogram's bins, got ${o.quantizedBins}`);
  }
}

/** Float activations: graph inputs and node outputs whose type is float (or unknown), main graph. */
export function activationNames(model: Model): string[] {
  const g = model.graph;
  const names: string[] = [];
  const isFloat = (name: string) => {
    const t = g.valueType(name);
    return !t || (t.kind === 'tensor' && (t.elemType === 1 || t.elemType === 10 || t.elemType === 11 || t.elemType === 0));
  };
  for (const v of g.inputs) if (!g.initializers.has(v.name) && isFloat(v.name)) names.push(v.name);
  for (const n of g.nodes) {
    if (n.opType === 'Constant') continue;
    for (const o of n.outputs) if (o && isFloat(o)) names.push(o);
  }
  return names;
}

/**
 * Runs the model once per batch with every needed tensor exposed, and feeds each tensor's values
 * to its collector. Statistics merge across batches; memory does not grow with the sample count.
 */
export async function calibrate(model: Model, dataset: Dataset, options: CalibrationOptions): Promise<CalibrationResult> {
  const factory = factories.get(options.method);
  if (!factory) throw new WhittleError('UNSUPPORTED', `calibration method ${options.method} is not available`);
  if (dataset.n === 0) throw new WhittleError('BAD_INPUT', `${dataset.path}: the calibration data set is empty`);
  checkOptions(options);
  const names = options.names ?? activationNames(model);
  const collectors = new Map(names.map((n) => [n, factory(n, options)]));
  const tapped = await TappedModel.create(model, names, options.ep ?? 'cpu');
  let samples = 0;
  let samplesPerRun = 1;
  const nonFinite = new Set<string>();
  try {
    for await (const { batch, values } of tapped.batches(dataset, { batchSize: options.batchSize ?? 1, ...(options.maxBytesPerRun ? { maxBytesPerRun: options.maxBytesPerRun } : {}), ...(options.signal ? { signal: options.signal } : {}) })) {
      for (const [name, collector] of collectors) {
        const v = values[name];
        if (!v) continue;
        const data = toFloatScores(v).data;
        collector.update(data);
        if ((collector as { nonFinite?: number }).nonFinite) nonFinite.add(name);
      }
      samples += batch.count;
      options.progress?.(samples, dataset.n);
    }
    if (options.signal?.aborted) throw new WhittleError('CANCELLED', 'calibration cancelled');
    samplesPerRun = tapped.samplesPerRun ?? Math.min(options.batchSize ?? 1, samples);
  } finally {
    await tapped.close();
  }
  const ranges = new Map<string, TensorRange>();
  for (const [name, c] of collectors) ranges.set(name, c.range());
  const noFinite = [...nonFinite].filter((name) => (collectors.get(name) as { finite?: number }).finite === 0);
  return { method: options.method, ranges, samples, nonFinite: [...nonFinite], noFinite, samplesPerRun };
}
