import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDb } from '../../cloud-broker/db/index.js';
import type { SqliteDb } from '../../cloud-broker/db/sqlite.js';
import { useTempDir } from '../helpers/temp-dir.js';

// Replicas may share one SQLite file (docs/scale.md). Two connections to one file stand for two
// replicas: a transaction that reads and then writes must hold the write lock from its start, or a
// commit by the other one in between makes its write fail with SQLITE_BUSY_SNAPSHOT, which the
// busy timeout cannot retry.
const tmp = useTempDir('outpost-db-shared-');

describe('a database file shared by two processes', () => {
  it('runs transactions as BEGIN IMMEDIATE, so the other writer waits instead of breaking it', () => {
    const file = join(tmp.dir, 'cloud.db');
    const a = openDb(file);
    const b = openDb(file);
    a.exec('CREATE TABLE counter (n INTEGER NOT NULL)');
    a.exec('INSERT INTO counter VALUES (0)');
    // B does not wait at all, so "the lock was held" shows as an error right away.
    (b as SqliteDb).raw.pragma('busy_timeout = 0');
    let other: unknown = null;
    const bump = a.transaction(() => {
      const { n } = a.prepare('SELECT n FROM counter').get() as { n: number };
      try {
        b.prepare('UPDATE counter SET n = n + 100').run();
      } catch (err) {
        other = err;
      }
      a.prepare('UPDATE counter SET n = ?').run(n + 1);
    });
    expect(() => bump()).not.toThrow();
    expect(other).toMatchObject({ code: 'SQLITE_BUSY' });
    expect((b.prepare('SELECT n FROM counter').get() as { n: number }).n).toBe(1);
    a.close();
    b.close();
  });
});
