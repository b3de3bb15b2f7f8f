import type Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { WhittleError, badInput } from '../../api/errors.ts';
import { runEnvironment } from './environment.ts';
import { cachedFileDigest } from './hash.ts';
import { resolveWhittleHome } from './home.ts';
import { newExperimentId, newRunId } from './ids.ts';
import { markInterruptedRuns, processStartTime } from './liveness.ts';
import { asStoreError, openDatabase } from './open-database.ts';
import { countRuns, getRun, listRuns } from './queries.ts';
import { RunHandle } from './run-handle.ts';
import { RUN_KINDS, type RunDetail, type RunEnvironment, type RunFilter, type RunInput, type RunKind, type RunSummary } from './types.ts';

export interface StartRunOptions {
  kind: RunKind;
  /** The argv after `whittle`, e.g. ['eval', 'model.onnx', '--data', 'val/']. */
  command: string[];
  /** Files the run read; files are hashed (cached by path+size+mtime), folders and `synthetic:N` are not. */
  inputs?: { role: string; path: string }[];
  /** EP, device and seed as the command resolved them; versions, host and platform are filled in. */
  environment?: Partial<RunEnvironment>;
  recipe?: unknown;
  experimentId?: string;
  /** Files the run under this experiment, creating it on first use. */
  experimentName?: string;
}

export interface ModelInfo {
  path: string;
  format?: string;
  parameters?: number;
  stats?: unknown;
}

function guessFormat(path: string): string | null {
  const ext = extname(path).toLowerCase();
  return ext === '.onnx' || ext === '.ort' ? ext.slice(1) : ext === '.json' ? 'tfjs' : null;
}

/** An existing input is recorded by absolute path, so `show` means the same from any folder. */
async function absoluteIfExists(path: string): Promise<string> {
  try {
    await stat(path);
    return resolve(path);
  } catch {
    return path;
  }
}

export class Store {
  readonly dbPath: string;

  constructor(private readonly db: Database.Database, readonly home: string) {
    this.dbPath = join(home, 'whittle.db');
  }

  /** Records a run as running (pid and host noted, inputs hashed) and returns its handle. */
  async startRun(options: StartRunOptions): Promise<RunHandle> {
    if (!RUN_KINDS.includes(options.kind)) throw new WhittleError('INTERNAL', `unknown run kind "${options.kind}"`);
    const startedAt = new Date().toISOString();
    const inputs: RunInput[] = [];
    for (const input of options.inputs ?? []) {
      const path = await absoluteIfExists(input.path);
      const digest = await cachedFileDigest(this.db, path);
      inputs.push({ role: input.role, path, sha256: digest?.sha256 ?? null, bytes: digest?.bytes ?? null });
    }
    const id = newRunId();
    this.db.transaction(() => {
      const experimentId = options.experimentId !== undefined ? this.#requireExperiment(options.experimentId)
        : options.experimentName !== undefined ? this.ensureExperiment(options.experimentName) : null;
      this.db.prepare(`INSERT INTO runs (id, kind, experiment_id, command_json, recipe_json, status, created_at, started_at,
          environment_json, pid, hostname, process_started) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)`).run(
        id, options.kind, experimentId, JSON.stringify(options.command),
        options.recipe === undefined ? null : JSON.stringify(options.recipe), startedAt, startedAt,
        JSON.stringify(runEnvironment(options.environment)), process.pid, hostname(), processStartTime(process.pid));
      const putInput = this.db.prepare('INSERT INTO run_inputs (run_id, position, role, path, sha256, bytes) VALUES (?, ?, ?, ?, ?, ?)');
      inputs.forEach((i, n) => putInput.run(id, n, i.role, i.path, i.sha256, i.bytes));
      for (const i of inputs) {
        if ((i.role === 'model' || i.role === 'reference') && i.sha256 !== null) {
          this.#upsertModel(i.sha256, i.path, i.bytes ?? 0, { path: i.path });
        }
      }
    }).immediate();
    return new RunHandle(this.db, this.home, id);
  }

