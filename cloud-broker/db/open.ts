import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from '../../protocol/log.js';
import { migrate } from './migrate.js';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

/**
 * Makes db.transaction(fn)() run as BEGIN IMMEDIATE. Replicas may share this file (docs/scale.md),
 * and the cloud's transactions read and then write: a deferred BEGIN that upgrades to a write
 * after another process committed fails at once with SQLITE_BUSY_SNAPSHOT, which busy_timeout
 * cannot retry (seen as "database is locked" when two replicas provision at once, bench/scale.ts).
 * Taking the write lock up front makes the other process wait for it under busy_timeout instead.
 */
function immediateTransactions(db: Db): void {
  const plain = db.transaction.bind(db);
  // The immediate variant carries .deferred/.immediate/.exclusive too; nested calls stay savepoints.
  db.transaction = ((fn: Parameters<Db['transaction']>[0]) => plain(fn).immediate) as Db['transaction'];
}

/**
 * Opens (creating if needed) the cloud database at `file` with WAL, foreign keys and a busy
 * timeout, and brings its schema up to date. `:memory:` works for unit tests.
 */
export function openDb(file: string, log?: Logger): Db {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    // Another process (a second CLI, a backup) may hold the write lock briefly.
    db.pragma('busy_timeout = 5000');
    // synchronous stays FULL (the default): a 201 for a version must survive a power cut.
    immediateTransactions(db);
    const applied = migrate(db, MIGRATIONS);
    if (applied.length > 0) log?.info({ applied, file }, 'database migrated');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}
