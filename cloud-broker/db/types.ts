/**
 * The part of a SQL database the cloud's stores use, so that one store works on SQLite (the
 * default, cloud-broker/db/sqlite.ts) and on PostgreSQL (cloud-broker/db/postgres.ts). It is the
 * synchronous shape of better-sqlite3 on purpose: the stores and their callers stay as they are,
 * and PostgreSQL gets a synchronous bridge (docs/scale.md, "The database": cost and way out).
 *
 * Portable SQL only in the stores: `?` placeholders, `INSERT ... RETURNING id` instead of a
 * last-insert id, `ON CONFLICT ... DO NOTHING` instead of `INSERT OR IGNORE`,
 * `IS NOT DISTINCT FROM` instead of `IS`, no boolean arithmetic, every integer column a 64-bit
 * integer that comes back as a JS number.
 */
export type Engine = 'sqlite' | 'postgres';

export interface RunResult {
  /** Rows the statement inserted, updated or deleted. */
  changes: number;
}

export interface Statement {
  run(...params: unknown[]): RunResult;
  /** The first row, or undefined. */
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

/** What `transaction(fn)` returns: call it to run `fn` in a transaction (a savepoint when nested). */
export interface Transaction<T> {
  (): T;
  /**
   * Takes the write lock before `fn` runs (SQLite: BEGIN IMMEDIATE; PostgreSQL: one advisory
   * lock shared by every replica), for read-then-write work such as numbering the next version.
   */
  immediate(): T;
}

export interface DbStats {
  /** Statements executed since open (each run/get/all/exec, and each BEGIN/COMMIT/SAVEPOINT). */
  queries: number;
  /**
   * PostgreSQL only: milliseconds the calling thread spent blocked waiting for answers (the
   * event loop stands still meanwhile; docs/scale.md). SQLite's statements run on the thread
   * itself, so their cost shows as CPU, not as a wait.
   */
  waitMs?: number;
}

export interface Db {
  readonly engine: Engine;
  /** False once closed: a late write (a report racing the shutdown) checks this. */
  readonly open: boolean;
  prepare(sql: string): Statement;
  /** One or more statements without parameters (migrations, tests). */
  exec(sql: string): void;
  transaction<T>(fn: () => T): Transaction<T>;
  stats(): DbStats;
  /** The number of migrations applied (SQLite: PRAGMA user_version; PostgreSQL: a table). */
  schemaVersion(): number;
  /** For the migrator only, inside its transaction. */
  setSchemaVersion(v: number): void;
  close(): void;
}
