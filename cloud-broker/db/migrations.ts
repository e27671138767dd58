import { CATALOG_V1 } from './migrations-catalog.js';
import type { Migration } from './migrate.js';
import { FLEET_V1 } from './migrations-fleet.js';
import { TELEMETRY_V1 } from '../fleet/telemetry.js';
import { ACCESS_V1 } from './migrations-access.js';
import { ROLLOUTS_V1 } from './migrations-rollouts.js';
import { CATALOG_PUBLISHER } from './migrations-publisher.js';
import { LEASES_V1 } from './migrations-leases.js';
import { SECRETS_V1 } from './migrations-secrets.js';

/**
 * Every schema migration of the cloud database, applied in this order; the index + 1 of the last
 * one applied is kept in `PRAGMA user_version`.
 *
 * To add tables (e.g. the fleet's), put a `Migration` in your own file and append ONE line here.
 * Never reorder, edit or remove a released entry: databases in the field already applied it.
 */
export const MIGRATIONS: readonly Migration[] = [
  CATALOG_V1,
  // append new migrations below this line
  FLEET_V1,
  TELEMETRY_V1,
  ACCESS_V1,
  ROLLOUTS_V1,
  CATALOG_PUBLISHER,
  LEASES_V1,
  SECRETS_V1,
];
