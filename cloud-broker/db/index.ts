export { openDb } from './open.js';
export type { Db, Engine, Statement, RunResult, Transaction, DbStats } from './types.js';
export { migrate, type Migration } from './migrate.js';
export { MIGRATIONS } from './migrations.js';
export { DbConstraintError } from './errors.js';
