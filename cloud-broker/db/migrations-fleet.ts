import type { Migration } from './migrate.js';

/**
 * The fleet's tables (cloud-broker/fleet/). Released migrations are never edited.
 *
 * - devices: a removed device keeps its row (removed_at) so that its revision counter never goes
 *   back: re-provisioning the same id continues from the last revision, and an agent that kept
 *   its state never sees a "replayed" lower revision.
 * - desired_doc is the last signed envelope, republished retained at every start: the database,
 *   not the broker's memory, is the source of truth for desired state.
 * - deployments are history: rollback marks the newest ones rolled back instead of deleting them.
 */
export const FLEET_V1: Migration = {
  name: 'fleet-v1',
  sql: `
    CREATE TABLE devices (
      id TEXT PRIMARY KEY,
      created_at TEXT NOT NULL,
      removed_at TEXT,
      revision INTEGER NOT NULL DEFAULT 0 CHECK (revision >= 0),
      desired_doc TEXT,
      desired_digest TEXT,
      desired_expires TEXT,
      reported TEXT,
      reported_at TEXT,
      status TEXT,
      status_at TEXT
    );
    CREATE TABLE device_tags (
      device_id TEXT NOT NULL REFERENCES devices (id),
      tag TEXT NOT NULL,
      PRIMARY KEY (device_id, tag)
    );
    CREATE INDEX device_tags_tag ON device_tags (tag);
    CREATE TABLE deployments (
      id INTEGER PRIMARY KEY,
      target_kind TEXT NOT NULL CHECK (target_kind IN ('device', 'tag', 'all')),
      target TEXT NOT NULL,
      model TEXT NOT NULL,
      version INTEGER NOT NULL CHECK (version >= 1),
      app TEXT,
      created_at TEXT NOT NULL,
      rolled_back_at TEXT
    );
    CREATE INDEX deployments_target ON deployments (target_kind, target, model);
    CREATE TRIGGER devices_revision_grows BEFORE UPDATE OF revision ON devices
    WHEN NEW.revision < OLD.revision
    BEGIN SELECT RAISE(ABORT, 'DESIRED_ROLLBACK: a device revision never decreases'); END;
  `,
};
