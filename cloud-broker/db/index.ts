export { openDb, type Db } from './open.js';
export { migrate, type Migration } from './migrate.js';
export { MIGRATIONS } from './migrations.js';
