import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AREAS, CATALOG, EXIT, OutpostError, fromErrorBody, toOutpostError } from '../../protocol/errors/index.js';
import { renderErrorDocs } from '../../protocol/errors/render-docs.js';

describe('error catalog', () => {
  it('defines every code once across all areas', () => {
    const seen = new Map<string, string>();
    for (const [area, table] of Object.entries(AREAS)) {
      for (const code of Object.keys(table)) {
        expect(seen.get(code), `${code} is in ${seen.get(code)} and ${area}`).toBeUndefined();
        seen.set(code, area);
      }
    }
    expect(seen.size).toBe(Object.keys(CATALOG).length);
  });

  it('uses upper snake case, a real HTTP status, a known exit code and a hint for every code', () => {
    const exits = new Set<number>(Object.values(EXIT));
    for (const [code, spec] of Object.entries(CATALOG)) {
      expect(code).toMatch(/^[A-Z][A-Z0-9_]+$/);
      expect(spec.status).toBeGreaterThanOrEqual(400);
      expect(spec.status).toBeLessThan(600);
      expect(exits.has(spec.exit), `${code} exit ${spec.exit}`).toBe(true);
      expect(spec.hint.length).toBeGreaterThan(20);
    }
  });

  it('agrees with docs/errors.md (run `npm run docs:errors` after changing the catalog)', () => {
    const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    expect(docs).toBe(renderErrorDocs());
  });

  it('round-trips an error through its wire form', () => {
    const err = new OutpostError('BAD_REQUEST', 'size must be two integers', { key: 'size' });
    const back = fromErrorBody(JSON.parse(JSON.stringify(err)));
    expect(back.code).toBe('BAD_REQUEST');
    expect(back.details).toEqual({ key: 'size' });
    expect(back.status).toBe(400);
    expect(toOutpostError(new Error('boom')).code).toBe('INTERNAL');
    expect(fromErrorBody({ nope: 1 }, 502).message).toContain('502');
  });
});
