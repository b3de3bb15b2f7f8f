import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WhittleError } from '../../api/errors.ts';
import { writeOnnxFile } from '../../native-models/formats/onnx/index.ts';
import type { Model, ValueInfo } from '../../native-models/ir/model.ts';
import { toFloatScores, type HostTensor } from '../../native-models/runtimes/host-tensor.ts';
import { createSession, runSession, type EpChoice } from '../../native-models/runtimes/onnxruntime.ts';
import { UNFUSED_SESSION } from '../../native-models/runtimes/cpu-int8.ts';
import { openDataset, type Batch, type ModelInputSpec, type PresetName } from '../evaluate/data/index.ts';
import { tokenInputOf } from '../evaluate/data/types.ts';
import { batchSizeFor, inputSpecs, outputIsProbabilities } from '../evaluate/evaluate.ts';
import { Agreement, isSequenceScores, NextTokenMetrics, type AgreementResult, type NextTokenResult } from '../evaluate/metrics.ts';

/**
 * What every sensitivity trial shares: a small data set held in memory, the float model's outputs
 * on it (computed once), and a way to run a changed copy of the model and say how far its output
 * (and, optionally, one intermediate tensor) is from the float one. Trials are many and small, so
 * the data is read once instead of once per trial.
 */
export interface AnalysisDataOptions {
  preprocess?: PresetName | undefined;
  limit: number;
  offset?: number | undefined;
  seed?: number | undefined;
}

export interface AnalysisData {
  path: string;
  inputs: ModelInputSpec[];
  batches: Batch[];
  n: number;
  warnings: string[];
}

export async function loadAnalysisData(model: Model, spec: string, options: AnalysisDataOptions): Promise<AnalysisData> {
  const inputs = inputSpecs(model);
  const dataset = await openDataset(spec, inputs, {
    ...(options.preprocess ? { preprocess: options.preprocess } : {}),
    limit: options.limit,
    ...(options.offset !== undefined ? { offset: options.offset } : {}),
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
  });
  if (dataset.n === 0) throw new WhittleError('BAD_INPUT', `${dataset.path}: no samples to analyze with`);
  const batches: Batch[] = [];
  for await (const b of dataset.batches(batchSizeFor(inputs, 32))) batches.push(b);
  return { path: dataset.path, inputs, batches, n: batches.reduce((s, b) => s + b.count, 0), warnings: dataset.warnings };
}

/**
 * The `holdout` samples right after the analysis data (`data`, read from `offset`): where an analysis
 * measures its recommendation again, on samples its choices never saw. Read before the trials, so a
 * data set with nothing left fails at once; fewer left than asked is a warning. null: none asked for.
 */
export async function loadHeldOutData(model: Model, spec: string, data: AnalysisData, options: { preprocess?: PresetName | undefined; offset?: number | undefined; holdout?: number | undefined }, warnings: string[]): Promise<(AnalysisData & { offset: number }) | null> {
  if (!options.holdout) return null;
  const offset = (options.offset ?? 0) + data.n;
  const held = await loadAnalysisData(model, spec, { preprocess: options.preprocess, limit: options.holdout, offset }).catch((e: unknown) => {
    throw e instanceof WhittleError && /no samples/.test(e.message) ? new WhittleError('BAD_INPUT', `${data.path}: no samples left for --holdout ${options.holdout} after the first ${offset} (the trials' end)`, { file: data.path }) : e;
  });
  if (held.n < options.holdout) warnings.push(`--holdout ${options.holdout}: ${data.path} has only ${held.n} samples after the first ${offset}; the check uses those`);
  return { ...held, offset };
}

/** How a trial model compares with the float model. */
export interface TrialResult {
  /** Model output vs the float model's (top1 agreement, SQNR, cosine...). */
  output: AgreementResult;
  /** Per tapped tensor: SQNR (dB) vs the float value over the tap samples; null when identical. */
  taps: Record<string, number | null>;
  /**
   * A language model fed token windows: next-token perplexity, nats per token and top-1 of the
   * trial model over the same windows (the float model's are `TrialRunner.language`); else null.
   */
  language: NextTokenResult | null;
  /** The trial model's size as written (with its external data), taps aside: what leaving nodes float costs. */
  bytes: number;
}

/** What an analysis reports of a trial: output SQNR, top-1 agreement, and perplexity for a language model. */
export interface TrialFigures { sqnrDb: number | null; top1: number | null; perplexity: number | null }

export function trialFigures(r: TrialResult): TrialFigures {
  return { sqnrDb: r.output.sqnrDb, top1: r.output.top1, perplexity: r.language?.perplexity ?? null };
}

type Scores = { dims: number[]; data: Float32Array | Float64Array };

/** Output SQNR as a number: identical outputs are +∞ (JSON writers turn that into null). */
export function sqnrValue(a: AgreementResult): number {
  return a.sqnrDb ?? (a.identical ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY);
}

export class TrialRunner {
  private dir: string;
  private count = 0;
  /** The float model's next-token metrics on the data, for a language model fed token windows; else null. */
  language: NextTokenResult | null = null;
  /** Trials run unfused (graph optimizations off): see create. */
  private exactInt8 = false;

