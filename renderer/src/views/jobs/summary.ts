import { formatBytes, formatCount, formatDuration, formatPercent } from '../../lib/format.ts';
import { readGameOfLife, readLottery } from '../experiments/demo.ts';
import { flattenNumbers, formatMetric, intervalText, keyMetric } from '../experiments/metrics.ts';

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
  /** More words, for a tooltip. */
  note?: string;
}

/**
 * What a prune did, from a prune document (top-level `sparsity`, `method`, deflated sizes) or a
 * recipe's steps (each prune step's `details.sparsity`, the last one counting). Null when nothing
 * was pruned.
 */
interface PruneFacts {
  sparsity: number | null;
  /** Channel pruning really removes weights; every other method leaves them as stored zeros. */
  structured: boolean;
  deflatedBefore: number | null;
  deflatedAfter: number | null;
}

function pruneFacts(result: object, kind: string | undefined, m: Record<string, number>): PruneFacts | null {
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const deflated = { deflatedBefore: num(m['deflatedBytesBefore']), deflatedAfter: num(m['deflatedBytesAfter']) };
  if (kind === 'prune') {
    const method = (result as { method?: unknown }).method;
    return { sparsity: num(m['sparsity']), structured: method === 'channel', ...deflated };
  }
  const steps = (result as { steps?: unknown }).steps;
  if (!Array.isArray(steps)) return null;
  const prunes = steps.filter((st): st is { step: string; details?: { sparsity?: unknown } } =>
    !!st && typeof st === 'object' && typeof (st as { step?: unknown }).step === 'string' && (st as { step: string }).step.startsWith('prune'));
  if (!prunes.length) return null;
  const last = prunes[prunes.length - 1]!;
  return { sparsity: num(last.details?.sparsity), structured: prunes.every((p) => p.step === 'prune channel'), ...deflated };
}

const DENSE_NOTE =
  'Unstructured sparsity leaves the file as large as before: the zeros are stored like any other weight, ' +
  'and onnxruntime runs them dense. The saving shows once the file is compressed (zip, gzip, a download).';

/** A built-in experiment's headline figures (`whittle demo`; the curves are in the run's detail). */
function demoItems(result: object): SummaryItem[] | null {
  const experiment = (result as { experiment?: unknown }).experiment;
  const lottery = experiment === 'lottery' ? readLottery(result) : null;
  const items: SummaryItem[] = [];
  if (lottery) {
    const first = lottery.rows[0]!;
    const last = lottery.rows[lottery.rows.length - 1]!;
    items.push({ label: 'Dense', value: formatPercent(first.ticket, 2) });
    items.push({
      label: `Ticket at ${formatPercent(last.remaining, 1)}`,
      value: formatPercent(last.ticket, 2),
      note: 'Test accuracy of the rewound ticket in the last round, mean over the seeds.',
      ...(last.random !== null && last.ticket !== last.random ? { tone: last.ticket > last.random ? ('better' as const) : ('worse' as const) } : {}),
    });
    if (last.random !== null) items.push({ label: 'Random re-init', value: formatPercent(last.random, 2), note: 'The same mask, trained from a fresh random initialisation.' });
  } else if (experiment === 'game-of-life') {
    const life = readGameOfLife(result);
    if (!life) return null;
    for (const a of life.results) {
      items.push({ label: `n = ${a.steps} ${a.architecture}`, value: `${a.successes}/${a.runs.length} exact`, note: `${formatPercent(a.successRate, 0)} of the seeds learned the rule exactly (m = ${a.multiplier}, ${a.parameters} parameters).` });
    }
    const p = life.prune;
    if (p) {
      items.push({
        label: 'Pruned',
        value: `${formatMetric('parameters', p.parametersBefore)} → ${formatMetric('parameters', p.parametersAfter)} (${formatPercent(p.fraction, 1)}), ${formatPercent(p.accuracy, 2)} cells right`,
        tone: p.withinTarget && p.allRight ? 'better' : 'worse',
      });
    }
  } else {
    return null;
  }
  const seconds = (result as { seconds?: unknown }).seconds;
  if (typeof seconds === 'number') items.push({ label: 'Took', value: formatDuration(seconds) });
  return items;
}

