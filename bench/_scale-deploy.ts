/**
 * The two deployments bench/scale.ts compares, each started from real processes and stopped by PID:
 *
 *   single:  one `outpost cloud start` on SQLite, its own aedes and blob folder (the default).
 *   cluster: N `outpost cloud start` replicas behind haproxy (TCP, round robin, health checks),
 *            their aedes joined through Redis, one blob folder, and one database: PostgreSQL
 *            (`--database postgres://...`) or, until a replica has that flag, the SQLite file in
 *            the data folder they share (as test/integration/replicas.test.ts runs them).
 *
 * The engines are Debian's, started by the test helpers (test/helpers/engines/).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { closedPort } from '../test/helpers/daemon-process.js';
import { startHaproxy } from '../test/helpers/engines/haproxy.js';
import { startPostgres } from '../test/helpers/engines/postgres.js';
import { startRedis } from '../test/helpers/engines/redis.js';
import type { ServiceProcess } from '../test/helpers/engines/service.js';
import { startCloudProcess, type CloudProcess } from './_procs.js';

export type Database = 'sqlite' | 'postgres';

export interface Deployment {
  readonly name: string;
  readonly replicas: CloudProcess[];
  /** haproxy, Redis, PostgreSQL: whatever this deployment started besides the replicas. */
  readonly engines: ServiceProcess[];
  /** What operators and devices use: the balancer's URL, or the single replica's. */
  readonly http: string;
  readonly token: string;
  /** The database counters so far (see DbSnapshot). */
  dbQueries(): Promise<DbSnapshot>;
  stop(): Promise<void>;
}

/**
 * Statements run so far. `driver`: the sum of every replica's own counter (GET /v1/stats, the
 * database driver's count of each statement, BEGIN and COMMIT); `waitMs`: per replica, the time
 * its main thread stood blocked on PostgreSQL (0 on SQLite, whose statements are CPU); `server`:
 * PostgreSQL's pg_stat_statements calls, in total and by statement text (null on SQLite).
 */
export interface DbSnapshot {
  driver: number;
  waitMs: number[];
  server: { total: number; byQuery: Map<string, number> } | null;
}

async function replicaStats(replicas: CloudProcess[]): Promise<Pick<DbSnapshot, 'driver' | 'waitMs'>> {
  const one = async (r: CloudProcess) => {
    const res = await fetch(`${r.http}/v1/stats`, { headers: { authorization: `Bearer ${r.token}` } });
    if (!res.ok) throw new Error(`GET ${r.http}/v1/stats answered ${res.status}`);
    return ((await res.json()) as { database: { queries: number; waitMs?: number } }).database;
  };
  const all = await Promise.all(replicas.map(one));
  return { driver: all.reduce((a, b) => a + b.queries, 0), waitMs: all.map((s) => s.waitMs ?? 0) };
}

/**
 * With `mqttSessionRate`, the single replica sits behind haproxy too, with the same admission
 * rate as the cluster, so the two differ only in the replicas and the engines behind them.
 */
export async function startSingle(work: string, mqttSessionRate = 0): Promise<Deployment> {
  if (!mqttSessionRate) {
    const r = await startCloudProcess(join(work, 'single'));
    return {
      name: '1 replica, SQLite',
      replicas: [r],
      engines: [],
      http: r.http,
      token: r.token,
      dbQueries: async () => ({ ...(await replicaStats([r])), server: null }),
      stop: () => r.stop(),
    };
  }
  await mkdir(work, { recursive: true });
  const [httpPort, mqttPort] = [await closedPort(), await closedPort()];
  const lb = await startHaproxy(work, [{ host: '127.0.0.1', httpPort, mqttPort }], { mqttSessionRate });
  try {
    const http = `http://127.0.0.1:${lb.httpPort}`;
    const r = await startCloudProcess(join(work, 'single'), [
      ...['--http-port', String(httpPort), '--mqtt-port', String(mqttPort)],
      ...['--public-http', http, '--public-mqtt', `mqtt://127.0.0.1:${lb.mqttPort}`],
    ]);
    return {
      name: `1 replica, SQLite, behind haproxy (${mqttSessionRate} MQTT connects/s)`,
      replicas: [r],
      engines: [lb.process],
      http,
      token: r.token,
      dbQueries: async () => ({ ...(await replicaStats([r])), server: null }),
      stop: async () => {
        await r.stop();
        await lb.stop();
      },
    };
  } catch (err) {
    await lb.stop();
    throw err;
  }
}

