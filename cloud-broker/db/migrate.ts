import type { Database } from 'better-sqlite3';
import { OutpostError } from '../../protocol/errors/index.js';

export interface Migration {
  /** A stable name for logs and errors. */
  name: string;
  /** One or more SQL statements, applied in one transaction. */
  sql: string;
}

/**
 * Applies the migrations after `PRAGMA user_version`, each in its own transaction together with
 * the version bump, so a crash leaves the database at a whole migration boundary. Returns the
 * names applied.
 */
export function migrate(db: Database, migrations: readonly Migration[]): string[] {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new OutpostError(
      'CLOUD_DB_TOO_NEW',
      `the database is at schema ${current} but this Outpost knows ${migrations.length}; upgrade Outpost or use another --data-dir`,
      { schema: current, known: migrations.length },
    );
  }
  const applied: string[] = [];
  for (let i = current; i < migrations.length; i++) {
    const m = migrations[i];
    db.transaction(() => {
      db.exec(m.sql);
      // user_version cannot be bound as a parameter; i is an integer we computed.
      db.pragma(`user_version = ${i + 1}`);
    })();
    applied.push(m.name);
  }
  return applied;
}
