import { writeFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { WhittleError } from '../../api/errors.ts';
import { pairRuns, type PairedPerplexity, type PairedResult } from '../../core/evaluate/predictions.ts';
import {
  RUN_KINDS, RUN_STATUSES, commandLine, compareRuns, openStore, resolveWhittleHome, toCsv, writeAtomically, writeMlflowRuns,
  type RunDetail, type RunFilter, type RunKind, type RunStatus, type RunSummary, type Store,
} from '../../core/store/index.ts';
import { formatBytes, numberOption, parseCommand, requireOne, table, type CliIo } from '../io.ts';
import { formatDelta, formatDuration, formatNumber, formatPercent, formatSize, formatTime } from './experiments-format.ts';

export const summary = 'list, show, compare and export recorded runs';

export const usage = `
whittle experiments list [--kind K] [--status S] [--limit N]   recorded runs, newest first (default 50; 0 = all)
whittle experiments show ID                                   everything about one run (an id prefix works)
whittle experiments compare ID ID [ID...]                     metrics side by side, with the change from the first
whittle experiments export [--format json|csv|mlflow] [-o PATH] [--kind K] [--status S] [--limit N]
    json (default) and csv go to stdout unless -o is given; mlflow needs -o and writes PATH/mlruns
    (view it with: mlflow ui --backend-store-uri PATH/mlruns)

Kinds: ${RUN_KINDS.join(', ')}. Statuses: ${RUN_STATUSES.join(', ')}.
The store is WHITTLE_HOME (now ${resolveWhittleHome()}). Every subcommand takes --json.
`;

const FILTER_OPTIONS = {
  kind: { type: 'string' },
  status: { type: 'string' },
  limit: { type: 'string' },
} as const;

function filterFrom(cmd: string, values: { kind?: string; status?: string; limit?: string }, defaultLimit: number): RunFilter {
  const oneOf = <T extends string>(name: string, raw: string | undefined, allowed: readonly T[]): T | undefined => {
    if (raw === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(raw)) throw new WhittleError('BAD_USAGE', `whittle ${cmd}: --${name} must be one of ${allowed.join(', ')}, got "${raw}"`);
    return raw as T;
  };
  return {
    kind: oneOf<RunKind>('kind', values.kind, RUN_KINDS),
    status: oneOf<RunStatus>('status', values.status, RUN_STATUSES),
    limit: numberOption(cmd, 'limit', values.limit, { min: 0, integer: true }) ?? defaultLimit,
  };
}

/** The few metrics that say how a run went, as `list` columns; shown only when some run has them. */
const LIST_METRICS: { header: string; keys: string[]; format: (v: number | undefined) => string }[] = [
  // a recipe run keeps its evaluation under eval.*
  { header: 'accuracy.top1', keys: ['accuracy.top1', 'eval.accuracy.top1'], format: formatPercent },
  { header: 'agreement.top1', keys: ['agreement.top1', 'eval.agreement.top1'], format: formatPercent },
  { header: 'perplexity', keys: ['language.perplexity', 'eval.language.perplexity'], format: (v) => (v === undefined ? '' : v.toFixed(3)) },
  { header: 'latency.p50Ms', keys: ['latency.p50Ms', 'eval.latency.p50Ms'], format: (v) => (v === undefined ? '' : v.toFixed(2)) },
  { header: 'bytes', keys: ['bytes', 'bytesAfter'], format: formatSize },
];

const metricOf = (run: RunSummary, keys: string[]) => keys.map((k) => run.metrics[k]).find((v) => v !== undefined);

function list(store: Store, argv: string[], io: CliIo): number {
  const { values, positionals } = parseCommand('experiments list', argv, FILTER_OPTIONS);
  if (positionals.length) throw new WhittleError('BAD_USAGE', `whittle experiments list: unexpected argument "${positionals[0]}"`);
  const filter = filterFrom('experiments list', values, 50);
  const runs = store.listRuns(filter);
  const total = store.countRuns({ ...filter, limit: undefined });
  if (values.json) {
    io.stdout(JSON.stringify({ runs, total }) + '\n');
    return 0;
  }
  if (runs.length === 0) {
    io.stdout(`No runs recorded${filter.kind || filter.status ? ' that match' : ' yet'} in ${store.home}. Commands that evaluate or write a model record runs here.\n`);
    return 0;
  }
  const shown = LIST_METRICS.filter((m) => runs.some((r) => metricOf(r, m.keys) !== undefined));
  const rows = runs.map((r) => [
    r.id, r.kind, r.status, r.model ? basename(r.model) : '',
    ...shown.map((m) => m.format(metricOf(r, m.keys))), formatTime(r.createdAt),
  ]);
  io.stdout(table(['id', 'kind', 'status', 'model', ...shown.map((m) => m.header), 'created'], rows));
  if (total > runs.length) io.stdout(`(showing ${runs.length} of ${total} runs; --limit 0 shows all)\n`);
  return 0;
}

function describe(run: RunDetail): string {
  const env = run.environment;
  const lines = [
    `run ${run.id}: ${run.kind}, ${run.status}`,
    `  command      ${commandLine(run.command)}`,
  ];
  if (run.experimentName) lines.push(`  experiment   ${run.experimentName} (${run.experimentId})`);
  lines.push(`  created      ${run.createdAt}`);
  if (run.finishedAt) lines.push(`  finished     ${run.finishedAt} (${formatDuration(run.startedAt, run.finishedAt)})`);
  if (run.error) lines.push(`  error        ${run.errorCode ? `[${run.errorCode}] ` : ''}${run.error}`);
  lines.push(`  process      pid ${run.pid ?? '?'} on ${run.hostname ?? '?'}`);
  lines.push(`  environment  ep ${env.ep ?? '-'}, device ${env.device ?? '-'}, seed ${env.seed ?? '-'}, ${env.platform} on ${env.host}`);
  lines.push(`  versions     ${Object.entries(env.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (run.recipe !== null) lines.push(`  recipe       ${JSON.stringify(run.recipe)}`);
  lines.push('', 'inputs');
  if (run.inputs.length === 0) lines.push('  (none)');
  for (const i of run.inputs) {
    const identity = i.sha256 ? `  ${formatBytes(i.bytes ?? 0)}  sha256 ${i.sha256}` : '  (not a file: not hashed)';
    lines.push(`  ${i.role.padEnd(10)} ${i.path}${identity}`);
  }
  const metrics = Object.entries(run.metrics);
  lines.push('', 'metrics');
  if (metrics.length === 0) lines.push('  (none)');
  const width = Math.max(0, ...metrics.map(([k]) => k.length));
  for (const [k, v] of metrics) lines.push(`  ${k.padEnd(width)}  ${formatNumber(v)}`);
  if (run.layerMetrics.length) lines.push('', `layer metrics: ${run.layerMetrics.length} row${run.layerMetrics.length === 1 ? '' : 's'} (--json shows them)`);
  lines.push('', 'artifacts');
  if (run.artifacts.length === 0) lines.push('  (none)');
  for (const a of run.artifacts) lines.push(`  ${a.name}  ${formatBytes(a.bytes)}  sha256 ${a.sha256}`, `    ${a.path}`);
  return lines.join('\n') + '\n';
}

function show(store: Store, argv: string[], io: CliIo): number {
  const { values, positionals } = parseCommand('experiments show', argv, {});
  const run = store.getRun(requireOne('experiments show', positionals, 'run id'));
  io.stdout(values.json ? JSON.stringify(run) + '\n' : describe(run));
  return 0;
}

function compare(store: Store, argv: string[], io: CliIo): number {
  const { values, positionals } = parseCommand('experiments compare', argv, {});
  if (positionals.length < 2) throw new WhittleError('BAD_USAGE', `whittle experiments compare: give two or more run ids, got ${positionals.length}`);
  const runs = positionals.map((id) => store.getRun(id));
  const comparison = { ...compareRuns(runs), ...pairRuns(runs) };
  if (values.json) {
    io.stdout(JSON.stringify(comparison) + '\n');
    return 0;
  }
  const heading = runs.map((r, i) => `  ${i === 0 ? 'base' : `  #${i}`}  ${r.id}  ${r.kind} ${r.status}${r.model ? `  ${basename(r.model)}` : ''}`);
  const rows = comparison.metrics.map((m) => [m.key, ...m.values.map((v, i) => {
    if (v === null) return '-';
    const d = m.deltas[i];
    if (i === 0 || d == null) return formatNumber(v);
    return `${formatNumber(v)} (${d === 0 ? 'same' : formatDelta(d, m.values[0]!)})`;
  })]);
  io.stdout(heading.join('\n') + '\n\n' + table(['metric', ...runs.map((r) => r.id)], rows) + describePaired(comparison.paired) + describePairedPerplexity(comparison.pairedPerplexity));
  return 0;
}

/** The sample-by-sample lines under the table: which samples only one run gets right, and whether that is chance. */
function describePaired(paired: readonly PairedResult[]): string {
  if (paired.length === 0) return '';
  const lines = paired.map((p) => {
    const pt = `${p.difference >= 0 ? '+' : '−'}${Math.abs(p.difference * 100).toFixed(2)} pt`;
    const verdict = p.onlyBase + p.onlyRun === 0 ? 'the same on every sample' : p.pValue < 0.05 ? 'unlikely to be chance' : 'could be chance';
    const verb = p.metric === 'accuracy' ? 'right' : 'agrees';
    return `  #${p.run} ${p.metric.padEnd(9)}  ${pt.padStart(10)}: only #${p.run} ${verb} on ${p.onlyRun}, only the base on ${p.onlyBase} (both ${p.both}, neither ${p.neither}); McNemar p = ${p.pValue < 0.001 ? p.pValue.toExponential(1) : p.pValue.toFixed(3)}, ${verdict}`;
  });
  return `\nsample by sample against the base, on the same ${formatNumber(paired[0]!.n)} samples (runs that kept their predictions):\n${lines.join('\n')}\n`;
}