export function summarizeResult(result: unknown, kind?: string): SummaryItem[] {
  if (!result || typeof result !== 'object') return [];
  const demo = demoItems(result);
  if (demo) return demo;
  const m = flattenNumbers(result);
  const items: SummaryItem[] = [];

  // Quantized weights that round to zero are not pruning: sparsity is news only after a prune.
  const prune = kind === 'prune' || kind === 'recipe' ? pruneFacts(result, kind, m) : null;
  const before = m['bytesBefore'];
  const after = keyMetric(m, 'size');
  if (typeof before === 'number' && after && after.key !== 'bytes') {
    const ratio = before > 0 ? after.value / before : null;
    const unchanged = ratio !== null && Math.abs(1 - ratio) < 0.005;
    if (unchanged && prune && !prune.structured) {
      // Unstructured pruning: the file cannot shrink, so "−0 %" would say nothing; say why.
      items.push({ label: 'Size', value: `${formatBytes(after.value)} (stored dense)`, note: DENSE_NOTE });
    } else {
      items.push({
        label: 'Size',
        value: `${formatBytes(before)} → ${formatBytes(after.value)}${ratio === null ? '' : unchanged ? ' (unchanged)' : ` (${ratio < 1 ? '−' : '+'}${formatPercent(Math.abs(1 - ratio), 0)})`}`,
        ...(ratio !== null && !unchanged ? { tone: ratio < 1 ? ('better' as const) : ('worse' as const) } : {}),
      });
    }
  } else if (after) {
    items.push({ label: 'Size', value: formatBytes(after.value) });
  }
  if (prune && prune.deflatedBefore !== null && prune.deflatedAfter !== null && !prune.structured) {
    const d = prune.deflatedBefore > 0 ? 1 - prune.deflatedAfter / prune.deflatedBefore : 0;
    items.push({
      label: 'Deflated',
      value: `${formatBytes(prune.deflatedBefore)} → ${formatBytes(prune.deflatedAfter)}${d >= 0.005 ? ` (−${formatPercent(d, 0)})` : ''}`,
      note: 'The file after deflate (zip, gzip): what the zeros save in storage and downloads.',
      ...(d >= 0.005 ? { tone: 'better' as const } : {}),
    });
  } else if (prune && !prune.structured && typeof (result as { deflateSkipped?: unknown }).deflateSkipped === 'string') {
    // a big model's deflated sizes are not measured by default (whittle prune --deflate): say why
    items.push({ label: 'Deflated', value: 'not measured', note: (result as { deflateSkipped: string }).deflateSkipped });
  }
  const pb = m['parametersBefore'];
  const pa = m['parametersAfter'];
  if (typeof pb === 'number' && typeof pa === 'number' && pb !== pa) items.push({ label: 'Parameters', value: `${formatMetric('parameters', pb)} → ${formatMetric('parameters', pa)}` });
  if (prune && prune.sparsity !== null) items.push({ label: 'Sparsity', value: formatPercent(prune.sparsity), note: 'Share of the weights that are zero after pruning.' });

  for (const id of ['top1', 'perplexity', 'agreement', 'sqnr', 'latency'] as const) {
    const k = keyMetric(m, id);
    const interval = k ? intervalText(m, k.key) : '';
    if (k) items.push({ label: LABELS[id], value: formatMetric(k.key, k.value), ...(interval ? { note: `${interval}: on this many samples the figure is known no better than that.` } : {}) });
  }

  items.push(...calibrationItems(result));
  items.push(...preprocessItems(result));
  items.push(...runtimeItems(result));
  items.push(...computeItems(result));
  items.push(...arithmeticItems(result));
  items.push(...analysisItems(result, m));
  if (typeof m['seconds'] === 'number') items.push({ label: 'Took', value: formatDuration(m['seconds']) });
  return items;
}

/** A recipe's step documents, or the single document of a one-step job: the objects among them. */
function stepDocs<T extends object>(result: object): T[] {
  const steps = (result as { steps?: unknown }).steps;
  return (Array.isArray(steps) ? steps : [result]).filter((d): d is T => !!d && typeof d === 'object');
}

interface CalibrationFacts {
  calibration?: { method?: unknown; samples?: unknown } | null;
  biasCorrection?: { layers?: unknown[]; withoutBias?: unknown[] };
  reduceRange?: { on?: unknown; auto?: unknown; reason?: unknown };
}

