import { OutpostError } from '../../protocol/errors/index.js';
import type { Db } from './types.js';

export interface Migration {
  /** A stable name for logs and errors; the same in both dialects' lists. */
  name: string;
  /** One or more SQL statements, applied in one transaction. */
  sql: string;
}

/**
 * Applies the migrations after the database's schema version, each in its own transaction
 * together with the version bump, so a crash leaves the database at a whole migration boundary.
 * Each step is an immediate transaction (SQLite's write lock; on PostgreSQL an advisory lock
 * every replica takes), and the version is read again under it: two clouds starting at once on
 * one empty database apply each migration once. Returns the names applied here.
 */
export function migrate(db: Db, migrations: readonly Migration[]): string[] {
  const applied: string[] = [];
  for (;;) {
    const next = db
      .transaction((): Migration | null => {
        const current = db.schemaVersion();
        if (current > migrations.length) {
          throw new OutpostError(
            'CLOUD_DB_TOO_NEW',
            `the database is at schema ${current} but this Outpost knows ${migrations.length}; upgrade Outpost or use another --data-dir`,
            { schema: current, known: migrations.length },
          );
        }
        const m = migrations[current];
        if (!m) return null;
        db.exec(m.sql);
        db.setSchemaVersion(current + 1);
        return m;
      })
      .immediate();
    if (!next) return applied;
    applied.push(next.name);
  }
}