/** The window-by-window lines for language models: the perplexity ratio, its interval and the sign test. */
function describePairedPerplexity(paired: readonly PairedPerplexity[]): string {
  if (paired.length === 0) return '';
  const lines = paired.map((p) => {
    const verdict = p.low > 1 ? 'worse beyond the text\'s noise' : p.high < 1 ? 'better beyond the text\'s noise' : 'within the text\'s noise';
    return `  #${p.run} perplexity ${p.runPerplexity.toFixed(3)} vs ${p.basePerplexity.toFixed(3)}: ×${p.ratio.toFixed(4)} (95 % interval ${p.low.toFixed(4)}–${p.high.toFixed(4)}), worse on ${p.worse} windows, better on ${p.better}; sign test p = ${p.pValue < 0.001 ? p.pValue.toExponential(1) : p.pValue.toFixed(3)}, ${verdict}`;
  });
  return `\nwindow by window against the base, on the same ${formatNumber(paired[0]!.windows)} windows (${formatNumber(paired[0]!.tokens)} predicted tokens; bootstrap over windows):\n${lines.join('\n')}\n`;
}

async function exportRuns(store: Store, argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('experiments export', argv, {
    ...FILTER_OPTIONS, format: { type: 'string' }, output: { type: 'string', short: 'o' },
  });
  if (positionals.length) throw new WhittleError('BAD_USAGE', `whittle experiments export: unexpected argument "${positionals[0]}"`);
  const format = values.format ?? 'json';
  if (format !== 'json' && format !== 'csv' && format !== 'mlflow') {
    throw new WhittleError('BAD_USAGE', `whittle experiments export: --format must be json, csv or mlflow, got "${format}"`);
  }
  const out = values.output === undefined ? undefined : resolve(values.output);
  if (format === 'mlflow' && out === undefined) throw new WhittleError('BAD_USAGE', 'whittle experiments export --format mlflow: give -o FOLDER (mlruns/ is written inside it)');
  if (format === 'csv' && out === undefined && values.json) throw new WhittleError('BAD_USAGE', 'whittle experiments export: --json with --format csv needs -o PATH (stdout would not be JSON)');
  const summaries = store.listRuns(filterFrom('experiments export', values, 0));
  let written: string;
  if (format === 'csv') {
    const text = toCsv(summaries);
    if (out === undefined) { io.stdout(text); return 0; }
    await writeAtomically(out, (tmp) => writeFile(tmp, text));
    written = out;
  } else {
    const details = summaries.map((r) => store.getRun(r.id));
    if (format === 'mlflow') {
      written = await writeMlflowRuns(details, out!);
    } else {
      const text = JSON.stringify({ runs: details }, null, out === undefined ? undefined : 2) + '\n';
      if (out === undefined) { io.stdout(text); return 0; }
      await writeAtomically(out, (tmp) => writeFile(tmp, text));
      written = out;
    }
  }
  if (values.json) io.stdout(JSON.stringify({ format, path: written, runs: summaries.length }) + '\n');
  else {
    io.stdout(`wrote ${summaries.length} run${summaries.length === 1 ? '' : 's'} to ${written}\n`);
    if (format === 'mlflow') io.stdout(`view them with: mlflow ui --backend-store-uri ${written}\n`);
  }
  return 0;
}

const SUBCOMMANDS: Record<string, (store: Store, argv: string[], io: CliIo) => number | Promise<number>> = {
  list, show, compare, export: exportRuns,
};

export async function run(argv: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  const handler = sub === undefined ? undefined : SUBCOMMANDS[sub];
  if (!handler) {
    throw new WhittleError('BAD_USAGE', `whittle experiments: ${sub === undefined ? 'missing' : `unknown subcommand "${sub}";`} expected list, show, compare or export`);
  }
  const store = openStore();
  try {
    return await handler(store, rest, io);
  } finally {
    store.close();
  }
}
