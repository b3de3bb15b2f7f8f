import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeOnnxFile } from '../../native-models/formats/onnx/index.ts';
import type { Model, ValueInfo } from '../../native-models/ir/model.ts';
import { createSession, runSession, type EpChoice, type OpenSession } from '../../native-models/runtimes/onnxruntime.ts';
import type { HostTensor } from '../../native-models/runtimes/host-tensor.ts';
import type { Batch, Dataset } from '../evaluate/data/index.ts';

export interface TapOptions {
  ep?: EpChoice;
  batchSize: number;
  signal?: AbortSignal;
}

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

  static async create(model: Model, names: string[], ep: EpChoice = 'cpu'): Promise<TappedModel> {
    const dir = mkdtempSync(join(tmpdir(), 'whittle-tap-'));
    const saved = model.graph.outputs;
    try {
      const present = new Set(saved.map((o) => o.name));
      const added: ValueInfo[] = names.filter((n) => !present.has(n)).map((name) => ({ name, type: model.graph.valueType(name), extra: {} }));
      model.graph.outputs = [...saved, ...added];
      const path = join(dir, 'tapped.onnx');
      writeOnnxFile(model, path);
      const open = await createSession(path, { ep });
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

  async *batches(dataset: Dataset, options: TapOptions): AsyncGenerator<TappedBatch> {
    for await (const batch of dataset.batches(options.batchSize)) {
      if (options.signal?.aborted) return;
      yield { batch, values: await this.run(batch.inputs as Record<string, HostTensor>) };
    }
  }

  async close(): Promise<void> {
    await this.open.session.release();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
