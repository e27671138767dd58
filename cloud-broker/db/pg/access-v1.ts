import type { Migration } from '../migrate.js';
import { INT, TEXT } from './dialect.js';

/** PostgreSQL twin of cloud-broker/db/migrations-access.ts. */
export const PG_ACCESS_V1: Migration = {
  name: 'access-v1',
  sql: `
    CREATE TABLE blob_uploads (
      sha256 ${TEXT} NOT NULL,
      uploader ${TEXT} NOT NULL,
      size ${INT} NOT NULL CHECK (size >= 0),
      created_at ${TEXT} NOT NULL,
      PRIMARY KEY (sha256, uploader)
    );
    CREATE INDEX blob_uploads_uploader ON blob_uploads (uploader);
    INSERT INTO blob_uploads (sha256, uploader, size, created_at)
      SELECT DISTINCT vf.sha256, m.owner, vf.size, m.created_at
      FROM version_files vf JOIN models m ON m.id = vf.model_id
      ON CONFLICT DO NOTHING;
    ALTER TABLE devices ADD COLUMN desired_prev_doc ${TEXT};
  `,
};

/** PostgreSQL twin of cloud-broker/db/migrations-publisher.ts. */
export const PG_CATALOG_PUBLISHER: Migration = {
  name: 'catalog-publisher',
  sql: `ALTER TABLE versions ADD COLUMN published_by ${TEXT};`,
};
