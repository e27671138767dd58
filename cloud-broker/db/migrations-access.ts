import type { Migration } from './migrate.js';

/**
 * Least-privilege reads (docs/security.md, "Who may read what"). Released migrations are never edited.
 *
 * - blob_uploads: who uploaded which blob. Blobs are content-addressed and shared, so one sha256
 *   may have several uploaders; each upload proves its uploader holds the bytes. A user may read
 *   (and reference from a new version) a blob it uploaded or one that a model it may read lists.
 *   Existing blobs are credited to the owners of the models that list them; blobs no model lists
 *   and nobody is recorded for are readable by the admin only.
 * - devices.desired_prev_doc: the device's previous signed document (its model list differed
 *   from the current one), so that a device still on the old version (mid-rollout, or rolled
 *   back) may keep reading it: a device reads only what its current or previous state names.
 */
export const ACCESS_V1: Migration = {
  name: 'access-v1',
  sql: `
    CREATE TABLE blob_uploads (
      sha256 TEXT NOT NULL,
      uploader TEXT NOT NULL,           -- user name, or 'admin'
      size INTEGER NOT NULL CHECK (size >= 0),
      created_at TEXT NOT NULL,
      PRIMARY KEY (sha256, uploader)
    );
    CREATE INDEX blob_uploads_uploader ON blob_uploads (uploader);
    INSERT OR IGNORE INTO blob_uploads (sha256, uploader, size, created_at)
      SELECT DISTINCT vf.sha256, m.owner, vf.size, m.created_at
      FROM version_files vf JOIN models m ON m.id = vf.model_id;
    ALTER TABLE devices ADD COLUMN desired_prev_doc TEXT;
  `,
};
