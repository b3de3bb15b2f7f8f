import type { LayerMetric, RunSummary } from './types.ts';

export interface MetricComparison {
  key: string;
  /** One per run, in the order given; null where the run lacks the metric. */
  values: (number | null)[];
  /** values[i] − values[0]; null where either is missing (so deltas[0] is 0 or null). */
  deltas: (number | null)[];
}

export interface RunComparison {
  runs: string[];
  metrics: MetricComparison[];
}

/**
 * Lines up the runs' metrics by key (sorted), with each run's difference from the first. A recipe
 * records its evaluation under `eval.` (`eval.accuracy.top1`) beside its own figures; an eval run
 * records the same measurements bare (`accuracy.top1`). They are compared on one row, under the
 * bare key, wherever the recipe has no bare metric of that name (its own `seconds` stays apart).
 */
export function compareRuns(runs: readonly Pick<RunSummary, 'id' | 'metrics'>[]): RunComparison {
  const aligned = runs.map((r) => alignEvaluation(r.metrics));
  const keys = [...new Set(aligned.flatMap((m) => Object.keys(m)))].sort();
  const metrics = keys.map((key) => {
    const values = aligned.map((m) => m[key] ?? null);
    const base = values[0] ?? null;
    const deltas = values.map((v) => (v === null || base === null ? null : v - base));
    return { key, values, deltas };
  });
  return { runs: runs.map((r) => r.id), metrics };
}

function alignEvaluation(metrics: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(metrics)) {
    const bare = key.startsWith('eval.') ? key.slice('eval.'.length) : null;
    out[bare !== null && !(bare in metrics) ? bare : key] = value;
  }
  return out;
}

export interface LayerMetricComparison {
  layer: string;
  metric: string;
  /** One per run, in the order given; null where the run lacks that layer's metric. */
  values: (number | null)[];
}

/**
 * Lines up per-layer metrics (layer, metric) across runs, in the order the first run that has a
 * row recorded it: layers stay in model order, as the analysis wrote them.
 */
export function compareLayerMetrics(runs: readonly { layerMetrics: readonly LayerMetric[] }[]): LayerMetricComparison[] {
  const rows = new Map<string, LayerMetricComparison>();
  runs.forEach((run, i) => {
    for (const m of run.layerMetrics) {
      // JSON of the pair: no separator character can make two different pairs collide
      const key = JSON.stringify([m.layer, m.metric]);
      let row = rows.get(key);
      if (!row) rows.set(key, (row = { layer: m.layer, metric: m.metric, values: runs.map(() => null) }));
      row.values[i] = m.value;
    }
  });
  return [...rows.values()];
}
