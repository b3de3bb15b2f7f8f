import { z } from 'zod';
import { ERROR_CODES } from './errors.ts';
import { DataRef, PruneStep, QuantizeStep, Recipe, RecipeStep } from './recipe.ts';

/**
 * The shapes that cross the boundary between the app (renderer) and the engine, whatever carries
 * them (Electron IPC or the server's WebSocket). Engine code produces plain objects of these shapes;
 * the dispatcher validates them on the way in and out.
 */

export const ErrorInfo = z.object({ code: z.enum(ERROR_CODES), message: z.string() });
export type ErrorInfo = z.infer<typeof ErrorInfo>;

export const EP_NAMES = ['auto', 'cpu', 'webgpu', 'cuda'] as const;
export const EpName = z.enum(EP_NAMES);
export type EpName = z.infer<typeof EpName>;

/** A model the user opened: a file the engine may read (checked against the workspace in server mode). */
export const ModelRef = z.object({
  path: z.string(),
  name: z.string(),
  format: z.enum(['onnx', 'tfjs']),
  bytes: z.number(),
  openedAt: z.string(),
});
export type ModelRef = z.infer<typeof ModelRef>;

/** Built-in example models (fixtures and models the project makes), shown in the Library. */
export const ExampleModel = z.object({
  id: z.string(),
  title: z.string(),
  description: z.string(),
  path: z.string(),
  /** Data that suits it (evaluation, and calibration unless `calibration` is set), with its preprocessing preset. */
  data: DataRef.nullable(),
  /** Calibration data when it differs from `data` (a training split, where `data` is held back). */
  calibration: DataRef.nullable(),
  available: z.boolean(),
});
export type ExampleModel = z.infer<typeof ExampleModel>;

const Dim = z.union([z.number(), z.string(), z.null()]);
const IoInfo = z.object({ name: z.string(), dtype: z.string(), shape: z.array(Dim).nullable() });

export const LayerRow = z.object({
  name: z.string(),
  op: z.string(),
  weight: z.string(),
  shape: z.array(z.number()),
  parameters: z.number(),
  zeros: z.number(),
  sparsity: z.number(),
  dtype: z.string(),
  bias: z.string().nullable(),
  biasParameters: z.number(),
  graph: z.string().optional(),
}).passthrough();
export type LayerRow = z.infer<typeof LayerRow>;

/** SPEC §3 inspect document (ONNX and TF.js). */
export const InspectReport = z.object({
  format: z.enum(['onnx', 'tfjs']),
  path: z.string(),
  bytes: z.number(),
  parameters: z.number(),
  nonzeroParameters: z.number(),
  sparsity: z.number(),
  nodes: z.number(),
  inputs: z.array(IoInfo),
  outputs: z.array(IoInfo),
  opHistogram: z.record(z.string(), z.number()),
  layers: z.array(LayerRow),
  /** ONNX: multi-head attention blocks head pruning can take (their q/k/v/o layer names). */
  // kvHeads: grouped-query attention's key/value heads (heads are pruned by whole groups)
  attention: z.array(z.object({ block: z.string(), heads: z.number(), headDim: z.number(), kvHeads: z.number().optional(), layers: z.array(z.string()) })).optional(),
}).passthrough();
export type InspectReport = z.infer<typeof InspectReport>;

/** Weight value distribution of one layer (the model view's histogram). */
export const WeightHistogram = z.object({
  layer: z.string(),
  weight: z.string(),
  min: z.number(),
  max: z.number(),
  /** bins + 1 edges. */
  edges: z.array(z.number()),
  counts: z.array(z.number()),
  zeros: z.number(),
  total: z.number(),
});
export type WeightHistogram = z.infer<typeof WeightHistogram>;

// ---- jobs -------------------------------------------------------------------------------------

export const QuantizeJob = z.object({ kind: z.literal('quantize'), model: z.string(), step: QuantizeStep, ep: EpName.default('cpu'), seed: z.number().int().default(0) }).strict();
export const PruneJob = z.object({ kind: z.literal('prune'), model: z.string(), step: PruneStep, ep: EpName.default('cpu'), seed: z.number().int().default(0) }).strict();
export const EvalJob = z.object({
  kind: z.literal('eval'),
  model: z.string(),
  data: DataRef.optional(),
  /** A model to compare outputs with (agreement, SQNR). */
  reference: z.string().optional(),
  ep: EpName.default('cpu'),
  runs: z.number().int().positive().optional(),
  /** `whittle eval --exact-int8`: the model's own int8 arithmetic (see EvalSpec.exactInt8). */
  exactInt8: z.boolean().optional(),
}).strict();
export const AnalyzeJob = z.object({
  kind: z.literal('analyze'),
  model: z.string(),
  for: z.enum(['quantize', 'prune']),
  data: DataRef,
  /**
   * The recipe builder's steps: the first static quantize step (calibrator, granularity, GPTQ…) or
   * the first prune step sets up the analysis. Their own calibration data is not read; `data` is.
   */
  steps: z.array(RecipeStep).min(1).max(16).optional(),
  targetAgreement: z.number().min(0).max(1).optional(),
  /** Samples after the analysis data's on which the recommendation is measured again. */
  holdout: z.number().int().positive().optional(),
  budgetRatio: z.number().min(0).max(1).optional(),
  ep: EpName.default('cpu'),
}).strict();
/** A recipe whose paths are absolute (the app has no recipe file to be relative to). */
export const RecipeJob = z.object({ kind: z.literal('recipe'), recipe: Recipe }).strict();
/** A job that sleeps in small steps: exercises progress, cancel and crash handling without a model. */
export const SleepJob = z.object({ kind: z.literal('sleep'), seconds: z.number().positive().max(3600), crash: z.enum(['none', 'throw', 'exit']).default('none') }).strict();

