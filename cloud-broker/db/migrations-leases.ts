import type { Migration } from './migrate.js';

/**
 * Leases for work that must run once per fleet (cloud-broker/db/lease.ts, docs/scale.md "Run-once
 * work"). Released migrations are never edited.
 *
 * - One row per lease, created here, so taking and renewing it is one conditional UPDATE and no
 *   replica ever races an INSERT.
 * - `epoch` grows by one at every change of holder: it is the fencing token. Work done under the
 *   lease checks, inside its own transaction, that its epoch is still the row's.
 * - Times are milliseconds since 1970 from the replicas' clocks (BIGINT on PostgreSQL); clocks
 *   must agree to well within the lease TTL (NTP).
 */
export const LEASES_V1: Migration = {
  name: 'leases-v1',
  sql: `
    CREATE TABLE leases (
      name TEXT PRIMARY KEY,
      holder TEXT NOT NULL,
      epoch INTEGER NOT NULL CHECK (epoch >= 0),
      acquired_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL
    );
    INSERT INTO leases (name, holder, epoch, acquired_at, expires_at) VALUES ('fleet-leader', '', 0, 0, 0);
  `,
};
