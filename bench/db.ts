/**
 * `npm run bench -- db`: the cost of one store call on PostgreSQL through the synchronous bridge
 * (cloud-broker/db/postgres.ts: a worker thread, a MessageChannel, Atomics.wait) against SQLite
 * (better-sqlite3 in-process), both opened by openDb with the cloud's real schema, in the same run.
 * PostgreSQL is a throw-away Debian cluster on loopback with fsync on, so a commit is as durable
 * as SQLite's synchronous FULL one. The rows are per-call wall time, the time the replica's event
 * loop waits (docs/scale.md, "The database", says what that bounds).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Db, openDb } from '../cloud-broker/db/index.js';
import type { SqliteDb } from '../cloud-broker/db/sqlite.js';
import { FleetStore } from '../cloud-broker/fleet/store.js';
import { startPostgres } from '../test/helpers/engines/postgres.js';
import { createPgDatabase } from '../test/helpers/test-db.js';
import type { BenchRow } from './run.js';

const DEVICES = 200;

function p50(fn: () => void, n: number): number {
  for (let i = 0; i < Math.min(50, n); i++) fn();
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    fn();
    us.push(Number(process.hrtime.bigint() - t) / 1e3);
  }
  us.sort((a, b) => a - b);
  return us[Math.floor(us.length / 2)]!;
}

interface Timings {
  read: number;
  write: number;
  batch: number;
  queriesPerBatch: number;
}

function measure(db: Db): Timings {
  const store = new FleetStore(db);
  for (let i = 0; i < DEVICES; i++) store.upsertDevice(`dev-${i}`, ['bench']);
  let k = 0;
  const read = p50(() => store.getDevice(`dev-${k++ % DEVICES}`), 2000);
  const write = p50(() => {
    store.saveStatus(`dev-${k++ % DEVICES}`, 'online', new Date().toISOString());
    store.flushReports();
  }, 300);
  // A burst of reports: one transaction, as FleetStore.flushReports writes them.
  const before = db.stats().queries;
  const batch = p50(() => {
    for (let i = 0; i < 50; i++) store.saveReported(`dev-${(k + i) % DEVICES}`, '{"models":[]}', 't');
    store.flushReports();
    k += 50;
  }, 100);
  return { read, write, batch, queriesPerBatch: (db.stats().queries - before) / 150 };
}

export async function run(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-db-'));
  // fsync on (the test helper turns it off): a commit as durable as SQLite's synchronous FULL one.
  const pg = await startPostgres(dir, 'outpost', ['-c', 'fsync=on']);
  try {
    const sqlite = openDb(join(dir, 'catalog.db'));
    const lite = measure(sqlite);
    // The SQLite path's own cost of the Db layer: the same statement through it and through
    // better-sqlite3 directly (what every store called before the layer existed).
    const sql = 'SELECT id, revision, status FROM devices WHERE id = ?';
    const raw = (sqlite as SqliteDb).raw;
    let j = 0;
    // Alternated rounds, best p50 of each: the machine's load moves both the same way.
    let direct = Infinity;
    let layered = Infinity;
    for (let round = 0; round < 5; round++) {
      direct = Math.min(
        direct,
        p50(() => raw.prepare(sql).get(`dev-${j++ % DEVICES}`), 2000),
      );
      layered = Math.min(
        layered,
        p50(() => sqlite.prepare(sql).get(`dev-${j++ % DEVICES}`), 2000),
      );
    }
    sqlite.close();
    const pgDb = openDb(await createPgDatabase(pg.url));
    const post = measure(pgDb);
    pgDb.close();
    const row = (name: string, ours: number, base: number): BenchRow => ({
      name,
      metric: 'p50 µs',
      ours,
      baseline: base,
      baselineName: 'SQLite',
      ratio: ours / base,
      note: 'PostgreSQL / SQLite',
    });
    return [
      {
        name: 'SQLite: one SELECT through the Db layer',
        metric: 'p50 µs',
        ours: layered,
        baseline: direct,
        baselineName: 'better-sqlite3 direct',
        ratio: layered / direct,
        note: 'the default path before/after the layer',
      },
      row('device read (getDevice: 2 SELECTs)', post.read, lite.read),
      row('durable write (saveStatus: 1 UPDATE)', post.write, lite.write),
      row('50 reports in one transaction', post.batch, lite.batch),
      {
        name: 'statements per 50-report batch',
        metric: 'queries',
        ours: post.queriesPerBatch,
        baseline: lite.queriesPerBatch,
        baselineName: 'SQLite',
        note: 'db.stats(); PostgreSQL adds the write-lock statement',
      },
    ];
  } finally {
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
