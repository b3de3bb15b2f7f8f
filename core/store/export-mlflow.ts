import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { commandLine } from './command-line.ts';
import type { RunDetail, RunStatus } from './types.ts';

/** MLflow's RunStatus enum, as its FileStore writes it into meta.yaml. */
const MLFLOW_STATUS: Record<RunStatus, number> = {
  running: 1, queued: 2, succeeded: 3, failed: 4, cancelled: 5, interrupted: 5,
};

const EXPERIMENT_ID = '0'; // MLflow's "Default" experiment; Whittle experiment names go in a tag

function yamlValue(v: string | number | null): string {
  if (v === null) return 'null';
  if (typeof v === 'number') return String(v);
  return `'${v.replace(/'/g, "''")}'`;
}

function yaml(fields: Record<string, string | number | null>): string {
  return Object.entries(fields).map(([k, v]) => `${k}: ${k === 'tags' ? '[]' : yamlValue(v)}`).join('\n') + '\n';
}

/**
 * MLflow names metrics, params and tags with letters, digits, _ - . space and /, and stores each
 * as a file: anything else becomes _, and "/" too, so a key can never leave its folder.
 */
export function mlflowKey(key: string): string {
  const safe = key.replace(/[^A-Za-z0-9_\-. ]/g, '_');
  return /^\.*$/.test(safe) ? `_${safe}` : safe;
}

function millis(iso: string | null): number | null {
  return iso === null ? null : Date.parse(iso);
}

function runUser(): string {
  try {
    return userInfo().username;
  } catch {
    return '';
  }
}

async function writeEntries(dir: string, entries: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [k, v] of Object.entries(entries)) await writeFile(join(dir, mlflowKey(k)), v);
}

function paramsOf(run: RunDetail): Record<string, string> {
  const params: Record<string, string> = { kind: run.kind, command: commandLine(run.command) };
  const seen = new Map<string, number>();
  for (const input of run.inputs) {
    const n = seen.get(input.role) ?? 0;
    seen.set(input.role, n + 1);
    const key = n === 0 ? `input.${input.role}` : `input.${input.role}.${n}`;
    params[key] = input.path;
    if (input.sha256) params[`${key}.sha256`] = input.sha256;
  }
  for (const k of ['ep', 'device', 'seed'] as const) if (run.environment[k] !== null) params[k] = String(run.environment[k]);
  if (run.recipe !== null) params.recipe = JSON.stringify(run.recipe);
  return params;
}

function tagsOf(run: RunDetail, user: string): Record<string, string> {
  const tags: Record<string, string> = {
    'mlflow.runName': run.id,
    'mlflow.source.name': 'whittle',
    'mlflow.source.type': 'LOCAL',
    'mlflow.user': user,
    'whittle.status': run.status,
    'whittle.host': run.environment.host,
    'whittle.platform': run.environment.platform,
  };
  if (run.experimentName) tags['whittle.experiment'] = run.experimentName;
  if (run.error) tags['whittle.error'] = run.error;
  for (const [pkg, version] of Object.entries(run.environment.versions)) tags[`whittle.version.${pkg}`] = version;
  // Artifacts stay in the Whittle store (they can be GiBs); the tag says where.
  if (run.artifacts.length) tags['whittle.artifacts'] = run.artifacts.map((a) => a.path).join('\n');
  return tags;
}

/**
 * Writes runs as an MLflow FileStore (`mlflow ui --backend-store-uri OUT/mlruns`):
 * mlruns/0/<run-id>/{meta.yaml, metrics/<key>, params/<key>, tags/<key>, artifacts/}. A run
 * exported again replaces its folder, so the export mirrors the store.
 */
export async function writeMlflowRuns(runs: readonly RunDetail[], outDir: string): Promise<string> {
  const root = resolve(outDir, 'mlruns');
  const expDir = join(root, EXPERIMENT_ID);
  await mkdir(join(root, '.trash'), { recursive: true });
  await mkdir(expDir, { recursive: true });
  const now = Date.now();
  if (!existsSync(join(expDir, 'meta.yaml'))) {
    await writeFile(join(expDir, 'meta.yaml'), yaml({
      artifact_location: pathToFileURL(expDir).href, creation_time: now, experiment_id: EXPERIMENT_ID,
      last_update_time: now, lifecycle_stage: 'active', name: 'Default',
    }));
  }
  const user = runUser();
  for (const run of runs) {
    const runDir = join(expDir, run.id);
    await rm(runDir, { recursive: true, force: true });
    await mkdir(join(runDir, 'artifacts'), { recursive: true });
    const start = millis(run.startedAt ?? run.createdAt)!;
    const end = millis(run.finishedAt);
    await writeFile(join(runDir, 'meta.yaml'), yaml({
      artifact_uri: pathToFileURL(join(runDir, 'artifacts')).href,
      end_time: end,
      entry_point_name: '',
      experiment_id: EXPERIMENT_ID,
      lifecycle_stage: 'active',
      run_id: run.id,
      run_name: run.model ? `${run.kind} ${basename(run.model)}` : run.kind,
      run_uuid: run.id,
      source_name: '',
      source_type: 4, // LOCAL
      source_version: '',
      start_time: start,
      status: MLFLOW_STATUS[run.status],
      tags: null,
      user_id: user,
    }));
    // MLflow's metric line: "<timestamp ms> <value> <step>".
    const ts = end ?? start;
    const metrics = Object.fromEntries(Object.entries(run.metrics).map(([k, v]) => [k, `${ts} ${v} 0\n`]));
    await writeEntries(join(runDir, 'metrics'), metrics);
    await writeEntries(join(runDir, 'params'), paramsOf(run));
    await writeEntries(join(runDir, 'tags'), tagsOf(run, user));
  }
  return root;
}
