import { formatBytes, formatDuration, formatPercent } from '../../lib/format.ts';
import { flattenNumbers, formatMetric, keyMetric } from '../experiments/metrics.ts';

/**
 * One line of facts about a succeeded job, from its result (the CLI's --json document:
 * quantize/prune `StepFileReport`, eval, analyze, recipe). Unknown shapes give what they have.
 * `kind` is the job's or run's kind, where the result alone does not say enough.
 */
export interface SummaryItem {
  label: string;
  value: string;
  /** 'better' | 'worse' for a change the reader should notice. */
  tone?: 'better' | 'worse';
}

export function summarizeResult(result: unknown, kind?: string): SummaryItem[] {
  if (!result || typeof result !== 'object') return [];
  const m = flattenNumbers(result);
  const items: SummaryItem[] = [];

  const before = m['bytesBefore'];
  const after = keyMetric(m, 'size');
  if (typeof before === 'number' && after && after.key !== 'bytes') {
    const ratio = before > 0 ? after.value / before : null;
    items.push({
      label: 'Size',
      value: `${formatBytes(before)} → ${formatBytes(after.value)}${ratio !== null ? ` (${ratio <= 1 ? '−' : '+'}${formatPercent(Math.abs(1 - ratio), 0)})` : ''}`,
      ...(ratio !== null && ratio < 1 ? { tone: 'better' as const } : ratio !== null && ratio > 1 ? { tone: 'worse' as const } : {}),
    });
  } else if (after) {
    items.push({ label: 'Size', value: formatBytes(after.value) });
  }
  const pb = m['parametersBefore'];
  const pa = m['parametersAfter'];
  if (typeof pb === 'number' && typeof pa === 'number' && pb !== pa) items.push({ label: 'Parameters', value: `${formatMetric('parameters', pb)} → ${formatMetric('parameters', pa)}` });
  // Quantized weights that round to zero are not pruning: sparsity is news only after a prune.
  const pruned = kind === 'prune' || (kind === 'recipe' && JSON.stringify((result as { steps?: unknown }).steps ?? '').includes('prune'));
  if (pruned && typeof m['sparsity'] === 'number') items.push({ label: 'Sparsity', value: formatPercent(m['sparsity']) });

  for (const id of ['top1', 'agreement', 'sqnr', 'latency'] as const) {
    const k = keyMetric(m, id);
    if (k) items.push({ label: LABELS[id], value: formatMetric(k.key, k.value) });
  }

  items.push(...analysisItems(result, m));
  if (typeof m['seconds'] === 'number') items.push({ label: 'Took', value: formatDuration(m['seconds']) });
  return items;
}

/** What an analysis recommends (cli/commands/analyze.ts): layers to keep float, or a sparsity plan. */
function analysisItems(result: object, m: Record<string, number>): SummaryItem[] {
  const r = result as { for?: unknown; recommendation?: { exclude?: unknown; plan?: unknown } };
  const rec = r.recommendation;
  if (!rec) return [];
  const db = (key: string) => formatMetric('sqnrDb', m[key]);
  if (r.for === 'quantize') {
    const exclude = Array.isArray(rec.exclude) ? rec.exclude.map(String) : [];
    const items: SummaryItem[] = [{ label: 'Keep float', value: exclude.length ? exclude.join(', ') : 'nothing' }];
    if ('recommendation.allInt8.sqnrDb' in m) items.push({ label: 'All int8', value: `${db('recommendation.allInt8.sqnrDb')} · ${formatPercent(m['recommendation.allInt8.top1'])}` });
    if (exclude.length && 'recommendation.withExclusions.sqnrDb' in m) {
      items.push({ label: 'With exclusions', value: `${db('recommendation.withExclusions.sqnrDb')} · ${formatPercent(m['recommendation.withExclusions.top1'])}`, tone: 'better' });
    }
    return items;
  }
  if (r.for === 'prune') {
    const items: SummaryItem[] = [];
    if (Array.isArray(rec.plan) && rec.plan.length) {
      const plan = rec.plan as Array<{ layer?: unknown; sparsity?: unknown }>;
      items.push({ label: 'Sparsity plan', value: plan.map((p) => `${String(p.layer)} ${formatPercent(Number(p.sparsity), 0)}`).join(', ') });
    }
    const planned = m['recommendation.measured.sqnrDb'];
    const uniform = m['recommendation.uniform.sqnrDb'];
    if (planned !== undefined) items.push({ label: 'Planned SQNR', value: db('recommendation.measured.sqnrDb'), ...(uniform !== undefined && planned > uniform ? { tone: 'better' as const } : {}) });
    if ('recommendation.uniform.sqnrDb' in m) items.push({ label: `Uniform ${formatPercent(m['recommendation.uniform.sparsity'], 0)}`, value: db('recommendation.uniform.sqnrDb') });
    return items;
  }
  return [];
}

const LABELS = { top1: 'Top-1', agreement: 'Agreement', sqnr: 'SQNR', latency: 'Latency p50' } as const;

/** The analysis' own words about its recommendation, when it has some. */
export function resultNote(result: unknown): string | null {
  const note = (result as { recommendation?: { note?: unknown } } | null)?.recommendation?.note;
  return typeof note === 'string' && note ? note : null;
}
