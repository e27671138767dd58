import type { Migration } from '../migrate.js';
import { ID, INT, REFUSE_FUNCTION, refuse, TEXT } from './dialect.js';

const IMMUTABLE = 'CATALOG_VERSION_IMMUTABLE';

/** PostgreSQL twin of cloud-broker/db/migrations-catalog.ts (same tables, same invariants). */
export const PG_CATALOG_V1: Migration = {
  name: 'catalog-v1',
  sql: `
    ${REFUSE_FUNCTION}
    CREATE TABLE users (
      name ${TEXT} PRIMARY KEY,
      created_at ${TEXT} NOT NULL
    );
    CREATE TABLE tokens (
      hash ${TEXT} PRIMARY KEY,
      kind ${TEXT} NOT NULL CHECK (kind IN ('admin', 'user', 'device')),
      subject ${TEXT} NOT NULL,
      created_at ${TEXT} NOT NULL,
      revoked_at ${TEXT}
    );
    CREATE INDEX tokens_subject ON tokens (kind, subject);
    CREATE TABLE models (
      id ${ID},
      owner ${TEXT} NOT NULL,
      name ${TEXT} NOT NULL,
      public ${INT} NOT NULL DEFAULT 0 CHECK (public IN (0, 1)),
      created_at ${TEXT} NOT NULL,
      updated_at ${TEXT} NOT NULL,
      UNIQUE (owner, name)
    );
    CREATE TABLE versions (
      model_id ${INT} NOT NULL REFERENCES models (id),
      version ${INT} NOT NULL CHECK (version >= 1),
      manifest ${TEXT} NOT NULL,
      digest ${TEXT} NOT NULL,
      created_at ${TEXT} NOT NULL,
      PRIMARY KEY (model_id, version)
    );
    CREATE TABLE version_files (
      model_id ${INT} NOT NULL,
      version ${INT} NOT NULL,
      path ${TEXT} NOT NULL,
      sha256 ${TEXT} NOT NULL,
      size ${INT} NOT NULL CHECK (size >= 0),
      PRIMARY KEY (model_id, version, path),
      FOREIGN KEY (model_id, version) REFERENCES versions (model_id, version)
    );
    CREATE INDEX version_files_sha ON version_files (sha256);
    CREATE TABLE apps (
      owner ${TEXT} NOT NULL,
      app ${TEXT} NOT NULL,
      models ${TEXT} NOT NULL,
      updated_at ${TEXT} NOT NULL,
      PRIMARY KEY (owner, app)
    );

    -- A trigger's WHEN cannot hold a subquery in PostgreSQL: these two checks are functions.
    CREATE FUNCTION outpost_versions_grow() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.version <> COALESCE((SELECT MAX(version) FROM versions WHERE model_id = NEW.model_id), 0) + 1 THEN
        RAISE EXCEPTION '${IMMUTABLE}: versions are numbered latest + 1';
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER versions_grow BEFORE INSERT ON versions FOR EACH ROW EXECUTE FUNCTION outpost_versions_grow();
    CREATE FUNCTION outpost_files_newest() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.version IS DISTINCT FROM (SELECT MAX(version) FROM versions WHERE model_id = NEW.model_id) THEN
        RAISE EXCEPTION '${IMMUTABLE}: files are added only to the newest version';
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER version_files_immutable_insert BEFORE INSERT ON version_files
      FOR EACH ROW EXECUTE FUNCTION outpost_files_newest();
    ${refuse('versions_immutable_update', 'UPDATE', 'versions', `${IMMUTABLE}: a published version never changes`)}
    ${refuse('versions_immutable_delete', 'DELETE', 'versions', `${IMMUTABLE}: a published version is never deleted`)}
    ${refuse('version_files_immutable_update', 'UPDATE', 'version_files', `${IMMUTABLE}: a published version never changes`)}
    ${refuse('version_files_immutable_delete', 'DELETE', 'version_files', `${IMMUTABLE}: a published version is never deleted`)}
  `,
};
