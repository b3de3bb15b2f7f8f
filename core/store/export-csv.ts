import { basename } from 'node:path';
import { commandLine } from './command-line.ts';
import type { RunSummary } from './types.ts';

/** RFC 4180: a cell with a comma, quote, line break or edge space is quoted, quotes doubled. */
export function csvCell(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\r\n]|^\s|\s$/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const FIXED_COLUMNS = ['id', 'kind', 'status', 'experiment', 'model', 'model_file', 'created_at', 'started_at', 'finished_at', 'command', 'error'];

/** One row per run; every metric any run has becomes a column (sorted), empty where a run lacks it. */
export function toCsv(runs: readonly RunSummary[]): string {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const rows = runs.map((r) => [
    r.id, r.kind, r.status, r.experimentName, r.model, r.model === null ? null : basename(r.model),
    r.createdAt, r.startedAt, r.finishedAt, commandLine(r.command), r.error,
    ...keys.map((k) => r.metrics[k]),
  ]);
  // CRLF line ends as RFC 4180 asks; spreadsheets and Python's csv module expect them.
  return [[...FIXED_COLUMNS, ...keys], ...rows].map((row) => row.map(csvCell).join(',')).join('\r\n') + '\r\n';
}
