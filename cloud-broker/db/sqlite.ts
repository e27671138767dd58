import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { fromSqliteError } from './errors.js';
import type { Db, DbStats, Statement, Transaction } from './types.js';

/**
 * The default engine: one SQLite file in the data dir through better-sqlite3, with WAL, foreign
 * keys, a busy timeout and synchronous FULL. A thin layer over better-sqlite3's own objects, so
 * the path the embedded cloud has always taken costs one extra call per statement.
 */
export class SqliteDb implements Db {
  readonly engine = 'sqlite' as const;
  private queries = 0;

  constructor(readonly raw: Database.Database) {}

  get open(): boolean {
    return this.raw.open;
  }

  prepare(sql: string): Statement {
    return new SqliteStatement(this.raw.prepare(sql), this);
  }

  /** Counts one statement (SqliteStatement calls it). */
  counted(): void {
    this.queries++;
  }

  exec(sql: string): void {
    this.queries++;
    try {
      this.raw.exec(sql);
    } catch (err) {
      throw fromSqliteError(err);
    }
  }

  transaction<T>(fn: () => T): Transaction<T> {
    // better-sqlite3 nests with savepoints and rolls back on a throw; BEGIN and COMMIT count.
    const t = this.raw.transaction(fn);
    // Every call takes the write lock up front (BEGIN IMMEDIATE). Replicas may share this file
    // (docs/scale.md), and the stores' transactions read and then write: a deferred BEGIN that
    // upgrades after another process committed fails at once with SQLITE_BUSY_SNAPSHOT, which
    // busy_timeout cannot retry (two replicas provisioning at once, bench/scale.ts). With the
    // lock taken first, the other process waits under busy_timeout instead.
    const call = (): T => {
      this.queries += 2;
      return t.immediate();
    };
    return Object.assign(call, {
      immediate: (): T => {
        this.queries += 2;
        return t.immediate();
      },
    });
  }

  schemaVersion(): number {
    return this.raw.pragma('user_version', { simple: true }) as number;
  }

  setSchemaVersion(v: number): void {
    // user_version cannot be bound as a parameter; v is an integer the migrator computed.
    this.raw.pragma(`user_version = ${Math.trunc(v)}`);
  }

  stats(): DbStats {
    return { queries: this.queries };
  }

  close(): void {
    this.raw.close();
  }
}

/** A class, not closures: a statement is prepared on every store call, so it must cost nothing. */
class SqliteStatement implements Statement {
  constructor(
    private readonly stmt: Database.Statement,
    private readonly db: SqliteDb,
  ) {}

  run(...params: unknown[]): { changes: number } {
    this.db.counted();
    try {
      return { changes: this.stmt.run(...params).changes };
    } catch (err) {
      throw fromSqliteError(err);
    }
  }

  get(...params: unknown[]): unknown {
    this.db.counted();
    try {
      return this.stmt.get(...params);
    } catch (err) {
      throw fromSqliteError(err);
    }
  }

  all(...params: unknown[]): unknown[] {
    this.db.counted();
    try {
      return this.stmt.all(...params);
    } catch (err) {
      throw fromSqliteError(err);
    }
  }
}

/** Opens (creating if needed) the SQLite file; `:memory:` works for unit tests. */
export function openSqlite(file: string): SqliteDb {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
  const raw = new Database(file);
  try {
    raw.pragma('journal_mode = WAL');
    raw.pragma('foreign_keys = ON');
    // Another process (a second CLI, a backup) may hold the write lock briefly.
    raw.pragma('busy_timeout = 5000');
    // synchronous stays FULL (the default): a 201 for a version must survive a power cut.
    return new SqliteDb(raw);
  } catch (err) {
    raw.close();
    throw err;
  }
}
