import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../../cloud-broker/db/index.js';
import { DbConstraintError } from '../../cloud-broker/db/errors.js';
import { PgDb } from '../../cloud-broker/db/postgres.js';
import type { OutpostError } from '../../protocol/errors/index.js';
import { missingPostgres, type Postgres, startPostgres } from '../helpers/engines/postgres.js';
import { skipForPackage } from '../helpers/requires.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { createPgDatabase } from '../helpers/test-db.js';

// The synchronous PostgreSQL driver (cloud-broker/db/postgres.ts) against a real server: what the
// stores rely on from better-sqlite3 must hold on it too.
const tmp = useTempDir('outpost-db-pg-', 'all');
const coded = (code: string) => expect.objectContaining({ code }) as OutpostError;

/**
 * A TCP relay in its own process (this thread blocks while the driver waits, so an in-process one
 * could not forward): SIGUSR1 makes it stop answering, as a dead network path would, SIGUSR2 heals it.
 */
const RELAY = `
const net = require('node:net');
let stalled = false;
process.on('SIGUSR1', () => { stalled = true; });
process.on('SIGUSR2', () => { stalled = false; });
const server = net.createServer((c) => {
  const up = net.connect(Number(process.argv[1]), '127.0.0.1');
  up.on('data', (b) => { if (!stalled) c.write(b); });
  c.on('data', (b) => up.write(b));
  const end = () => { c.destroy(); up.destroy(); };
  c.on('error', end); up.on('error', end); c.on('close', end); up.on('close', end);
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
`;

