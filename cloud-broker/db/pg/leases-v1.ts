import type { Migration } from '../migrate.js';
import { INT, TEXT } from './dialect.js';

/** PostgreSQL twin of cloud-broker/db/migrations-leases.ts (times in ms since 1970 need BIGINT). */
export const PG_LEASES_V1: Migration = {
  name: 'leases-v1',
  sql: `
    CREATE TABLE leases (
      name ${TEXT} PRIMARY KEY,
      holder ${TEXT} NOT NULL,
      epoch ${INT} NOT NULL CHECK (epoch >= 0),
      acquired_at ${INT} NOT NULL,
      expires_at ${INT} NOT NULL
    );
    INSERT INTO leases (name, holder, epoch, acquired_at, expires_at) VALUES ('fleet-leader', '', 0, 0, 0);
  `,
};
