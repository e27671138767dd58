import type { Logger } from '../../protocol/log.js';
import { migrate } from './migrate.js';
import { MIGRATIONS } from './migrations.js';
import { PG_MIGRATIONS } from './pg/index.js';
import { describeDbUrl, isPostgresUrl, parsePostgresUrl } from './pg-url.js';
import { type PgOptions, PgDb } from './postgres.js';
import { openSqlite } from './sqlite.js';
import type { Db } from './types.js';

export type { Db } from './types.js';

/**
 * Opens the cloud database and brings its schema up to date. `target` is a PostgreSQL URL
 * (`postgres://` or `postgresql://`, validated here) or a SQLite file path (created if needed;
 * `:memory:` works for unit tests).
 */
export function openDb(target: string, log?: Logger, pg?: PgOptions): Db {
  const postgres = isPostgresUrl(target);
  const db = postgres ? new PgDb(parsePostgresUrl(target), pg) : openSqlite(target);
  const where = postgres ? { db: describeDbUrl(target) } : { file: target };
  try {
    const applied = migrate(db, postgres ? PG_MIGRATIONS : MIGRATIONS);
    if (applied.length > 0) log?.info({ applied, ...where }, 'database migrated');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}
