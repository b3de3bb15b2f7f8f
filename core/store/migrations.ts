import type Database from 'better-sqlite3';
import { WhittleError } from '../../api/errors.ts';

type Db = Database.Database;

export interface Migration {
  version: number;
  name: string;
  up: (db: Db) => void;
  /**
   * The step rebuilds a table (SQLite cannot alter a CHECK constraint): foreign keys are switched off
   * around its transaction, or dropping the old table would cascade-delete every row that refers to
   * it; the step must leave no dangling reference (checked before it commits).
   */
  rebuildsTables?: boolean;
}

/** The runs table as of version 2; the kinds a run may have are RUN_KINDS in types.ts. */
const RUNS_V2 = `
  CREATE TABLE runs (
    id                TEXT PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('eval','convert','quantize','prune','analyze','recipe','demo')),
    experiment_id     TEXT REFERENCES experiments(id),
    command_json      TEXT NOT NULL,
    recipe_json       TEXT,
    status            TEXT NOT NULL CHECK (status IN ('queued','running','succeeded','failed','cancelled','interrupted')),
    created_at        TEXT NOT NULL,
    started_at        TEXT,
    finished_at       TEXT,
    error             TEXT,
    error_code        TEXT,
    environment_json  TEXT NOT NULL,
    pid               INTEGER,
    hostname          TEXT,
    process_started   TEXT,
    result_json       TEXT
  );`;

/**
 * The schema, as an ordered list of steps. Never edit a step that has shipped: add the next one.
 * Times are ISO-8601 UTC strings (they sort as text and read well in the sqlite3 shell); JSON
 * columns end in _json.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    up: (db) => {
      db.exec(`
        CREATE TABLE models (
          sha256      TEXT PRIMARY KEY,
          path        TEXT NOT NULL,      -- where it was last seen
          format      TEXT,
          bytes       INTEGER NOT NULL,
          parameters  INTEGER,
          stats_json  TEXT,
          first_seen  TEXT NOT NULL,
          last_seen   TEXT NOT NULL
        );
        CREATE TABLE experiments (
          id       TEXT PRIMARY KEY,
          name     TEXT NOT NULL UNIQUE,
          created  TEXT NOT NULL
        );
        CREATE TABLE runs (
          id                TEXT PRIMARY KEY,
          kind              TEXT NOT NULL CHECK (kind IN ('eval','convert','quantize','prune','analyze','recipe')),
          experiment_id     TEXT REFERENCES experiments(id),
          command_json      TEXT NOT NULL,
          recipe_json       TEXT,
          status            TEXT NOT NULL CHECK (status IN ('queued','running','succeeded','failed','cancelled','interrupted')),
          created_at        TEXT NOT NULL,
          started_at        TEXT,
          finished_at       TEXT,
          error             TEXT,
          error_code        TEXT,
          environment_json  TEXT NOT NULL,
          pid               INTEGER,
          hostname          TEXT,
          -- the process's start time where the OS tells it, so a reused pid is not taken for ours
          process_started   TEXT,
          result_json       TEXT
        );
        CREATE INDEX runs_by_created ON runs(created_at);
        CREATE INDEX runs_by_status ON runs(status);
        CREATE TABLE run_inputs (
          run_id    TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
          position  INTEGER NOT NULL,
          role      TEXT NOT NULL,
          path      TEXT NOT NULL,
          sha256    TEXT,
          bytes     INTEGER,
          PRIMARY KEY (run_id, position)
        );
        CREATE INDEX run_inputs_by_sha256 ON run_inputs(sha256);
        CREATE TABLE metrics (
          run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
          key     TEXT NOT NULL,
          value   REAL NOT NULL,
          PRIMARY KEY (run_id, key)
        );
        CREATE TABLE layer_metrics (
          run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
          layer   TEXT NOT NULL,
          metric  TEXT NOT NULL,
          value   REAL NOT NULL,
          PRIMARY KEY (run_id, layer, metric)
        );
        CREATE TABLE artifacts (
          run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
          name        TEXT NOT NULL,
          path        TEXT NOT NULL,      -- relative to WHITTLE_HOME, so the folder can move
          sha256      TEXT NOT NULL,
          bytes       INTEGER NOT NULL,
          created_at  TEXT NOT NULL,
          PRIMARY KEY (run_id, name)
        );
        -- sha256 of input files by path+size+mtime: a 1 GiB model is hashed once, not every run
        CREATE TABLE file_hashes (
          path       TEXT PRIMARY KEY,
          bytes      INTEGER NOT NULL,
          mtime_ms   REAL NOT NULL,
          sha256     TEXT NOT NULL,
          hashed_at  TEXT NOT NULL
        );
      `);
    },
  },
  {
    version: 2,
    name: 'run kind demo',
    rebuildsTables: true,
    up: (db) => {
      // the built-in experiments (whittle demo) were recorded as kind eval until this kind existed
      db.exec(`
        ${RUNS_V2.replace('CREATE TABLE runs', 'CREATE TABLE runs_v2')}
        INSERT INTO runs_v2 SELECT id,
          CASE WHEN kind = 'eval' AND json_valid(command_json) AND json_extract(command_json, '$[0]') = 'demo' THEN 'demo' ELSE kind END,
          experiment_id, command_json, recipe_json, status, created_at, started_at, finished_at, error, error_code,
          environment_json, pid, hostname, process_started, result_json
        FROM runs;
        DROP TABLE runs;
        ALTER TABLE runs_v2 RENAME TO runs;
        CREATE INDEX runs_by_created ON runs(created_at);
        CREATE INDEX runs_by_status ON runs(status);
      `);
    },
  },
];

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

function currentVersion(db: Db): number {
  const row = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
  return row.v ?? 0;
}

/**
 * Brings the database up to LATEST_VERSION, one transaction per step. BEGIN IMMEDIATE takes the
 * write lock before reading the version, so two processes opening a fresh store at once cannot
 * both apply the same step.
 */
export function migrate(db: Db, file: string, migrations: readonly Migration[] = MIGRATIONS): number {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
  const latest = migrations.length ? migrations[migrations.length - 1]!.version : 0;
  const found = currentVersion(db);
  if (found > latest) {
    throw new WhittleError(
      'UNSUPPORTED',
      `${file}: the store was written by a newer Whittle (schema version ${found}; this version knows up to ${latest}). ` +
        'Upgrade Whittle, or point WHITTLE_HOME at another folder.',
      { file },
    );
  }
  for (const step of migrations) {
    if (currentVersion(db) >= step.version) continue;
    // a pragma, so outside the transaction (inside one SQLite ignores it)
    const foreignKeys = step.rebuildsTables ? db.pragma('foreign_keys', { simple: true }) === 1 : false;
    if (foreignKeys) db.pragma('foreign_keys = OFF');
    try {
      db.transaction(() => {
        if (currentVersion(db) >= step.version) return;
        step.up(db);
        if (step.rebuildsTables) {
          const dangling = db.pragma('foreign_key_check') as unknown[];
          if (dangling.length > 0) throw new WhittleError('INTERNAL', `${file}: migration ${step.version} (${step.name}) would leave ${dangling.length} dangling reference(s); nothing was changed`, { file });
        }
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
          step.version, step.name, new Date().toISOString());
      }).immediate();
    } finally {
      if (foreignKeys) db.pragma('foreign_keys = ON');
    }
  }
  return currentVersion(db);
}
