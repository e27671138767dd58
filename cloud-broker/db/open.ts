import type { Logger } from '../../protocol/log.js';
import { migrate } from './migrate.js';
import { MIGRATIONS } from './migrations.js';
import { openSqlite } from './sqlite.js';
import type { Db } from './types.js';

export type { Db } from './types.js';

/**
 * Opens the cloud database and brings its schema up to date: a SQLite file path (created if
 * needed; `:memory:` works for unit tests).
 */
export function openDb(target: string, log?: Logger): Db {
  const db = openSqlite(target);
  try {
    const applied = migrate(db, MIGRATIONS);
    if (applied.length > 0) log?.info({ applied, file: target }, 'database migrated');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}