/**
 * A built-in experiment (`whittle demo NAME`), with the options of its command. Game of Life:
 * seeds per row, steps n = 1..N (1–5), the overcomplete multiplier m, the epoch budget of a run,
 * and whether to prune afterwards. Lottery: seeds, IMP rounds, epochs per training, and the digits
 * data (the fixture when absent). Left out: the command's defaults (docs/training.md).
 */
export const DEMO_NAMES = ['game-of-life', 'lottery'] as const;
const GAME_OF_LIFE_ONLY = ['steps', 'multiplier', 'maxEpochs', 'prune'] as const;
const LOTTERY_ONLY = ['rounds', 'epochs', 'data'] as const;
export const DemoJob = z.object({
  kind: z.literal('demo'),
  demo: z.enum(DEMO_NAMES),
  seeds: z.number().int().min(1).max(100).optional(),
  steps: z.number().int().min(1).max(5).optional(),
  multiplier: z.number().int().min(2).max(64).optional(),
  maxEpochs: z.number().int().min(1).max(10_000).optional(),
  prune: z.boolean().optional(),
  rounds: z.number().int().min(1).max(50).optional(),
  epochs: z.number().int().min(1).max(10_000).optional(),
  data: z.string().optional(),
}).strict().superRefine((job, ctx) => {
  const foreign = job.demo === 'lottery' ? GAME_OF_LIFE_ONLY : LOTTERY_ONLY;
  for (const key of foreign) {
    if (job[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `${key} is an option of the ${job.demo === 'lottery' ? 'game-of-life' : 'lottery'} demo` });
  }
});

export const JobSpec = z.discriminatedUnion('kind', [QuantizeJob, PruneJob, EvalJob, AnalyzeJob, RecipeJob, SleepJob, DemoJob]);
export type JobSpec = z.input<typeof JobSpec>;
export type JobSpecParsed = z.output<typeof JobSpec>;
export type JobKind = JobSpecParsed['kind'];

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export const JobStatus = z.enum(JOB_STATUSES);
export type JobStatus = z.infer<typeof JobStatus>;

export const JobProgress = z.object({
  jobId: z.string(),
  phase: z.string(),
  done: z.number(),
  total: z.number(),
  /** Seconds left at the current rate; null until there is a rate. */
  etaS: z.number().nullable(),
});
export type JobProgress = z.infer<typeof JobProgress>;

export const JobLog = z.object({ jobId: z.string(), level: z.enum(['info', 'warn', 'error']), message: z.string(), at: z.string() });
export type JobLog = z.infer<typeof JobLog>;

export const JobInfo = z.object({
  jobId: z.string(),
  kind: z.enum(['quantize', 'prune', 'eval', 'analyze', 'recipe', 'sleep', 'demo']),
  /** One line for lists: "quantize static int8 · squeezenet1.0_fp32.onnx". */
  title: z.string(),
  spec: z.unknown(),
  status: JobStatus,
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  progress: JobProgress.nullable(),
  /** The store run that records it, once the job process has started it. */
  runId: z.string().nullable(),
  /** Process id of the job process while it runs. */
  pid: z.number().nullable(),
  error: ErrorInfo.nullable(),
  /** The job's JSON result (the CLI's --json document) once it succeeded. */
  result: z.unknown().optional(),
  /** The last log lines (the full log is in the run's artifacts). */
  logs: z.array(JobLog),
});
export type JobInfo = z.infer<typeof JobInfo>;

// ---- experiments ------------------------------------------------------------------------------

export const RUN_KIND_NAMES = ['eval', 'convert', 'quantize', 'prune', 'analyze', 'recipe', 'demo'] as const;
export const RUN_STATUS_NAMES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'] as const;

export const RunSummary = z.object({
  id: z.string(),
  kind: z.string(),
  status: z.enum(RUN_STATUS_NAMES),
  experimentId: z.string().nullable(),
  experimentName: z.string().nullable(),
  command: z.array(z.string()),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  error: z.string().nullable(),
  model: z.string().nullable(),
  metrics: z.record(z.string(), z.number()),
});
export type RunSummary = z.infer<typeof RunSummary>;

