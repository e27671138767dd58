import type { Migration } from '../migrate.js';
import { PG_ACCESS_V1, PG_CATALOG_PUBLISHER } from './access-v1.js';
import { PG_CATALOG_V1 } from './catalog-v1.js';
import { PG_FLEET_V1, PG_TELEMETRY_V1 } from './fleet-v1.js';
import { PG_ROLLOUTS_V1 } from './rollouts-v1.js';
import { PG_LEASES_V1 } from './leases-v1.js';
import { PG_SECRETS_V1 } from './secrets-v1.js';

/**
 * The PostgreSQL schema migrations: the same names in the same order as MIGRATIONS
 * (cloud-broker/db/migrations.ts, test/unit/db-migrations.test.ts checks it), so one schema
 * version means one schema on either engine. A parallel folder rather than a second field on
 * each SQLite migration: the released SQLite files stay untouched (they are never edited), each
 * dialect reads in one place, and a reviewer of one engine's DDL sees only that engine's.
 *
 * To add a migration: append it to MIGRATIONS and its twin here, in the same position.
 */
export const PG_MIGRATIONS: readonly Migration[] = [
  PG_CATALOG_V1,
  // append new migrations below this line
  PG_FLEET_V1,
  PG_TELEMETRY_V1,
  PG_ACCESS_V1,
  PG_ROLLOUTS_V1,
  PG_CATALOG_PUBLISHER,
  PG_LEASES_V1,
  PG_SECRETS_V1,
];