/**
 * How a quantize document (or each quantize step of a recipe) was calibrated: the calibrator with
 * what ran on top of it (GPTQ, bias correction) and the samples; how many layers' biases were corrected.
 */
function calibrationItems(result: object): SummaryItem[] {
  const docs = stepDocs<CalibrationFacts>(result);
  const items: SummaryItem[] = [];
  for (const d of docs) {
    const rr = d.reduceRange;
    // int8 weights kept in 7 bits: said, with why (this CPU's saturating kernels, or asked for)
    if (rr?.on === true) items.push({ label: 'Weights', value: `int8 in 7 bits (reduce range${rr.auto === true ? ', auto' : ''})`, ...(typeof rr.reason === 'string' ? { note: rr.reason } : {}) });
    const c = d.calibration;
    if (!c || typeof c.method !== 'string') continue;
    const samples = typeof c.samples === 'number' ? ` · ${formatCount(c.samples)} samples` : '';
    items.push({ label: 'Calibration', value: `${c.method}${samples}` });
    const corrected = d.biasCorrection?.layers?.length;
    if (corrected !== undefined) {
      const left = d.biasCorrection?.withoutBias?.length ?? 0;
      items.push({
        label: 'Bias corrected',
        value: `${corrected} layer${corrected === 1 ? '' : 's'}${left ? ` (${left} without a bias left alone)` : ''}`,
        note: 'Each layer\'s int32 bias took back the output channel means quantization had moved on the calibration data.',
      });
    }
  }
  return items;
}

/** An evaluation run in the model's own int8 arithmetic (whittle eval --exact-int8), itself or a recipe's. */
function arithmeticItems(result: object): SummaryItem[] {
  const r = result as { exactInt8?: unknown; eval?: { exactInt8?: unknown } | null };
  if (r.exactInt8 !== true && r.eval?.exactInt8 !== true) return [];
  return [{
    label: 'Arithmetic',
    value: 'int8 as the model defines it',
    note: 'Evaluated with graph optimizations off (integer ops in float): the model\'s accuracy, not the fused kernels\' — which saturate 8-bit weights on x86 CPUs without VNNI. The latency is not the fused model\'s.',
  }];
}

/**
 * Where a pass's own arithmetic ran when not on the CPU (GPTQ, SparseGPT, magnitude thresholds on the
 * WebGPU compute device): the report's `compute`, or its layers' for GPTQ.
 */
function computeItems(result: object): SummaryItem[] {
  const docs = stepDocs<{ details?: { compute?: unknown; layers?: unknown } }>(result);
  const devices = new Set<string>();
  for (const d of docs) {
    const layers = Array.isArray(d.details?.layers) ? d.details.layers as { compute?: unknown }[] : [];
    for (const c of [d.details?.compute, ...layers.map((l) => l?.compute)]) {
      if (typeof c === 'string' && !c.startsWith('cpu')) devices.add(c);
    }
  }
  return [...devices].map((device) => ({
    label: 'Compute',
    value: device,
    note: 'The pass\'s own arithmetic ran on this GPU (the model itself, for calibration, on the execution provider).',
  }));
}

/**
 * An evaluation that read its data as the model's calibration data was read, because none was chosen
 * (core/calibrate/provenance.ts): said, so a figure is never read against the wrong preprocessing.
 */
function preprocessItems(result: object): SummaryItem[] {
  const data = (result as { data?: { preprocess?: unknown; preprocessFrom?: unknown } | null }).data;
  if (!data || data.preprocessFrom !== 'calibration' || typeof data.preprocess !== 'string') return [];
  return [{
    label: 'Preprocessing',
    value: `${data.preprocess} (as calibrated)`,
    note: 'None was chosen: the model records how its calibration data was read, and this data was read the same way.',
  }];
}

/**
 * What onnxruntime's CPU EP runs of a quantized result (core/passes/quantize/runtime-check.ts): its
 * integer kernels, and the float ops between Q/DQ pairs that cost a round trip each.
 */
