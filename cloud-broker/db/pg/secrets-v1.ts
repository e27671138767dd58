import type { Migration } from '../migrate.js';
import { INT, TEXT } from './dialect.js';

/** PostgreSQL twin of cloud-broker/db/migrations-secrets.ts. */
export const PG_SECRETS_V1: Migration = {
  name: 'cluster-secrets-v1',
  sql: `
    CREATE TABLE cluster_secrets (
      name ${TEXT} PRIMARY KEY,
      value TEXT NOT NULL,
      version ${INT} NOT NULL UNIQUE,
      updated_at ${TEXT} NOT NULL
    );
  `,
};