describe.skipIf(skipForPackage(missingPostgres()))('PostgreSQL driver', () => {
  let server: Postgres;
  let url: string;
  let db: PgDb;

  beforeAll(async () => {
    server = await startPostgres(tmp.dir);
    url = await createPgDatabase(server.url);
    db = new PgDb(url);
    db.exec('CREATE TABLE t (id BIGINT PRIMARY KEY, label TEXT UNIQUE, parent BIGINT REFERENCES t (id))');
  });
  afterAll(async () => {
    db?.close();
    await server?.stop();
  });

  it('binds ? placeholders, returns rows of the same shape, and counts changes', () => {
    const ins = db.prepare('INSERT INTO t (id, label) VALUES (?, ?)');
    expect(ins.run(1, 'one?')).toEqual({ changes: 1 });
    expect(ins.run(2, null)).toEqual({ changes: 1 });
    expect(db.prepare("SELECT id, label, 'a?' AS q FROM t WHERE id = ?").get(1)).toEqual({
      id: 1,
      label: 'one?',
      q: 'a?',
    });
    expect(db.prepare('SELECT id FROM t WHERE id = ?').get(99)).toBeUndefined();
    expect(db.prepare('UPDATE t SET label = label WHERE id >= ?').run(1).changes).toBe(2);
    expect(db.prepare('INSERT INTO t (id) VALUES (?) ON CONFLICT DO NOTHING').run(1).changes).toBe(0);
    expect(db.prepare('INSERT INTO t (id) VALUES (?) RETURNING id').get(3)).toEqual({ id: 3 });
  });

  it('turns int8 and numeric into JS numbers, and refuses one that would lose digits', () => {
    expect(
      db
        .prepare('SELECT COUNT(*) AS n, SUM(id) AS s, 9007199254740991::bigint AS max, 1.5::numeric AS half FROM t')
        .get(),
    ).toEqual({ n: 3, s: 6, max: Number.MAX_SAFE_INTEGER, half: 1.5 });
    expect(() => db.prepare('SELECT 9007199254740993::bigint AS big').get()).toThrow(/cannot represent exactly/);
    expect(() => db.prepare('SELECT 123456789012345678901234::numeric AS big').get()).toThrow(coded('INTERNAL'));
  });

  it('rolls a transaction back when its function throws, and nests with savepoints', () => {
    const count = (): number => (db.prepare('SELECT COUNT(*) AS n FROM t').get() as { n: number }).n;
    const before = count();
    expect(() =>
      db.transaction(() => {
        db.prepare('INSERT INTO t (id) VALUES (?)').run(10);
        throw new Error('boom');
      })(),
    ).toThrow('boom');
    expect(count()).toBe(before);
    db.transaction(() => {
      db.prepare('INSERT INTO t (id) VALUES (?)').run(11);
      expect(() =>
        db.transaction(() => {
          db.prepare('INSERT INTO t (id) VALUES (?)').run(12);
          throw new Error('inner');
        })(),
      ).toThrow('inner');
    }).immediate();
    expect(db.prepare('SELECT id FROM t WHERE id >= 10 ORDER BY id').all()).toEqual([{ id: 11 }]);
  });

  it('maps unique, foreign-key and trigger errors as the SQLite driver does', () => {
    const violation = (f: () => unknown): DbConstraintError => {
      try {
        f();
      } catch (err) {
        if (err instanceof DbConstraintError) return err;
        throw err;
      }
      throw new Error('no error');
    };
    expect(violation(() => db.prepare('INSERT INTO t (id) VALUES (1)').run()).constraint).toBe('unique');
    expect(violation(() => db.prepare('INSERT INTO t (id, parent) VALUES (20, 999)').run()).constraint).toBe(
      'foreign-key',
    );
    db.exec(`CREATE FUNCTION t_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'CATALOG_VERSION_IMMUTABLE: rows of t never change'; END $$;
      CREATE TRIGGER t_frozen BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION t_refuse();`);
    expect(() => db.prepare("UPDATE t SET label = 'x' WHERE id = 1").run()).toThrow(coded('CATALOG_VERSION_IMMUTABLE'));
    // A mistake in the SQL is no constraint: it stays an error the API answers as INTERNAL.
    expect(() => db.prepare('SELEC 1').get()).toThrow(expect.objectContaining({ code: '42601' }));
  });

  it('answers CLOUD_DB_UNAVAILABLE when a statement outlasts the timeout, and goes on', () => {
    const quick = new PgDb(url, { timeoutMs: 300 });
    try {
      expect(() => quick.prepare('SELECT pg_sleep(2)').get()).toThrow(coded('CLOUD_DB_UNAVAILABLE'));
      expect(quick.prepare('SELECT 1 AS one').get()).toEqual({ one: 1 });
    } finally {
      quick.close();
    }
  });

  it('drops a connection that stops answering and connects again once the path heals', async () => {
    const relay: ChildProcess = spawn(process.execPath, ['-e', RELAY, String(server.port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const [line] = (await once(relay.stdout!, 'data')) as [Buffer];
      const via = new URL(url);
      via.port = line.toString().trim();
      const hung = new PgDb(via.toString(), { timeoutMs: 300 });
      try {
        expect(hung.prepare('SELECT 1 AS one').get()).toEqual({ one: 1 });
        relay.kill('SIGUSR1');
        await new Promise((r) => setTimeout(r, 100));
        let message = '';
        try {
          hung.prepare('SELECT 2 AS two').get();
        } catch (err) {
          expect(err).toEqual(coded('CLOUD_DB_UNAVAILABLE'));
          message = (err as Error).message;
        }
        expect(message).toMatch(/no answer within/);
        // The hung connection's thread is gone, not left behind.
        await hung.threads[0];
        relay.kill('SIGUSR2');
        await new Promise((r) => setTimeout(r, 100));
        expect(hung.prepare('SELECT 3 AS three').get()).toEqual({ three: 3 });
        expect(hung.threads).toHaveLength(2);
      } finally {
        hung.close();
      }
    } finally {
      relay.kill('SIGKILL');
    }
  });

  it('fails a transaction whose connection dies, commits none of it, and reconnects after', () => {
    const other = new PgDb(url);
    try {
      const pid = (other.prepare('SELECT pg_backend_pid() AS pid').get() as { pid: number }).pid;
      expect(() =>
        other.transaction(() => {
          other.prepare('INSERT INTO t (id) VALUES (?)').run(30);
          db.prepare('SELECT pg_terminate_backend(?)').get(pid);
          other.prepare('INSERT INTO t (id) VALUES (?)').run(31);
        })(),
      ).toThrow(coded('CLOUD_DB_UNAVAILABLE'));
      expect(db.prepare('SELECT id FROM t WHERE id IN (30, 31)').all()).toEqual([]);
      expect(other.prepare('SELECT 1 AS one').get()).toEqual({ one: 1 });
    } finally {
      other.close();
    }
  });

  it('refuses an unreachable server with CLOUD_DB_UNAVAILABLE and no password in the message', () => {
    const dead = new URL(url);
    dead.port = '1';
    dead.password = 'hunter2';
    let err: unknown;
    try {
      openDb(dead.toString(), undefined, { timeoutMs: 1000 });
    } catch (e) {
      err = e;
    }
    expect(err).toEqual(coded('CLOUD_DB_UNAVAILABLE'));
    expect((err as Error).message).toMatch(/127\.0\.0\.1:1\//);
    expect((err as Error).message).not.toContain('hunter2');
  });

  it('ends its worker thread and its server connection on close', async () => {
    const other = new PgDb(url);
    const pid = (other.prepare('SELECT pg_backend_pid() AS pid').get() as { pid: number }).pid;
    other.close();
    await Promise.all(other.threads);
    expect(other.open).toBe(false);
    expect(() => other.prepare('SELECT 1').get()).toThrow(/not open/);
    // The server notices the client's Terminate message at once; poll briefly for its exit.
    let left = 1;
    for (let i = 0; i < 50 && left > 0; i++) {
      left = (db.prepare('SELECT COUNT(*) AS n FROM pg_stat_activity WHERE pid = ?').get(pid) as { n: number }).n;
      if (left > 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(left).toBe(0);
  });

  it('counts the statements it ran (db.stats)', () => {
    const before = db.stats();
    db.prepare('SELECT 1 AS one').get();
    db.transaction(() => db.prepare('SELECT 1 AS one').get())();
    // One statement, then BEGIN, the write lock, the statement and COMMIT.
    expect(db.stats().queries - before.queries).toBe(5);
    // The time the thread stood waiting for them, what bench/scale.ts reports as event-loop time.
    expect(db.stats().waitMs).toBeGreaterThan(before.waitMs!);
  });
});