function runtimeItems(result: object): SummaryItem[] {
  const rt = (result as { runtimeCheck?: { integerKernels?: Record<string, unknown>; floatBetweenQdq?: { op?: unknown; node?: unknown }[] } | null }).runtimeCheck;
  if (!rt || typeof rt.integerKernels !== 'object' || !Array.isArray(rt.floatBetweenQdq)) return [];
  const kernels = Object.entries(rt.integerKernels).filter((e): e is [string, number] => typeof e[1] === 'number').sort((a, b) => b[1] - a[1]);
  const items: SummaryItem[] = [{
    label: 'Int8 kernels',
    value: kernels.length ? kernels.map(([op, n]) => `${n} ${op}`).join(', ') : 'none',
    note: 'What onnxruntime\'s CPU execution provider runs in integer arithmetic after its own optimizations.',
  }];
  const float = rt.floatBetweenQdq.map((f) => String(f.op));
  if (float.length) {
    const counts = [...new Set(float)].map((op) => `${float.filter((o) => o === op).length} ${op}`);
    items.push({
      label: 'Float between Q/DQ',
      value: counts.join(', '),
      tone: 'worse',
      note: 'Ops onnxruntime runs in float with a dequantize before and a requantize after: each pays a round trip (no int8 kernel, or left float).',
    });
  }
  return items;
}

/** What an analysis recommends (cli/commands/analyze.ts): layers to keep float, or a sparsity plan. */
function analysisItems(result: object, m: Record<string, number>): SummaryItem[] {
  const r = result as { for?: unknown; settings?: { method?: unknown }; recommendation?: { exclude?: unknown; plan?: unknown } };
  const rec = r.recommendation;
  if (!rec) return [];
  const db = (key: string) => formatMetric('sqnrDb', m[key]);
  if (r.for === 'quantize') {
    const exclude = Array.isArray(rec.exclude) ? rec.exclude.map(String) : [];
    const items: SummaryItem[] = [{ label: 'Keep float', value: exclude.length ? exclude.join(', ') : 'nothing' }];
    // a language model's trials also carry perplexity on the analysis windows (the float model's beside them)
    const perplexity = (key: string) => (typeof m[key] === 'number' ? ` · perplexity ${m[key].toFixed(3)}` : '');
    const size = (key: string) => (typeof m[key] === 'number' ? ` · ${formatBytes(m[key])}` : '');
    const trial = (key: string) => `${db(`recommendation.${key}.sqnrDb`)} · ${formatPercent(m[`recommendation.${key}.top1`])}${perplexity(`recommendation.${key}.perplexity`)}${size(`recommendation.${key}.bytes`)}`;
    if ('language.floatPerplexity' in m) items.push({ label: 'Float perplexity', value: m['language.floatPerplexity']!.toFixed(3) });
    // the analysis' method: static int8, or weight-only int4 / int8
    const all = typeof r.settings?.method === 'string' && r.settings.method !== 'static' ? r.settings.method : 'int8';
    if ('recommendation.allInt8.sqnrDb' in m) items.push({ label: `All ${all}`, value: trial('allInt8') });
    if (exclude.length && 'recommendation.withExclusions.sqnrDb' in m) items.push({ label: 'With exclusions', value: trial('withExclusions'), tone: 'better' });
    // the same two models on samples the search never saw: whether its gain holds beyond its own samples
    const heldOut = m['recommendation.heldOut.n'];
    if (heldOut !== undefined) {
      const allHeld = trial('heldOut.allInt8');
      const withHeld = trial('heldOut.withExclusions');
      items.push({
        label: `Held out (${heldOut})`,
        value: exclude.length ? `${allHeld} → ${withHeld}` : allHeld,
        note: `Measured again on ${heldOut} samples after the analysed ones, which neither the ranking nor the search saw.`,
      });
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
    const heldOut = m['recommendation.heldOut.n'];
    if (heldOut !== undefined) {
      items.push({
        label: `Held out (${heldOut})`,
        value: `planned ${db('recommendation.heldOut.planned.sqnrDb')} · uniform ${db('recommendation.heldOut.uniform.sqnrDb')}`,
        note: `Measured again on ${heldOut} samples after the analysed ones, which the curves and the plan never saw.`,
      });
    }
    return items;
  }
  return [];
}

const LABELS = { top1: 'Top-1', perplexity: 'Perplexity', agreement: 'Agreement', sqnr: 'SQNR', latency: 'Latency p50' } as const;

/** The analysis' own words about its recommendation, when it has some. */
export function resultNote(result: unknown): string | null {
  const note = (result as { recommendation?: { note?: unknown } } | null)?.recommendation?.note;
  return typeof note === 'string' && note ? note : null;
}