  /** Notes what `inspect` learned about a model (format, parameter count, stats), keyed by content hash. */
  async recordModel(info: ModelInfo): Promise<string> {
    const path = resolve(info.path);
    const digest = await cachedFileDigest(this.db, path);
    if (!digest) throw new WhittleError('NOT_FOUND', `${path}: no such model file`, { file: path });
    this.db.transaction(() => this.#upsertModel(digest.sha256, path, digest.bytes, info))();
    return digest.sha256;
  }

  #upsertModel(sha256: string, path: string, bytes: number, info: ModelInfo): void {
    const now = new Date().toISOString();
    this.db.prepare(`INSERT INTO models (sha256, path, format, bytes, parameters, stats_json, first_seen, last_seen)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(sha256) DO UPDATE SET path = excluded.path, last_seen = excluded.last_seen,
        format = coalesce(excluded.format, models.format), parameters = coalesce(excluded.parameters, models.parameters),
        stats_json = coalesce(excluded.stats_json, models.stats_json)`).run(
      sha256, path, info.format ?? guessFormat(path), bytes, info.parameters ?? null,
      info.stats === undefined ? null : JSON.stringify(info.stats), now, now);
  }

  /** The id of the experiment with this name, created if new. */
  ensureExperiment(name: string): string {
    const found = this.db.prepare('SELECT id FROM experiments WHERE name = ?').get(name) as { id: string } | undefined;
    if (found) return found.id;
    const id = newExperimentId();
    this.db.prepare('INSERT INTO experiments (id, name, created) VALUES (?, ?, ?)').run(id, name, new Date().toISOString());
    return id;
  }

  #requireExperiment(id: string): string {
    if (!this.db.prepare('SELECT 1 FROM experiments WHERE id = ?').get(id)) throw new WhittleError('NOT_FOUND', `no experiment with id "${id}"`);
    return id;
  }

  /** Damage found after opening (a page deep in the file) is still reported naming the file. */
  #guard<T>(read: () => T): T {
    try {
      return read();
    } catch (err) {
      throw asStoreError(err, this.dbPath);
    }
  }

  listRuns(filter: RunFilter = {}): RunSummary[] {
    return this.#guard(() => listRuns(this.db, filter));
  }

  countRuns(filter: RunFilter = {}): number {
    return this.#guard(() => countRuns(this.db, filter));
  }

  /** One run with everything recorded about it; takes a unique id prefix. NOT_FOUND otherwise. */
  getRun(idOrPrefix: string): RunDetail {
    return this.#guard(() => getRun(this.db, this.home, idOrPrefix));
  }

  /**
   * Ends a run that is still `running` because the process recording it died or was killed before
   * it could say so (the job engine calls this when a job process exits). CANCELLED ends it as
   * cancelled, any other code as failed. Returns false when the run had already ended: the
   * process's own record wins.
   */
  failRun(id: string, code: string, message: string): boolean {
    const status = code === 'CANCELLED' ? 'cancelled' : 'failed';
    const changed = this.#guard(() => this.db.prepare(`UPDATE runs SET status = ?, finished_at = ?, error = ?, error_code = ?
      WHERE id = ? AND status = 'running'`).run(status, new Date().toISOString(), message, code, id).changes);
    return changed > 0;
  }

  /**
   * Deletes a finished run: its rows (inputs, metrics, layer metrics and artifacts cascade) and its
   * artifact folder. A run still running is refused; one whose process died is first marked
   * interrupted, and can then be deleted. Takes a unique id prefix; returns the full id.
   */
  async deleteRun(idOrPrefix: string): Promise<string> {
    this.markInterruptedRuns();
    const run = this.getRun(idOrPrefix);
    if (run.status === 'running' || run.status === 'queued') {
      throw new WhittleError('BAD_USAGE', `run ${run.id} is still ${run.status}; cancel it before deleting it`);
    }
    this.#guard(() => this.db.prepare('DELETE FROM runs WHERE id = ?').run(run.id));
    // rows first: a folder left behind by a failed rm is harmless, a row pointing at nothing is not
    await rm(join(this.home, 'artifacts', run.id), { recursive: true, force: true });
    return run.id;
  }

  /** Marks runs whose process died as interrupted (openStore does this; long-lived hosts may repeat it). */
  markInterruptedRuns(): string[] {
    return markInterruptedRuns(this.db);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** Opens the store in `home` (default: resolveWhittleHome()), creating and migrating it as needed. */
export function openStore(options: { home?: string } = {}): Store {
  const home = resolve(options.home ?? resolveWhittleHome());
  try {
    mkdirSync(join(home, 'artifacts'), { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') throw badInput(home, 'WHITTLE_HOME must be a folder, but a file is in the way');
    throw new WhittleError('BAD_INPUT', `${home}: cannot create the Whittle store folder (${(err as Error).message}); set WHITTLE_HOME to a writable folder`, { file: home, cause: err });
  }
  const file = join(home, 'whittle.db');
  const db = openDatabase(file);
  try {
    markInterruptedRuns(db);
  } catch (err) {
    db.close();
    throw asStoreError(err, file);
  }
  return new Store(db, home);
}
