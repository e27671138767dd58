import { isErrorCode, OutpostError } from '../../protocol/errors/index.js';

/**
 * One error shape for both engines, so a store, a test or a log line never depends on which
 * database answered:
 * - a trigger that raises 'CODE: message' (the schema's invariants, migrations-*.ts) becomes
 *   OutpostError(CODE, message) when CODE is in the error catalog (e.g. CATALOG_VERSION_IMMUTABLE
 *   answers 409, not 500), else a DbConstraintError('trigger');
 * - a unique, foreign-key, check or not-null violation becomes a DbConstraintError (an INTERNAL
 *   error to the API: the stores check what a user can cause before they write).
 */
export type ConstraintKind = 'unique' | 'foreign-key' | 'check' | 'not-null' | 'trigger';

export class DbConstraintError extends Error {
  constructor(
    readonly constraint: ConstraintKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DbConstraintError';
  }
}

/** The error a trigger's 'CODE: message' stands for. */
export function triggerError(text: string, cause?: unknown): Error {
  const m = /^([A-Z][A-Z0-9_]*): (.*)$/s.exec(text);
  if (m && isErrorCode(m[1])) return new OutpostError(m[1], m[2]!, undefined, { cause });
  return new DbConstraintError('trigger', text, { cause });
}

const SQLITE_KINDS: Record<string, ConstraintKind> = {
  SQLITE_CONSTRAINT_UNIQUE: 'unique',
  SQLITE_CONSTRAINT_PRIMARYKEY: 'unique',
  SQLITE_CONSTRAINT_FOREIGNKEY: 'foreign-key',
  SQLITE_CONSTRAINT_CHECK: 'check',
  SQLITE_CONSTRAINT_NOTNULL: 'not-null',
};

/** better-sqlite3's SqliteError (`code` SQLITE_CONSTRAINT_*) in the shape above; others unchanged. */
export function fromSqliteError(err: unknown): unknown {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || typeof e.code !== 'string' || typeof e.message !== 'string') return err;
  if (e.code === 'SQLITE_CONSTRAINT_TRIGGER') return triggerError(e.message, err);
  const kind = SQLITE_KINDS[e.code];
  return kind ? new DbConstraintError(kind, e.message, { cause: err }) : err;
}

const PG_KINDS: Record<string, ConstraintKind> = {
  '23505': 'unique',
  '23503': 'foreign-key',
  '23514': 'check',
  '23502': 'not-null',
};

/** A PostgreSQL error (SQLSTATE in `code`; P0001 is plpgsql's RAISE EXCEPTION) in the shape above. */
export function fromPgError(e: { code?: string; message: string }): Error {
  if (e.code === 'P0001') return triggerError(e.message);
  const kind = e.code ? PG_KINDS[e.code] : undefined;
  if (kind) return new DbConstraintError(kind, e.message);
  return Object.assign(new Error(e.message), { code: e.code });
}
