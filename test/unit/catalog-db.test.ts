import { describe, expect, it } from 'vitest';
import type { Db } from '../../cloud-broker/db/index.js';
import { PG_MIGRATIONS } from '../../cloud-broker/db/pg/index.js';
import { openTestDb, testEngine } from '../helpers/test-db.js';
import { migrate } from '../../cloud-broker/db/migrate.js';
import { MIGRATIONS } from '../../cloud-broker/db/migrations.js';
import { createVersion } from '../../cloud-broker/catalog/models.js';
import { createToken, verifyToken, revokeTokens } from '../../cloud-broker/auth/tokens.js';
import type { SqliteDb } from '../../cloud-broker/db/sqlite.js';
import type { OutpostError } from '../../protocol/errors/index.js';

// A trigger's 'CATALOG_VERSION_IMMUTABLE: ...' arrives as that coded error, not as an INTERNAL one.
const immutable = expect.objectContaining({ code: 'CATALOG_VERSION_IMMUTABLE' }) as OutpostError;

const known = (db: Db) => (db.engine === 'postgres' ? PG_MIGRATIONS : MIGRATIONS);
const SHA = 'c'.repeat(64);
const body = (n: number) => ({
  manifest: { id: 'alice/m', n },
  files: [{ path: 'model.onnx', sha256: SHA, size: n }],
  force: false,
});

describe('cloud database', () => {
  it('applies every migration once and records the schema version', async () => {
    const db = await openTestDb();
    expect(db.schemaVersion()).toBe(MIGRATIONS.length);
    expect(db.engine).toBe(testEngine());
    if (db.engine === 'sqlite') expect((db as SqliteDb).raw.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(migrate(db, known(db))).toEqual([]);
    db.close();
  });

  it('refuses a database written by a newer schema', async () => {
    const db = await openTestDb();
    db.setSchemaVersion(MIGRATIONS.length + 1);
    expect(() => migrate(db, known(db))).toThrow(expect.objectContaining({ code: 'CLOUD_DB_TOO_NEW' }) as OutpostError);
    db.close();
  });

  it('numbers versions 1, 2, 3 and keeps them immutable even against direct SQL', async () => {
    const db = await openTestDb();
    expect(createVersion(db, 'alice', 'm', body(1)).version).toBe(1);
    expect(createVersion(db, 'alice', 'm', body(2)).version).toBe(2);
    expect(createVersion(db, 'alice', 'm', body(2))).toEqual({ id: 'alice/m', version: 2, unchanged: true });
    expect(createVersion(db, 'alice', 'm', { ...body(2), force: true }).version).toBe(3);
    expect(() => db.prepare("UPDATE versions SET manifest = '{}' WHERE version = 1").run()).toThrow(immutable);
    expect(() => db.prepare('DELETE FROM versions WHERE version = 1').run()).toThrow(immutable);
    expect(() => db.prepare('UPDATE version_files SET size = 99').run()).toThrow(immutable);
    expect(() => db.prepare('DELETE FROM version_files').run()).toThrow(immutable);
    expect(() =>
      db
        .prepare(
          "INSERT INTO versions (model_id, version, manifest, digest, created_at) VALUES (1, 7, '{}', 'x', 'now')",
        )
        .run(),
    ).toThrow(immutable);
    expect(() =>
      db
        .prepare("INSERT INTO version_files (model_id, version, path, sha256, size) VALUES (1, 1, 'extra', 'x', 1)")
        .run(),
    ).toThrow(immutable);
    const v1 = db.prepare('SELECT manifest FROM versions WHERE version = 1').get() as { manifest: string };
    expect(JSON.parse(v1.manifest)).toEqual({ id: 'alice/m', n: 1 });
    db.close();
  });

  it('stores only token hashes, verifies and revokes tokens', async () => {
    const db = await openTestDb();
    const token = createToken(db, 'device', 'dev-1');
    expect(verifyToken(db, token)).toEqual({ kind: 'device', subject: 'dev-1' });
    expect(verifyToken(db, token + 'x')).toBeNull();
    const stored = db.prepare('SELECT hash FROM tokens').all() as { hash: string }[];
    expect(stored.some((r) => r.hash.includes(token) || token.includes(r.hash))).toBe(false);
    expect(revokeTokens(db, 'device', 'dev-1')).toBe(1);
    expect(verifyToken(db, token)).toBeNull();
    db.close();
  });
});