export const RunDetail = RunSummary.extend({
  errorCode: z.string().nullable(),
  recipe: z.unknown(),
  environment: z.object({
    versions: z.record(z.string(), z.string()),
    ep: z.string().nullable(),
    device: z.string().nullable(),
    seed: z.number().nullable(),
    host: z.string(),
    platform: z.string(),
  }),
  pid: z.number().nullable(),
  hostname: z.string().nullable(),
  result: z.unknown(),
  inputs: z.array(z.object({ role: z.string(), path: z.string(), sha256: z.string().nullable(), bytes: z.number().nullable() })),
  layerMetrics: z.array(z.object({ layer: z.string(), metric: z.string(), value: z.number() })),
  artifacts: z.array(z.object({ name: z.string(), path: z.string(), sha256: z.string(), bytes: z.number(), createdAt: z.string() })),
});
export type RunDetail = z.infer<typeof RunDetail>;

export const RunFilter = z.object({
  kind: z.string().optional(),
  status: z.enum(RUN_STATUS_NAMES).optional(),
  /** Substring of the model path or command. */
  text: z.string().optional(),
  limit: z.number().int().nonnegative().optional(),
}).strict();
export type RunFilter = z.infer<typeof RunFilter>;

export const RunComparison = z.object({
  runs: z.array(z.string()),
  metrics: z.array(z.object({ key: z.string(), values: z.array(z.number().nullable()), deltas: z.array(z.number().nullable()) })),
  /** Per-layer metrics lined up the same way (layer, metric → one value per run). */
  layers: z.array(z.object({ layer: z.string(), metric: z.string(), values: z.array(z.number().nullable()) })),
  /**
   * Each run against the first on the same samples (both evaluated on the same data, with the same
   * reference for agreement): how many samples only one of them gets right, and McNemar's exact p.
   */
  paired: z.array(z.object({
    metric: z.enum(['accuracy', 'agreement']),
    run: z.number().int(),
    n: z.number().int(),
    both: z.number().int(),
    onlyBase: z.number().int(),
    onlyRun: z.number().int(),
    neither: z.number().int(),
    difference: z.number(),
    pValue: z.number(),
  })),
  /**
   * Language models against the first run on the same token windows: the perplexity ratio with a
   * 95 % bootstrap interval over windows, how many windows got worse or better, the sign test's p.
   */
  pairedPerplexity: z.array(z.object({
    run: z.number().int(),
    windows: z.number().int(),
    tokens: z.number().int(),
    basePerplexity: z.number(),
    runPerplexity: z.number(),
    ratio: z.number(),
    low: z.number(),
    high: z.number(),
    worse: z.number().int(),
    better: z.number().int(),
    pValue: z.number(),
  })),
});
export type RunComparison = z.infer<typeof RunComparison>;

/** A file the user can fetch: a local path (Electron) and, in server mode, a download URL. */
export const ExportedFile = z.object({ name: z.string(), path: z.string(), bytes: z.number(), url: z.string().nullable() });
export type ExportedFile = z.infer<typeof ExportedFile>;

// ---- devices and settings ---------------------------------------------------------------------

export const DeviceReport = z.object({
  providers: z.array(z.object({
    name: z.string(),
    runtime: z.enum(['onnxruntime', 'tfjs']),
    available: z.boolean(),
    reason: z.string().nullable(),
    device: z.string().optional(),
    version: z.string().optional(),
  })),
  adapters: z.array(z.object({ backend: z.string(), vendor: z.string(), name: z.string(), description: z.string().optional(), architecture: z.string().optional(), fallback: z.boolean().optional() })),
  adaptersReason: z.string().nullable(),
  onnxruntimeNode: z.string().nullable(),
  /** Whether onnxruntime's int8 CPU kernels saturate 8-bit weights here (x86 without VNNI), and so whether int8 weights default to 7 bits. */
  int8: z.object({ saturates: z.boolean(), cpu: z.string(), detail: z.string() }).optional(),
}).passthrough();
export type DeviceReport = z.infer<typeof DeviceReport>;

export const Settings = z.object({
  ep: EpName,
  /** Jobs that run at once. */
  concurrency: z.number().int().min(1).max(16),
  theme: z.enum(['system', 'light', 'dark']),
});
export type Settings = z.infer<typeof Settings>;

export const AppInfo = z.object({
  version: z.string(),
  /** WHITTLE_HOME: the store and artifacts. */
  home: z.string(),
  mode: z.enum(['electron', 'browser']),
  /** Server mode: the folders the engine may read besides uploads. */
  workspace: z.array(z.string()),
  /** Server mode: where dropped files are uploaded (POST), else null. */
  uploadUrl: z.string().nullable(),
  platform: z.string(),
});
export type AppInfo = z.infer<typeof AppInfo>;
