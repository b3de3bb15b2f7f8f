/** The shapes the store hands out. Field names are camelCase; the SQL columns are snake_case. */

export const RUN_KINDS = ['eval', 'convert', 'quantize', 'prune', 'analyze', 'recipe', 'demo'] as const;
export type RunKind = (typeof RUN_KINDS)[number];

export const RUN_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** What produced a result: enough to tell two runs' numbers apart for a reason other than the model. */
export interface RunEnvironment {
  versions: Record<string, string>;
  ep: string | null;
  device: string | null;
  seed: number | null;
  host: string;
  platform: string;
}

export interface RunInput {
  role: string; // model | data | reference | calib | recipe ...
  path: string;
  /** Null for folders and for inputs that are not files (`synthetic:100`). */
  sha256: string | null;
  bytes: number | null;
}

export interface LayerMetric {
  layer: string;
  metric: string;
  value: number;
}

export interface ArtifactRecord {
  name: string;
  /** Absolute path inside WHITTLE_HOME/artifacts/<run-id>/. */
  path: string;
  sha256: string;
  bytes: number;
  createdAt: string;
}

/** One row of `experiments list`: cheap to load for many runs. */
export interface RunSummary {
  id: string;
  kind: RunKind;
  status: RunStatus;
  experimentId: string | null;
  experimentName: string | null;
  command: string[];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  /** Path of the first input with role `model`, when there is one. */
  model: string | null;
  metrics: Record<string, number>;
}

/** Everything about one run. */
export interface RunDetail extends RunSummary {
  errorCode: string | null;
  recipe: unknown;
  environment: RunEnvironment;
  pid: number | null;
  hostname: string | null;
  /** The command's full JSON output, as it printed it. */
  result: unknown;
  inputs: RunInput[];
  layerMetrics: LayerMetric[];
  artifacts: ArtifactRecord[];
}

export interface RunFilter {
  kind?: RunKind;
  status?: RunStatus;
  experimentId?: string;
  /** Case-insensitive substring of the model path or of the command line. */
  text?: string;
  /** Most recent first; undefined or 0 means all. */
  limit?: number;
}
