import type { Migration } from './migrate.js';

/**
 * The catalog's tables. Released migrations are never edited: a change is a new migration
 * appended to MIGRATIONS in migrations.ts.
 *
 * Invariants the triggers enforce even against a bug in the code: a version and its files never
 * change or disappear once inserted, and a model's versions are exactly 1..n (each insert is the
 * previous maximum + 1).
 */
export const CATALOG_V1: Migration = {
  name: 'catalog-v1',
  sql: `
    CREATE TABLE users (
      name TEXT PRIMARY KEY,
      created_at TEXT NOT NULL
    );
    CREATE TABLE tokens (
      hash TEXT PRIMARY KEY,            -- sha256 hex of the token; the token itself is never stored
      kind TEXT NOT NULL CHECK (kind IN ('admin', 'user', 'device')),
      subject TEXT NOT NULL,            -- user name, device id, or 'admin'
      created_at TEXT NOT NULL,
      revoked_at TEXT
    );
    CREATE INDEX tokens_subject ON tokens (kind, subject);
    CREATE TABLE models (
      id INTEGER PRIMARY KEY,
      owner TEXT NOT NULL,
      name TEXT NOT NULL,
      public INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1)),
      created_at TEXT NOT NULL,
      updated_at TEXT NOT NULL,
      UNIQUE (owner, name)
    );
    CREATE TABLE versions (
      model_id INTEGER NOT NULL REFERENCES models (id),
      version INTEGER NOT NULL CHECK (version >= 1),
      manifest TEXT NOT NULL,           -- alwaysai.model.json as published (JSON)
      digest TEXT NOT NULL,             -- sha256 of canonical {manifest, files}
      created_at TEXT NOT NULL,
      PRIMARY KEY (model_id, version)
    );
    CREATE TABLE version_files (
      model_id INTEGER NOT NULL,
      version INTEGER NOT NULL,
      path TEXT NOT NULL,
      sha256 TEXT NOT NULL,
      size INTEGER NOT NULL CHECK (size >= 0),
      PRIMARY KEY (model_id, version, path),
      FOREIGN KEY (model_id, version) REFERENCES versions (model_id, version)
    );
    CREATE INDEX version_files_sha ON version_files (sha256);
    CREATE TABLE apps (
      owner TEXT NOT NULL,
      app TEXT NOT NULL,
      models TEXT NOT NULL,             -- JSON {"owner/name": version}
      updated_at TEXT NOT NULL,
      PRIMARY KEY (owner, app)
    );

    CREATE TRIGGER versions_grow BEFORE INSERT ON versions
    WHEN NEW.version <> COALESCE((SELECT MAX(version) FROM versions WHERE model_id = NEW.model_id), 0) + 1
    BEGIN SELECT RAISE(ABORT, 'CATALOG_VERSION_IMMUTABLE: versions are numbered latest + 1'); END;
    CREATE TRIGGER versions_immutable_update BEFORE UPDATE ON versions
    BEGIN SELECT RAISE(ABORT, 'CATALOG_VERSION_IMMUTABLE: a published version never changes'); END;
    CREATE TRIGGER versions_immutable_delete BEFORE DELETE ON versions
    BEGIN SELECT RAISE(ABORT, 'CATALOG_VERSION_IMMUTABLE: a published version is never deleted'); END;
    CREATE TRIGGER version_files_immutable_insert BEFORE INSERT ON version_files
    WHEN NEW.version <> (SELECT MAX(version) FROM versions WHERE model_id = NEW.model_id)
    BEGIN SELECT RAISE(ABORT, 'CATALOG_VERSION_IMMUTABLE: files are added only to the newest version'); END;
    CREATE TRIGGER version_files_immutable_update BEFORE UPDATE ON version_files
    BEGIN SELECT RAISE(ABORT, 'CATALOG_VERSION_IMMUTABLE: a published version never changes'); END;
    CREATE TRIGGER version_files_immutable_delete BEFORE DELETE ON version_files
    BEGIN SELECT RAISE(ABORT, 'CATALOG_VERSION_IMMUTABLE: a published version is never deleted'); END;
  `,
};
