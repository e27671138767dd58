import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../cloud-broker/db/migrations.js';
import { PG_MIGRATIONS } from '../../cloud-broker/db/pg/index.js';
import { numberPlaceholders } from '../../cloud-broker/db/pg-sql.js';
import { isPostgresUrl, parsePostgresUrl, redactDbUrl } from '../../cloud-broker/db/pg-url.js';
import type { OutpostError } from '../../protocol/errors/index.js';

describe('PostgreSQL SQL translation', () => {
  it('numbers the ? placeholders in order', () => {
    expect(numberPlaceholders('SELECT a FROM t WHERE b = ? AND c IN (?, ?) LIMIT ?')).toBe(
      'SELECT a FROM t WHERE b = $1 AND c IN ($2, $3) LIMIT $4',
    );
  });

  it('leaves a ? inside literals, quoted identifiers, comments and dollar quotes alone', () => {
    const sql = `SELECT '?', 'it''s ?', "col?" , ? -- why? \n /* ? */ $$ ? $$, $tag$ ? $tag$, ?`;
    expect(numberPlaceholders(sql)).toBe(
      `SELECT '?', 'it''s ?', "col?" , $1 -- why? \n /* ? */ $$ ? $$, $tag$ ? $tag$, $2`,
    );
  });

  it('keeps an unterminated literal as text rather than numbering inside it', () => {
    expect(numberPlaceholders("SELECT ?, 'open ?")).toBe("SELECT $1, 'open ?");
  });
});

describe('migrations of both dialects', () => {
  it('have the same names in the same order', () => {
    expect(PG_MIGRATIONS.map((m) => m.name)).toEqual(MIGRATIONS.map((m) => m.name));
  });
});

describe('--database URL', () => {
  const invalid = expect.objectContaining({ code: 'CLOUD_DB_URL_INVALID' }) as OutpostError;

  it('accepts postgres:// and postgresql:// URLs', () => {
    expect(parsePostgresUrl('postgres://u:p@db.example:5432/outpost')).toBe('postgres://u:p@db.example:5432/outpost');
    expect(isPostgresUrl('postgresql://u@h/d')).toBe(true);
    expect(isPostgresUrl('/var/lib/outpost/catalog.db')).toBe(false);
  });

  it('refuses a bad one with a coded error that never shows the password', () => {
    for (const bad of ['mysql://u:hunter2@h/d', 'postgres://u:hunter2@/d', 'postgres://u:hunter2@h:99999/d']) {
      expect(() => parsePostgresUrl(bad)).toThrow(invalid);
      try {
        parsePostgresUrl(bad);
      } catch (err) {
        expect((err as Error).message).not.toContain('hunter2');
      }
    }
  });

  it('redacts the password for messages', () => {
    expect(redactDbUrl('postgres://u:hunter2@h:5432/d')).toBe('postgres://u:***@h:5432/d');
    expect(redactDbUrl('postgres://u:hun:ter@')).not.toContain('hun:ter');
  });
});
