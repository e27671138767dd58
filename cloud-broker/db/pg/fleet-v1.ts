import type { Migration } from '../migrate.js';
import { ID, INT, refuse, TEXT } from './dialect.js';

/** PostgreSQL twin of cloud-broker/db/migrations-fleet.ts. */
export const PG_FLEET_V1: Migration = {
  name: 'fleet-v1',
  sql: `
    CREATE TABLE devices (
      id ${TEXT} PRIMARY KEY,
      created_at ${TEXT} NOT NULL,
      removed_at ${TEXT},
      revision ${INT} NOT NULL DEFAULT 0 CHECK (revision >= 0),
      desired_doc ${TEXT},
      desired_digest ${TEXT},
      desired_expires ${TEXT},
      reported ${TEXT},
      reported_at ${TEXT},
      status ${TEXT},
      status_at ${TEXT}
    );
    CREATE TABLE device_tags (
      device_id ${TEXT} NOT NULL REFERENCES devices (id),
      tag ${TEXT} NOT NULL,
      PRIMARY KEY (device_id, tag)
    );
    CREATE INDEX device_tags_tag ON device_tags (tag);
    CREATE TABLE deployments (
      id ${ID},
      target_kind ${TEXT} NOT NULL CHECK (target_kind IN ('device', 'tag', 'all')),
      target ${TEXT} NOT NULL,
      model ${TEXT} NOT NULL,
      version ${INT} NOT NULL CHECK (version >= 1),
      app ${TEXT},
      created_at ${TEXT} NOT NULL,
      rolled_back_at ${TEXT}
    );
    CREATE INDEX deployments_target ON deployments (target_kind, target, model);
    ${refuse('devices_revision_grows', 'UPDATE OF revision', 'devices', 'DESIRED_ROLLBACK: a device revision never decreases', 'NEW.revision < OLD.revision')}
  `,
};

/** PostgreSQL twin of TELEMETRY_V1 (cloud-broker/fleet/telemetry.ts). */
export const PG_TELEMETRY_V1: Migration = {
  name: 'telemetry-v1',
  sql: `
    CREATE TABLE device_telemetry (
      device_id ${TEXT} PRIMARY KEY REFERENCES devices (id),
      sample ${TEXT} NOT NULL,
      sampled_at ${TEXT} NOT NULL,
      received_at ${TEXT} NOT NULL
    );
  `,
};
