import { mkdir, stat, writeFile } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import type { ExportedFile } from '../../api/schemas.ts';
import { formatBytes } from '../format-bytes.ts';
import { copyAtomically, writeAtomically } from '../store/atomic.ts';
import { commandLine } from '../store/command-line.ts';
import type { RunDetail } from '../store/types.ts';
import { WHITTLE_VERSION } from '../version.ts';
import { recipeFromRun } from './recipe-from-run.ts';

/**
 * `artifacts.export`: a run's artifacts, the recipe that redoes it, and a report (JSON for
 * programs, Markdown for notes, a self-contained HTML page for people) in one folder.
 */
export interface ExportOptions {
  /** Server mode: a download URL for an exported file (null: none). */
  fileUrl?: ((absolutePath: string) => string | null) | undefined;
}

const MAX_LAYER_ROWS = 1000;

function formatNumber(v: number): string {
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  const abs = Math.abs(v);
  return abs !== 0 && (abs < 1e-3 || abs >= 1e6) ? v.toExponential(3) : Number(v.toPrecision(5)).toString();
}

function title(run: RunDetail): string {
  return `${run.kind}${run.model ? ` · ${basename(run.model)}` : ''}`;
}

function duration(run: RunDetail): string | null {
  if (!run.startedAt || !run.finishedAt) return null;
  return `${((Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000).toFixed(1)} s`;
}

/** Per-layer metrics as one row per layer and one column per metric, layers in recorded order. */
function layerTable(run: RunDetail): { metrics: string[]; rows: { layer: string; values: (number | null)[] }[] } {
  const metrics = [...new Set(run.layerMetrics.map((m) => m.metric))];
  const byLayer = new Map<string, (number | null)[]>();
  for (const m of run.layerMetrics) {
    let row = byLayer.get(m.layer);
    if (!row) byLayer.set(m.layer, (row = metrics.map(() => null)));
    row[metrics.indexOf(m.metric)] = m.value;
  }
  return { metrics, rows: [...byLayer].map(([layer, values]) => ({ layer, values })) };
}

function summaryRows(run: RunDetail): [string, string][] {
  const rows: [string, string][] = [
    ['run', run.id], ['kind', run.kind], ['status', run.status + (run.error ? ` (${run.error})` : '')],
    ['model', run.model ?? '—'], ['command', `whittle ${commandLine(run.command)}`],
    ['started', run.startedAt ?? '—'], ['finished', run.finishedAt ?? '—'],
  ];
  const d = duration(run);
  if (d) rows.push(['duration', d]);
  if (run.experimentName) rows.push(['experiment', run.experimentName]);
  const env = run.environment;
  rows.push(['environment', [env.ep && `EP ${env.ep}`, env.device, env.seed !== null && `seed ${env.seed}`, `${env.platform} on ${env.host}`].filter(Boolean).join(', ')]);
  rows.push(['versions', Object.entries(env.versions).map(([k, v]) => `${k} ${v}`).join(', ')]);
  return rows;
}

const mdCell = (text: string) => text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

export function renderRunMarkdown(run: RunDetail): string {
  const out = [`# ${title(run)}`, '', '| | |', '|---|---|', ...summaryRows(run).map(([k, v]) => `| ${k} | ${mdCell(v)} |`), ''];
  const metrics = Object.entries(run.metrics);
  if (metrics.length) out.push('## Metrics', '', '| metric | value |', '|---|---:|', ...metrics.map(([k, v]) => `| ${mdCell(k)} | ${formatNumber(v)} |`), '');
  if (run.inputs.length) {
    out.push('## Inputs', '', '| role | path | bytes | sha256 |', '|---|---|---:|---|',
      ...run.inputs.map((i) => `| ${i.role} | ${mdCell(i.path)} | ${i.bytes === null ? '' : formatNumber(i.bytes)} | ${i.sha256 ?? ''} |`), '');
  }
  if (run.artifacts.length) {
    out.push('## Artifacts', '', '| name | bytes | sha256 |', '|---|---:|---|',
      ...run.artifacts.map((a) => `| ${mdCell(a.name)} | ${formatNumber(a.bytes)} | ${a.sha256} |`), '');
  }
  const layers = layerTable(run);
  if (layers.rows.length) {
    out.push('## Per-layer metrics', '', `| layer | ${layers.metrics.map(mdCell).join(' | ')} |`, `|---|${layers.metrics.map(() => '---:').join('|')}|`,
      ...layers.rows.slice(0, MAX_LAYER_ROWS).map((r) => `| ${mdCell(r.layer)} | ${r.values.map((v) => (v === null ? '' : formatNumber(v))).join(' | ')} |`));
    if (layers.rows.length > MAX_LAYER_ROWS) out.push('', `(${layers.rows.length - MAX_LAYER_ROWS} more layers in report.json)`);
    out.push('');
  }
  out.push(`Exported by Whittle ${WHITTLE_VERSION}.`, '');
  return out.join('\n');
}

