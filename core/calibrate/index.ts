import { WhittleError } from '../../api/errors.ts';
import type { Model } from '../../native-models/ir/model.ts';
import { toFloatScores } from '../../native-models/runtimes/host-tensor.ts';
import type { EpChoice } from '../../native-models/runtimes/onnxruntime.ts';
import type { Dataset } from '../evaluate/data/index.ts';
import { MinMaxCollector, type RangeCollector, type TensorRange } from './collectors.ts';
import { TappedModel } from './tap.ts';

export type { RangeCollector, TensorRange } from './collectors.ts';
export { TappedModel } from './tap.ts';

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy' | 'mse';

export interface CalibrationOptions {
  method: CalibrationMethod;
  /** Values to observe; default: every float activation (graph inputs and node outputs). */
  names?: string[];
  ep?: EpChoice;
  batchSize?: number;
  signal?: AbortSignal;
  progress?: (done: number, total: number) => void;
  /** minmax: exponential moving average of batch ranges (onnxruntime's option). */
  movingAverage?: boolean;
  averagingConstant?: number;
  /** percentile: the share of values kept inside the range (default 99.999). */
  percentile?: number;
  /** percentile: a range symmetric around 0. */
  symmetric?: boolean;
  /** entropy/mse/percentile: histogram bins (default 2048). */
  bins?: number;
  /** entropy/mse: the quantized type the range is searched for. */
  quantType?: 'uint8' | 'int8';
}

export interface CalibrationResult {
  method: CalibrationMethod;
  ranges: Map<string, TensorRange>;
  samples: number;
  /** Tensors in which NaN or Infinity was seen (they are ignored in the statistics). */
  nonFinite: string[];
}

/** The collector factory per method; the histogram-based ones live in histogram.ts. */
export type CollectorFactory = (name: string, options: CalibrationOptions) => RangeCollector;
const factories = new Map<CalibrationMethod, CollectorFactory>([
  ['minmax', (_name, o) => new MinMaxCollector({ ...(o.movingAverage !== undefined ? { movingAverage: o.movingAverage } : {}), ...(o.averagingConstant !== undefined ? { averagingConstant: o.averagingConstant } : {}) })],
]);

export function registerCollector(method: CalibrationMethod, factory: CollectorFactory): void {
  factories.set(method, factory);
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
  const names = options.names ?? activationNames(model);
  const collectors = new Map(names.map((n) => [n, factory(n, options)]));
  const tapped = await TappedModel.create(model, names, options.ep ?? 'cpu');
  let samples = 0;
  const nonFinite = new Set<string>();
  try {
    for await (const { batch, values } of tapped.batches(dataset, { batchSize: options.batchSize ?? 1, ...(options.signal ? { signal: options.signal } : {}) })) {
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
  } finally {
    await tapped.close();
  }
  const ranges = new Map<string, TensorRange>();
  for (const [name, c] of collectors) ranges.set(name, c.range());
  return { method: options.method, ranges, samples, nonFinite: [...nonFinite] };
}
