import Database from 'better-sqlite3';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { WhittleError, badInput } from '../../api/errors.ts';
import { migrate } from './migrations.ts';

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * Refuses a file that is not SQLite before SQLite touches it: the user's runs may be in there
 * (a synced copy, a half-restored backup), so we must never "repair" it by starting a new store.
 * An empty file is what SQLite itself would create, so it is allowed.
 */
function checkHeader(file: string): void {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw badInput(file, 'is not a file; WHITTLE_HOME must hold whittle.db as a SQLite file');
    size = st.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (size === 0) return;
  const head = Buffer.alloc(SQLITE_HEADER.length);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (!head.equals(SQLITE_HEADER)) {
    throw badInput(file, 'is not a SQLite database, so Whittle will not open or overwrite it. ' +
      'Move it aside (it may be a backup worth keeping), or set WHITTLE_HOME to another folder.');
  }
}

/** SQLite's "this file is damaged" codes become BAD_INPUT naming the file; others pass through. */
export function asStoreError(err: unknown, file: string): unknown {
  const code = (err as { code?: unknown })?.code;
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT' || code === 'SQLITE_CORRUPT_VTAB') {
    return new WhittleError('BAD_INPUT',
      `${file}: the store database is damaged (${(err as Error).message}); Whittle left it untouched. ` +
      'Restore it from a backup, or set WHITTLE_HOME to another folder.', { file, cause: err });
  }
  return err;
}

/** Opens (creating if absent) and migrates the store database. */
export function openDatabase(file: string): Database.Database {
  checkHeader(file);
  let db: Database.Database;
  try {
    db = new Database(file);
  } catch (err) {
    throw asStoreError(err, file);
  }
  try {
    // A read first: a damaged file fails here, before any pragma below could write to it.
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    db.pragma('busy_timeout = 5000'); // CLI and app may write at once; wait rather than fail
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    db.pragma('synchronous = NORMAL'); // WAL + NORMAL: durable across app crashes, fast commits
    migrate(db, file);
    return db;
  } catch (err) {
    db.close();
    throw asStoreError(err, file);
  }
}
