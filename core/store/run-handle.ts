import type Database from 'better-sqlite3';
import { rename, rm } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { WhittleError } from '../../api/errors.ts';
import { copyAtomically, writeAtomically } from './atomic.ts';
import { flattenMetrics } from './flatten.ts';
import { sha256File } from './hash.ts';
import { runEnvironment } from './environment.ts';
import type { ArtifactRecord, LayerMetric, RunEnvironment } from './types.ts';

/** Artifact names are relative paths (`model.onnx`, `tfjs/model.json`) that stay inside the run's folder. */
function checkArtifactName(name: string): string[] {
  const parts = name.split('/');
  const bad = name.length === 0 || name.includes('\\') || name.includes('\0') || name.includes(':') ||
    parts.some((p) => p === '' || p === '.' || p === '..' || p.length > 255);
  if (bad) throw new WhittleError('BAD_USAGE', `artifact name "${name}" must be a relative path of plain names separated by "/"`);
  return parts;
}

/**
 * One run being recorded. Made by `store.startRun`; ends with exactly one of succeed / fail /
 * cancel. Each write is its own transaction, so whatever was recorded before a crash survives.
 */
export class RunHandle {
  #ended = false;

  constructor(
    private readonly db: Database.Database,
    private readonly home: string,
    readonly id: string,
  ) {}

  /** The folder this run's artifacts live in: WHITTLE_HOME/artifacts/<run-id>/. */
  get artifactsDir(): string {
    return join(this.home, 'artifacts', this.id);
  }

  get ended(): boolean {
    return this.#ended;
  }

  #assertOpen(action: string): void {
    if (this.#ended) throw new WhittleError('INTERNAL', `run ${this.id} has already ended; cannot ${action}`);
  }

  /** Adds what is only known once the work has started (the EP a session really got, its device). */
  updateEnvironment(known: Partial<RunEnvironment>): void {
    this.#assertOpen('update its environment');
    const row = this.db.prepare('SELECT environment_json FROM runs WHERE id = ?').get(this.id) as { environment_json: string } | undefined;
    const current = row ? (JSON.parse(row.environment_json) as RunEnvironment) : runEnvironment();
    const merged = { ...current, ...known, versions: { ...current.versions, ...known.versions } };
    this.db.prepare('UPDATE runs SET environment_json = ? WHERE id = ?').run(JSON.stringify(merged), this.id);
  }

  /** Records every numeric field of `result` (nested → dotted keys); returns what was recorded. */
  recordMetrics(result: unknown, prefix = ''): Record<string, number> {
    this.#assertOpen('record metrics');
    const metrics = flattenMetrics(result, prefix);
    const put = this.db.prepare('INSERT INTO metrics (run_id, key, value) VALUES (?, ?, ?) ON CONFLICT(run_id, key) DO UPDATE SET value = excluded.value');
    this.db.transaction(() => {
      for (const [key, value] of Object.entries(metrics)) put.run(this.id, key, value);
    })();
    return metrics;
  }

  recordLayerMetrics(rows: readonly LayerMetric[]): void {
    this.#assertOpen('record layer metrics');
    const put = this.db.prepare(`INSERT INTO layer_metrics (run_id, layer, metric, value) VALUES (?, ?, ?, ?)
      ON CONFLICT(run_id, layer, metric) DO UPDATE SET value = excluded.value`);
    this.db.transaction(() => {
      for (const r of rows) if (Number.isFinite(r.value)) put.run(this.id, r.layer, r.metric, r.value);
    })();
  }

  /** Where artifact `name` goes; write it with writeAtomically (or use writeArtifact) then registerArtifact. */
  artifactPath(name: string): string {
    return join(this.artifactsDir, ...checkArtifactName(name));
  }

  /** Streams an artifact straight into the store: `write` fills a temp path that is renamed on success. */
  async writeArtifact(name: string, write: (tmpPath: string) => Promise<void>): Promise<ArtifactRecord> {
    this.#assertOpen('write an artifact');
    const dest = this.artifactPath(name);
    await writeAtomically(dest, write);
    const digest = await sha256File(dest);
    return this.#insertArtifact(name, dest, digest.sha256, digest.bytes);
  }

  /** Copies (or, with move, renames) a finished file into the run's artifacts. */
  async addArtifact(name: string, sourcePath: string, options: { move?: boolean } = {}): Promise<ArtifactRecord> {
    this.#assertOpen('add an artifact');
    const dest = this.artifactPath(name);
    if (options.move) {
      try {
        await writeAtomically(dest, (tmp) => rename(sourcePath, tmp));
        const digest = await sha256File(dest);
        return this.#insertArtifact(name, dest, digest.sha256, digest.bytes);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        // Another filesystem: fall through to copy, then remove the source.
      }
    }
    const digest = await copyAtomically(sourcePath, dest);
    const record = this.#insertArtifact(name, dest, digest.sha256, digest.bytes);
    if (options.move) await rm(sourcePath, { force: true });
    return record;
  }

  /** Records a file a writer already put at artifactPath(name) (with writeAtomically). */
  async registerArtifact(name: string): Promise<ArtifactRecord> {
    this.#assertOpen('register an artifact');
    const dest = this.artifactPath(name);
    const digest = await sha256File(dest);
    return this.#insertArtifact(name, dest, digest.sha256, digest.bytes);
  }

  #insertArtifact(name: string, absPath: string, sha256: string, bytes: number): ArtifactRecord {
    const createdAt = new Date().toISOString();
    // Stored relative to WHITTLE_HOME with "/" so the folder can be moved or synced to another OS.
    const rel = relative(this.home, absPath).split(sep).join('/');
    this.db.prepare(`INSERT INTO artifacts (run_id, name, path, sha256, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT(run_id, name) DO UPDATE SET path = excluded.path, sha256 = excluded.sha256, bytes = excluded.bytes, created_at = excluded.created_at`)
      .run(this.id, name, rel, sha256, bytes, createdAt);
    return { name, path: absPath, sha256, bytes, createdAt };
  }

  /** Ends the run as succeeded, storing the command's full JSON output. */
  succeed(result: unknown): void {
    this.#end('succeeded', { result });
  }

  /** Ends the run as failed; a WhittleError CANCELLED (or an AbortError) ends it as cancelled. */
  fail(error: unknown): void {
    const code = error instanceof WhittleError ? error.code : (error as Error | undefined)?.name === 'AbortError' ? 'CANCELLED' : 'INTERNAL';
    const message = error instanceof Error ? error.message : String(error);
    this.#end(code === 'CANCELLED' ? 'cancelled' : 'failed', { error: message, errorCode: code });
  }

  cancel(reason = 'cancelled by the user'): void {
    this.#end('cancelled', { error: reason, errorCode: 'CANCELLED' });
  }

  #end(status: 'succeeded' | 'failed' | 'cancelled', fields: { result?: unknown; error?: string; errorCode?: string }): void {
    this.#assertOpen(`mark it ${status}`);
    this.db.prepare(`UPDATE runs SET status = ?, finished_at = ?, error = ?, error_code = ?, result_json = ? WHERE id = ?`).run(
      status,
      new Date().toISOString(),
      fields.error ?? null,
      fields.errorCode ?? null,
      // int64 fields from protobuf arrive as bigint, which JSON.stringify refuses: keep them exact as strings.
      fields.result === undefined ? null : JSON.stringify(fields.result, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)),
      this.id,
    );
    this.#ended = true;
  }
}
