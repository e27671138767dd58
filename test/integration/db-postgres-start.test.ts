import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_MIGRATIONS } from '../../cloud-broker/db/pg/index.js';
import { cleanEnv, type Spawned, spawnCli } from '../helpers/cli.js';
import { missingPostgres, type Postgres, startPostgres } from '../helpers/engines/postgres.js';
import { skipForPackage } from '../helpers/requires.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { createPgDatabase } from '../helpers/test-db.js';

// `outpost cloud start --database postgres://...` as a user runs it: two replicas started at the
// same moment on one empty database migrate it once, and the password in the URL never shows.
const tmp = useTempDir('outpost-db-start-', 'all');
const PASSWORD = 'never-print-me-7f3a';

/** The cloud's cloud.json, written once it listens (what the other verbs on the machine read). */
async function listening(dataDir: string, c: Spawned): Promise<{ http: string }> {
  for (let n = 0; n < 600; n++) {
    const info = await readFile(join(dataDir, 'cloud.json'), 'utf8').catch(() => '');
    if (info) return JSON.parse(info) as { http: string };
    await new Promise((r) => setTimeout(r, 100));
  }
  c.kill('SIGKILL');
  throw new Error(`the cloud in ${dataDir} did not start: ${(await c.done).stderr}`);
}

describe.skipIf(skipForPackage(missingPostgres()))('outpost cloud start --database', () => {
  let server: Postgres;
  beforeAll(async () => {
    server = await startPostgres(tmp.dir);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('two clouds starting at once on one empty database apply each migration exactly once', async () => {
    const url = new URL(await createPgDatabase(server.url));
    // The test server trusts loopback, so any password works; it is there to be kept secret.
    url.password = PASSWORD;
    const dirs = [0, 1].map((i) => join(tmp.dir, `cloud-${i}`));
    const clouds = dirs.map((dir) =>
      spawnCli(['cloud', 'start', '--json', '--data-dir', dir, '--http-port', '0', '--database', url.toString()], {
        cwd: tmp.dir,
        env: cleanEnv({ HOME: tmp.dir, OUTPOST_LOG_LEVEL: 'info' }),
      }),
    );
    const started = await Promise.all(clouds.map((c, i) => listening(dirs[i]!, c)));
    for (const s of started) expect((await fetch(`${s.http}/v1/health`)).status).toBe(200);
    for (const c of clouds) c.kill('SIGTERM');
    const runs = await Promise.all(clouds.map((c) => c.done));
    const migrated = runs.flatMap((r) =>
      r.stderr
        .split('\n')
        .filter((l) => l.includes('"database migrated"'))
        .map((l) => JSON.parse(l) as { applied: string[]; db: string }),
    );
    // Each migration is its own locked step, so the two may share the work, but every migration
    // was applied exactly once, by one of them, and both logged where (host:port/db, no password).
    const applied = migrated.flatMap((m) => m.applied);
    expect([...applied].sort()).toEqual(PG_MIGRATIONS.map((m) => m.name).sort());
    for (const m of migrated) expect(m.db).toBe(`127.0.0.1:${server.port}${url.pathname}`);
    const c = new pg.Client({ connectionString: url.toString() });
    await c.connect();
    try {
      expect((await c.query('SELECT version FROM outpost_schema')).rows).toEqual([{ version: PG_MIGRATIONS.length }]);
      expect((await c.query("SELECT COUNT(*)::int AS n FROM pg_proc WHERE proname = 'outpost_refuse'")).rows).toEqual([
        { n: 1 },
      ]);
    } finally {
      await c.end();
    }
    for (const r of runs) expect(r.stdout + r.stderr).not.toContain(PASSWORD);
    expect(runs.map((r) => r.code)).toEqual([0, 0]);
  });

  it('refuses a bad --database with CLOUD_DB_URL_INVALID before anything starts', async () => {
    const c = spawnCli(
      ['cloud', 'start', '--data-dir', join(tmp.dir, 'bad'), '--database', `mysql://u:${PASSWORD}@h/d`],
      {
        cwd: tmp.dir,
        env: cleanEnv({ HOME: tmp.dir }),
      },
    );
    const r = await c.done;
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('CLOUD_DB_URL_INVALID');
    expect(r.stdout + r.stderr).not.toContain(PASSWORD);
  });
});
