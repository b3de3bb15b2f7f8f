import type Database from 'better-sqlite3';
import { join } from 'node:path';
import { WhittleError } from '../../api/errors.ts';
import { isIdLike } from './ids.ts';
import type { ArtifactRecord, LayerMetric, RunDetail, RunEnvironment, RunFilter, RunInput, RunKind, RunStatus, RunSummary } from './types.ts';

type Db = Database.Database;

interface RunRow {
  id: string;
  kind: RunKind;
  status: RunStatus;
  experiment_id: string | null;
  experiment_name: string | null;
  command_json: string;
  recipe_json: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  error_code: string | null;
  environment_json: string;
  pid: number | null;
  hostname: string | null;
  result_json: string | null;
  model: string | null;
}

const RUN_COLUMNS = `r.*, e.name AS experiment_name,
  (SELECT path FROM run_inputs i WHERE i.run_id = r.id AND i.role = 'model' ORDER BY position LIMIT 1) AS model`;

function whereClause(filter: RunFilter): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  if (filter.kind) { parts.push('r.kind = ?'); params.push(filter.kind); }
  if (filter.status) { parts.push('r.status = ?'); params.push(filter.status); }
  if (filter.experimentId) { parts.push('r.experiment_id = ?'); params.push(filter.experimentId); }
  if (filter.text) {
    // LIKE is case-insensitive for ASCII; the user's % and _ are escaped so they match themselves
    const pattern = `%${filter.text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    parts.push(`(r.command_json LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM run_inputs t WHERE t.run_id = r.id AND t.role = 'model' AND t.path LIKE ? ESCAPE '\\'))`);
    params.push(pattern, pattern);
  }
  return { sql: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
}

function metricsOf(db: Db, ids: string[]): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>(ids.map((id) => [id, {}]));
  if (ids.length === 0) return out;
  // One query for the whole page; json_each keeps the id list a single bound parameter.
  const rows = db.prepare(`SELECT run_id, key, value FROM metrics WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY key`)
    .all(JSON.stringify(ids)) as { run_id: string; key: string; value: number }[];
  for (const r of rows) out.get(r.run_id)![r.key] = r.value;
  return out;
}

function toSummary(row: RunRow, metrics: Record<string, number>): RunSummary {
  return {
    id: row.id,
    kind: row.kind,
    status: row.status,
    experimentId: row.experiment_id,
    experimentName: row.experiment_name,
    command: JSON.parse(row.command_json) as string[],
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    error: row.error,
    model: row.model,
    metrics,
  };
}

/** Runs, most recent first, each with its scalar metrics. */
export function listRuns(db: Db, filter: RunFilter = {}): RunSummary[] {
  const { sql, params } = whereClause(filter);
  const limit = filter.limit && filter.limit > 0 ? `LIMIT ${Math.floor(filter.limit)}` : '';
  const rows = db.prepare(`SELECT ${RUN_COLUMNS} FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id
    ${sql} ORDER BY r.created_at DESC, r.id DESC ${limit}`).all(...params) as RunRow[];
  const metrics = metricsOf(db, rows.map((r) => r.id));
  return rows.map((r) => toSummary(r, metrics.get(r.id)!));
}

export function countRuns(db: Db, filter: RunFilter = {}): number {
  const { sql, params } = whereClause(filter);
  return (db.prepare(`SELECT count(*) AS n FROM runs r ${sql}`).get(...params) as { n: number }).n;
}

/** A full id or a unique prefix of one (as git takes commit prefixes). */
export function resolveRunId(db: Db, idOrPrefix: string): string {
  const wanted = idOrPrefix.trim().toLowerCase();
  if (!isIdLike(wanted)) throw new WhittleError('NOT_FOUND', `no run with id "${idOrPrefix}" (run ids are letters and digits, like r0lz8k2m1ab3cd)`);
  // Ids are [a-z0-9]: every id starting with the prefix sorts between it and prefix + '~'.
  const ids = (db.prepare('SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 6').all(wanted, `${wanted}~`) as { id: string }[]).map((r) => r.id);
  if (ids.includes(wanted)) return wanted;
  if (ids.length === 1) return ids[0]!;
  if (ids.length === 0) throw new WhittleError('NOT_FOUND', `no run with id "${idOrPrefix}"; whittle experiments list shows the recorded runs`);
  throw new WhittleError('BAD_USAGE', `run id prefix "${idOrPrefix}" is ambiguous: it matches ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''}; give more characters`);
}

export function getRun(db: Db, home: string, idOrPrefix: string): RunDetail {
  const id = resolveRunId(db, idOrPrefix);
  const row = db.prepare(`SELECT ${RUN_COLUMNS} FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id WHERE r.id = ?`).get(id) as RunRow;
  const inputs = db.prepare('SELECT role, path, sha256, bytes FROM run_inputs WHERE run_id = ? ORDER BY position').all(id) as RunInput[];
  const layerMetrics = db.prepare('SELECT layer, metric, value FROM layer_metrics WHERE run_id = ? ORDER BY rowid').all(id) as LayerMetric[];
  const artifacts = (db.prepare('SELECT name, path, sha256, bytes, created_at FROM artifacts WHERE run_id = ? ORDER BY rowid').all(id) as
    { name: string; path: string; sha256: string; bytes: number; created_at: string }[])
    .map((a): ArtifactRecord => ({ name: a.name, path: join(home, a.path), sha256: a.sha256, bytes: a.bytes, createdAt: a.created_at }));
  return {
    ...toSummary(row, metricsOf(db, [id]).get(id)!),
    errorCode: row.error_code,
    recipe: row.recipe_json === null ? null : JSON.parse(row.recipe_json),
    environment: JSON.parse(row.environment_json) as RunEnvironment,
    pid: row.pid,
    hostname: row.hostname,
    result: row.result_json === null ? null : JSON.parse(row.result_json),
    inputs,
    layerMetrics,
    artifacts,
  };
}
