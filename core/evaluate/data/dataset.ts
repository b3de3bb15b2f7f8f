/**
 * The batching every source shares: offset and limit, batches of at most `batchSize`, one encoder
 * per model input, and an eager check of the first sample so a mismatch between data and model is
 * reported when the data is opened, not halfway through an evaluation.
 */
import { badInput, WhittleError } from '../../../api/errors.ts';
import type { Batch, Dataset, DatasetKind, DatasetOptions, ModelInputSpec } from './types.ts';
import { InputEncoder } from './encode.ts';
import { planInput } from './input-plan.ts';
import type { SampleRecord, SampleSource } from './sample.ts';

export interface SourceInfo {
  kind: DatasetKind;
  path: string;
  hasLabels: boolean;
  synthetic?: boolean;
  classNames?: string[];
  warnings?: string[];
}

/** The [start, end) sample range that offset and limit select, checked against the data. */
export function sampleRange(total: number, options: DatasetOptions, path: string): { start: number; end: number } {
  const start = options.offset ?? 0;
  if (start > total) {
    throw new WhittleError('BAD_USAGE', `offset ${start} is past the end of ${path}, which holds ${total} samples`, { file: path });
  }
  const end = options.limit === undefined ? total : Math.min(total, start + options.limit);
  return { start, end };
}

export function checkBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new WhittleError('BAD_USAGE', `batch size must be a whole number ≥ 1, got ${batchSize}`);
  }
}

export async function makeDataset(
  info: SourceInfo, source: SampleSource, inputs: ModelInputSpec[], options: DatasetOptions,
): Promise<Dataset> {
  if (source.total === 0) throw badInput(info.path, 'holds no samples');
  const encoders = inputs.map((spec) => new InputEncoder(planInput(spec, options, inputs.length === 1), options));
  const { start, end } = sampleRange(source.total, options, info.path);

  function encode(records: SampleRecord[], index: number): Batch {
    const batchInputs: Batch['inputs'] = {};
    encoders.forEach((enc, k) => {
      const samples = records.map((r) => r.inputs[k]!);
      batchInputs[enc.plan.spec.name] = enc.encode(samples, records.map((r) => r.file));
    });
    const labels = info.hasLabels ? Int32Array.from(records, (r) => r.label ?? -1) : null;
    return { inputs: batchInputs, labels, count: records.length, index };
  }

  if (end > start) {
    // Fail at open time if the first sample cannot feed the model.
    const first = source.read(start);
    try {
      const r = await first.next();
      if (!r.done) encode([r.value], start);
    } finally {
      await first.return(undefined);
    }
  }

  return {
    kind: info.kind,
    path: info.path,
    n: end - start,
    synthetic: info.synthetic ?? false,
    hasLabels: info.hasLabels,
    ...(info.classNames ? { classNames: info.classNames } : {}),
    warnings: [...(info.warnings ?? []), ...encoders.map((e) => e.plan.presetIgnored).filter((w): w is string => w !== null)],
    async *batches(batchSize: number): AsyncGenerator<Batch> {
      checkBatchSize(batchSize);
      if (end <= start) return;
      let pending: SampleRecord[] = [];
      let index = start;
      let i = start;
      const it = source.read(start);
      try {
        for await (const record of it) {
          pending.push(record);
          i++;
          if (pending.length === batchSize || i === end) {
            yield encode(pending, index);
            index = i;
            pending = [];
          }
          if (i === end) break;
        }
      } finally {
        await it.return(undefined);
      }
      if (i < end) throw new WhittleError('BAD_INPUT', `${info.path}: ended after ${i} samples, ${end} expected`, { file: info.path });
    },
  };
}
