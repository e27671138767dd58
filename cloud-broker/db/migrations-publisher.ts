import type { Migration } from './migrate.js';

/**
 * Who published each version: the subject of the token that made the POST (a user name, or
 * `admin`). Versions published before this migration keep NULL ("not recorded"); the column is
 * written once at insert, like the rest of a version, and the immutability triggers still hold.
 */
export const CATALOG_PUBLISHER: Migration = {
  name: 'catalog-publisher',
  sql: 'ALTER TABLE versions ADD COLUMN published_by TEXT;',
};
