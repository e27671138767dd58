import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { type Db, openDb } from '../../cloud-broker/db/index.js';

/**
 * The engine the database-touching tests run on: SQLite unless OUTPOST_TEST_DATABASE=postgres
 * (`npm run test:pg`, test/helpers/pg-global-setup.ts). The same test files run on both.
 */
export const testEngine = (): 'sqlite' | 'postgres' =>
  process.env.OUTPOST_TEST_DATABASE === 'postgres' ? 'postgres' : 'sqlite';

/** CREATE DATABASE on the server of `adminUrl`; returns the new database's URL. */
export async function createPgDatabase(adminUrl: string): Promise<string> {
  const name = `t_${randomBytes(6).toString('hex')}`;
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * What a test passes as `database` to startCloud / `--database` to `outpost cloud start`: a fresh,
 * empty PostgreSQL database on the run's cluster, or undefined (SQLite in the data dir).
 */
export async function testDatabase(): Promise<string | undefined> {
  return testEngine() === 'postgres' ? createPgDatabase(inject('outpostPgUrl')) : undefined;
}

/** A migrated store of the test engine: SQLite in memory, or a fresh PostgreSQL database. */
export async function openTestDb(): Promise<Db> {
  const url = await testDatabase();
  return openDb(url ?? ':memory:');
}
