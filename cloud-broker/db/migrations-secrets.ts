import type { Migration } from './migrate.js';

/**
 * What every replica must agree on and that used to be files in the data dir: the desired-state
 * signing keys, the root chain and the device-credential key (cloud-broker/secrets/store.ts,
 * docs/scale.md "What replicas share"). Rows are only ever added: a key is named by its keyid,
 * a root by its version, so a change is a new row and `version` (one sequence over the table)
 * tells a replica in one read whether anything changed since it last looked.
 */
export const SECRETS_V1: Migration = {
  name: 'cluster-secrets-v1',
  sql: `
    CREATE TABLE cluster_secrets (
      name TEXT PRIMARY KEY,
      value TEXT NOT NULL,
      version INTEGER NOT NULL UNIQUE,
      updated_at TEXT NOT NULL
    );
  `,
};