/**
 * pg_stat_statements counts every statement the server ran (calls), whoever sent it; the bench's
 * own reads of that view are left out by their text. The extension must be preloaded, hence the
 * extra server settings.
 */
async function pgCounter(url: string): Promise<{ read(): Promise<DbSnapshot['server']>; close(): Promise<void> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  return {
    async read() {
      const r = await client.query<{ query: string; n: string }>(
        "SELECT query, sum(calls)::text AS n FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' GROUP BY query",
      );
      const byQuery = new Map(r.rows.map((row) => [row.query, Number(row.n)]));
      return { total: [...byQuery.values()].reduce((a, b) => a + b, 0), byQuery };
    },
    close: () => client.end(),
  };
}

/** `mqttSessionRate`: haproxy admits this many new MQTT connections per second (0: no limit). */
export async function startCluster(
  work: string,
  replicas: number,
  database: Database,
  mqttSessionRate = 0,
): Promise<Deployment> {
  const engines: ServiceProcess[] = [];
  const started: CloudProcess[] = [];
  let counter: Awaited<ReturnType<typeof pgCounter>> | null = null;
  let pgDir: string | null = null;
  const stop = async () => {
    for (const r of started) await r.stop();
    await counter?.close().catch(() => undefined);
    for (const e of engines.reverse()) await e.stop();
    if (pgDir) await rm(pgDir, { recursive: true, force: true });
  };
  try {
    const dir = work;
    await mkdir(dir, { recursive: true });
    const redis = await startRedis(dir);
    engines.push(redis.process);
    let dbFlags: string[] = [];
    if (database === 'postgres') {
      // Its own folder right under the temp dir: under root the server runs as `postgres`, which
      // must be able to reach it (the bench's folder is 0700 root).
      pgDir = await mkdtemp(join(tmpdir(), 'outpost-bench-pg-'));
      const server = await startPostgres(pgDir, 'outpost', [
        '-c',
        'shared_preload_libraries=pg_stat_statements',
        '-c',
        'pg_stat_statements.max=10000',
        '-c',
        'max_connections=200',
      ]);
      engines.push(server.process);
      counter = await pgCounter(server.url);
      dbFlags = ['--database', server.url];
    }
    // The balancer's ports are advertised to devices, so they are known before the replicas start;
    // haproxy's health checks find each replica once it listens.
    const ports = await Promise.all(
      Array.from({ length: replicas }, async () => [await closedPort(), await closedPort()]),
    );
    const lb = await startHaproxy(
      dir,
      ports.map(([httpPort, mqttPort]) => ({ host: '127.0.0.1', httpPort: httpPort!, mqttPort: mqttPort! })),
      { mqttSessionRate },
    );
    engines.push(lb.process);
    const http = `http://127.0.0.1:${lb.httpPort}`;
    for (const [httpPort, mqttPort] of ports) {
      // One after the other: the first creates the admin token and signing key the others read
      // from the data folder they share.
      started.push(
        await startCloudProcess(join(dir, 'data'), [
          '--http-port',
          String(httpPort),
          '--mqtt-port',
          String(mqttPort),
          '--redis',
          redis.url,
          '--blob-dir',
          join(dir, 'blobs'),
          '--public-http',
          http,
          '--public-mqtt',
          `mqtt://127.0.0.1:${lb.mqttPort}`,
          ...dbFlags,
        ]),
      );
    }
    return {
      name: `${replicas} replicas, ${database === 'postgres' ? 'PostgreSQL' : 'shared SQLite'} + Redis + haproxy${mqttSessionRate ? ` (${mqttSessionRate} MQTT connects/s)` : ''}`,
      replicas: started,
      engines,
      http,
      token: started[0]!.token,
      dbQueries: async () => ({ ...(await replicaStats(started)), server: counter ? await counter.read() : null }),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
