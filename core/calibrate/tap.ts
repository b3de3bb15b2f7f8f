import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeOnnxFile } from '../../native-models/formats/onnx/index.ts';
import type { Model, ValueInfo } from '../../native-models/ir/model.ts';
import { createSession, runSession, type EpChoice, type OpenSession } from '../../native-models/runtimes/onnxruntime.ts';
import type { HostTensor } from '../../native-models/runtimes/host-tensor.ts';
import { UNFUSED_SESSION } from '../../native-models/runtimes/cpu-int8.ts';
import type { Batch, Dataset } from '../evaluate/data/index.ts';

export interface TapOptions {
  ep?: EpChoice;
  /** Samples the data set reads at a time; runs may take fewer (see maxBytesPerRun). */
  batchSize: number;
  signal?: AbortSignal;
  /** Tapped bytes one run may return (default TAP_BYTES_PER_RUN). */
  maxBytesPerRun?: number;
}

/**
 * What one run of a tapped model may hand back. Every intermediate tensor of a convolutional network
 * is large — ResNet-50 taps about 100 MiB a photo, so a batch of 32 needed 9 GiB — and onnxruntime
 * holds each output once more while it copies it out. Runs are sized to this after the first sample,
 * so calibration memory follows the model, not the batch size or the number of samples.
 */
export const TAP_BYTES_PER_RUN = 128 * 2 ** 20;

export interface TappedBatch {
  batch: Batch;
  /** Every tapped value (and the model's own outputs) for this batch, by name. */
  values: Record<string, HostTensor>;
}

/**
 * A session over a copy of the model in which the named intermediate values are also graph
 * outputs, so one run per batch yields every tensor calibration needs. onnxruntime keeps graph
 * outputs intact through its fusions, so what we observe is the value the float graph computes.
 */
export class TappedModel {
  private constructor(readonly open: OpenSession, private dir: string) {}

  /**
   * `exactInt8`: graph optimizations off, so a QDQ model runs DequantizeLinear → float op →
   * QuantizeLinear — its own arithmetic — instead of onnxruntime's fused int8 kernels (which
   * saturate 8-bit weights on x86 CPUs without VNNI: native-models/runtimes/cpu-int8.ts).
   */
  static async create(model: Model, names: string[], ep: EpChoice = 'cpu', exactInt8 = false): Promise<TappedModel> {
    const dir = mkdtempSync(join(tmpdir(), 'whittle-tap-'));
    const saved = model.graph.outputs;
    try {
      const present = new Set(saved.map((o) => o.name));
      const added: ValueInfo[] = names.filter((n) => !present.has(n)).map((name) => ({ name, type: model.graph.valueType(name), extra: {} }));
      model.graph.outputs = [...saved, ...added];
      const path = join(dir, 'tapped.onnx');
      writeOnnxFile(model, path);
      const open = await createSession(path, { ep, ...(exactInt8 ? UNFUSED_SESSION : {}) });
      return new TappedModel(open, dir);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    } finally {
      model.graph.outputs = saved;
    }
  }

  async run(feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
    return runSession(this.open.session, feeds);
  }

  /** Samples per run the last `batches()` settled on (null before its first run). */
  samplesPerRun: number | null = null;

  /**
   * Every sample of the data set once, in order. A batch whose inputs all lead with its sample count
   * is run one sample first, to measure what a sample taps, then in runs that keep under
   * `maxBytesPerRun`; the statistics callers gather do not depend on how samples are grouped.
   */
  async *batches(dataset: Dataset, options: TapOptions): AsyncGenerator<TappedBatch> {
    const budget = options.maxBytesPerRun ?? TAP_BYTES_PER_RUN;
    let perRun: number | null = null;
    this.samplesPerRun = null;
    for await (const batch of dataset.batches(options.batchSize)) {
      if (options.signal?.aborted) return;
      if (!splittable(batch)) {
        yield { batch, values: await this.run(batch.inputs as Record<string, HostTensor>) };
        continue;
      }
      for (let start = 0; start < batch.count;) {
        if (options.signal?.aborted) return;
        const part = sliceBatch(batch, start, Math.min(perRun ?? 1, batch.count - start));
        const values = await this.run(part.inputs as Record<string, HostTensor>);
        if (perRun === null) {
          perRun = Math.max(1, Math.min(options.batchSize, Math.floor(budget / Math.max(1, tappedBytes(values)))));
          this.samplesPerRun = perRun;
        }
        yield { batch: part, values };
        start += part.count;
      }
    }
  }

  async close(): Promise<void> {
    await this.open.session.release();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function splittable(batch: Batch): boolean {
  const inputs = Object.values(batch.inputs as Record<string, HostTensor>);
  return batch.count > 1 && inputs.length > 0 && inputs.every((t) => t.dims[0] === batch.count);
}

/** Samples [start, start + count) of a batch whose inputs lead with the sample axis (views, no copies). */
function sliceBatch(batch: Batch, start: number, count: number): Batch {
  if (start === 0 && count === batch.count) return batch;
  const inputs: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(batch.inputs as Record<string, HostTensor>)) {
    const per = t.data.length / batch.count;
    inputs[name] = { dtype: t.dtype, dims: [count, ...t.dims.slice(1)], data: t.data.subarray(start * per, (start + count) * per) } as HostTensor;
  }
  return {
    inputs,
    labels: batch.labels ? batch.labels.subarray(start, start + count) : null,
    count,
    index: batch.index + start,
    // a test set's expected outputs belong to the whole batch: a part has none
  };
}

function tappedBytes(values: Record<string, HostTensor>): number {
  let bytes = 0;
  for (const t of Object.values(values)) bytes += t.data.byteLength;
  return bytes;
}