  private constructor(
    readonly data: AnalysisData,
    readonly outputName: string,
    private reference: Scores[],
    private referenceTaps: Map<string, Scores[]>,
    /** Taps are compared on the first this-many batches only (intermediate tensors are big). */
    readonly tapBatches: number,
    private ep: EpChoice,
    private signal: AbortSignal | undefined,
    /** A language model's token input and whether its output is already probabilities (a Softmax). */
    private tokens: { input: string; probabilities: boolean } | null,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'whittle-analyze-'));
  }

  /**
   * Runs the float model once over the data, keeping its output and (for the first `tapSamples`
   * samples) the named intermediate tensors. `exactInt8`: the trials then run with graph
   * optimizations off, in the quantized models' own arithmetic — for 8-bit weights on a CPU whose
   * fused int8 kernels saturate them (runtimes/cpu-int8.ts).
   */
  static async create(floatModel: Model, data: AnalysisData, options: { taps?: string[]; tapSamples?: number; ep?: EpChoice; signal?: AbortSignal | undefined; exactInt8?: boolean } = {}): Promise<TrialRunner> {
    const outputName = floatModel.graph.outputs[0]?.name;
    if (!outputName) throw new WhittleError('BAD_INPUT', `${floatModel.path}: the model has no outputs`);
    const taps = [...new Set(options.taps ?? [])].filter((t) => t !== outputName);
    const perBatch = data.batches[0]?.count ?? 1;
    const tapBatches = Math.min(data.batches.length, Math.max(1, Math.ceil((options.tapSamples ?? 8) / perBatch)));
    const tokenInput = tokenInputOf(data.inputs)?.name;
    const tokens = tokenInput ? { input: tokenInput, probabilities: outputIsProbabilities(floatModel, outputName) } : null;
    const runner = new TrialRunner(data, outputName, [], new Map(taps.map((t) => [t, []])), tapBatches, options.ep ?? 'cpu', options.signal, tokens);
    const { session } = await runner.open(floatModel, taps);
    runner.exactInt8 = options.exactInt8 ?? false;
    const language = runner.nextTokenMetrics();
    try {
      for (let i = 0; i < data.batches.length; i++) {
        runner.checkAborted();
        const out = await runSession(session.session, data.batches[i]!.inputs as Record<string, HostTensor>);
        const scores = toFloatScores(out[outputName]!);
        runner.reference.push(scores);
        language?.update(i, scores);
        if (i < tapBatches) for (const t of taps) if (out[t]) runner.referenceTaps.get(t)!.push(toFloatScores(out[t]));
      }
      runner.language = language?.result() ?? null;
    } catch (err) {
      runner.close();
      throw err;
    } finally {
      await session.session.release();
    }
    return runner;
  }

  /** Runs `model` (already changed by the caller) on the data and compares it with the float model. */
  async measure(model: Model, taps: string[] = []): Promise<TrialResult> {
    const known = taps.filter((t) => this.referenceTaps.has(t));
    const { session, bytes } = await this.open(model, known);
    const output = new Agreement();
    const language = this.nextTokenMetrics();
    const tapAgreement = new Map(known.map((t) => [t, new Agreement()]));
    try {
      for (let i = 0; i < this.data.batches.length; i++) {
        this.checkAborted();
        const out = await runSession(session.session, this.data.batches[i]!.inputs as Record<string, HostTensor>);
        const y = out[this.outputName];
        if (!y) throw new WhittleError('BAD_INPUT', `trial model lost output ${this.outputName}`);
        const scores = toFloatScores(y);
        output.update(this.reference[i]!, scores);
        language?.update(i, scores);
        if (i < this.tapBatches) {
          for (const [t, agg] of tapAgreement) {
            const ref = this.referenceTaps.get(t)![i];
            if (ref && out[t]) agg.update(ref, toFloatScores(out[t]));
          }
        }
      }
    } finally {
      await session.session.release();
    }
    const tapResults: Record<string, number | null> = {};
    for (const [t, agg] of tapAgreement) {
      const r = agg.result();
      tapResults[t] = r ? (r.identical ? null : r.sqnrDb) : null;
    }
    return { output: output.result()!, taps: tapResults, language: language?.result() ?? null, bytes };
  }

  /**
   * Next-token metrics over the data's token windows, fed batch by batch; null unless the model
   * reads token windows. Scores of another shape than [batch, positions, vocabulary] leave it empty
   * (result null): the model is then not scored as a language model.
   */
  private nextTokenMetrics(): { update(batch: number, scores: Scores): void; result(): NextTokenResult | null } | null {
    const tokens = this.tokens;
    if (!tokens) return null;
    const metrics = new NextTokenMetrics(tokens.probabilities);
    return {
      update: (batch, scores) => {
        const t = this.data.batches[batch]!.inputs[tokens.input] as HostTensor | undefined;
        if (t && isSequenceScores(t, scores)) metrics.update(t.data as ArrayLike<number | bigint>, t.dims, scores);
      },
      result: () => metrics.result(),
    };
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private checkAborted(): void {
    if (this.signal?.aborted) throw new WhittleError('CANCELLED', 'analysis cancelled');
  }

  /** Writes the model with `taps` added as outputs (restoring its outputs after) and opens it; the bytes written. */
  private async open(model: Model, taps: string[]) {
    const saved = model.graph.outputs;
    const path = join(this.dir, `trial-${this.count++}.onnx`);
    try {
      const present = new Set(saved.map((o) => o.name));
      const added: ValueInfo[] = taps.filter((n) => !present.has(n)).map((name) => ({ name, type: model.graph.valueType(name), extra: {} }));
      model.graph.outputs = [...saved, ...added];
      writeOnnxFile(model, path);
    } finally {
      model.graph.outputs = saved;
    }
    const data = `${path}.data`;
    const bytes = statSync(path).size + (existsSync(data) ? statSync(data).size : 0);
    try {
      return { session: await createSession(path, { ep: this.ep, ...(this.exactInt8 ? UNFUSED_SESSION : {}) }), bytes };
    } finally {
      rmSync(path, { force: true });
      rmSync(data, { force: true });
    }
  }
}