const esc = (text: string) => text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Before/after bars for the size and parameter metrics a compression run records. */
function beforeAfterChart(run: RunDetail): string {
  const pairs: [string, number, number, (n: number) => string][] = [];
  const m = run.metrics;
  if (m.bytesBefore !== undefined && m.bytesAfter !== undefined) pairs.push(['size', m.bytesBefore, m.bytesAfter, formatBytes]);
  if (m.parametersBefore !== undefined && m.parametersAfter !== undefined) pairs.push(['parameters', m.parametersBefore, m.parametersAfter, formatNumber]);
  if (!pairs.length) return '';
  const bars = pairs.map(([label, before, after, fmt], i) => {
    const top = Math.max(before, after, 1);
    const y = i * 64;
    return `<text x="0" y="${y + 14}">${esc(label)}</text>
      <rect x="90" y="${y}" width="${(360 * before) / top}" height="20" class="before"/><text x="${96 + (360 * before) / top}" y="${y + 14}">${esc(fmt(before))}</text>
      <rect x="90" y="${y + 26}" width="${(360 * after) / top}" height="20" class="after"/><text x="${96 + (360 * after) / top}" y="${y + 40}">${esc(fmt(after))}</text>`;
  }).join('\n');
  return `<svg role="img" aria-label="before and after" width="600" height="${pairs.length * 64}" viewBox="0 0 600 ${pairs.length * 64}">${bars}</svg>
  <p class="legend"><span class="swatch before"></span> before <span class="swatch after"></span> after</p>`;
}

function htmlTable(headers: string[], rows: string[][], numeric: boolean[] = []): string {
  const th = headers.map((h, i) => `<th${numeric[i] ? ' class="num"' : ''}>${esc(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c, i) => `<td${numeric[i] ? ' class="num"' : ''}>${esc(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>${body}</tbody></table>`;
}

/** One HTML file with its style inline and nothing fetched: it opens the same offline, mailed or archived. */
export function renderRunHtml(run: RunDetail): string {
  const layers = layerTable(run);
  const sections = [
    `<h1>${esc(title(run))}</h1>`,
    htmlTable(['', ''], summaryRows(run)),
    beforeAfterChart(run),
  ];
  const metrics = Object.entries(run.metrics);
  if (metrics.length) sections.push('<h2>Metrics</h2>', htmlTable(['metric', 'value'], metrics.map(([k, v]) => [k, formatNumber(v)]), [false, true]));
  if (run.inputs.length) sections.push('<h2>Inputs</h2>', htmlTable(['role', 'path', 'bytes', 'sha256'], run.inputs.map((i) => [i.role, i.path, i.bytes === null ? '' : formatNumber(i.bytes), i.sha256 ?? '']), [false, false, true, false]));
  if (run.artifacts.length) sections.push('<h2>Artifacts</h2>', htmlTable(['name', 'bytes', 'sha256'], run.artifacts.map((a) => [a.name, formatNumber(a.bytes), a.sha256]), [false, true, false]));
  if (layers.rows.length) {
    sections.push('<h2>Per-layer metrics</h2>', htmlTable(['layer', ...layers.metrics],
      layers.rows.slice(0, MAX_LAYER_ROWS).map((r) => [r.layer, ...r.values.map((v) => (v === null ? '' : formatNumber(v)))]), [false, ...layers.metrics.map(() => true)]));
    if (layers.rows.length > MAX_LAYER_ROWS) sections.push(`<p>${layers.rows.length - MAX_LAYER_ROWS} more layers in report.json.</p>`);
  }
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${esc(title(run))} — Whittle run ${esc(run.id)}</title>
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem; color: #1d1d1f; background: #fff; }
  h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
  table { border-collapse: collapse; margin: .5rem 0; }
  th, td { padding: .2rem .7rem; border-bottom: 1px solid #e3e3e6; text-align: left; vertical-align: top; word-break: break-all; }
  th { font-weight: 600; } .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  svg text { font: 12px system-ui, sans-serif; fill: currentColor; }
  .before { fill: #9aa0a6; background: #9aa0a6; } .after { fill: #1a73e8; background: #1a73e8; }
  .swatch { display: inline-block; width: .8em; height: .8em; margin: 0 .2em 0 .8em; }
  .legend, footer { color: #5f6368; }
  @media (prefers-color-scheme: dark) { body { color: #e8eaed; background: #202124; } th, td { border-color: #3c4043; } }
</style>
</head>
<body>
${sections.filter(Boolean).join('\n')}
<footer><p>Exported by Whittle ${esc(WHITTLE_VERSION)}.</p></footer>
</body>
</html>
`;
}

/** Writes the export into `folder` (created if needed) and lists what it holds. */
export async function exportRun(run: RunDetail, folder: string, options: ExportOptions = {}): Promise<{ folder: string; files: ExportedFile[] }> {
  await mkdir(folder, { recursive: true });
  const written: string[] = [];
  for (const artifact of run.artifacts) {
    const dest = join(folder, ...artifact.name.split('/'));
    await copyAtomically(artifact.path, dest);
    written.push(dest);
  }
  const text = async (name: string, content: string) => {
    const dest = join(folder, name);
    await writeAtomically(dest, (tmp) => writeFile(tmp, content));
    written.push(dest);
  };
  const recipe = recipeFromRun(run);
  if (recipe) await text('recipe.json', JSON.stringify(recipe, null, 2) + '\n');
  await text('report.json', JSON.stringify({ exportedBy: `whittle ${WHITTLE_VERSION}`, exportedAt: new Date().toISOString(), run }, null, 2) + '\n');
  await text('report.md', renderRunMarkdown(run));
  await text('report.html', renderRunHtml(run));
  const files: ExportedFile[] = [];
  for (const path of written) {
    files.push({ name: relative(folder, path).split(sep).join('/'), path, bytes: (await stat(path)).size, url: options.fileUrl?.(path) ?? null });
  }
  return { folder, files };
}
