import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { missingPostgres, type Postgres, startPostgres } from './engines/postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The admin URL of the run's PostgreSQL cluster, when OUTPOST_TEST_DATABASE=postgres. */
    outpostPgUrl: string;
  }
}

/**
 * `OUTPOST_TEST_DATABASE=postgres` (npm run test:pg) runs the database-touching test files against
 * a real PostgreSQL: one throw-away cluster for the whole run (an initdb costs seconds), in which
 * test/helpers/test-db.ts creates a fresh database per cloud or store. Without the variable this
 * does nothing and every test keeps SQLite.
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (process.env.OUTPOST_TEST_DATABASE !== 'postgres') return undefined;
  const missing = missingPostgres();
  if (missing) throw new Error(`OUTPOST_TEST_DATABASE=postgres but ${missing}`);
  const dir = await mkdtemp(join(tmpdir(), 'outpost-pg-run-'));
  let pg: Postgres | undefined;
  try {
    pg = await startPostgres(dir);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  project.provide('outpostPgUrl', pg.url);
  return async () => {
    await pg?.stop();
    await rm(dir, { recursive: true, force: true });
  };
}
